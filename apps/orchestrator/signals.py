"""Signals the orchestrator sends (for the apps above it: notifications), and its own receivers (connected
in ``OrchestratorConfig.ready``).

Sent after the run's transaction commits, from ``services.runs.run_announce`` (the one place), with
``deployment_id, run_id, project_name, device_id, batch_id`` and:

- ``pipeline_failing`` (``error``, ``failures``): a deployment's run on a group failed after succeeding (the
  first failure of a streak; the retries that follow are not announced again);
- ``estimates_invalid`` (``rows``, ``invalid``, ``verdicts``): a run stored estimates whose validity is not
  ``ok`` (inputs outside the training envelope); every such run sends it, receivers decide how often to
  tell people (notifications: once per deployment and batch within its repeat window).

Receivers must be quick (queue work, never run it).
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.dispatch import Signal

pipeline_failing = Signal()
estimates_invalid = Signal()


def ensure_schedules_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    if sender.label != "orchestrator":
        return
    from .services import beat_schedules_ensure

    beat_schedules_ensure(using=kwargs.get("using", "default"))


def points_committed_received(sender: Any, **kwargs: Any) -> None:
    """New raw points committed: schedule detection for the affected groups (see services)."""
    from .services import on_points_committed

    on_points_committed(sender, **kwargs)

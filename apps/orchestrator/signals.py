"""Signals the orchestrator sends (for the apps above it: notifications), and its own receivers (connected
in ``OrchestratorConfig.ready``).

Sent after the run's transaction commits, from ``services.runs.run_announce`` (the one place), with
``deployment_id, run_id, project_name, device_id, batch_id`` and:

- ``pipeline_failing`` (``error``, ``failures``): a deployment's run on a group failed after succeeding (the
  first failure of a streak; the retries that follow are not announced again);
- ``estimates_invalid`` (``rows``, ``invalid``, ``verdicts``): a run stored estimates whose validity is not
  ``ok`` (inputs outside the training envelope); every such run sends it, receivers decide how often to
  tell people (notifications: once per deployment and batch within its repeat window).

- ``runs_finished`` (``runs``: a list of ``FinishedRun``, no other argument): live or backfill runs that
  ended succeeded, skipped or failed, sent once per committed transaction (a batched pipeline task finishes
  many runs in one transaction; receivers get them in one call, so they can queue their work in bulk too).

Receivers must be quick (queue work, never run it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import AppConfig
from django.dispatch import Signal

pipeline_failing = Signal()
estimates_invalid = Signal()
runs_finished = Signal()


@dataclass(frozen=True)
class FinishedRun:
    """What ``runs_finished`` says of one run (plain values: receivers never import the orchestrator's models)."""

    run_id: int
    deployment_id: int
    project_name: str
    device_id: str
    batch_id: str
    status: str
    trigger: str
    predictions: int


def ensure_schedules_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    if sender.label != "orchestrator":
        return
    from .services import beat_schedules_ensure

    beat_schedules_ensure(using=kwargs.get("using", "default"))


def points_committed_received(sender: Any, **kwargs: Any) -> None:
    """New raw points committed: schedule detection for the affected groups (see services)."""
    from .services import on_points_committed

    on_points_committed(sender, **kwargs)

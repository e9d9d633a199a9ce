"""Signal receivers of the orchestrator (connected in ``OrchestratorConfig.ready``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def ensure_schedules_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    if sender.label != "orchestrator":
        return
    from .services import beat_schedules_ensure

    beat_schedules_ensure(using=kwargs.get("using", "default"))


def points_committed_received(sender: Any, **kwargs: Any) -> None:
    """New raw points committed: schedule detection for the affected groups (see services)."""
    from .services import on_points_committed

    on_points_committed(sender, **kwargs)

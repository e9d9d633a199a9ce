"""Signal receivers of the orchestrator."""
from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def ensure_schedules_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    if sender.label != "orchestrator":
        return
    from .services import beat_schedules_ensure

    beat_schedules_ensure(using=kwargs.get("using", "default"))

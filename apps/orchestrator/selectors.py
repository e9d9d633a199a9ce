"""Reads of the orchestrator."""
from __future__ import annotations

from datetime import datetime

from .models import Heartbeat


def heartbeat_last_seen(*, name: str = "beat") -> datetime | None:
    return Heartbeat.objects.filter(name=name).values_list("last_seen", flat=True).first()

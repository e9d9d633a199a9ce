"""Beat: the default periodic tasks (created once, then the admin's) and the heartbeats health reads."""

from __future__ import annotations

import logging
import socket
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from apps.common.beat import periodic_task_ensure

from .. import task_names
from ..models import Heartbeat

logger = logging.getLogger(__name__)

#: Default periodic tasks: (name, task, interval in seconds). Created once, then edited in the admin.
DEFAULT_SCHEDULES: tuple[tuple[str, str, int], ...] = (
    ("Scheduler heartbeat", task_names.HEARTBEAT, settings.STAMM_HEARTBEAT_INTERVAL),
    ("Pipeline detection", task_names.DETECT, settings.STAMM_PIPELINE_DETECT_INTERVAL),
    ("Pipeline health", task_names.HEALTH, settings.STAMM_PIPELINE_HEALTH_INTERVAL),
)


def heartbeat_record(
    *, name: str = "beat", now: datetime | None = None, ok: bool | None = None, detail: str = ""
) -> Heartbeat:
    """Upsert the heartbeat row with the current time and host (and a verdict, for health probes)."""
    beat, _ = Heartbeat.objects.update_or_create(
        name=name,
        defaults={
            "last_seen": now or timezone.now(),
            "hostname": socket.gethostname()[:255],
            "ok": ok,
            "detail": detail,
        },
    )
    return beat


def beat_schedules_ensure(*, using: str = "default") -> list[str]:
    """Create the default periodic tasks if absent; existing ones (maybe edited) are left alone."""
    return [
        name
        for name, task, every in DEFAULT_SCHEDULES
        if periodic_task_ensure(name=name, task=task, every=every, using=using)
    ]

"""Writes of the orchestrator: heartbeats and the default beat schedules."""
from __future__ import annotations

import json
import socket
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Heartbeat

#: Default periodic tasks: (name, task, interval in seconds). Created once, then edited in the admin.
DEFAULT_SCHEDULES: tuple[tuple[str, str, int], ...] = (
    ("Scheduler heartbeat", "orchestrator.heartbeat", settings.STAMM_HEARTBEAT_INTERVAL),
)


def heartbeat_record(*, name: str = "beat", now: datetime | None = None) -> Heartbeat:
    """Upsert the heartbeat row with the current time and host."""
    beat, _ = Heartbeat.objects.update_or_create(
        name=name, defaults={"last_seen": now or timezone.now(), "hostname": socket.gethostname()[:255]}
    )
    return beat


@transaction.atomic
def beat_schedules_ensure(*, using: str = "default") -> list[str]:
    """Create the default periodic tasks if absent; existing ones (maybe edited) are left alone."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    created = []
    for name, task, every in DEFAULT_SCHEDULES:
        if PeriodicTask.objects.using(using).filter(name=name).exists():
            continue
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.using(using).create(
            name=name, task=task, interval=interval, kwargs=json.dumps({}), enabled=True
        )
        created.append(name)
    return created

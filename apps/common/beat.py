"""Default beat schedules that apps create once after ``migrate``; afterwards they belong to the admin."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any


def periodic_task_ensure(
    *,
    name: str,
    task: str,
    every: int,
    kwargs: Mapping[str, Any] | None = None,
    description: str = "",
    using: str = "default",
) -> bool:
    """Create the interval task ``name`` if absent (an existing, maybe edited, one is left alone); True when
    created. Every app's default schedules go through here, so "created once, then the admin's" is one rule."""
    from django.db import connections, transaction
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if "django_celery_beat_periodictask" not in connections[using].introspection.table_names():
        return False
    with transaction.atomic(using=using):
        if PeriodicTask.objects.using(using).filter(name=name).exists():
            return False
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.using(using).create(
            name=name,
            task=task,
            interval=interval,
            kwargs=json.dumps(dict(kwargs or {})),
            enabled=True,
            description=description,
        )
    return True


def periodic_task_sync(
    *,
    current_id: int | None,
    name: str,
    task: str,
    kwargs: Mapping[str, Any],
    enabled: bool,
    description: str,
    unlink: Callable[[], None],
    every_seconds: int | None = None,
    crontab: Mapping[str, str] | None = None,
) -> Any:
    """The beat entry of an object with a schedule (a drift job, a training plan): updated in place, created
    (replacing an orphan of the same name left by hand) or, with neither ``every_seconds`` nor ``crontab``,
    deleted after ``unlink()`` (the object lets go of it through its own, audited, write). Returns the entry,
    or None when deleted; the caller links a new entry to its object."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    entry = PeriodicTask.objects.filter(pk=current_id).first() if current_id else None
    if every_seconds is None and crontab is None:
        if entry is not None:
            unlink()
            entry.delete()
        return None
    if entry is None:
        PeriodicTask.objects.filter(name=name).delete()  # an orphan left by hand
        entry = PeriodicTask(name=name)
    if crontab is not None:
        entry.crontab, _ = CrontabSchedule.objects.get_or_create(**crontab, timezone="UTC")
        entry.interval = None
    else:
        entry.interval, _ = IntervalSchedule.objects.get_or_create(every=every_seconds, period=IntervalSchedule.SECONDS)
        entry.crontab = None
    entry.task = task
    entry.kwargs = json.dumps(dict(kwargs))
    entry.enabled = enabled
    entry.description = description
    entry.save()
    return entry


def periodic_task_delete(task_id: int | None) -> None:
    """Delete a beat entry whose object is gone."""
    if task_id:
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(pk=task_id).delete()

"""Triggers: data events, beat's safety net and manual runs queue at most one run per deployment and group."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.tsdb.backends import get_backend
from apps.tsdb.types import Collection, GroupKey, SeriesFilter, to_ns

from ..models import Deployment, PipelineRun, RunStatus, Trigger, Watermark
from ..scoring import Estimator
from ..selectors import deployment_estimators, deployments_for_project
from .runs import not_scoring_reason, runs_enqueue, watermarks_ensure

logger = logging.getLogger(__name__)


def _pending_flip(ids: Sequence[int], *, now: datetime) -> list[int]:
    """Set ``pending`` where it was False (one UPDATE … RETURNING); returns the ids that need a task.

    A row whose lease is held by a live run gets the flag but no task: that run's completion reads the
    flag and queues the follow-up itself (its completion UPDATE on the same row serialises with this one),
    which saves a worker from picking up a task only to find the group busy.
    """
    if not ids:
        return []
    table = Watermark._meta.db_table
    placeholders = ", ".join(["%s"] * len(ids))
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET pending = %s, pending_since = %s WHERE id IN ({placeholders}) AND pending = %s"
            " RETURNING id, lease_token",
            [True, stamp, *ids, False],
        )
        rows = cursor.fetchall()
    free = [int(row[0]) for row in rows if row[1] is None]
    held = [int(row[0]) for row in rows if row[1] is not None]
    if held:  # a lease past its expiry belongs to a dead run: queue the redo now
        free += list(Watermark.objects.filter(id__in=held, lease_expires_at__lt=now).values_list("id", flat=True))
    return sorted(free)


def pipeline_groups_notify(*, groups: Iterable[GroupKey], trigger: str = Trigger.EVENT) -> list[int]:
    """New raw data in ``groups``: queue at most one run per matching deployment and group.

    Returns the watermark ids a task was queued for (the others already had one pending).
    """
    groups = set(groups)
    now = timezone.now()
    pairs = []
    for project_name in {g.project_name for g in groups}:
        for deployment, estimator in deployments_for_project(project_name=project_name):
            if not_scoring_reason(deployment, estimator) is not None:
                continue
            pairs += [
                (deployment, g)
                for g in groups
                if g.project_name == project_name and deployment.in_scope(device_id=g.device_id, batch_id=g.batch_id)
            ]
    if not pairs:  # data no deployment scores (raw ingest of other projects): no transaction to open
        return []
    with transaction.atomic():
        watermarks = watermarks_ensure(pairs)
        ready = [w.pk for w in watermarks if not (w.retry_after and w.retry_after > now)]
        flipped = _pending_flip(ready, now=now)
        runs_enqueue(flipped, trigger)
    return flipped


def on_points_committed(sender: Any, collection: Any = None, groups: Iterable[GroupKey] = (), **kwargs: Any) -> None:
    """Receiver of ``apps.tsdb.signals.points_committed`` (sent after the ingest commits)."""
    if collection is not None and Collection(collection) is not Collection.RAW:
        return
    try:
        pipeline_groups_notify(groups=groups, trigger=Trigger.EVENT)
    except Exception:  # the data is committed; beat's detection is the safety net for a lost trigger
        logger.exception("pipeline: could not schedule detection for %s", sorted(groups))


def _group_input_times(estimator: Estimator, project_name: str) -> dict[GroupKey, int]:
    """Newest input time per group of a project (one ``latest`` query: an index lookup per series)."""
    newest: dict[GroupKey, int] = {}
    for point in get_backend().latest(collection=Collection.RAW, where=SeriesFilter(project_name=project_name)):
        key = point.series
        if not estimator.is_input(key):
            continue
        ns = to_ns(point.time)
        if ns > newest.get(key.group, -1):
            newest[key.group] = ns
    return newest


def pipeline_detect(
    *, deployment_id: int | None = None, trigger: str = Trigger.BEAT, now: datetime | None = None
) -> dict[str, int]:
    """The safety net beat runs every N seconds (and the manual trigger): queue what events missed.

    1. leases past expiry (a worker died mid-run): mark the run stale and queue a redo;
    2. ``pending`` for longer than a lease with no task alive (a lost message): queue again;
    3. each enabled deployment with an online version: groups in scope whose newest input is after the
       watermark get a run, de-duplicated by the pending flag like events.
    """
    now = now or timezone.now()
    lease = timedelta(seconds=settings.STAMM_PIPELINE_LEASE_SECONDS)
    counts = {"stale": 0, "requeued": 0, "queued": 0}
    scope = Watermark.objects.all() if deployment_id is None else Watermark.objects.filter(deployment_id=deployment_id)
    with transaction.atomic():
        expired = list(
            scope.filter(lease_token__isnull=False, lease_expires_at__lt=now).values_list("id", "lease_token")
        )
        if expired:
            counts["stale"] = PipelineRun.objects.filter(
                lease_token__in=[t for _, t in expired], status=RunStatus.RUNNING
            ).update(status=RunStatus.STALE, finished_at=now, error="lease expired: the worker stopped mid-run; redone")
            Watermark.objects.filter(id__in=[i for i, _ in expired]).update(pending=True, pending_since=now)
            runs_enqueue([i for i, _ in expired], trigger)
        stuck = list(
            scope.filter(pending=True, pending_since__lt=now - lease, lease_token__isnull=True)
            .filter(Q(retry_after__isnull=True) | Q(retry_after__lte=now))
            .values_list("id", flat=True)
        )
        if stuck:
            Watermark.objects.filter(id__in=stuck).update(pending_since=now)
            runs_enqueue(stuck, trigger)
        counts["requeued"] = len(stuck)
    deployments = Deployment.objects.filter(enabled=True).select_related("soft_sensor__project")
    if deployment_id is not None:
        deployments = deployments.filter(pk=deployment_id)
    live_after = to_ns(now) - settings.STAMM_PIPELINE_LIVE_WINDOW * 1_000_000_000
    newest_cache: dict[tuple[str, tuple[str, ...]], dict[GroupKey, int]] = {}
    for deployment, estimator in deployment_estimators(list(deployments)):
        if not_scoring_reason(deployment, estimator) is not None:
            continue
        assert estimator is not None
        project_name = deployment.soft_sensor.project.name.lower()
        cache_key = (project_name, estimator.snapshot_variables)
        if cache_key not in newest_cache:
            newest_cache[cache_key] = _group_input_times(estimator, project_name)
        newest = {
            g: t
            for g, t in newest_cache[cache_key].items()
            if deployment.in_scope(device_id=g.device_id, batch_id=g.batch_id)
            and (not deployment.live_only or t >= live_after)
        }
        if not newest:
            continue
        start_ns = to_ns(deployment.score_from) if deployment.score_from else -1
        with transaction.atomic():
            watermarks = watermarks_ensure([(deployment, g) for g in newest])
            due = [
                w.pk
                for w in watermarks
                if not (w.retry_after and w.retry_after > now)
                and (
                    w.dirty_from_ns is not None
                    or newest[GroupKey(w.project_name, w.device_id, w.batch_id)]
                    > (w.watermark_ns if w.watermark_ns is not None else start_ns)
                )
            ]
            flipped = _pending_flip(due, now=now)
            runs_enqueue(flipped, trigger)
            counts["queued"] += len(flipped)
    return counts

"""Backfill: rescore a historical window of every group of a deployment, idempotently (upserts)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial

from celery import signature
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.common.errors import Conflict, ValidationFailed
from apps.tsdb.backends import get_backend
from apps.tsdb.types import (
    Collection,
    GroupKey,
    SeriesFilter,
    to_ns,
)

from .. import task_names
from ..models import Deployment, PipelineRun, RunStatus, Trigger, Watermark
from ..scoring import Estimates, Estimator, estimates_score, snapshots_read
from ..selectors import deployment_estimator
from .registry_access import service_token
from .runs import (
    Claim,
    LeaseLost,
    every_snapshot_skipped,
    failure_text,
    group_claim,
    initial_bias_of,
    not_scoring_reason,
    predictions_store,
    run_release,
    watermarks_ensure,
)


def _parse_moment(value: datetime | str, name: str) -> datetime:
    moment = value if isinstance(value, datetime) else parse_datetime(str(value))
    if moment is None:
        raise ValidationFailed(f"{name} is not an ISO 8601 date-time.", details={name: str(value)})
    if timezone.is_naive(moment):
        raise ValidationFailed(f"{name} needs a time zone (e.g. 2026-01-01T00:00:00Z).", details={name: str(value)})
    return moment


def _claim_waiting(watermark_id: int, trigger: str, *, wait_seconds: float) -> Claim:
    deadline = time.monotonic() + wait_seconds
    while True:
        claim = group_claim(watermark_id=watermark_id, trigger=trigger)
        if claim is not None:
            return claim
        if time.monotonic() > deadline:
            raise Conflict("Another run holds this group and did not finish in time; retry later.")
        time.sleep(0.2)


def _window_validate(start: datetime | str, end: datetime | str) -> tuple[datetime, datetime]:
    start, end = _parse_moment(start, "start"), _parse_moment(end, "end")
    if end < start:
        raise ValidationFailed("end is before start.", details={"start": start.isoformat(), "end": end.isoformat()})
    return start, end


def _ready_or_400(deployment: Deployment) -> Estimator:
    """The deployment's estimator, or a 400 with the online rule's reason (``not_scoring_reason``)."""
    estimator = deployment_estimator(deployment)
    reason = not_scoring_reason(deployment, estimator)
    if reason is not None:
        raise ValidationFailed(f"{deployment.name} cannot be backfilled: {reason}.", details={"deployment": reason})
    assert estimator is not None
    return estimator


def pipeline_backfill(
    *,
    deployment: Deployment,
    start: datetime | str,
    end: datetime | str,
    progress: Callable[[int, int], None] | None = None,
    trigger: str = Trigger.BACKFILL,
) -> list[PipelineRun]:
    """Rescore every snapshot of the deployment's groups in [start, end]; idempotent (upserts).

    Each group is claimed like a live run (so it never overlaps one), scored chunk by chunk through the one
    scoring path, and recorded as one run. Watermarks do not move: live scoring keeps its own place.
    ``progress(done, total)`` is called after each chunk (``total`` is an estimate: the largest input
    series' point count).
    """
    start, end = _window_validate(start, end)
    estimator = _ready_or_400(deployment)
    spec = estimator.spec
    project_name = deployment.soft_sensor.project.name.lower()
    infos = get_backend().list_series(
        collection=Collection.RAW, where=SeriesFilter(project_name=project_name), start=start, end=end
    )
    sizes: dict[GroupKey, int] = {}
    for info in infos:
        key = info.series
        if estimator.is_input(key) and deployment.in_scope(device_id=key.device_id, batch_id=key.batch_id):
            sizes[key.group] = max(sizes.get(key.group, 0), info.point_count)
    total = sum(sizes.values())
    done = 0
    service_token()  # resolved here: the inference thread must not need the database for its token
    runs = []
    after0, until = to_ns(start) - 1, to_ns(end)
    chunk = settings.STAMM_PIPELINE_CHUNK
    with transaction.atomic():
        watermarks = watermarks_ensure([(deployment, g) for g in sorted(sizes)])
    for watermark in watermarks:
        group = GroupKey(watermark.project_name, watermark.device_id, watermark.batch_id)
        claim = _claim_waiting(watermark.pk, trigger, wait_seconds=settings.STAMM_PIPELINE_LEASE_SECONDS * 2)
        run = claim.run
        run.window_after_ns, run.window_until_ns = after0, until
        run.version_id, run.model_id, run.version_label = spec.version_id, spec.model_id, spec.version_tag
        skipped: Counter = Counter()
        initial_bias = initial_bias_of(estimator, watermark)

        score = partial(estimates_score, estimator=estimator, group=group, initial_bias=initial_bias)

        try:
            # Three stages: while chunk k is scored (the predictor, in a thread), this thread reads chunk k+1
            # and then stores chunk k-1, so the database and the model server work at once. Chunk k+1 is
            # scored once chunk k's bias memo is known.
            after = after0
            in_flight: Future | None = None
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-score") as pool:
                try:
                    while True:
                        started = time.perf_counter()
                        snapshots = snapshots_read(estimator, group, after_ns=after, until_ns=until, limit=chunk)
                        run.detect_ms = (run.detect_ms or 0) + (time.perf_counter() - started) * 1000
                        previous = in_flight.result() if in_flight is not None else None
                        memo = previous.bias_memo if previous is not None else {}
                        in_flight = pool.submit(score, snapshots=snapshots, bias_memo=memo) if len(snapshots) else None
                        if previous is not None:
                            done += _backfill_store(claim, previous, skipped)
                            if progress:
                                progress(done, max(total, done))
                        if in_flight is None:
                            break
                        after = int(snapshots.times_ns[-1])
                        if len(snapshots) < chunk:
                            done += _backfill_store(claim, in_flight.result(), skipped)
                            if progress:
                                progress(done, max(total, done))
                            break
                finally:
                    # Scoring reads the database too (from the scoring thread); that thread's connection is closed
                    # here, after its last chunk, not left to the garbage collector with the thread: a worker that
                    # runs many backfills would otherwise hold a database session per backfill for a while.
                    pool.submit(connections.close_all)
        except Exception as exc:  # noqa: BLE001 - recorded on the run, then re-raised to the caller
            run.skipped, run.skipped_reasons = sum(skipped.values()), dict(skipped)
            run_release(
                claim,
                status=RunStatus.STALE if isinstance(exc, LeaseLost) else RunStatus.FAILED,
                error=failure_text(exc),
                retry=False,
            )
            raise
        run.skipped, run.skipped_reasons = sum(skipped.values()), dict(skipped)
        every_skipped = bool(run.snapshots and not run.predictions)
        run_release(
            claim,
            status=RunStatus.SKIPPED if every_skipped else RunStatus.SUCCEEDED,
            error=every_snapshot_skipped(skipped) if every_skipped else "",
            retry=False,
        )
        runs.append(run)
    return runs


def _backfill_store(claim: Claim, estimates: Estimates, skipped: Counter) -> int:
    """Store a scored chunk under the lease; returns the snapshots done."""
    run, watermark = claim.run, claim.watermark
    started = time.perf_counter()
    with transaction.atomic():
        if not Watermark.objects.filter(id=watermark.pk, lease_token=claim.token).update(
            lease_expires_at=timezone.now() + timedelta(seconds=settings.STAMM_PIPELINE_LEASE_SECONDS)
        ):
            raise LeaseLost(f"backfill run {run.pk} lost the lease of {watermark.group_label}")
        run.predictions += predictions_store(estimates.points())
    snapshots = estimates.snapshots
    run.snapshots += len(snapshots)
    run.registry_attempts += estimates.attempts
    skipped.update(estimates.skipped)
    run.infer_ms = (run.infer_ms or 0) + estimates.infer_ms
    run.store_ms = (run.store_ms or 0) + (time.perf_counter() - started) * 1000
    if run.first_snapshot_ns is None:
        run.first_snapshot_ns = int(snapshots.times_ns[0])
    run.last_snapshot_ns = int(snapshots.times_ns[-1])
    return len(snapshots)


def pipeline_backfill_enqueue(*, deployment: Deployment, start: datetime | str, end: datetime | str) -> str:
    """Validate a backfill request and queue it for a worker; returns the Celery task id."""
    start, end = _window_validate(start, end)
    _ready_or_400(deployment)
    task_id = str(uuid.uuid4())
    transaction.on_commit(
        lambda: signature(task_names.BACKFILL, args=[deployment.pk, start.isoformat(), end.isoformat()]).apply_async(
            task_id=task_id
        )
    )
    return task_id

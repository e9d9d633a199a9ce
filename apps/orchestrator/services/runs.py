"""What every pipeline run shares, live or backfill: the claim and lease, the online rule, the queue, the store.

The exactly-once rules these implement are written once, at the top of ``pipeline.py``.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import signature
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.tsdb.types import GroupKey, PointBatch

from .. import task_names
from ..models import Deployment, PipelineRun, RunStatus, Watermark
from ..registry_client import RegistryError
from ..scoring import Estimator

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 600


class LeaseLost(Exception):
    """This run no longer holds its group's lease (it expired and another run took over)."""


class RunSkipped(Exception):
    """Nothing may be scored (deployment disabled, version offline); the reason is the message."""


@dataclass
class Claim:
    watermark: Watermark
    run: PipelineRun
    token: uuid.UUID


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:255]


def groups_claim(
    *, watermark_ids: Sequence[int], trigger: str, task_id: str = "", now: datetime | None = None
) -> list[Claim]:
    """Take the leases of many groups in one transaction (the free ones with one conditional UPDATE, an
    expired one with ``_expired_lease_take``; the runs created in bulk); the groups another live run holds are
    left out."""
    now = now or timezone.now()
    until = now + timedelta(seconds=settings.STAMM_PIPELINE_LEASE_SECONDS)
    worker = _worker_name()
    tokens = {watermark_id: uuid.uuid4() for watermark_id in dict.fromkeys(int(w) for w in watermark_ids)}
    taken: list[tuple[int, uuid.UUID, int | None]] = []  # watermark id, token, dirty_from_ns of a dead run
    with transaction.atomic():
        free = _free_leases_take(tokens, until=until)
        for watermark_id, token in tokens.items():
            if watermark_id in free:
                taken.append((watermark_id, token, None))
                continue
            took, stale_dirty = _expired_lease_take(watermark_id, token=token, until=until, now=now)
            if took:
                taken.append((watermark_id, token, stale_dirty))
        if not taken:
            return []
        watermarks = Watermark.objects.select_related("deployment").in_bulk([wid for wid, _, _ in taken])
        clear = [wid for wid, _, _ in taken if watermarks[wid].dirty_from_ns is not None]
        if clear:
            Watermark.objects.filter(id__in=clear).update(dirty_from_ns=None)
        runs = []
        for watermark_id, token, stale_dirty in taken:
            watermark = watermarks[watermark_id]
            dirty = watermark.dirty_from_ns
            if stale_dirty is not None:
                dirty = stale_dirty if dirty is None else min(dirty, stale_dirty)
            runs.append(
                PipelineRun(
                    deployment_id=watermark.deployment_id,
                    watermark=watermark,
                    project_name=watermark.project_name,
                    device_id=watermark.device_id,
                    batch_id=watermark.batch_id,
                    trigger=trigger,
                    status=RunStatus.RUNNING,
                    lease_token=token,
                    lease_expires_at=until,
                    worker=worker,
                    task_id=task_id or "",
                    dirty_from_ns=dirty,
                    started_at=now,
                )
            )
        runs = PipelineRun.objects.bulk_create(runs)
    return [
        Claim(watermark=watermarks[wid], run=run, token=token)
        for (wid, token, _), run in zip(taken, runs, strict=True)
    ]


def _free_leases_take(tokens: dict[int, uuid.UUID], *, until: datetime) -> set[int]:
    """Take every lease no run holds, each with its own token, in ONE conditional UPDATE; returns the watermark
    ids taken. It is the claim's first statement and it writes, so SQLite takes its write lock at once (no
    read→write upgrade)."""
    if not tokens:
        return set()
    meta = Watermark._meta
    quote = connection.ops.quote_name
    token_field = meta.get_field("lease_token")
    cases = " ".join(["WHEN %s THEN %s"] * len(tokens))
    params: list[Any] = []
    for watermark_id, token in tokens.items():
        params += [watermark_id, token_field.get_db_prep_value(token, connection)]
    marks = ", ".join(["%s"] * len(tokens))
    sql = (
        f"UPDATE {quote(meta.db_table)} SET lease_token = CASE id {cases} END, lease_expires_at = %s,"
        f" pending = %s, pending_since = NULL WHERE id IN ({marks}) AND lease_token IS NULL RETURNING id"
    )
    params += [connection.ops.adapt_datetimefield_value(until), False, *tokens]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {int(row[0]) for row in cursor.fetchall()}


def _expired_lease_take(
    watermark_id: int, *, token: uuid.UUID, until: datetime, now: datetime
) -> tuple[bool, int | None]:
    """Take over a lease ``_free_leases_take`` found held: (False, None) while its run is live (or the row is
    gone); otherwise (True, the late-data window ``dirty_from_ns`` of the dead run, or None)."""
    take = {"lease_token": token, "lease_expires_at": until, "pending": False, "pending_since": None}
    held = Watermark.objects.filter(id=watermark_id).values_list("lease_token", "lease_expires_at").first()
    if held is None or held[0] is None or held[1] is None or held[1] >= now:
        return False, None
    stale_token = held[0]
    if not Watermark.objects.filter(id=watermark_id, lease_token=stale_token, lease_expires_at__lt=now).update(**take):
        return False, None
    stale = PipelineRun.objects.filter(lease_token=stale_token).first()
    if stale is None:
        return True, None
    if stale.status == RunStatus.RUNNING:
        stale.status = RunStatus.STALE
        stale.finished_at = now
        stale.error = f"lease expired at {stale.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC; redone by a new run"
        stale.save(update_fields=["status", "finished_at", "error"])
    return True, stale.dirty_from_ns


def group_claim(*, watermark_id: int, trigger: str, task_id: str = "", now: datetime | None = None) -> Claim | None:
    """Take one group's lease (``groups_claim`` of one); None when another live run holds it."""
    claims = groups_claim(watermark_ids=[watermark_id], trigger=trigger, task_id=task_id, now=now)
    return claims[0] if claims else None


def lease_renew(claim: Claim, *, force: bool = False) -> None:
    """Extend the lease between steps; raise ``LeaseLost`` when someone took the group over.

    While more than half of the lease is left nothing is written (runs are short; this keeps two UPDATEs
    per step off the hot path). The completion's conditional UPDATE is the check that matters anyway.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.STAMM_PIPELINE_LEASE_SECONDS)
    expires = claim.run.lease_expires_at
    if not force and expires is not None and expires - now > lease / 2:
        return
    until = now + lease
    if not Watermark.objects.filter(id=claim.watermark.pk, lease_token=claim.token).update(lease_expires_at=until):
        raise LeaseLost(f"run {claim.run.pk} lost the lease of {claim.watermark.group_label}")
    PipelineRun.objects.filter(pk=claim.run.pk).update(lease_expires_at=until)
    claim.run.lease_expires_at = until


def predictions_store(batch: PointBatch | None) -> int:
    """Write prediction points through the ingest service (upserts; fires ``points_committed``)."""
    if batch is None:
        return 0
    from apps.tsdb.services import points_ingest

    return points_ingest(batch=batch, user=None).points


def not_scoring_reason(deployment: Deployment, estimator: Estimator | None) -> str | None:
    """Why the deployment may not score now, or None: the one online rule of live runs, backfills and their
    triggers (a disabled deployment, an alias that points nowhere, a version that is not online, a shadow that
    runs its champion's version)."""
    if not deployment.enabled:
        return "deployment disabled"
    if estimator is None:
        return f"{deployment.soft_sensor.model_id} has no alias {deployment.alias!r}"
    spec = estimator.spec
    if not spec.online:
        return f"version {spec.number} of {spec.model_id} is {spec.status}: offline versions are never called"
    if estimator.config.champion_version_id == spec.version_id:
        return (
            f"shadow of {deployment.shadow_of}: it runs the same version as its champion (v{spec.number}), "
            "so it has no estimates of its own to store"
        )
    return None


def estimator_ready(deployment: Deployment, estimator: Estimator | None) -> Estimator:
    """The deployment's estimator when it may score now; ``RunSkipped`` with the reason otherwise."""
    reason = not_scoring_reason(deployment, estimator)
    if reason is not None:
        raise RunSkipped(reason)
    assert estimator is not None
    return estimator


def every_snapshot_skipped(skipped: Counter) -> str:
    """The error text of a run whose snapshots were all incomplete (live runs and backfills alike)."""
    return "every snapshot was skipped: " + "; ".join(f"{reason} ({count})" for reason, count in skipped.most_common())


def failure_text(exc: BaseException) -> str:
    """A run's error text: the registry's own message, else the exception's type and message."""
    if isinstance(exc, RegistryError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def backoff_seconds(failures: int) -> float:
    """Exponential backoff after consecutive failures: 2, 4, 8 … seconds, capped at 10 minutes."""
    return float(min(MAX_BACKOFF_SECONDS, 2 ** max(1, failures)))


def run_release(claim: Claim, *, status: str, error: str, retry: bool) -> None:
    """End a run that stored nothing: give the lease back, keep the watermark, maybe schedule a retry."""
    run, watermark = claim.run, claim.watermark
    now = timezone.now()
    with transaction.atomic():
        current = Watermark.objects.filter(id=watermark.pk, lease_token=claim.token).first()
        if current is None:  # taken over meanwhile: that run owns the window now
            PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.STALE, finished_at=now, error=f"lease lost; {error}"[:10000]
            )
            return
        dirty = current.dirty_from_ns
        if run.dirty_from_ns is not None:  # give back the late-data window this run had taken
            dirty = run.dirty_from_ns if dirty is None else min(dirty, run.dirty_from_ns)
        changes: dict[str, Any] = {
            "lease_token": None,
            "lease_expires_at": None,
            "dirty_from_ns": dirty,
            "last_run_at": now,
        }
        delay = None
        if retry:
            failures = current.failures + 1
            delay = backoff_seconds(failures)
            changes.update(
                failures=failures,
                retry_after=now + timedelta(seconds=delay),
                pending=True,
                pending_since=now + timedelta(seconds=delay),
            )
        Watermark.objects.filter(id=watermark.pk).update(**changes)
        run.status, run.error, run.finished_at, run.lease_expires_at = status, error[:10000], now, None
        run.save()
        runs_finished_announce([run])
        if status == RunStatus.FAILED and current.failures == 0:  # the first failure of a streak
            run_announce("pipeline_failing", run, error=run.error[:2000], failures=1)
        if retry:
            runs_enqueue([watermark.pk], run.trigger, countdown=delay)
        elif current.pending:
            runs_enqueue([watermark.pk], run.trigger)


def run_announce(name: str, run: PipelineRun, **facts: Any) -> None:
    """Send ``signals.<name>`` about ``run`` once the transaction commits (the one place runs announce)."""
    from .. import signals

    signal = getattr(signals, name)
    payload = {"deployment_id": run.deployment_id, "run_id": run.pk, "project_name": run.project_name,
               "device_id": run.device_id, "batch_id": run.batch_id, **facts}

    def send() -> None:
        for receiver, outcome in signal.send_robust(sender=PipelineRun, **payload):
            if isinstance(outcome, Exception):
                logger.error("%s receiver %s failed: %s", name, receiver, outcome)

    transaction.on_commit(send)


def runs_save(runs: Sequence[PipelineRun], fields: Sequence[str]) -> None:
    """Write ``fields`` of many runs with one prepared UPDATE sent for each (``executemany``).

    Django's ``bulk_update`` builds a ``CASE WHEN id = … THEN …`` expression per run and field; for the twenty
    fields of a finished run that compiling took a third of a batched pipeline task's time.
    """
    if not runs:
        return
    meta = PipelineRun._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(meta.db_table)} SET "
        + ", ".join(f"{quote(column.column)} = %s" for column in columns)
        + f" WHERE {quote(meta.pk.column)} = %s"
    )
    rows = [
        [column.get_db_prep_save(getattr(run, column.attname), connection) for column in columns] + [run.pk]
        for run in runs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def runs_finished_announce(runs: Sequence[PipelineRun]) -> None:
    """Send ``signals.runs_finished`` once, with every run in ``runs``, after the transaction commits."""
    from .. import signals

    finished = [
        signals.FinishedRun(
            run_id=run.pk,
            deployment_id=run.deployment_id,
            project_name=run.project_name,
            device_id=run.device_id,
            batch_id=run.batch_id,
            status=str(run.status),
            trigger=str(run.trigger),
            predictions=int(run.predictions or 0),
        )
        for run in runs
    ]
    if not finished:
        return

    def send() -> None:
        for receiver, outcome in signals.runs_finished.send_robust(sender=PipelineRun, runs=finished):
            if isinstance(outcome, Exception):
                logger.error("runs_finished receiver %s failed: %s", receiver, outcome)

    transaction.on_commit(send)


def runs_enqueue(watermark_ids: Sequence[int], trigger: str, countdown: float | None = None) -> None:
    """After the current transaction commits, send the watermarks' runs as tasks of at most
    ``STAMM_PIPELINE_BATCH`` groups each (robust: beat covers losses). One task scores its groups together
    (``pipeline_groups_run``); several tasks let the worker's processes share a large burst."""
    if not watermark_ids:
        return
    ids = sorted(set(int(w) for w in watermark_ids))
    size = max(1, int(settings.STAMM_PIPELINE_BATCH))
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]

    def send() -> None:
        for chunk in chunks:
            signature(task_names.RUN_GROUPS, args=[chunk, trigger]).apply_async(countdown=countdown)

    transaction.on_commit(send, robust=True)


def watermarks_ensure(pairs: Iterable[tuple[Deployment, GroupKey]]) -> list[Watermark]:
    """The watermark rows of (deployment, group) pairs, creating missing ones (concurrency-safe)."""
    pairs = list(pairs)
    if not pairs:
        return []
    wanted = {(d.pk, g.project_name, g.device_id, g.batch_id) for d, g in pairs}
    query = Q()
    for d, g in pairs:
        query |= Q(deployment_id=d.pk, project_name=g.project_name, device_id=g.device_id, batch_id=g.batch_id)

    def fetch() -> dict[tuple, Watermark]:
        return {(w.deployment_id, w.project_name, w.device_id, w.batch_id): w for w in Watermark.objects.filter(query)}

    found = fetch()
    missing = wanted - set(found)
    if missing:
        Watermark.objects.bulk_create(
            [Watermark(deployment_id=k[0], project_name=k[1], device_id=k[2], batch_id=k[3]) for k in missing],
            ignore_conflicts=True,
        )
        found = fetch()
    return [found[k] for k in sorted(wanted)]


def initial_bias_of(estimator: Estimator, watermark: Watermark) -> float:
    """0 for a new batch, or, when the bias update carries over, the last bias of the deployment's most
    recently scored other batch on the same device (kept in that group's memo)."""
    bias = estimator.config.bias
    if bias is None or bias.reset_each_batch:
        return 0.0
    previous = (
        Watermark.objects.filter(
            deployment_id=watermark.deployment_id, project_name=watermark.project_name, device_id=watermark.device_id
        )
        .exclude(pk=watermark.pk)
        .exclude(last_run_at__isnull=True)
        .order_by("-last_run_at")
        .values_list("bias_state", flat=True)
        .first()
    )
    finals = (previous or {}).get("final") or {}
    return float(next(iter(finals.values()), 0.0)) if finals else 0.0

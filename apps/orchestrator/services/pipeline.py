"""The pipeline run: health → detect → infer → store for one deployment and group, exactly once.

Exactly once, the rules in one place
------------------------------------
* **Claim.** A run starts by a conditional UPDATE of its ``Watermark`` row that only matches when no lease
  is held (or the held one has expired): ``lease_token`` becomes the run's token. Whoever gets rowcount 1
  owns the deployment/group window; everybody else backs off. This works the same on SQLite (writes are
  serialised) and PostgreSQL (the UPDATE takes the row lock), with no advisory locks.
* **Complete.** Predictions, the run row and the new watermark are written in ONE transaction, opened by
  an UPDATE that only matches while the run still holds its lease. A run whose lease expired (it was slow,
  or its worker was killed and someone took over) matches nothing, rolls back, and is recorded stale.
  Prediction writes are upserts on (series, time), so a window scored twice stores the same points once.
* **Dedup.** A trigger flips ``pending`` False→True with a conditional UPDATE and only the caller that
  flipped it enqueues a task; a burst of ingests therefore leaves at most one queued run per
  deployment and group. The claim clears ``pending``; data arriving during a run sets it again, and the
  run's completion enqueues the follow-up, so no wake-up is lost.
* **Late data.** Detection reads the snapshots and counts the group's input points at or before the
  watermark inside one consistent read snapshot; a later count that differs means points arrived at or
  before the watermark (late or out of order), and the group is rescored from its start (``dirty_from``).
  Chunked rescoring keeps its place in ``dirty_from_ns``.
* **Stale.** Beat's detection finds leases past their expiry (a worker died mid-run), marks those runs
  stale and queues a redo, which takes the lease over.
* **What is scored.** Detect and infer are the one scoring path (``apps.orchestrator.scoring``): the same
  function simulation, backfill, drift and training call. The bias update's memo (the raw estimate at each
  lab sample already seen) is kept on the watermark with the window it belongs to, and dropped when the
  group is rescored from its start or the version changed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.tsdb.backends import get_backend
from apps.tsdb.types import Collection, GroupKey, SeriesFilter, from_ns, to_ns

from ..models import Deployment, PipelineRun, RunStatus, Trigger, Watermark
from ..registry_client import RegistryError
from ..scoring import Estimates, Estimator, estimates_score, snapshots_read
from ..selectors import deployment_estimator
from .health import pipeline_health_check
from .runs import (
    LeaseLost,
    RunSkipped,
    estimator_ready,
    every_snapshot_skipped,
    failure_text,
    group_claim,
    initial_bias_of,
    lease_renew,
    predictions_store,
    run_announce,
    run_release,
    runs_enqueue,
)

logger = logging.getLogger(__name__)


def _input_points_upto(estimator: Estimator, group: GroupKey, end_ns: int | None) -> int:
    """Input points of the group at or before ``end_ns`` (the late-data detector's measure)."""
    if end_ns is None:
        return 0
    infos = get_backend().list_series(
        collection=Collection.RAW,
        where=SeriesFilter(project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id),
        end=from_ns(end_ns),
    )
    return sum(i.point_count for i in infos if estimator.is_input(i.series))


def _consistent_read() -> None:
    """Make the rest of the current transaction read one snapshot (PostgreSQL; SQLite already does)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


def _bias_state(estimates: Estimates) -> dict[str, Any]:
    """What the watermark keeps of a window's bias update: the memo and the bias reached per output."""
    if not estimates.bias_applied:
        return {}
    return {**estimates.bias_memo, "final": {k: round(v.final, 9) for k, v in estimates.bias_report.items()}}


def pipeline_group_run(*, watermark_id: int, trigger: str = Trigger.EVENT, task_id: str = "") -> PipelineRun | None:
    """Claim a deployment/group and run health → detect → infer → store once; None if another run holds it.

    One run scores at most ``STAMM_PIPELINE_CHUNK`` snapshots; a full chunk queues a follow-up run.
    """
    claim = group_claim(watermark_id=watermark_id, trigger=trigger, task_id=task_id)
    if claim is None:
        return None
    run, watermark = claim.run, claim.watermark
    deployment = Deployment.objects.select_related("soft_sensor__project").get(pk=run.deployment_id)
    group = GroupKey(watermark.project_name, watermark.device_id, watermark.batch_id)
    try:
        started = time.perf_counter()
        verdict = pipeline_health_check()
        run.health_ms = (time.perf_counter() - started) * 1000
        if not verdict.ok:
            raise RegistryError(f"health check failed: {verdict.reason}")
        estimator = estimator_ready(deployment, deployment_estimator(deployment))
        spec = estimator.spec
        run.version_id, run.model_id, run.version_label = spec.version_id, spec.model_id, spec.version_tag
        start_ns = to_ns(deployment.score_from) if deployment.score_from else None
        chunk = settings.STAMM_PIPELINE_CHUNK
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if outermost:
                _consistent_read()
            dirty = run.dirty_from_ns
            if watermark.watermark_ns is not None and dirty is None:
                if _input_points_upto(estimator, group, watermark.watermark_ns) != watermark.scored_points:
                    # Points arrived at or before the watermark: rescore the group from its start.
                    dirty = start_ns if start_ns is not None else 0
                    run.dirty_from_ns = dirty
            base = watermark.watermark_ns if watermark.watermark_ns is not None else start_ns
            after = base if dirty is None else (dirty - 1 if base is None else min(base, dirty - 1))
            run.window_after_ns = after
            snapshots = snapshots_read(estimator, group, after_ns=after, until_ns=None, limit=chunk)
            last = int(snapshots.times_ns[-1]) if len(snapshots) else None
            full = len(snapshots) >= chunk
            old = watermark.watermark_ns
            new_watermark = old if last is None else (last if old is None else max(old, last))
            leftover = last + 1 if (full and last is not None and old is not None and last < old) else None
            scored_points = _input_points_upto(estimator, group, new_watermark)
        lease_renew(claim)
        # A rescore from the group's start recomputes the bias memo; otherwise the window continues it.
        memo = {} if dirty is not None else watermark.bias_state
        estimates = estimates_score(
            estimator=estimator,
            group=group,
            snapshots=snapshots,
            bias_memo=memo,
            initial_bias=initial_bias_of(estimator, watermark),
        )
        run.registry_attempts = estimates.attempts
        lease_renew(claim)
        started = time.perf_counter()
        batch = estimates.points()
        with transaction.atomic():
            changes = {
                "watermark_ns": new_watermark,
                "scored_points": scored_points,
                "lease_token": None,
                "lease_expires_at": None,
                "failures": 0,
                "retry_after": None,
                "last_run_at": timezone.now(),
            }
            if estimates.bias_applied:
                changes["bias_state"] = _bias_state(estimates)
            if not Watermark.objects.filter(id=watermark.pk, lease_token=claim.token).update(**changes):
                raise LeaseLost(f"run {run.pk} lost the lease of {watermark.group_label} before storing")
            stored = predictions_store(batch)
            current = Watermark.objects.get(id=watermark.pk)
            if leftover is not None:
                current.dirty_from_ns = (
                    leftover if current.dirty_from_ns is None else min(current.dirty_from_ns, leftover)
                )
                Watermark.objects.filter(id=watermark.pk).update(dirty_from_ns=current.dirty_from_ns)
            follow_up = full or current.pending
            if follow_up and not current.pending:
                Watermark.objects.filter(id=watermark.pk).update(pending=True, pending_since=timezone.now())
            run.snapshots = len(snapshots)
            run.predictions = stored
            run.skipped = sum(estimates.skipped.values())
            run.skipped_reasons = dict(estimates.skipped)
            run.first_snapshot_ns = int(snapshots.times_ns[0]) if len(snapshots) else None
            run.last_snapshot_ns = last
            run.detect_ms, run.infer_ms = estimates.detect_ms, estimates.infer_ms
            run.status = RunStatus.SKIPPED if (len(snapshots) and not stored) else RunStatus.SUCCEEDED
            if run.status == RunStatus.SKIPPED:
                run.error = every_snapshot_skipped(estimates.skipped)
            run.store_ms = (time.perf_counter() - started) * 1000
            run.finished_at = timezone.now()
            run.lease_expires_at = None
            run.save()
            if follow_up:
                runs_enqueue([watermark.pk], trigger)
            verdicts = estimates.verdicts() if estimates.rows else None
            if verdicts is not None and stored and (verdicts != "ok").any():
                counts = {str(v): int((verdicts == v).sum()) for v in set(verdicts.tolist())}
                run_announce("estimates_invalid", run, rows=int(len(verdicts)),
                             invalid=int((verdicts != "ok").sum()), verdicts=counts)
        return run
    except LeaseLost as exc:
        PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.STALE, finished_at=timezone.now(), error=str(exc)
        )
        run.refresh_from_db()
        return run
    except RunSkipped as exc:
        run_release(claim, status=RunStatus.SKIPPED, error=str(exc), retry=False)
        return run
    except Exception as exc:  # noqa: BLE001 - every failure is a failed run with its reason, then retried
        logger.warning("pipeline run %s failed: %s", run.pk, exc)
        run_release(claim, status=RunStatus.FAILED, error=failure_text(exc), retry=True)
        return run

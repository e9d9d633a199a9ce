"""The pipeline run: health → detect → infer → store for each deployment and group, exactly once.

Many groups, one task
---------------------
A task scores up to ``STAMM_PIPELINE_BATCH`` groups (of any deployments) together: their leases are taken
in one transaction, each group's window is read as below, the windows of one model version are predicted
in ONE registry call (``scoring.estimates_score_many``), and every run that still holds its lease is
stored in ONE transaction with one write of all the predictions. What a run decides (its claim, window,
watermark, bias memo, follow-up, failure and retry) is still per group: a failure, a skip or a lost lease
ends that group's run alone. One group is the same call with one id (``pipeline_group_run``).

Exactly once, the rules in one place
------------------------------------
* **Claim.** A run starts by a conditional UPDATE of its ``Watermark`` row that only matches when no lease
  is held (or the held one has expired): ``lease_token`` becomes the run's token. Whoever gets rowcount 1
  owns the deployment/group window; everybody else backs off. This works the same on SQLite (writes are
  serialised) and PostgreSQL (the UPDATE takes the row lock), with no advisory locks.
* **Complete.** Predictions, the run rows and the new watermarks are written in ONE transaction, in which
  each run's watermark UPDATE only matches while that run still holds its lease. A run whose lease expired
  (it was slow, or its worker was killed and someone took over) matches nothing: its predictions are left
  out of the write, and it is recorded stale.
  Prediction writes are upserts on (series, time), so a window scored twice stores the same points once.
* **Dedup.** A trigger flips ``pending`` False→True with a conditional UPDATE and only the caller that
  flipped it enqueues a task; a burst of ingests therefore leaves at most one queued run per
  deployment and group. The claim clears ``pending``; data arriving during a run sets it again, and the
  run's completion enqueues the follow-up, so no wake-up is lost.
* **Late data.** Detection reads the snapshots and counts the group's input points at or before the
  watermark inside one consistent read snapshot; a later count that differs means points arrived at or
  before the watermark (late or out of order), and the group is rescored from just after the newest of the
  watermark's earlier checkpoints whose count still matches, else from its start (``late_data``;
  ``dirty_from``). Chunked rescoring keeps its place in ``dirty_from_ns``.
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
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.tsdb.types import GroupKey, PointBatch, SnapshotSet, to_ns

from ..models import Deployment, PipelineRun, RunStatus, Trigger, Watermark
from ..registry_client import RegistryError
from ..scoring import Estimates, Estimator, ScoreRequest, estimates_score_many, snapshots_read
from ..selectors import deployment_estimators
from .health import pipeline_health_check
from .late_data import checkpoints_next, input_points_upto, late_rescore_from
from .runs import (
    Claim,
    LeaseLost,
    RunSkipped,
    estimator_ready,
    every_snapshot_skipped,
    failure_text,
    groups_claim,
    initial_bias_of,
    lease_renew,
    predictions_store,
    run_announce,
    run_release,
    runs_enqueue,
    runs_finished_announce,
    runs_save,
)

logger = logging.getLogger(__name__)

#: The run fields the completion writes (``runs_save``: one prepared UPDATE per run, sent together).
_RUN_FIELDS = (
    "version", "model_id", "version_label", "health_ms", "registry_attempts", "dirty_from_ns",
    "window_after_ns", "snapshots", "predictions", "skipped", "skipped_reasons", "first_snapshot_ns",
    "last_snapshot_ns", "detect_ms", "infer_ms", "store_ms", "status", "error", "finished_at", "lease_expires_at",
)


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


@dataclass
class _Window:
    """One claimed group's window, read and ready to be predicted."""

    claim: Claim
    estimator: Estimator
    group: GroupKey
    snapshots: SnapshotSet
    dirty: int | None
    new_watermark: int | None
    leftover: int | None
    full: bool
    checkpoints: list[list[int]]
    detect_ms: float


def _window_read(claim: Claim, deployment: Deployment, estimator: Estimator) -> _Window:
    """Detect: the group's snapshots after its watermark (rescoring from the start after late data), at most
    ``STAMM_PIPELINE_CHUNK`` of them, in one consistent read."""
    run, watermark = claim.run, claim.watermark
    group = GroupKey(watermark.project_name, watermark.device_id, watermark.batch_id)
    spec = estimator.spec
    run.version_id, run.model_id, run.version_label = spec.version_id, spec.model_id, spec.version_tag
    start_ns = to_ns(deployment.score_from) if deployment.score_from else None
    chunk = settings.STAMM_PIPELINE_CHUNK
    started = time.perf_counter()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            _consistent_read()
        dirty = run.dirty_from_ns
        if watermark.watermark_ns is not None and dirty is None:
            dirty = late_rescore_from(
                estimator, group, watermark_ns=watermark.watermark_ns, checkpoints=watermark.checkpoints,
                start_ns=start_ns,
            )
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
        checkpoints = checkpoints_next(
            watermark.checkpoints, after_ns=after, watermark_ns=new_watermark,
            points=input_points_upto(estimator, group, new_watermark),
        )
    lease_renew(claim)
    return _Window(
        claim, estimator, group, snapshots, dirty, new_watermark, leftover, full, checkpoints,
        (time.perf_counter() - started) * 1000,
    )


def _score_request(window: _Window) -> ScoreRequest:
    # A rescore from the group's start recomputes the bias memo; otherwise the window continues it.
    watermark = window.claim.watermark
    return ScoreRequest(
        estimator=window.estimator,
        group=window.group,
        snapshots=window.snapshots,
        bias_memo={} if window.dirty is not None else watermark.bias_state,
        initial_bias=initial_bias_of(window.estimator, watermark),
        detect_ms=window.detect_ms,
    )


def _run_end(claim: Claim, exc: BaseException) -> None:
    """End one run that stores nothing: stale when its lease was lost, skipped, or failed and retried."""
    run = claim.run
    if isinstance(exc, LeaseLost):
        PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.STALE, finished_at=timezone.now(), error=str(exc)
        )
        run.refresh_from_db()
    elif isinstance(exc, RunSkipped):
        run_release(claim, status=RunStatus.SKIPPED, error=str(exc), retry=False)
    else:
        logger.warning("pipeline run %s failed: %s", run.pk, exc)
        run_release(claim, status=RunStatus.FAILED, error=failure_text(exc), retry=True)


def pipeline_groups_run(
    *, watermark_ids: list[int], trigger: str = Trigger.EVENT, task_id: str = ""
) -> list[PipelineRun]:
    """Claim the groups and run health → detect → infer → store once for each (see the module docstring);
    the groups another run holds are left out of the result."""
    claims = groups_claim(watermark_ids=watermark_ids, trigger=trigger, task_id=task_id)
    if not claims:
        return []
    deployments = Deployment.objects.select_related("soft_sensor__project").in_bulk(
        {claim.run.deployment_id for claim in claims}
    )
    estimators = {d.pk: e for d, e in deployment_estimators(list(deployments.values()))}
    started = time.perf_counter()
    verdict = pipeline_health_check()
    health_ms = (time.perf_counter() - started) * 1000
    windows: list[_Window] = []
    for claim in claims:
        claim.run.health_ms = health_ms
        try:
            if not verdict.ok:
                raise RegistryError(f"health check failed: {verdict.reason}")
            deployment = deployments[claim.run.deployment_id]
            estimator = estimator_ready(deployment, estimators.get(deployment.pk))
            windows.append(_window_read(claim, deployment, estimator))
        except Exception as exc:  # noqa: BLE001 - every failure ends its own run with its reason
            _run_end(claim, exc)
    results = estimates_score_many([_score_request(w) for w in windows])
    scored: list[tuple[_Window, Estimates]] = []
    for window, result in zip(windows, results, strict=True):
        try:
            if isinstance(result, Exception):
                raise result
            lease_renew(window.claim)
            window.claim.run.registry_attempts = result.attempts
            scored.append((window, result))
        except Exception as exc:  # noqa: BLE001
            _run_end(window.claim, exc)
    if scored:
        try:
            lost = _runs_complete(scored, trigger)
        except Exception as exc:  # noqa: BLE001 - the store failed: every run of it failed, none stored
            lost = []
            for window, _ in scored:
                _run_end(window.claim, exc)
        for window in lost:
            _run_end(window.claim, LeaseLost(f"run {window.claim.run.pk} lost the lease of "
                                             f"{window.claim.watermark.group_label} before storing"))
    return [claim.run for claim in claims]


def pipeline_group_run(*, watermark_id: int, trigger: str = Trigger.EVENT, task_id: str = "") -> PipelineRun | None:
    """One group's run (``pipeline_groups_run`` of one); None if another run holds it."""
    runs = pipeline_groups_run(watermark_ids=[watermark_id], trigger=trigger, task_id=task_id)
    return runs[0] if runs else None


def _runs_complete(scored: list[tuple[_Window, Estimates]], trigger: str) -> list[_Window]:
    """Store: watermarks moved (only under a held lease), predictions written once, runs finished, follow-ups
    queued, all in one transaction. Returns the windows whose lease was lost (nothing of theirs stored)."""
    started = time.perf_counter()
    lost: list[_Window] = []
    with transaction.atomic():
        now = timezone.now()
        kept: list[tuple[_Window, Estimates]] = []
        for window, estimates in scored:
            claim = window.claim
            changes = {
                "watermark_ns": window.new_watermark,
                "checkpoints": window.checkpoints,
                "lease_token": None,
                "lease_expires_at": None,
                "failures": 0,
                "retry_after": None,
                "last_run_at": now,
            }
            if estimates.bias_applied:
                changes["bias_state"] = _bias_state(estimates)
            if Watermark.objects.filter(id=claim.watermark.pk, lease_token=claim.token).update(**changes):
                kept.append((window, estimates))
            else:
                lost.append(window)
        if not kept:
            return lost
        batches = [b for _, estimates in kept if (b := estimates.points()) is not None]
        if batches:
            predictions_store(PointBatch.concat(batches))
        current = Watermark.objects.in_bulk([w.claim.watermark.pk for w, _ in kept])
        follow: list[int] = []
        flag: list[int] = []
        for window, _ in kept:
            wid = window.claim.watermark.pk
            if window.leftover is not None:
                dirty = current[wid].dirty_from_ns
                dirty = window.leftover if dirty is None else min(dirty, window.leftover)
                Watermark.objects.filter(id=wid).update(dirty_from_ns=dirty)
            if window.full or current[wid].pending:
                follow.append(wid)
                if not current[wid].pending:
                    flag.append(wid)
        if flag:
            Watermark.objects.filter(id__in=flag).update(pending=True, pending_since=now)
        store_ms = (time.perf_counter() - started) * 1000
        runs = []
        for window, estimates in kept:
            run = window.claim.run
            snapshots = window.snapshots
            stored = estimates.predictions
            run.snapshots = len(snapshots)
            run.predictions = stored
            run.skipped = sum(estimates.skipped.values())
            run.skipped_reasons = dict(estimates.skipped)
            run.first_snapshot_ns = int(snapshots.times_ns[0]) if len(snapshots) else None
            run.last_snapshot_ns = int(snapshots.times_ns[-1]) if len(snapshots) else None
            run.detect_ms, run.infer_ms = estimates.detect_ms, estimates.infer_ms
            run.status = RunStatus.SKIPPED if (len(snapshots) and not stored) else RunStatus.SUCCEEDED
            run.error = every_snapshot_skipped(estimates.skipped) if run.status == RunStatus.SKIPPED else ""
            run.store_ms = store_ms
            run.finished_at = timezone.now()
            run.lease_expires_at = None
            runs.append(run)
            verdicts = estimates.verdicts() if estimates.rows else None
            if verdicts is not None and stored and (verdicts != "ok").any():
                counts = {str(v): int((verdicts == v).sum()) for v in set(verdicts.tolist())}
                run_announce("estimates_invalid", run, rows=int(len(verdicts)),
                             invalid=int((verdicts != "ok").sum()), verdicts=counts)
        runs_save(runs, _RUN_FIELDS)
        runs_finished_announce(runs)
        runs_enqueue(follow, trigger)
    return lost

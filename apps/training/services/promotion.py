"""Gates, promotion and approval: what passed goes online and may move an alias; nothing else does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.tracking import audited_update
from apps.common.errors import Conflict, NotFound, ValidationFailed
from apps.registry.selectors import alias_is_signed, spec_for_alias
from apps.registry.services import alias_move, model_version_record_evaluation, model_version_set_status

from .. import gates
from ..models import (
    Candidate,
    CandidateStatus,
    RunStatus,
    StepStatus,
    TrainingRun,
)
from .runs import json_safe, run_check_active, run_get, run_step


def _gate_production(run: TrainingRun, metrics: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The production comparison a candidate's gate reads: its own, or production's scoring error, or None."""
    if metrics.get("vs_production"):
        return metrics["vs_production"]
    production = (run.baselines or {}).get("production") or {}
    if production.get("error"):
        return {"version": production.get("version"), "error": production["error"]}
    return None


def _evaluation_record(run: TrainingRun, metrics: Mapping[str, Any], passed: bool, failed: str) -> dict[str, Any]:
    """What the version keeps of its judgement (``spec.training["evaluation"]``): shown on its pages."""
    on_rows = metrics.get("on_persistence_rows") or {}
    return {
        "training_run": run.pk,
        "holdout": run.config["split"],
        "rows": metrics.get("rows"),
        "raw": (metrics.get("raw") or {}).get("overall"),
        "as_deployed": (metrics.get("as_deployed") or {}).get("overall"),
        "training_mean": (metrics.get("training_mean") or {}).get("overall"),
        "on_persistence_rows": on_rows,
        "beats_persistence": metrics.get("beats_persistence"),
        "lab_delay_hours": ((run.baselines or {}).get("persistence") or {}).get("lab_delay_hours"),
        "bias": run.config.get("bias"),
        "verdict": "passed" if passed else "rejected",
        "failed": failed,
    }


def _validation_block(run: TrainingRun, metrics: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptor's ``training_information.validation``: the same judgement in STAMM's document."""
    baselines = run.baselines or {}
    return {
        "method": "held-out batches" if run.config["split"]["kind"] == "batches" else "chronological cut",
        "split": run.dataset.get("split", {}),
        "status": f"evaluated by training run {run.pk}: {record['verdict']}",
        "holdout_metrics": record["as_deployed"],
        "raw_model_metrics": record["raw"],
        "phase_metrics": (metrics.get("as_deployed") or {}).get("phases") or {},
        "bias_update": record["bias"],
        "baselines": {
            "training_mean": (baselines.get("training_mean") or {}).get("overall"),
            "persistence": (baselines.get("persistence") or {}).get("overall"),
            "persistence_lab_delay_hours": record["lab_delay_hours"],
        },
        "on_persistence_rows": record["on_persistence_rows"],
    }


def _judge(run: TrainingRun, candidate: Candidate, verdicts: list[dict[str, Any]]) -> tuple[bool, str]:
    """Record the verdict on the version and put it online (passed) or leave it offline with the failed gate."""
    metrics = candidate.metrics or {}
    passed = gates.overall_pass(verdicts)
    failed = gates.failure_summary(verdicts)
    version = candidate.version
    record = _evaluation_record(run, metrics, passed, failed)
    model_version_record_evaluation(
        version=version,
        training_data={"evaluation": record, "bias": run.config.get("bias")},
        validation=_validation_block(run, metrics, record),
        user=run.created_by,
    )
    if passed:
        description = f"Passed the gates of training run {run.pk}: " + "; ".join(v["message"] for v in verdicts)
        try:
            model_version_set_status(
                version=version, status="online", description=description[:2000], user=run.created_by, source="training"
            )
        except Conflict as exc:  # it passed on the holdout but cannot be loaded to serve now
            return False, f"cannot go online: {exc.message}"
        return True, ""
    description = f"Rejected by training run {run.pk}: {failed}"
    if version.status != "offline" or version.status_description != description[:2000]:
        model_version_set_status(
            version=version, status="offline", description=description[:2000], user=run.created_by, source="training"
        )
    return False, failed


def step_gate(*, run_id: int) -> None:
    """Judge every candidate as deployed against the run's gates: passing versions go online, the others stay
    offline with the failed gate as their status; the best passing one (lowest RMSE as deployed) is chosen."""
    run = run_get(run_id)
    run_check_active(run)
    with run_step(run, "gate") as out:
        best, verdicts_by = None, {}
        for candidate in run.candidates.filter(status=CandidateStatus.TRAINED).select_related("version"):
            metrics = candidate.metrics or {}
            if candidate.version is None or "as_deployed" not in metrics:
                Candidate.objects.filter(pk=candidate.pk).update(passed=False)
                verdicts_by[candidate.learner] = {"passed": False, "failed": "not registered or not evaluated"}
                continue
            verdicts = gates.gate_verdicts(
                gates=run.config["gates"], candidate=metrics, production=_gate_production(run, metrics)
            )
            passed, failed = _judge(run, candidate, verdicts)
            Candidate.objects.filter(pk=candidate.pk).update(gates=json_safe(verdicts), passed=passed)
            verdicts_by[candidate.learner] = {"passed": passed, **({"failed": failed} if failed else {})}
            rmse = ((metrics.get("as_deployed") or {}).get("overall") or {}).get("rmse")
            if passed and rmse is not None and (best is None or rmse < best[0]):
                best = (rmse, candidate)
        out.update(candidates=verdicts_by, best=best[1].learner if best else None)
        if best is None:
            reasons = "; ".join(f"{k}: {v.get('failed', 'cannot go online')}" for k, v in verdicts_by.items())
            audited_update(
                TrainingRun.objects.filter(pk=run.pk),
                best_candidate=None,
                status=RunStatus.REJECTED,
                finished_at=timezone.now(),
                error=f"no candidate passed the gates — {reasons}",
            )
        else:
            audited_update(TrainingRun.objects.filter(pk=run.pk), best_candidate=best[1])


def _promotion_reason(run: TrainingRun, candidate: Candidate, alias: str) -> str:
    overall = ((candidate.metrics or {}).get("as_deployed") or {}).get("overall") or {}
    passed = "; ".join(v["message"] for v in candidate.gates or [])
    return (
        f"training run {run.pk}: {candidate.learner} moved to {alias} — holdout as deployed R² {overall.get('r2')}, "
        f"RMSE {overall.get('rmse')}. Gates: {passed}"
    )


def _move_alias(
    *, run: TrainingRun, candidate: Candidate, alias: str, user: Any, reason: str, signature: Any = None
) -> bool:
    """Move ``alias`` to the candidate's version; False (and no new history row) when it already points there.
    A signed alias needs ``signature`` (the registry checks it; call this outside a transaction then, so a
    refused attempt is kept)."""
    version = candidate.version
    current = spec_for_alias(soft_sensor_id=version.soft_sensor_id, alias=alias)
    if current is not None and current.version_id == version.pk:
        return False
    alias_move(
        soft_sensor=version.soft_sensor, name=alias, version=version, user=user, reason=reason, signature=signature
    )
    return True


def _signed(run: TrainingRun, alias: str) -> bool:
    return bool(alias) and alias_is_signed(project=run.project, name=alias)


def step_promote(*, run_id: int) -> None:
    """Move the configured alias to the best candidate, unless a modeler's approval is still required. A signed
    alias (``production``) is never moved here: the run waits for a person's electronic signature."""
    run = run_get(run_id)
    run_check_active(run)
    with run_step(run, "promote") as out:
        run.refresh_from_db()
        candidate = run.best_candidate
        alias = run.config.get("alias") or ""
        if candidate is None:
            out.update(promoted=False, reason=run.error or "no candidate passed the gates", _status=StepStatus.SKIPPED)
            return
        candidate = Candidate.objects.select_related("version__soft_sensor").get(pk=candidate.pk)
        if not alias:
            audited_update(
                TrainingRun.objects.filter(pk=run.pk), status=RunStatus.REGISTERED, finished_at=timezone.now()
            )
            out.update(promoted=False, reason="no alias requested", version=candidate.version.number)
            return
        signed = _signed(run, alias)
        current = spec_for_alias(soft_sensor_id=candidate.version.soft_sensor_id, alias=alias) if signed else None
        already = current is not None and current.version_id == candidate.version.pk
        if (signed and not already) or (run.config.get("require_approval") and run.approved_at is None):
            audited_update(TrainingRun.objects.filter(pk=run.pk), status=RunStatus.AWAITING_APPROVAL)
            out.update(
                promoted=False,
                waiting_for="signature" if signed else "approval",
                alias=alias,
                version=candidate.version.number,
                _status=StepStatus.WAITING,
            )
            return
        with transaction.atomic():
            moved = _move_alias(
                run=run,
                candidate=candidate,
                alias=alias,
                user=run.approved_by or run.created_by,
                reason=_promotion_reason(run, candidate, alias)
                + (f" Approved by {run.approved_by}." if run.approved_by else ""),
            )
            audited_update(
                TrainingRun.objects.filter(pk=run.pk),
                status=RunStatus.PROMOTED,
                promoted_version=candidate.version,
                finished_at=timezone.now(),
                error="",
            )
        out.update(promoted=True, alias=alias, version=candidate.version.number, moved=moved or already)


def training_run_approve(*, run: TrainingRun, user: Any, note: str = "", signature: Any = None) -> TrainingRun:
    """A modeler's approval: the waiting promotion happens now. A signed alias moves only with the approver's
    electronic signature (refused: nothing changes but the recorded attempt)."""
    if run.status != RunStatus.AWAITING_APPROVAL:
        raise Conflict(f"training run {run.pk} is {run.status}, not awaiting approval")
    alias = run.config.get("alias") or ""
    if _signed(run, alias):
        candidate = Candidate.objects.select_related("version__soft_sensor").get(pk=run.best_candidate_id)
        reason = (note or "").strip() or _promotion_reason(run, candidate, alias)
        _move_alias(run=run, candidate=candidate, alias=alias, user=user, reason=reason, signature=signature)
    audited_update(TrainingRun.objects.filter(pk=run.pk), approved_by=user, approved_at=timezone.now())
    step_promote(run_id=run.pk)
    return run_get(run.pk)


def training_run_promote(
    *, run: TrainingRun, user: Any, alias: str, learner: str | None = None, reason: str = "", signature: Any = None
) -> Candidate:
    """Move another alias (e.g. ``production``) to a passing candidate of a run, on a modeler's request; a signed
    alias needs the requester's electronic signature."""
    candidates = run.candidates.select_related("version__soft_sensor")
    if learner:
        candidate = candidates.filter(learner=learner).first()
        if candidate is None:
            raise NotFound(f"training run {run.pk} has no candidate {learner!r}")
    else:
        candidate = candidates.filter(pk=run.best_candidate_id).first()
        if candidate is None:
            raise Conflict(f"training run {run.pk} has no candidate that passed the gates")
    if not candidate.passed or candidate.version is None:
        failed = gates.failure_summary(candidate.gates or []) or "not registered"
        raise Conflict(f"{candidate.learner} did not pass the gates ({failed}); it cannot be promoted")
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", alias or ""):
        raise ValidationFailed(f"alias: {alias!r} is not a valid alias name", details={"alias": alias})
    text = (reason or "").strip() or _promotion_reason(run, candidate, alias)
    # Outside a transaction: a refused signature is recorded, and nothing else changes.
    _move_alias(
        run=run,
        candidate=candidate,
        alias=alias,
        user=user,
        reason=f"{text} (requested by {user})",
        signature=signature,
    )
    if run.status in (RunStatus.AWAITING_APPROVAL, RunStatus.REGISTERED):
        audited_update(
            TrainingRun.objects.filter(pk=run.pk),
            status=RunStatus.PROMOTED,
            promoted_version=candidate.version,
            approved_by=user,
            approved_at=timezone.now(),
            finished_at=timezone.now(),
        )
    return candidate

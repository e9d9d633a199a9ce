"""Champion and challenger: a shadow deployment judged against the deployment it shadows on lab residuals.

The residuals are the drift app's ledgers (``LabResidual``: lab − the stored estimate nearest the sample, one
rule for every page); a champion and its shadow read their own version tags. The comparison pairs the lab
samples *both* scored (same group, target and lab time) and runs the paired test of ``training.paired``.

When the challenger is better with the configured confidence on enough samples, the review (beat, or "review
now") **proposes** the promotion: a pending ``PromotionRequest`` and the ``promotion_proposed`` signal. It never
moves an alias: a person approves the request with an electronic signature (the registry's alias move, with
the project's two-person rule) or dismisses it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.tracking import audited_update
from apps.common.errors import ApplicationError, Conflict
from apps.drift.selectors import lab_residual_list
from apps.orchestrator.selectors import deployment_estimators, deployment_list
from apps.registry.selectors import version_for_spec

from .. import paired
from ..models import PromotionRequest, RequestStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    group: str
    target: str
    lab_time: datetime
    lab_value: float
    champion_estimate: float
    challenger_estimate: float

    @property
    def champion_residual(self) -> float:
        return self.lab_value - self.champion_estimate

    @property
    def challenger_residual(self) -> float:
        return self.lab_value - self.challenger_estimate


@dataclass
class Comparison:
    champion: Any
    challenger: Any
    champion_label: str
    challenger_label: str
    since: datetime
    pairs: list[Pair]
    verdict: paired.PairedVerdict
    proposable: bool = False
    not_proposable: str = ""
    pending: Any = None
    requests: list[Any] = field(default_factory=list)

    def evidence(self) -> dict[str, Any]:
        return {
            "champion": self.champion_label,
            "challenger": self.challenger_label,
            "since": self.since.isoformat(),
            "test": "one-sided Wilcoxon signed-rank on squared-error differences",
            **self.verdict.as_dict(),
        }


def _ledger(deployment: Any, since: datetime) -> dict[tuple, tuple[float, float]]:
    rows = lab_residual_list(deployment=deployment, since=since).values_list(
        "project_name", "device_id", "batch_id", "target", "lab_time", "lab_value", "predicted_value"
    )
    return {(p, d, b, t, lt): (lv, pv) for p, d, b, t, lt, lv, pv in rows}


def challenger_pairs(*, champion: Any, challenger: Any, since: datetime) -> list[Pair]:
    """The lab samples both deployments scored since ``since`` (two queries), oldest first."""
    ours, theirs = _ledger(champion, since), _ledger(challenger, since)
    pairs = [
        Pair(f"{k[0]}/{k[1]}/{k[2]}", k[3], k[4], ours[k][0], ours[k][1], theirs[k][1])
        for k in sorted(set(ours) & set(theirs), key=lambda k: (k[4], k[:4]))
    ]
    return pairs


def _label(deployment: Any, estimator: Any) -> str:
    if estimator is None:
        return f"{deployment.name} ({deployment.soft_sensor.model_id} {deployment.target_label}: points nowhere)"
    return f"{deployment.name} ({estimator.spec.model_id} v{estimator.spec.number})"


def challenger_compare(*, challenger: Any, now: datetime | None = None) -> Comparison:
    """The comparison of one shadow deployment with its champion over the configured window."""
    if not challenger.is_shadow:
        raise Conflict(f"{challenger.name} is not a shadow deployment", details={"deployment": challenger.name})
    champion = challenger.shadow_of
    estimators = dict(deployment_estimators([champion, challenger]))
    since = (now or timezone.now()) - timedelta(days=settings.STAMM_CHALLENGER_WINDOW_DAYS)
    pairs = challenger_pairs(champion=champion, challenger=challenger, since=since)
    verdict = paired.paired_compare(
        [p.champion_residual for p in pairs],
        [p.challenger_residual for p in pairs],
        confidence=settings.STAMM_CHALLENGER_CONFIDENCE,
        min_samples=settings.STAMM_CHALLENGER_MIN_SAMPLES,
    )
    comparison = Comparison(
        champion=champion,
        challenger=challenger,
        champion_label=_label(champion, estimators.get(champion)),
        challenger_label=_label(challenger, estimators.get(challenger)),
        since=since,
        pairs=pairs,
        verdict=verdict,
        requests=list(
            PromotionRequest.objects.filter(challenger=challenger).select_related("version", "decided_by")[:20]
        ),
    )
    comparison.pending = next((r for r in comparison.requests if r.status == RequestStatus.PENDING), None)
    champion_estimator, challenger_estimator = estimators.get(champion), estimators.get(challenger)
    if not champion.alias:
        comparison.not_proposable = f"{champion.name} is pinned to a version: change the deployment to promote"
    elif challenger_estimator is None or champion_estimator is None:
        comparison.not_proposable = "one of the two points at no version"
    elif challenger.soft_sensor_id != champion.soft_sensor_id:
        comparison.not_proposable = (
            f"the challenger is another soft sensor ({challenger.soft_sensor.model_id}): point the champion "
            "deployment at it to promote"
        )
    elif challenger_estimator.spec.version_id == champion_estimator.spec.version_id:
        comparison.not_proposable = "both run the same version"
    else:
        comparison.proposable = True
    return comparison


def challengers_all() -> list[Comparison]:
    """Every enabled shadow deployment compared with its champion."""
    shadows = deployment_list().filter(shadow_of__isnull=False, enabled=True)
    return [challenger_compare(challenger=shadow) for shadow in shadows]


def _supersede_stale(comparison: Comparison, version_id: int | None) -> None:
    stale = PromotionRequest.objects.filter(challenger=comparison.challenger, status=RequestStatus.PENDING)
    if version_id is not None:
        stale = stale.exclude(version_id=version_id)
    audited_update(
        stale,
        status=RequestStatus.SUPERSEDED,
        decided_at=timezone.now(),
        decision_note="the challenger now runs another version",
    )


def challenger_review(*, challenger: Any, refresh: bool = True) -> PromotionRequest | None:
    """Refresh both ledgers, compare, and propose the promotion when the challenger is better; returns the new
    pending request, or None (nothing to propose, or already proposed)."""
    from apps.drift.services import lab_ledger_refresh  # noqa: PLC0415

    if refresh:
        since = timezone.now() - timedelta(days=settings.STAMM_CHALLENGER_WINDOW_DAYS)
        for deployment in (challenger.shadow_of, challenger):
            try:
                lab_ledger_refresh(deployment=deployment, since=since)
            except ApplicationError as exc:
                logger.warning("lab ledger of %s not refreshed: %s", deployment.name, exc.message)
    comparison = challenger_compare(challenger=challenger)
    estimator = dict(deployment_estimators([challenger])).get(challenger)
    version_id = estimator.spec.version_id if estimator is not None else None
    _supersede_stale(comparison, version_id)
    if not (comparison.proposable and comparison.verdict.challenger_better) or version_id is None:
        return None
    version = version_for_spec(spec=estimator.spec)
    try:
        with transaction.atomic():
            proposal = PromotionRequest.objects.create(
                champion=comparison.champion,
                challenger=challenger,
                soft_sensor_id=challenger.soft_sensor_id,
                alias=comparison.champion.alias,
                version=version,
                evidence=comparison.evidence(),
            )
    except IntegrityError:  # already pending for this version
        return None
    _announce(proposal)
    return proposal


def _announce(proposal: PromotionRequest) -> None:
    from ..signals import promotion_proposed  # noqa: PLC0415

    payload = {
        "request_id": proposal.pk,
        "champion_id": proposal.champion_id,
        "challenger_id": proposal.challenger_id,
        "alias": proposal.alias,
        "version": proposal.version.number,
    }
    logger.warning(
        "promotion proposed: %s of %s to v%s (challenger %s beat champion %s on lab samples)",
        proposal.alias,
        proposal.soft_sensor,
        proposal.version.number,
        proposal.challenger,
        proposal.champion,
    )

    def send() -> None:
        for receiver, outcome in promotion_proposed.send_robust(sender=PromotionRequest, **payload):
            if isinstance(outcome, Exception):
                logger.error("promotion_proposed receiver %s failed: %s", receiver, outcome)

    transaction.on_commit(send)


def challengers_review_all() -> dict[str, Any]:
    """Beat's review of every enabled shadow deployment (one failing does not stop the others)."""
    out: dict[str, Any] = {}
    for shadow in deployment_list().filter(shadow_of__isnull=False, enabled=True):
        try:
            proposal = challenger_review(challenger=shadow)
            out[shadow.name] = {"proposed": proposal.pk if proposal else None}
        except ApplicationError as exc:
            out[shadow.name] = {"error": exc.message}
    return out


def promotion_request_approve(
    *, request: PromotionRequest, user: Any, signature: Any, note: str = ""
) -> PromotionRequest:
    """Move the champion's alias to the challenger's version with the approver's electronic signature (the
    registry enforces it and the two-person rule); then the request is approved. Call outside a transaction: a
    refused signature is recorded and nothing else changes."""
    from apps.registry.services import alias_move  # noqa: PLC0415

    if request.status != RequestStatus.PENDING:
        raise Conflict(f"promotion request {request.pk} is {request.status}, not pending")
    version = request.version
    reason = (note or "").strip() or (
        f"challenger {request.challenger} beat champion {request.champion} on lab samples: "
        f"{(request.evidence or {}).get('reason', '')}"
    )
    alias_move(
        soft_sensor=version.soft_sensor,
        name=request.alias,
        version=version,
        user=user,
        reason=reason,
        signature=signature,
    )
    audited_update(
        PromotionRequest.objects.filter(pk=request.pk),
        status=RequestStatus.APPROVED,
        decided_by=user,
        decided_at=timezone.now(),
        decision_note=reason,
    )
    request.refresh_from_db()
    return request


def promotion_request_dismiss(*, request: PromotionRequest, user: Any, note: str) -> PromotionRequest:
    if request.status != RequestStatus.PENDING:
        raise Conflict(f"promotion request {request.pk} is {request.status}, not pending")
    if not (note or "").strip():
        from apps.common.errors import ValidationFailed  # noqa: PLC0415

        raise ValidationFailed("note: say why the proposal is dismissed", details={"note": "required"})
    audited_update(
        PromotionRequest.objects.filter(pk=request.pk),
        status=RequestStatus.DISMISSED,
        decided_by=user,
        decided_at=timezone.now(),
        decision_note=note.strip(),
    )
    request.refresh_from_db()
    return request

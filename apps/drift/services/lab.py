"""The lab-sample residual ledger and its periodic refresh."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.common.beat import periodic_task_ensure
from apps.common.errors import ApplicationError, ValidationFailed, reject_unknown_fields
from apps.tsdb.types import GroupKey, from_ns, to_ns

from .. import lab_scoring
from ..models import (
    LabResidual,
    LabScoringSettings,
)
from .evaluation import lab_settings_of

logger = logging.getLogger(__name__)


#: Beat entry of the periodic lab-scoring refresh (created by the app's post_migrate receiver).
LAB_SCORING_TASK_NAME = "Drift lab scoring"
LAB_SCORING_TASK = "drift.lab_scoring_refresh"
#: Groups whose data moved within this many seconds are refreshed by the periodic task.
LAB_SCORING_LOOKBACK_SECONDS = 2 * 24 * 3600


# -- lab scoring ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LedgerChange:
    """What one ledger refresh did."""

    groups: int
    created: int
    updated: int
    deleted: int
    unchanged: int
    lab_samples_unmatched: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


LEDGER_VALUE_FIELDS = ("prediction_time", "lab_value", "predicted_value", "residual", "model_id", "version")


@transaction.atomic
def lab_settings_update(*, deployment: Any, data: Mapping[str, Any]) -> LabScoringSettings:
    """Create or change a deployment's lab-scoring settings (validated; 400 naming the field)."""
    allowed = {"target", "lab_property", "tolerance_seconds", "rolling_samples", "event_k", "enabled"}
    reject_unknown_fields(data, allowed, what="lab settings")
    current, _ = LabScoringSettings.objects.get_or_create(deployment=deployment)
    for name, value in data.items():
        setattr(current, name, value)
    if not isinstance(current.tolerance_seconds, int) or current.tolerance_seconds < 1:
        raise ValidationFailed("tolerance_seconds: at least 1",
                               details={"tolerance_seconds": current.tolerance_seconds})
    if not isinstance(current.rolling_samples, int) or current.rolling_samples < 1:
        raise ValidationFailed("rolling_samples: at least 1", details={"rolling_samples": current.rolling_samples})
    if isinstance(current.event_k, bool) or not isinstance(current.event_k, int | float) or current.event_k <= 0:
        raise ValidationFailed("event_k: a positive number", details={"event_k": current.event_k})
    current.full_clean()
    current.save()
    return current


def _ledger_groups(deployment: Any, project_name: str, since: datetime | None) -> list[GroupKey]:
    from apps.tsdb.selectors import groups_list
    from apps.tsdb.types import Collection

    return [
        g.group for g in groups_list(collection=Collection.RAW, project_name=project_name, since=since)
        if deployment.in_scope(device_id=g.group.device_id, batch_id=g.group.batch_id)
    ]


def lab_ledger_refresh(*, deployment: Any, groups: Iterable[GroupKey] | None = None,
                       since: datetime | None = None) -> LedgerChange:
    """(Re)compute the residual ledger of ``deployment`` for ``groups`` (default: every group in scope with
    data since ``since``) and write only the difference. Idempotent: a second run changes nothing."""
    from apps.orchestrator.selectors import deployment_estimator, deployment_version_tags

    lab = lab_settings_of(deployment)
    estimator = deployment_estimator(deployment)
    if estimator is None:
        raise ValidationFailed(f"deployment: alias {deployment.alias!r} points nowhere",
                               details={"deployment": deployment.name})
    spec = estimator.spec
    if not lab.target and not spec.outputs:
        raise ValidationFailed("the model names no output to score", details={"target": "unknown"})
    target = lab.target or spec.output_names[0]
    project_name = deployment.soft_sensor.project.name.lower()
    chosen = list(groups) if groups is not None else _ledger_groups(deployment, project_name, since)
    tolerance_ns = int(lab.tolerance_seconds) * 1_000_000_000
    totals = dict(created=0, updated=0, deleted=0, unchanged=0, unmatched=0)
    versions = deployment_version_tags(deployment=deployment)
    for group in chosen:
        matched, _ = lab_scoring.read_group(group=group, target=target, lab_property=lab.lab_property,
                                            model_tag=spec.model_tag, tolerance_ns=tolerance_ns, versions=versions)
        counts = _ledger_write(deployment=deployment, group=group, target=target, matched=matched)
        for key, value in counts.items():
            totals[key] += value
        lab_count = _lab_count(group, target, lab.lab_property)
        totals["unmatched"] += max(lab_count - len(matched), 0)
    return LedgerChange(len(chosen), totals["created"], totals["updated"], totals["deleted"], totals["unchanged"],
                        totals["unmatched"])


def _lab_count(group: GroupKey, target: str, configured: str) -> int:
    from apps.tsdb.selectors import series_list
    from apps.tsdb.types import LAB_SOURCE, Collection, SeriesFilter

    infos = series_list(collection=Collection.RAW, where=SeriesFilter(
        project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id, source=LAB_SOURCE))
    counts = {i.series.observed_property: i.point_count for i in infos}
    return next((counts[n] for n in lab_scoring.lab_property_candidates(target, configured) if n in counts), 0)


@transaction.atomic
def _ledger_write(*, deployment: Any, group: GroupKey, target: str, matched: lab_scoring.Matched) -> dict[str, int]:
    existing = {
        to_ns(row.lab_time): row
        for row in LabResidual.objects.select_for_update().filter(
            deployment=deployment, project_name=group.project_name, device_id=group.device_id,
            batch_id=group.batch_id, target=target)
    }
    model_tag = deployment_model_tag(deployment)
    fresh: dict[int, dict[str, Any]] = {}
    residuals = matched.residuals
    for i in range(len(matched)):
        lab_time = from_ns(int(matched.lab_times_ns[i]))
        fresh[to_ns(lab_time)] = {
            "lab_time": lab_time,
            "prediction_time": from_ns(int(matched.prediction_times_ns[i])),
            "lab_value": float(matched.lab_values[i]),
            "predicted_value": float(matched.predicted_values[i]),
            "residual": float(residuals[i]),
            "model_id": model_tag,
            "version": str(matched.versions[i]),
        }
    create, update, unchanged = [], [], 0
    for key, values in fresh.items():
        row = existing.get(key)
        if row is None:
            create.append(LabResidual(deployment=deployment, project_name=group.project_name,
                                      device_id=group.device_id, batch_id=group.batch_id, target=target, **values))
        elif any(getattr(row, f) != values[f] for f in LEDGER_VALUE_FIELDS):
            for f in LEDGER_VALUE_FIELDS:
                setattr(row, f, values[f])
            row.computed_at = timezone.now()
            update.append(row)
        else:
            unchanged += 1
    stale = [row.pk for key, row in existing.items() if key not in fresh]
    if stale:
        LabResidual.objects.filter(pk__in=stale).delete()
    if create:
        LabResidual.objects.bulk_create(create, batch_size=500)
    if update:
        LabResidual.objects.bulk_update(update, [*LEDGER_VALUE_FIELDS, "computed_at"], batch_size=500)
    return {"created": len(create), "updated": len(update), "deleted": len(stale), "unchanged": unchanged}


def deployment_model_tag(deployment: Any) -> str:
    return deployment.soft_sensor.model_id.lower()


def lab_ledgers_refresh_all(*, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """The periodic refresh: every enabled deployment with lab scoring enabled, groups with recent data."""
    from apps.orchestrator.selectors import deployment_list

    now = now or timezone.now()
    since = now - timedelta(seconds=getattr(settings, "STAMM_LAB_SCORING_LOOKBACK", LAB_SCORING_LOOKBACK_SECONDS))
    disabled = set(LabScoringSettings.objects.filter(enabled=False).values_list("deployment_id", flat=True))
    out: dict[str, dict[str, int]] = {}
    for deployment in deployment_list().filter(enabled=True):
        if deployment.pk in disabled:
            continue
        try:
            out[deployment.name] = lab_ledger_refresh(deployment=deployment, since=since).as_dict()
        except ApplicationError as exc:
            logger.warning("lab scoring of %s skipped: %s", deployment.name, exc.message)
    return out


def lab_scoring_schedule_ensure(*, using: str = "default") -> bool:
    """Create the periodic lab-scoring task if absent (an edited one is left alone); True when created."""
    return periodic_task_ensure(
        name=LAB_SCORING_TASK_NAME,
        task=LAB_SCORING_TASK,
        every=int(getattr(settings, "STAMM_LAB_SCORING_INTERVAL", 600)),
        description="Refresh the lab-sample residual ledgers",
        using=using,
    )


"""Selectors of the manager pages: every deployment with a status light, and one deployment's details.

The status rule (``deployment_status``, written out in ``docs/dashboard.md``):
- **failing**: the deployment is enabled but has no online version to call, its latest run failed, or
  a critical drift alert counts;
- **warning**: disabled, no run yet, the pipeline lags more than ``STAMM_PIPELINE_MAX_LAG`` seconds,
  the latest estimate is outside the training envelope, the latest run was stale, or a warning drift
  alert counts;
- **ok** otherwise.

Which drift alerts count is the drift app's rule (``apps.drift.selectors.deployment_alert_status``): open,
unsilenced alerts on what the deployment scores now (its current version, its live batches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from apps.tsdb.selectors import latest_points, series_list, series_read
from apps.tsdb.types import (
    LAB_SOURCE,
    PREDICTION_SOURCE,
    Collection,
    Downsample,
    GroupKey,
    SeriesFilter,
    estimate_values,
    point_estimate,
)

from .alerting import drift_status
from .selectors import LAB_MATCH_TOLERANCE, MAX_TRACE_POINTS, group_filter, variable_units

#: Batches (most recent first) over which the lab-error trend is computed.
TREND_BATCHES = 6


@dataclass
class LabError:
    batch_id: str
    samples: int
    mae: float


@dataclass
class DeploymentRow:
    deployment: Any
    spec: Any  # the ModelSpec the deployment runs now (None: its alias points nowhere)
    status: str
    reasons: list[str]
    latest_value: float | None = None
    latest_time: datetime | None = None
    latest_validity: str = ""
    latest_batch: str = ""
    output: str = ""
    unit: str = ""
    last_run: Any = None
    lag_seconds: float | None = None
    lab_trend: list[LabError] = field(default_factory=list)
    drift: Any = None  # apps.drift.selectors.AlertStatus


def deployment_status(
    *,
    enabled: bool,
    online: bool,
    last_run: Any,
    lag_seconds: float | None,
    latest_validity: str,
    max_lag: int,
    alert_severities: tuple[str, ...] = (),
) -> tuple[str, list[str]]:
    """The light and the reasons for it (see the module docstring)."""
    failing, warning = [], []
    critical = sum(1 for s in alert_severities if s == "critical")
    if critical:
        failing.append(f"{critical} critical drift alert{'s' if critical > 1 else ''} open on what it scores now")
    if len(alert_severities) > critical:
        count = len(alert_severities) - critical
        warning.append(f"{count} drift alert{'s' if count > 1 else ''} open on what it scores now")
    if enabled and not online:
        failing.append("no online version to call")
    if last_run is not None and last_run.status == "failed":
        failing.append(f"last run failed: {last_run.error[:120]}" if last_run.error else "last run failed")
    if not enabled:
        warning.append("disabled")
    if last_run is None:
        warning.append("no pipeline run yet")
    elif last_run.status == "stale":
        warning.append("last run went stale")
    if lag_seconds is not None and lag_seconds > max_lag:
        warning.append(f"pipeline lag {lag_seconds:.0f} s > {max_lag} s")
    if latest_validity == "out_of_range":
        warning.append("latest estimate from inputs outside the training envelope")
    if failing:
        return "failing", failing + warning
    if warning:
        return "warning", warning
    return "ok", ["running normally"]


def lab_error_trend(
    *, project_name: str, model_tag: str, version_tag: str, output: str, groups: list[GroupKey]
) -> list[LabError]:
    """Mean absolute lab residual (lab − nearest estimate) per batch, oldest first."""
    trend = []
    tolerance_ns = int(LAB_MATCH_TOLERANCE.total_seconds() * 1e9)
    for group in groups:
        labs = series_list(
            collection=Collection.RAW, where=group_filter(group, source=LAB_SOURCE, observed_property=output)
        )
        preds = series_list(
            collection=Collection.PREDICTIONS,
            where=group_filter(
                group, source=PREDICTION_SOURCE, observed_property=output, model_id=model_tag, version=version_tag
            ),
        )
        if not labs or not preds:
            continue
        lab = series_read(
            collection=Collection.RAW,
            series=labs[0].series,
            start=labs[0].first_time,
            end=labs[0].last_time,
            max_points=MAX_TRACE_POINTS,
            method=Downsample.LTTB,
        )
        pred = series_read(
            collection=Collection.PREDICTIONS,
            series=preds[0].series,
            start=labs[0].first_time - LAB_MATCH_TOLERANCE,
            end=labs[0].last_time + LAB_MATCH_TOLERANCE,
            max_points=MAX_TRACE_POINTS,
            method=Downsample.LTTB,
        )
        if not len(lab) or not len(pred):
            continue
        pos = np.clip(np.searchsorted(pred.times_ns, lab.times_ns), 1, max(1, len(pred) - 1))
        left = np.maximum(pos - 1, 0)
        pos = np.minimum(pos, len(pred) - 1)
        nearest = np.where(
            np.abs(pred.times_ns[left] - lab.times_ns) <= np.abs(pred.times_ns[pos] - lab.times_ns), left, pos
        )
        ok = np.abs(pred.times_ns[nearest] - lab.times_ns) <= tolerance_ns
        if ok.any():
            residuals = lab.values[ok] - estimate_values(pred)[nearest[ok]]
            trend.append(LabError(group.batch_id, int(ok.sum()), float(np.mean(np.abs(residuals)))))
    return trend


def deployment_overview(*, now: datetime | None = None, with_trend: bool = True) -> list[DeploymentRow]:
    """Every deployment with its light, latest estimate, last run, lag and lab-error trend. Shadow deployments
    are left out: their estimates are not the estimate (modelers compare them on the champion/challenger page)."""
    from apps.orchestrator.selectors import deployment_estimators, deployment_list, pipeline_lag, run_list

    now = now or timezone.now()
    lag_by_id = {entry["id"]: entry for entry in pipeline_lag(now=now)}
    recent_runs: dict[int, Any] = {}
    for run in run_list(since=now - timedelta(days=2))[:2000]:
        recent_runs.setdefault(run.deployment_id, run)
    rows = []
    for deployment, estimator in deployment_estimators(list(deployment_list().filter(shadow_of__isnull=True))):
        spec = estimator.spec if estimator is not None else None
        last_run = recent_runs.get(deployment.pk) or run_list(deployment=str(deployment.pk)).first()
        lag_entry = lag_by_id.get(deployment.pk, {})
        lag = lag_entry.get("lag_seconds")
        row = DeploymentRow(
            deployment=deployment, spec=spec, status="ok", reasons=[], last_run=last_run, lag_seconds=lag
        )
        row.drift = drift_status(deployment=deployment, version=spec.version_tag if spec is not None else "")
        project_name = deployment.soft_sensor.project.name.lower()
        if spec is not None and spec.outputs:
            row.output = spec.output_names[0]
            row.unit = variable_units(project_name=project_name).get(row.output, "")
            points = [
                p
                for p in latest_points(
                    collection=Collection.PREDICTIONS,
                    where=SeriesFilter(
                        project_name=project_name,
                        source=PREDICTION_SOURCE,
                        observed_property=row.output,
                        model_id=spec.model_tag,
                        version=spec.version_tag,
                    ),
                )
                if deployment.in_scope(device_id=p.series.device_id, batch_id=p.series.batch_id)
            ]
            if points:
                newest = max(points, key=lambda p: p.time)
                row.latest_value, row.latest_time = point_estimate(newest), newest.time
                row.latest_validity = str(newest.fields.get("validity") or "")
                row.latest_batch = f"{newest.series.device_id}/{newest.series.batch_id}"
                if with_trend:
                    groups = sorted(
                        {p.series.group for p in points},
                        key=lambda g: max(p.time for p in points if p.series.group == g),
                    )[-TREND_BATCHES:]
                    row.lab_trend = lab_error_trend(
                        project_name=project_name,
                        model_tag=spec.model_tag,
                        version_tag=spec.version_tag,
                        output=row.output,
                        groups=groups,
                    )
        row.status, row.reasons = deployment_status(
            enabled=deployment.enabled,
            online=bool(spec and spec.online),
            last_run=last_run,
            lag_seconds=lag,
            latest_validity=row.latest_validity,
            max_lag=settings.STAMM_PIPELINE_MAX_LAG,
            alert_severities=row.drift.severities,
        )
        rows.append(row)
    return rows


def deployment_detail(*, deployment_id: int) -> dict[str, Any]:
    """One deployment: its row of the overview, recent runs and the groups it scores with their lag."""
    from apps.orchestrator.selectors import deployment_get, pipeline_lag, run_list

    deployment = deployment_get(deployment_id=deployment_id)
    row = next((r for r in deployment_overview() if r.deployment.pk == deployment.pk), None)
    if row is None:
        from apps.common.errors import NotFound

        raise NotFound(f"{deployment.name} is a shadow deployment: compare it on the champion/challenger page.")
    lag = next((e for e in pipeline_lag() if e["id"] == deployment.pk), {})
    return {
        "deployment": deployment,
        "row": row,
        "runs": list(run_list(deployment=str(deployment.pk))[:25]),
        "groups": lag.get("groups", []),
    }

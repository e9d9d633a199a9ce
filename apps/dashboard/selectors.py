"""Reads behind the dashboards, composed from the other apps' selectors (never their tables directly).

This module holds the trust panel (latest estimates, lab residual, pipeline lag, drift status) and the point
flags; the other reads live by sub-domain and are re-exported here, so a page imports one module:
``pickers`` (projects, devices, batches, units), ``charts`` (the live chart's traces), ``summaries`` (the
data-source page) and ``formatting`` (how numbers and ages read).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.tsdb.selectors import (
    latest_points,
    series_read,
)
from apps.tsdb.types import (
    LAB_SOURCE,
    PREDICTION_SOURCE,
    Collection,
    Downsample,
    GroupKey,
    SeriesKey,
    estimate_values,
    point_estimate,
    to_ns,
)

from .charts import (
    DEFAULT_RANGE,
    MAX_TRACE_POINTS,
    RANGES,
    GroupSeries,
    LiveChart,
    Trace,
    estimate_label,
    group_filter,
    group_series,
    live_chart,
    plot_time,
    plot_times,
    shadow_versions,
    window_for,
)
from .formatting import ago, duration_text
from .models import PointFlag
from .pickers import (
    UNITS_CACHE_SECONDS,
    all_batch_options,
    batch_options,
    device_ids,
    group_infos,
    group_value,
    parse_group,
    project_names,
    variable_units,
    with_unit,
)
from .summaries import BatchSummary, VariableSummary, batch_summary

__all__ = [
    "MAX_TRACE_POINTS",
    "DEFAULT_RANGE",
    "RANGES",
    "GroupSeries",
    "LiveChart",
    "Trace",
    "estimate_label",
    "group_filter",
    "group_series",
    "live_chart",
    "plot_time",
    "plot_times",
    "shadow_versions",
    "window_for",
    "ago",
    "duration_text",
    "UNITS_CACHE_SECONDS",
    "all_batch_options",
    "batch_options",
    "device_ids",
    "group_infos",
    "group_value",
    "parse_group",
    "project_names",
    "variable_units",
    "with_unit",
    "BatchSummary",
    "VariableSummary",
    "batch_summary",
    "LAB_MATCH_TOLERANCE",
]

#: A lab sample is matched to the nearest estimate within this distance.
LAB_MATCH_TOLERANCE = timedelta(minutes=30)


# ------------------------------------------------------------------------------------------ trust panel


@dataclass
class EstimateStatus:
    label: str
    value: float
    unit: str
    time: datetime
    validity: str
    lab_value: float | None = None
    lab_time: datetime | None = None
    residual: float | None = None


@dataclass
class TrustPanel:
    group: GroupKey
    estimates: list[EstimateStatus]
    last_data: datetime | None
    lag_seconds: float | None
    lag_deployments: list[str]
    max_lag_seconds: int
    drift: list[Any] = field(default_factory=list)  # apps.drift.selectors.AlertStatus per deployment


def _nearest(times_ns: np.ndarray, values: np.ndarray, at_ns: int, tolerance_ns: int) -> float | None:
    if times_ns.size == 0:
        return None
    index = int(np.argmin(np.abs(times_ns - at_ns)))
    if abs(int(times_ns[index]) - at_ns) > tolerance_ns:
        return None
    return float(values[index])


def latest_lab_residual(*, series: SeriesKey, lab: SeriesKey, lab_time: datetime, lab_value: float) -> float | None:
    """Lab value minus the estimate nearest the lab sample's time (within ``LAB_MATCH_TOLERANCE``)."""
    data = series_read(
        collection=Collection.PREDICTIONS,
        series=series,
        start=lab_time - LAB_MATCH_TOLERANCE,
        end=lab_time + LAB_MATCH_TOLERANCE,
        max_points=MAX_TRACE_POINTS,
        method=Downsample.LTTB,
    )
    tolerance_ns = int(LAB_MATCH_TOLERANCE.total_seconds() * 1e9)
    estimate = _nearest(data.times_ns, estimate_values(data), to_ns(lab_time), tolerance_ns)
    return None if estimate is None else lab_value - estimate


def group_lag(
    *, group: GroupKey, raw_latest: Sequence[Any], predictions_latest: Sequence[Any], now: datetime | None = None
) -> tuple[float | None, list[str]]:
    """How long the group's data has waited for an estimate, worst over the enabled deployments scoring
    it (shadows aside: their estimates are not the estimate), and those deployments.

    The rule is the orchestrator's (``apps.orchestrator.selectors.waiting_seconds``, the one the health
    endpoint's ``pipeline_lag`` uses), applied to this one group with its newest points already read, since
    ``pipeline_lag`` walks every recent group of the project and the trust panel refreshes often.
    """
    from apps.orchestrator.selectors import deployments_for_project, waiting_seconds
    from apps.orchestrator.services import not_scoring_reason

    now_ns = to_ns(now or timezone.now())
    worst: float | None = None
    names = []
    for deployment, estimator in deployments_for_project(project_name=group.project_name):
        if deployment.is_shadow or not_scoring_reason(deployment, estimator) is not None:
            continue
        if not deployment.in_scope(device_id=group.device_id, batch_id=group.batch_id):
            continue
        raw_times = [to_ns(p.time) for p in raw_latest if estimator.is_input(p.series)]
        if not raw_times:
            continue
        predicted = [to_ns(p.time) for p in predictions_latest if estimator.is_output(p.series)]
        waiting = waiting_seconds(
            estimator=estimator,
            group=group,
            newest_raw_ns=max(raw_times),
            newest_prediction_ns=max(predicted) if predicted else None,
            now_ns=now_ns,
        )
        names.append(deployment.name)
        worst = max(worst or 0.0, waiting)
    return worst, names


def trust_panel(*, group: GroupKey) -> TrustPanel:
    """Validity of the latest estimate(s), the latest lab residual, data age and pipeline lag."""
    predictions = latest_points(collection=Collection.PREDICTIONS, where=group_filter(group, source=PREDICTION_SOURCE))
    raw_latest = latest_points(collection=Collection.RAW, where=group_filter(group))
    labs = {p.series.observed_property: p for p in raw_latest if p.series.source == LAB_SOURCE}
    units = variable_units(project_name=group.project_name, device_id=group.device_id)
    hidden = shadow_versions(group)
    predictions = [p for p in predictions if (p.series.model_id, p.series.version) not in hidden]
    estimates = []
    for point in sorted(predictions, key=lambda p: (p.series.observed_property, p.series.model_id, p.series.version)):
        status = EstimateStatus(
            label=estimate_label(point.series),
            value=point_estimate(point),
            unit=units.get(point.series.observed_property, ""),
            time=point.time,
            validity=str(point.fields.get("validity") or "unknown"),
        )
        lab = labs.get(point.series.observed_property)
        if lab is not None:
            status.lab_value, status.lab_time = lab.value, lab.time
            status.residual = latest_lab_residual(
                series=point.series, lab=lab.series, lab_time=lab.time, lab_value=lab.value
            )
        estimates.append(status)
    last_data = max((p.time for p in raw_latest if p.series.source != LAB_SOURCE), default=None)
    lag, names = group_lag(group=group, raw_latest=raw_latest, predictions_latest=predictions)
    from .alerting import drift_status

    drift = [drift_status(deployment=name) for name in names]
    return TrustPanel(group, estimates, last_data, lag, names, settings.STAMM_PIPELINE_MAX_LAG, drift)


# ------------------------------------------------------------------------------------------------ flags


def point_flag_list(
    *, group: GroupKey, start: datetime | None = None, end: datetime | None = None, limit: int = 200
) -> QuerySet[PointFlag]:
    queryset = PointFlag.objects.filter(
        project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id
    ).select_related("created_by")
    if start is not None:
        queryset = queryset.filter(time__gte=start)
    if end is not None:
        queryset = queryset.filter(time__lte=end)
    return queryset.order_by("-time", "-id")[:limit]


def flag_rows(flags: Iterable[PointFlag]) -> list[dict[str, Any]]:
    return [
        {
            "time": f.time.strftime("%Y-%m-%d %H:%M:%S"),
            "series": ("lab " if f.source == LAB_SOURCE else "estimate " if f.model_id else "")
            + f.observed_property
            + (f" · {f.model_id} v{f.version}" if f.model_id else ""),
            "value": None if f.value is None else round(f.value, 4),
            "level": f.get_level_display(),
            "type": f.get_type_display(),
            "description": f.description,
            "by": f.created_by.get_username() if f.created_by else "",
        }
        for f in flags
    ]


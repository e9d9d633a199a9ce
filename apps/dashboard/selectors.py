"""Reads behind the dashboards, composed from the other apps' selectors (never their tables directly).

Every chart read names a time range and goes through ``apps.tsdb.selectors.series_read`` with
``max_points`` (≤ ``MAX_TRACE_POINTS``), so the store reduces the data before it reaches Python and the
browser never receives more than it can draw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.common.errors import ValidationFailed
from apps.tsdb.selectors import (
    groups_list,
    latest_points,
    series_list,
    series_read,
    variable_metadata_list,
)
from apps.tsdb.types import (
    LAB_SOURCE,
    PREDICTION_SOURCE,
    UTC,
    Collection,
    Downsample,
    GroupInfo,
    GroupKey,
    SeriesFilter,
    SeriesInfo,
    SeriesKey,
    from_ns,
    to_ns,
)

from .models import PointFlag

#: Most points one chart trace carries (the store downsamples above this).
MAX_TRACE_POINTS = 2000
#: Range buttons of the live chart: label → window length (None: the whole batch).
RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "batch": None,
}
#: A lab sample is matched to the nearest estimate within this distance.
LAB_MATCH_TOLERANCE = timedelta(minutes=30)


# ----------------------------------------------------------------------------------------- formatting


def ago(moment: datetime | None, *, now: datetime | None = None) -> str:
    """ "5 minutes ago", "3 hours ago", "2 days ago" (for pickers and status lines)."""
    if moment is None:
        return "never"
    seconds = max(0.0, ((now or timezone.now()) - moment).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def duration_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def group_value(group: GroupKey) -> str:
    return f"{group.project_name}|{group.device_id}|{group.batch_id}"


def parse_group(value: Any) -> GroupKey:
    """``"project|device|batch"`` (what the pickers carry) → GroupKey; anything else is a 400."""
    parts = str(value or "").split("|")
    if len(parts) != 3 or not all(parts):
        raise ValidationFailed("batch: expected project|device|batch", details={"batch": value})
    return GroupKey(*parts)


# -------------------------------------------------------------------------------------------- pickers


def project_names() -> list[str]:
    """Projects that have raw data, newest activity first."""
    seen: dict[str, None] = {}
    for info in groups_list(collection=Collection.RAW):
        seen.setdefault(info.group.project_name, None)
    return list(seen)


def group_infos(*, project_name: str | None = None, device_id: str | None = None) -> list[GroupInfo]:
    """(project, device, batch) groups with data, most recent first."""
    return groups_list(collection=Collection.RAW, project_name=project_name or None, device_id=device_id or None)


def batch_options(
    *, project_name: str, device_id: str | None = None, now: datetime | None = None
) -> list[dict[str, str]]:
    """Picker options: "batch_91 — last data 4 minutes ago" (most recent first)."""
    now = now or timezone.now()
    return [
        {
            "label": f"{info.group.batch_id} — last data {ago(info.last_time, now=now)}"
            + ("" if device_id else f" ({info.group.device_id})"),
            "value": group_value(info.group),
        }
        for info in group_infos(project_name=project_name, device_id=device_id)
    ]


def all_batch_options() -> list[dict[str, str]]:
    """Picker options for every stored batch of every project: "project / device / batch"."""
    return [
        {"label": f"{g.group.project_name} / {g.group.device_id} / {g.group.batch_id}", "value": group_value(g.group)}
        for g in group_infos()
    ]


def device_ids(*, project_name: str) -> list[str]:
    return sorted({info.group.device_id for info in group_infos(project_name=project_name)})


# ------------------------------------------------------------------------------------------------ units


#: Seconds the units of a project stay cached (they change when a dictionary or descriptor does).
UNITS_CACHE_SECONDS = 60


def variable_units(*, project_name: str, device_id: str | None = None) -> dict[str, str]:
    """Unit of each variable: the store's display metadata first, then the registry dictionary and the
    soft sensors' descriptors (features and outputs). Cached for ``UNITS_CACHE_SECONDS`` in Django's
    cache (per process, or shared when ``CACHES`` names a shared backend): every refresh needs them."""
    from django.core.cache import cache

    key = f"dashboard:units:{project_name}:{device_id or '*'}"
    units = cache.get(key)
    if units is None:
        units = _variable_units(project_name=project_name, device_id=device_id)
        cache.set(key, units, UNITS_CACHE_SECONDS)
    return units


def _variable_units(*, project_name: str, device_id: str | None) -> dict[str, str]:
    units: dict[str, str] = {}
    try:
        from apps.registry.models import Project
        from apps.registry.selectors import soft_sensor_list, variable_list
    except ImportError:  # pragma: no cover - the registry is installed in this project
        Project = None  # noqa: N806
    if Project is not None:
        for project in Project.objects.filter(name__iexact=project_name):
            for variable in variable_list(project=project):
                if variable.units:
                    units.setdefault(variable.canonical_name, variable.units)
            for soft_sensor in soft_sensor_list(project=project):
                for version in soft_sensor.versions.all()[:1]:
                    config = version.descriptor or {}
                    for item in (config.get("inputs") or {}).get("features") or []:
                        if item.get("units"):
                            units.setdefault(str(item["name"]), str(item["units"]))
                    for item in (config.get("outputs") or {}).get("information") or []:
                        if item.get("units"):
                            units.setdefault(str(item["name"]), str(item["units"]))
    for meta in variable_metadata_list(project_name=project_name, device_id=device_id):
        if meta.unit:
            units[meta.observed_property] = meta.unit
    return units


def with_unit(name: str, units: dict[str, str]) -> str:
    unit = units.get(name)
    return f"{name} [{unit}]" if unit else name


# ------------------------------------------------------------------------------------------ live chart


@dataclass
class Trace:
    """One series ready to draw: times (epoch ns, and UTC strings for Plotly), values, how it was reduced."""

    name: str
    kind: str  # "estimate" | "lab" | "process"
    series: SeriesKey
    times_ns: np.ndarray
    values: list[float]
    unit: str = ""
    validity: list[str] = field(default_factory=list)
    downsampled: str | None = None
    total_points: int | None = None

    def __len__(self) -> int:
        return len(self.values)

    @property
    def times(self) -> list[str]:
        return plot_times(self.times_ns)


def plot_times(times_ns: np.ndarray) -> list[str]:
    """Epoch nanoseconds → naive UTC ISO strings, vectorised (the charts' time axes are in UTC)."""
    return np.datetime_as_string(np.asarray(times_ns, dtype=np.int64).astype("datetime64[ns]"), unit="s").tolist()


def plot_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class GroupSeries:
    """What a group holds: its raw and prediction series with first/last times (index reads only)."""

    group: GroupKey
    raw: list[SeriesInfo]
    predictions: list[SeriesInfo]

    @property
    def last_time(self) -> datetime | None:
        times = [i.last_time for i in (*self.raw, *self.predictions)]
        return max(times) if times else None

    @property
    def first_time(self) -> datetime | None:
        times = [i.first_time for i in (*self.raw, *self.predictions)]
        return min(times) if times else None

    @property
    def process_variables(self) -> list[str]:
        return sorted({i.series.observed_property for i in self.raw if i.series.source != LAB_SOURCE})

    @property
    def lab_variables(self) -> list[str]:
        return sorted({i.series.observed_property for i in self.raw if i.series.source == LAB_SOURCE})


def group_filter(group: GroupKey, **tags: str | None) -> SeriesFilter:
    """The series of one batch, narrowed by further tags (``source=``, ``observed_property=``, …)."""
    return SeriesFilter(project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id, **tags)


def group_series(*, group: GroupKey) -> GroupSeries:
    return GroupSeries(
        group=group,
        raw=series_list(collection=Collection.RAW, where=group_filter(group)),
        predictions=series_list(collection=Collection.PREDICTIONS, where=group_filter(group, source=PREDICTION_SOURCE)),
    )


def estimate_label(series: SeriesKey) -> str:
    return f"{series.observed_property} · {series.model_id} v{series.version}"


def _trace(
    *,
    collection: Collection,
    info: SeriesInfo,
    start: datetime,
    end: datetime,
    kind: str,
    name: str,
    units: dict[str, str],
    method: Downsample,
) -> Trace:
    data = series_read(
        collection=collection, series=info.series, start=start, end=end, max_points=MAX_TRACE_POINTS, method=method
    )
    validity = [str(v or "") for v in data.fields["validity"].tolist()] if "validity" in data.fields else []
    return Trace(
        name=name,
        kind=kind,
        series=info.series,
        times_ns=data.times_ns,
        values=data.values.tolist(),
        unit=units.get(info.series.observed_property, ""),
        validity=validity,
        downsampled=data.downsampled,
        total_points=data.total_points,
    )


@dataclass
class LiveChart:
    group: GroupKey
    start: datetime
    end: datetime
    estimates: list[Trace]
    lab: list[Trace]
    process: list[Trace]
    last_data: datetime | None


def window_for(contents: GroupSeries, range_key: str) -> tuple[datetime, datetime]:
    """The time window a range button means: the last N hours of the batch's data, or all of it."""
    if range_key not in RANGES:
        raise ValidationFailed(f"range must be one of {', '.join(RANGES)}", details={"range": range_key})
    end = contents.last_time
    first = contents.first_time
    if end is None or first is None:
        now = timezone.now()
        return now - timedelta(hours=1), now
    length = RANGES[range_key]
    start = first if length is None else max(first, end - length)
    return start, end


def live_chart(
    *, group: GroupKey, range_key: str = "24h", variables: Sequence[str] = (), model: tuple[str, str] | None = None
) -> LiveChart:
    """Estimates (every model/version predicting in the group, or only ``model`` = (model tag, version
    tag)), their lab samples and chosen process variables over the window of ``range_key``; each trace
    read with ``max_points``."""
    contents = group_series(group=group)
    start, end = window_for(contents, range_key)
    units = variable_units(project_name=group.project_name, device_id=group.device_id)
    estimates = [
        _trace(
            collection=Collection.PREDICTIONS,
            info=info,
            start=start,
            end=end,
            kind="estimate",
            name=estimate_label(info.series),
            units=units,
            method=Downsample.LTTB,
        )
        for info in contents.predictions
        if info.last_time >= start
        and info.first_time <= end
        and (model is None or (info.series.model_id, info.series.version) == model)
    ]
    predicted = {info.series.observed_property for info in contents.predictions}
    lab = [
        _trace(
            collection=Collection.RAW,
            info=info,
            start=start,
            end=end,
            kind="lab",
            name=f"lab {info.series.observed_property}",
            units=units,
            method=Downsample.LTTB,
        )
        for info in contents.raw
        if info.series.source == LAB_SOURCE and info.series.observed_property in predicted
    ]
    wanted = list(dict.fromkeys(variables))
    by_name = {i.series.observed_property: i for i in contents.raw if i.series.source != LAB_SOURCE}
    unknown = [v for v in wanted if v not in by_name]
    if unknown:
        raise ValidationFailed(
            f"variables not in {group.batch_id}: {', '.join(unknown)}", details={"variables": unknown}
        )
    process = [
        _trace(
            collection=Collection.RAW,
            info=by_name[v],
            start=start,
            end=end,
            kind="process",
            name=v,
            units=units,
            method=Downsample.MEAN,
        )
        for v in wanted
    ]
    return LiveChart(group, start, end, estimates, lab, process, contents.last_time)


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
class DriftStatus:
    """What the drift app knows about one deployment: its open alerts and its latest result."""

    deployment: str
    open_alerts: list[Any]
    latest: Any  # apps.drift.models.DriftResult | None

    @property
    def worst_severity(self) -> str | None:
        severities = {a.severity for a in self.open_alerts}
        return "critical" if "critical" in severities else ("warning" if severities else None)


def drift_status(*, deployment: str) -> DriftStatus:
    """Open alerts (newest first) and the latest drift result of a deployment (by name or id)."""
    from apps.drift.selectors import alert_list, result_list

    return DriftStatus(
        deployment=deployment,
        open_alerts=list(alert_list(state="open", deployment=deployment)[:20]),
        latest=result_list(deployment=deployment).first(),
    )


@dataclass
class TrustPanel:
    group: GroupKey
    estimates: list[EstimateStatus]
    last_data: datetime | None
    lag_seconds: float | None
    lag_deployments: list[str]
    max_lag_seconds: int
    drift: list[DriftStatus] = field(default_factory=list)


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
    estimate = _nearest(data.times_ns, data.values, to_ns(lab_time), int(LAB_MATCH_TOLERANCE.total_seconds() * 1e9))
    return None if estimate is None else lab_value - estimate


def group_lag(
    *, group: GroupKey, raw_latest: Sequence[Any], predictions_latest: Sequence[Any], now: datetime | None = None
) -> tuple[float | None, list[str]]:
    """How long the group's data has waited for an estimate, worst over the enabled deployments scoring
    it, and those deployments.

    The rule is the orchestrator's (``apps.orchestrator.selectors.waiting_seconds``, the one the health
    endpoint's ``pipeline_lag`` uses), applied to this one group with its newest points already read, since
    ``pipeline_lag`` walks every recent group of the project and the trust panel refreshes often.
    """
    from apps.orchestrator.selectors import deployments_for_project, is_plan_input, is_plan_output, waiting_seconds

    now_ns = to_ns(now or timezone.now())
    worst: float | None = None
    names = []
    for deployment, plan in deployments_for_project(project_name=group.project_name):
        if plan is None or not plan.online:
            continue
        if not deployment.in_scope(device_id=group.device_id, batch_id=group.batch_id):
            continue
        raw_times = [to_ns(p.time) for p in raw_latest if is_plan_input(plan, p.series)]
        if not raw_times:
            continue
        predicted = [to_ns(p.time) for p in predictions_latest if is_plan_output(plan, p.series)]
        waiting = waiting_seconds(
            deployment=deployment,
            plan=plan,
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
    estimates = []
    for point in sorted(predictions, key=lambda p: (p.series.observed_property, p.series.model_id, p.series.version)):
        status = EstimateStatus(
            label=estimate_label(point.series),
            value=point.value,
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


# --------------------------------------------------------------------------------------- batch summary


@dataclass
class VariableSummary:
    source: str
    variable: str
    unit: str
    mean: float
    minimum: float
    maximum: float
    points: int
    first: datetime
    last: datetime


@dataclass
class BatchSummary:
    group: GroupKey
    start: datetime
    end: datetime
    variables: list[VariableSummary]
    count_times: list[datetime]
    counts: list[int]
    bin_seconds: float

    @property
    def duration_seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def total_points(self) -> int:
        return sum(v.points for v in self.variables)


def batch_summary(*, group: GroupKey, bins: int = 120) -> BatchSummary:
    """Mean/min/max/count of every raw variable of a batch, and points per time bin.

    Each series is read once with the store's mean downsampling (``max_points`` buckets carrying
    min, max and count), which gives exact statistics without moving every point: the mean is the
    count-weighted mean of bucket means. Series short enough come back raw and are summed directly.
    """
    contents = group_series(group=group)
    if not contents.raw:
        raise ValidationFailed(f"{group.batch_id} has no raw data", details={"batch": group_value(group)})
    start, end = contents.first_time, contents.last_time
    units = variable_units(project_name=group.project_name, device_id=group.device_id)
    edges = np.linspace(to_ns(start), to_ns(end) + 1, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    rows = []
    for info in contents.raw:
        data = series_read(
            collection=Collection.RAW,
            series=info.series,
            start=start,
            end=end,
            max_points=MAX_TRACE_POINTS,
            method=Downsample.MEAN,
        )
        if not len(data):
            continue
        if "count" in data.fields:
            weights = data.fields["count"].astype(np.float64)
            total = int(weights.sum())
            mean = float((data.values * weights).sum() / weights.sum())
            low, high = float(np.nanmin(data.fields["min"])), float(np.nanmax(data.fields["max"]))
        else:
            weights = np.ones(len(data))
            total = len(data)
            mean, low, high = float(data.values.mean()), float(data.values.min()), float(data.values.max())
        counts += np.histogram(data.times_ns, bins=edges, weights=weights)[0].astype(np.int64)
        rows.append(
            VariableSummary(
                source=info.series.source,
                variable=info.series.observed_property,
                unit=units.get(info.series.observed_property, ""),
                mean=mean,
                minimum=low,
                maximum=high,
                points=total,
                first=info.first_time,
                last=info.last_time,
            )
        )
    rows.sort(key=lambda r: (r.source, r.variable))
    centres = ((edges[:-1] + edges[1:]) / 2).astype(np.int64)
    return BatchSummary(
        group=group,
        start=start,
        end=end,
        variables=rows,
        count_times=[from_ns(t) for t in centres.tolist()],
        counts=counts.tolist(),
        bin_seconds=float((edges[1] - edges[0]) / 1e9),
    )

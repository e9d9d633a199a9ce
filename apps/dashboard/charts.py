"""Reads behind the live chart: which series a batch holds, and each trace of a window ready to draw.

Every chart read names a time range and goes through ``apps.tsdb.selectors.series_read`` with
``max_points`` (≤ ``MAX_TRACE_POINTS``), so the store reduces the data before it reaches Python and the
browser never receives more than it can draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.utils import timezone

from apps.common.errors import ValidationFailed
from apps.tsdb.selectors import (
    series_list,
    series_read,
)
from apps.tsdb.types import (
    LAB_SOURCE,
    PREDICTION_SOURCE,
    UTC,
    Collection,
    Downsample,
    GroupKey,
    SeriesFilter,
    SeriesInfo,
    SeriesKey,
    estimate_values,
)

from .pickers import variable_units

#: Most points one chart trace carries (the store downsamples above this).
MAX_TRACE_POINTS = 2000
#: Range buttons of the live chart: label → window length (None: the whole batch).
RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "batch": None,
}
#: What the live chart opens on: the batch so far. A fed-batch is read as one trajectory from inoculation —
#: the lab samples, each bias update and where the inputs left the training envelope — and a fixed window
#: cuts it at an arbitrary hour. One batch is bounded, and each trace is downsampled to MAX_TRACE_POINTS.
DEFAULT_RANGE = "batch"


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
        # Estimates as deployed (raw output plus the bias update in force), as the trust card and the plant.
        values=(estimate_values(data) if collection is Collection.PREDICTIONS else data.values).tolist(),
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
    shadows: list[Trace] = field(default_factory=list)  # challengers' estimates (modelers only; never the estimate)


def shadow_versions(group: GroupKey) -> set[tuple[str, str]]:
    """(model tag, version tag) of the group's series that only shadow deployments write (never the estimate)."""
    from apps.orchestrator.selectors import deployments_for_project, shadow_series_versions

    pairs = deployments_for_project(project_name=group.project_name)
    return shadow_series_versions(pairs=pairs, device_id=group.device_id, batch_id=group.batch_id)


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
    *,
    group: GroupKey,
    range_key: str = DEFAULT_RANGE,
    variables: Sequence[str] = (),
    model: tuple[str, str] | None = None,
    shadows: bool = False,
) -> LiveChart:
    """Estimates (every model/version predicting in the group, or only ``model`` = (model tag, version
    tag)), their lab samples and chosen process variables over the window of ``range_key``; each trace
    read with ``max_points``. Series only shadow deployments write are never estimates: with ``shadows``
    (modelers) they come back apart, to be drawn dashed."""
    contents = group_series(group=group)
    start, end = window_for(contents, range_key)
    units = variable_units(project_name=group.project_name, device_id=group.device_id)
    hidden = shadow_versions(group)
    shown = [
        info
        for info in contents.predictions
        if info.last_time >= start
        and info.first_time <= end
        and (model is None or (info.series.model_id, info.series.version) == model)
    ]
    estimates, shadow_traces = [], []
    for info in shown:
        is_shadow = (info.series.model_id, info.series.version) in hidden
        if is_shadow and not shadows:
            continue
        (shadow_traces if is_shadow else estimates).append(
            _trace(
                collection=Collection.PREDICTIONS,
                info=info,
                start=start,
                end=end,
                kind="shadow" if is_shadow else "estimate",
                name=("shadow " if is_shadow else "") + estimate_label(info.series),
                units=units,
                method=Downsample.LTTB,
            )
        )
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
    return LiveChart(group, start, end, estimates, lab, process, contents.last_time, shadow_traces)


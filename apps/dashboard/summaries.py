"""Reads behind the modeler's data-source page: a batch's exact per-series statistics and points over time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from apps.common.errors import ValidationFailed
from apps.tsdb.selectors import (
    series_read,
)
from apps.tsdb.types import (
    Collection,
    Downsample,
    GroupKey,
    from_ns,
    to_ns,
)

from .charts import MAX_TRACE_POINTS, group_series
from .pickers import group_value, variable_units

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


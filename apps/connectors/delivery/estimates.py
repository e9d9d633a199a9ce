"""What a delivery sends: a cursor's new estimates read from the store, and the facts their quality codes need,
gathered for a whole batch of cursors at once (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from apps.tsdb.types import (
    PREDICTION_SOURCE,
    Collection,
    GroupKey,
    SeriesKey,
    estimate_values,
    from_ns,
    point_estimate,
    to_ns,
)

from .. import selectors
from ..quality import EstimateQuality, estimate_quality

if TYPE_CHECKING:
    from apps.orchestrator.scoring import Estimator

    from ..models import Publication

#: Estimates read per cursor and delivery task (a longer backlog continues in a follow-up task).
MAX_ESTIMATES = 2000


@dataclass(frozen=True)
class EstimateRow:
    """One stored estimate before its quality is known."""

    observed_property: str
    time_ns: int
    value: float
    raw_value: float
    bias: float
    validity: str

    def qualified(self, quality: EstimateQuality) -> Estimate:
        return Estimate(
            self.observed_property, self.time_ns, self.value, self.raw_value, self.bias, self.validity, quality
        )


@dataclass(frozen=True)
class Estimate(EstimateRow):
    """An estimate with the quality code it is sent with."""

    quality: EstimateQuality


@dataclass(frozen=True)
class NewEstimates:
    """One cursor's new estimates, with what deciding their quality needs."""

    publication: Publication
    estimator: Estimator
    group: GroupKey
    rows: list[EstimateRow]


def _field(data: Any, name: str, index: int, default: Any) -> Any:
    values = data.fields.get(name)
    if values is None:
        return default
    value = values[index]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    return value


def _oldest_points(series: SeriesKey, start: datetime, end: datetime) -> Any:
    """Raw prediction points from ``start`` on: the range is halved until the store need not downsample it
    (a long ``max_age_seconds`` at a fast rate holds more points than one read returns)."""
    from apps.tsdb.selectors import series_read

    while True:
        data = series_read(collection=Collection.PREDICTIONS, series=series, start=start, end=end)
        if data.downsampled is None or end - start <= timedelta(seconds=1):
            return data
        end = start + (end - start) / 2


def estimate_rows(estimator: Estimator, group: GroupKey, after_ns: int, now: datetime) -> list[EstimateRow]:
    """The deployment's estimates for the group newer than ``after_ns``, oldest first, at most
    ``MAX_ESTIMATES``: one store read per output (the store keeps each output's series apart)."""
    end = now + timedelta(days=1)  # snapshots are stamped by the plant's clock, which may run ahead
    rows: list[EstimateRow] = []
    for output in estimator.spec.output_names:
        data = _oldest_points(estimator.output_series(group, output), from_ns(after_ns), end)
        estimates = estimate_values(data)  # as deployed: raw plus the bias update in force
        for i in range(len(data)):
            t = int(data.times_ns[i])
            if t <= after_ns:
                continue
            rows.append(
                EstimateRow(
                    observed_property=output,
                    time_ns=t,
                    value=float(estimates[i]),
                    raw_value=float(data.values[i]),
                    bias=float(estimates[i] - data.values[i]),  # the bias update in force
                    validity=str(_field(data, "validity", i, "")),
                )
            )
    rows.sort(key=lambda r: (r.time_ns, r.observed_property))
    return rows[:MAX_ESTIMATES]


def estimates_qualify(batch: Sequence[NewEstimates]) -> list[list[Estimate]]:
    """Each cursor's rows with their quality codes. The facts are read for the whole batch at once: one
    query for the inputs reported Bad/Uncertain, one or two for the drift alerts; only a publication with
    ``stale_after_seconds`` adds a store read of its own (the inputs' ages at its snapshots)."""
    todo = [(i, item) for i, item in enumerate(batch) if item.rows]
    times = [np.array(sorted({r.time_ns for r in item.rows}), dtype=np.int64) for _, item in todo]
    held = selectors.held_inputs(
        checks=[
            selectors.InputCheck(
                group=item.group,
                variables=tuple(item.estimator.snapshot_variables),
                times_ns=t,
                lookback=timedelta(seconds=item.publication.deployment.max_input_age_seconds),
            )
            for (_, item), t in zip(todo, times, strict=True)
        ]
    )
    alerts = selectors.drift_alerts_open(
        cases=[
            selectors.AlertCase(
                deployment=item.publication.deployment, group=item.group, version=item.estimator.spec.version_tag
            )
            for _, item in todo
        ]
    )
    result: list[list[Estimate]] = [[] for _ in batch]
    for (i, item), t, held_at, alert_count in zip(todo, times, held, alerts, strict=True):
        aged = (
            selectors.aged_inputs(
                group=item.group,
                variables=item.estimator.snapshot_variables,
                times_ns=t,
                stale_after=timedelta(seconds=item.publication.stale_after_seconds),
            )
            if item.publication.stale_after_seconds
            else [set() for _ in t]
        )
        stale_at = {int(moment): sorted(held_at[j] | aged[j]) for j, moment in enumerate(t)}
        result[i] = [
            r.qualified(
                estimate_quality(validity=r.validity, stale_inputs=stale_at[r.time_ns], drift_alerts=alert_count)
            )
            for r in item.rows
        ]
    return result


def failure_estimate(estimator: Estimator, group: GroupKey, error: str, now: datetime) -> Estimate:
    """The Bad status a failed run is announced with: the group's newest estimate (any age) sent once more,
    or no value at all when it has none yet."""
    from apps.tsdb.selectors import latest_points
    from apps.tsdb.types import SeriesFilter

    bad = estimate_quality(validity="", runtime_error=error or "the pipeline run failed")
    points = [
        p
        for p in latest_points(
            collection=Collection.PREDICTIONS,
            where=SeriesFilter(
                project_name=group.project_name,
                device_id=group.device_id,
                batch_id=group.batch_id,
                source=PREDICTION_SOURCE,
                model_id=estimator.spec.model_tag,
                version=estimator.spec.version_tag,
            ),
        )
        if p.series.observed_property in estimator.spec.output_names
    ]
    if not points:
        output = estimator.spec.output_names[0] if estimator.spec.output_names else "estimate"
        return Estimate(output, to_ns(now), float("nan"), float("nan"), 0.0, "", bad)
    newest = max(points, key=lambda p: p.time)
    return Estimate(
        newest.series.observed_property,
        to_ns(newest.time),
        point_estimate(newest),
        float(newest.value),
        point_estimate(newest) - float(newest.value),
        str(newest.fields.get("validity") or ""),
        bad,
    )


def output_units(pairs: Sequence[tuple[Estimator, GroupKey]]) -> list[dict[str, str]]:
    """Per (estimator, group), each output's unit: the group's variable metadata, else what the version
    declares. One metadata read per project in the batch (of one device's variables when the batch has one
    device of that project, else of the project's)."""
    from apps.tsdb.selectors import variable_metadata_list

    devices_of: dict[str, set[str]] = {}
    for _, group in pairs:
        devices_of.setdefault(group.project_name, set()).add(group.device_id)
    declared: dict[tuple[str, str], dict[str, str]] = {}
    for project_name, devices in devices_of.items():
        only = next(iter(devices)) if len(devices) == 1 else None
        for m in variable_metadata_list(project_name=project_name, device_id=only):
            if m.device_id in devices and m.unit:
                declared.setdefault((project_name, m.device_id), {})[m.observed_property] = m.unit
    result = []
    for estimator, group in pairs:
        units = {o.name: o.units for o in estimator.spec.outputs}
        for observed_property, unit in declared.get((group.project_name, group.device_id), {}).items():
            if observed_property in units:
                units[observed_property] = unit
        result.append(units)
    return result

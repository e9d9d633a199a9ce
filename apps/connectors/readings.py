"""Storing what the connectors process received: Good readings as raw points through the time-series ingest
service (the HTTP path's: validation, atomic write, the pipeline trigger after commit), Bad/Uncertain ones
as quality samples, units as variable metadata, all in one transaction per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from apps.tsdb.types import Collection, PointBatch, SeriesKey, VariableMetadata

from .inputs.base import Incoming
from .mapping import GOOD
from .models import QualitySample


@dataclass(frozen=True)
class Stored:
    points: int
    quality_samples: int
    per_source: dict[int, int]


def series_problem(key: SeriesKey) -> str | None:
    """Why points of ``key`` cannot be stored (the store's own validation of one point), or None."""
    from apps.tsdb.validation import InvalidBatch, batch_validate

    probe = PointBatch(
        collection=Collection.RAW,
        series=[key],
        series_index=np.zeros(1, dtype=np.int32),
        times_ns=np.zeros(1, dtype=np.int64),
        values=np.zeros(1),
    )
    try:
        batch_validate(probe)
    except InvalidBatch as exc:
        return f"mapped tags are not storable: {exc}"
    return None


def _point_batch(items: Sequence[Incoming]) -> PointBatch:
    index: dict[SeriesKey, int] = {}
    series_index = np.fromiter((index.setdefault(i.key, len(index)) for i in items), dtype=np.int32, count=len(items))
    values = np.fromiter(
        (float(i.reading.value) * i.rule.scale + i.rule.offset for i in items), dtype=np.float64, count=len(items)
    )
    times = np.fromiter((i.time_ns for i in items), dtype=np.int64, count=len(items))
    return PointBatch(Collection.RAW, list(index), series_index, times, values)


def readings_store(*, items: Sequence[Incoming], units: Sequence[VariableMetadata] = ()) -> Stored:
    """Write one batch atomically; raises (and writes nothing) when the store refuses it."""
    from apps.tsdb.services import points_ingest, variable_metadata_store

    good = [i for i in items if i.reading.quality == GOOD]
    flagged = [i for i in items if i.reading.quality != GOOD]
    with transaction.atomic():
        written = points_ingest(batch=_point_batch(good)).points if good else 0
        samples = 0
        if flagged:
            rows = {
                (i.key, i.time_ns): QualitySample(
                    data_source_id=i.source_id,
                    project_name=i.key.project_name,
                    device_id=i.key.device_id,
                    batch_id=i.key.batch_id,
                    source=i.key.source,
                    observed_property=i.key.observed_property,
                    time_ns=i.time_ns,
                    quality=i.reading.quality,
                    status_code=i.reading.status_code,
                    status_name=i.reading.status_name[:64],
                    value=i.reading.value,
                )
                for i in flagged
            }
            samples = len(QualitySample.objects.bulk_create(list(rows.values()), ignore_conflicts=True))
        if units:
            variable_metadata_store(items=units)
    per_source: dict[int, int] = {}
    for item in good:
        per_source[item.source_id] = per_source.get(item.source_id, 0) + 1
    return Stored(written, samples, per_source)


def units_missing(*, candidates: Sequence[VariableMetadata]) -> list[VariableMetadata]:
    """The units not recorded yet (an edited display name or unit is never overwritten)."""
    from apps.tsdb.selectors import variable_metadata_list

    missing = []
    by_device: dict[tuple[str, str], set[str]] = {}
    for item in candidates:
        known = by_device.get((item.project_name, item.device_id))
        if known is None:
            known = {
                m.observed_property
                for m in variable_metadata_list(project_name=item.project_name, device_id=item.device_id)
            }
            by_device[(item.project_name, item.device_id)] = known
        if item.observed_property not in known:
            missing.append(item)
            known.add(item.observed_property)
    return missing

"""Validation of a ``PointBatch`` before any backend writes it (pure, framework-free).

Every backend calls ``batch_validate`` first, so a batch that breaks a rule writes nothing, whatever
path it came by (JSON API, CSV import, line protocol, the pipeline). Problems name the point index and
the field, so interfaces can point at the row/column/line at fault.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import EXTRA_FIELDS, MAX_TIME_NS, MIN_TIME_NS, PREDICTION_SOURCE, RAW_SOURCES, Collection, PointBatch

#: Longest tag value the stores accept (SQL column width).
MAX_TAG_LENGTH = 128
#: Longest prediction ``validity`` label.
MAX_VALIDITY_LENGTH = 32
#: Problems listed at most (the first ones are enough to fix the input).
MAX_PROBLEMS = 20
REQUIRED_TAGS = ("project_name", "device_id", "batch_id", "source", "observed_property")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: ``point`` is the index in the batch (None for batch-level problems)."""

    field: str
    message: str
    point: int | None = None
    series: int | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"field": self.field, "message": self.message}
        if self.point is not None:
            out["point"] = self.point
        if self.series is not None:
            out["series"] = self.series
        return out


class InvalidBatch(ValueError):
    """A batch that must not be written; ``problems`` says what and where."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        where = f" (point {first.point})" if first.point is not None else ""
        more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
        super().__init__(f"{first.field}: {first.message}{where}{more}")


def _series_problems(batch: PointBatch) -> list[Problem]:
    problems: list[Problem] = []
    for i, key in enumerate(batch.series):
        for tag in REQUIRED_TAGS:
            value = getattr(key, tag)
            if not isinstance(value, str) or not value:
                problems.append(Problem(tag, "is required and must be a non-empty string", series=i))
        for tag in (*REQUIRED_TAGS, "model_id", "version"):
            value = getattr(key, tag)
            if isinstance(value, str) and len(value) > MAX_TAG_LENGTH:
                problems.append(Problem(tag, f"is longer than {MAX_TAG_LENGTH} characters", series=i))
        if batch.collection is Collection.RAW:
            if key.source not in RAW_SOURCES:
                problems.append(Problem("source", f"{key.source!r} is not one of {', '.join(RAW_SOURCES)}", series=i))
            if key.model_id or key.version:
                problems.append(Problem("model_id", "raw points carry no model_id/version", series=i))
        elif batch.collection is Collection.PREDICTIONS:
            if key.source != PREDICTION_SOURCE:
                problems.append(Problem("source", f"predictions must have source {PREDICTION_SOURCE!r}", series=i))
            if not key.model_id:
                problems.append(Problem("model_id", "is required for predictions", series=i))
            if not key.version:
                problems.append(Problem("version", "is required for predictions", series=i))
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def batch_validate(batch: PointBatch) -> None:
    """Raise ``InvalidBatch`` unless every point of ``batch`` can be stored as given."""
    if batch.collection not in (Collection.RAW, Collection.PREDICTIONS):
        raise InvalidBatch([Problem("collection", f"points cannot be written to {batch.collection.value!r}")])
    n = len(batch)
    problems: list[Problem] = []
    if batch.values.shape != (n,) or batch.series_index.shape != (n,):
        raise InvalidBatch([Problem("batch", "times, values and series_index must have the same length")])
    problems.extend(_series_problems(batch))
    if n:
        bad = np.flatnonzero((batch.series_index < 0) | (batch.series_index >= len(batch.series)))
        problems.extend(Problem("series_index", "refers to no series", point=int(i)) for i in bad[:5])
        bad = np.flatnonzero(~np.isfinite(batch.values.astype(np.float64, copy=False)))
        problems.extend(
            Problem("value", f"must be a finite number, got {batch.values[i]!r}", point=int(i)) for i in bad[:5]
        )
        times = batch.times_ns
        bad = np.flatnonzero((times < MIN_TIME_NS) | (times > MAX_TIME_NS))
        problems.extend(Problem("time", "is out of range (1970-01-01 .. 2262-04-11)", point=int(i)) for i in bad[:5])
    allowed = EXTRA_FIELDS[batch.collection]
    for name, values in batch.fields.items():
        if name not in allowed:
            problems.append(Problem(name, f"is not a field of the {batch.collection.value} collection"))
            continue
        if values.shape != (n,):
            problems.append(Problem(name, "must have one value per point"))
            continue
        if allowed[name] == "float":
            arr = values.astype(np.float64, copy=False)
            bad = np.flatnonzero(np.isinf(arr))
            problems.extend(Problem(name, "must be finite (or empty)", point=int(i)) for i in bad[:5])
        elif name == "validity":
            too_long = [i for i, v in enumerate(values) if v is not None and len(str(v)) > MAX_VALIDITY_LENGTH]
            problems.extend(
                Problem(name, f"is longer than {MAX_VALIDITY_LENGTH} characters", point=i) for i in too_long[:5]
            )
    if problems:
        raise InvalidBatch(problems[:MAX_PROBLEMS])

"""Validation of a ``PointBatch`` (and of display metadata) before any backend writes it (pure, framework-free).

Every backend calls ``batch_validate`` (``metadata_validate``) first, so a batch that breaks a rule writes
nothing, whatever path it came by (JSON API, CSV import, line protocol, the pipeline) and whichever
backend stores it. Problems name the point index and the field, so interfaces can point at the
row/column/line at fault.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .types import (
    EXTRA_FIELDS,
    MAX_TIME_NS,
    MIN_TIME_NS,
    POINT_COLLECTIONS,
    PREDICTION_SOURCE,
    RAW_SOURCES,
    Collection,
    PointBatch,
    SeriesKey,
    VariableMetadata,
)

#: Longest tag value the stores accept (SQL column width).
MAX_TAG_LENGTH = 128
#: Longest prediction ``validity`` label.
MAX_VALIDITY_LENGTH = 32
#: Longest metadata ``unit`` and ``display_name`` (SQL column widths, the API's limits).
MAX_UNIT_LENGTH = 64
MAX_DISPLAY_NAME_LENGTH = 200
#: Most decimals a variable's display metadata may ask for.
MAX_DECIMALS = 15
#: Problems listed at most (the first ones are enough to fix the input).
MAX_PROBLEMS = 20
REQUIRED_TAGS = ("project_name", "device_id", "batch_id", "source", "observed_property")
#: Longest metadata unit and display name (SQL column widths).
MAX_UNIT_LENGTH = 64
MAX_DISPLAY_NAME_LENGTH = 200


def text_problem(value: str) -> str | None:
    """What makes ``value`` unstorable as text in every backend, or None.

    PostgreSQL text cannot hold a NUL character (the insert fails) and SQLite truncates at it, so a NUL
    in a tag or a string field is refused here, where every write path passes, as a 400 naming the field.
    """
    if "\x00" in value:
        return "must not contain a NUL character (\\x00)"
    return None


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
        try:
            found = _key_problems(key, batch.collection)
        except TypeError:  # a tag that is not hashable (not a string): check without the cache
            found = _key_problems.__wrapped__(key, batch.collection)
        problems.extend(Problem(field, message, series=i) for field, message in found)
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


@functools.lru_cache(maxsize=16_384)
def _key_problems(key: SeriesKey, collection: Collection) -> tuple[tuple[str, str], ...]:
    """``(field, message)`` of everything wrong with one series key. Cached per process: writers send
    the same series in every request, and checking a key costs as much as checking a hundred values.
    """
    problems: list[tuple[str, str]] = []
    for tag in REQUIRED_TAGS:
        value = getattr(key, tag)
        if not isinstance(value, str) or not value:
            problems.append((tag, "is required and must be a non-empty string"))
    for tag in (*REQUIRED_TAGS, "model_id", "version"):
        value = getattr(key, tag)
        if isinstance(value, str) and len(value) > MAX_TAG_LENGTH:
            problems.append((tag, f"is longer than {MAX_TAG_LENGTH} characters"))
        elif isinstance(value, str) and (problem := text_problem(value)):
            problems.append((tag, problem))
    if collection is Collection.RAW:
        if key.source not in RAW_SOURCES:
            problems.append(("source", f"{key.source!r} is not one of {', '.join(RAW_SOURCES)}"))
        if key.model_id or key.version:
            problems.append(("model_id", "raw points carry no model_id/version"))
    elif collection is Collection.PREDICTIONS:
        if key.source != PREDICTION_SOURCE:
            problems.append(("source", f"predictions must have source {PREDICTION_SOURCE!r}"))
        if not key.model_id:
            problems.append(("model_id", "is required for predictions"))
        if not key.version:
            problems.append(("version", "is required for predictions"))
    return tuple(problems)


def metadata_validate(items: Iterable[VariableMetadata]) -> list[VariableMetadata]:
    """The items to store, one per (project, device, property), the last one winning; ``InvalidBatch``
    naming the item and field when any breaks a rule (then nothing is stored, whichever the backend)."""
    latest: dict[tuple[str, str, str], VariableMetadata] = {}
    problems: list[Problem] = []
    for i, item in enumerate(items):
        for name in ("project_name", "device_id", "observed_property"):
            value = getattr(item, name)
            if not isinstance(value, str) or not value or len(value) > MAX_TAG_LENGTH:
                problems.append(
                    Problem(name, f"must be a non-empty string of at most {MAX_TAG_LENGTH} characters", point=i)
                )
        if not isinstance(item.decimals, int) or not 0 <= item.decimals <= MAX_DECIMALS:
            problems.append(Problem("decimals", f"must be an integer between 0 and {MAX_DECIMALS}", point=i))
        if len(item.unit or "") > MAX_UNIT_LENGTH:
            problems.append(Problem("unit", f"is longer than {MAX_UNIT_LENGTH} characters", point=i))
        if len(item.display_name or "") > MAX_DISPLAY_NAME_LENGTH:
            problems.append(Problem("display_name", f"is longer than {MAX_DISPLAY_NAME_LENGTH} characters", point=i))
        for name in ("project_name", "device_id", "observed_property", "unit", "display_name"):
            value = getattr(item, name)
            if isinstance(value, str) and (problem := text_problem(value)):
                problems.append(Problem(name, problem, point=i))
        latest[(item.project_name, item.device_id, item.observed_property)] = item
    if problems:
        raise InvalidBatch(problems)
    return list(latest.values())


def batch_validate(batch: PointBatch) -> None:
    """Raise ``InvalidBatch`` unless every point of ``batch`` can be stored as given."""
    if batch.collection not in POINT_COLLECTIONS:
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
            unstorable = [(i, p) for i, v in enumerate(values) if v is not None and (p := text_problem(str(v)))]
            problems.extend(Problem(name, p, point=i) for i, p in unstorable[:5])
    if problems:
        raise InvalidBatch(problems[:MAX_PROBLEMS])


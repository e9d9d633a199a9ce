"""JSON point payloads (``POST /api/v1/tsdb/points``) → ``PointBatch``, with errors that say where.

Two forms, told apart by their key:

Row form (``points``): one object per point::

    {"collection": "raw", "project_name": "penicillin", "device_id": "R1", "batch_id": "batch_91",
     "points": [{"source": "sensor", "observed_property": "temperature",
                 "time": "2026-01-01T00:00:00Z", "value": 298.2}, ...]}

  Tags given at the top level are defaults for every point; a point may override them.

Columnar form (``columns``): one time axis, one value list per variable (``null`` = no point)::

    {"collection": "raw", "project_name": "penicillin", "device_id": "R1", "batch_id": "batch_91",
     "times": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:20Z"],
     "columns": [{"source": "sensor", "observed_property": "temperature", "values": [298.2, 298.3]}]}

Times are ISO 8601 strings with a zone, or integers since the epoch in the unit ``precision`` names
(``ns``, ``us``, ``ms``, ``s``), which is then required. Predictions (``collection: predictions``) also
take ``model_id`` and ``version`` tags and optional ``validity`` / ``corrected_value`` per point (row
form) or per column as lists (columnar form).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from .types import EXTRA_FIELDS, MAX_TIME_NS, MIN_TIME_NS, Collection, PointBatch, SeriesKey, to_ns

PRECISIONS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
TAGS = ("project_name", "device_id", "batch_id", "source", "observed_property", "model_id", "version")
REQUIRED_TAGS = ("project_name", "device_id", "batch_id", "source", "observed_property")
GROUP_TAGS = ("project_name", "device_id", "batch_id", "model_id", "version")
#: Most points one request may carry.
MAX_POINTS_PER_REQUEST = 200_000
MAX_PROBLEMS = 20


class PayloadInvalid(ValueError):
    """A payload that cannot become a batch; ``problems`` locate each error."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems[:MAX_PROBLEMS]
        first = self.problems[0]
        where = ", ".join(f"{k} {first[k]}" for k in ("point", "column", "row") if k in first)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first['field']}: {first['message']}" + (f" at {where}" if where else "") + more)


class _TimeParser:
    """Parses one time value; ISO strings are cached because rows repeat them across series."""

    def __init__(self, precision: str | None) -> None:
        self.factor = PRECISIONS.get(precision) if precision is not None else None
        self.cache: dict[str, int] = {}

    def __call__(self, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be an ISO 8601 string or an integer, not a boolean")
        if isinstance(value, int):
            if self.factor is None:
                raise ValueError("is a number: give precision (ns, us, ms or s) for numeric times")
            ns = value * self.factor
        elif isinstance(value, str):
            cached = self.cache.get(value)
            if cached is not None:
                return cached
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
            if moment.tzinfo is None:
                raise ValueError(f"{value!r} has no time zone (add Z or +00:00)")
            ns = to_ns(moment)
            self.cache[value] = ns
        else:
            raise ValueError("must be an ISO 8601 string or an integer")
        if not MIN_TIME_NS <= ns <= MAX_TIME_NS:
            raise ValueError("is out of range (1970-01-01 .. 2262-04-11)")
        return ns


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {type(value).__name__}")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError("must be finite")
    return number


def _common(data: Mapping[str, Any]) -> tuple[Collection, _TimeParser, list[dict[str, Any]]]:
    problems: list[dict[str, Any]] = []
    try:
        collection = Collection(data.get("collection", "raw"))
        if collection is Collection.METADATA:
            raise ValueError
    except ValueError:
        problems.append({"field": "collection", "message": "must be raw or predictions"})
        collection = Collection.RAW
    precision = data.get("precision")
    if precision is not None and precision not in PRECISIONS:
        problems.append({"field": "precision", "message": f"must be one of {', '.join(PRECISIONS)}"})
        precision = None
    for tag in GROUP_TAGS:
        if tag in data and not isinstance(data[tag], str):
            problems.append({"field": tag, "message": "must be a string"})
    return collection, _TimeParser(precision), problems


def points_payload_parse(data: Any) -> PointBatch:
    """A ``PointBatch`` from either JSON form; raises ``PayloadInvalid`` naming point/column/row and field."""
    if not isinstance(data, Mapping):
        raise PayloadInvalid([{"field": "body", "message": "must be a JSON object"}])
    has_rows, has_columns = "points" in data, "columns" in data
    if has_rows == has_columns:
        raise PayloadInvalid([{"field": "body", "message": "give either points (row form) or columns (columnar form)"}])
    return _rows(data) if has_rows else _columns(data)


def _rows(data: Mapping[str, Any]) -> PointBatch:
    collection, parse_time, problems = _common(data)
    points = data["points"]
    if not isinstance(points, list) or not points:
        raise PayloadInvalid([{"field": "points", "message": "must be a non-empty list"}])
    if len(points) > MAX_POINTS_PER_REQUEST:
        raise PayloadInvalid([{"field": "points", "message": f"at most {MAX_POINTS_PER_REQUEST} points per request"}])
    defaults = {tag: data.get(tag, "") for tag in TAGS}
    extras = EXTRA_FIELDS[collection]
    index: dict[SeriesKey, int] = {}
    series_index = np.empty(len(points), dtype=np.int32)
    times = np.empty(len(points), dtype=np.int64)
    values = np.empty(len(points), dtype=np.float64)
    fields: dict[str, list[Any]] = {name: [None] * len(points) for name in extras}
    for i, point in enumerate(points):
        if len(problems) >= MAX_PROBLEMS:
            break
        if not isinstance(point, Mapping):
            problems.append({"point": i, "field": "point", "message": "must be an object"})
            continue
        unknown = set(point) - set(TAGS) - {"time", "value"} - set(extras)
        if unknown:
            problems.append({"point": i, "field": sorted(unknown)[0], "message": "is not a known field"})
            continue
        tags = []
        for tag in TAGS:
            value = point.get(tag, defaults[tag])
            if not isinstance(value, str):
                problems.append({"point": i, "field": tag, "message": "must be a string"})
            elif not value and tag in REQUIRED_TAGS:
                problems.append({"point": i, "field": tag, "message": "is required"})
            tags.append(value if isinstance(value, str) else "")
        for name in ("time", "value"):
            if name not in point:
                problems.append({"point": i, "field": name, "message": "is required"})
        if "time" not in point or "value" not in point:
            continue
        try:
            times[i] = parse_time(point["time"])
        except ValueError as exc:
            problems.append({"point": i, "field": "time", "message": str(exc)})
        try:
            values[i] = _number(point["value"])
        except ValueError as exc:
            problems.append({"point": i, "field": "value", "message": str(exc)})
        for name, kind in extras.items():
            if point.get(name) is None:
                continue
            try:
                fields[name][i] = _number(point[name]) if kind == "float" else _string(point[name])
            except ValueError as exc:
                problems.append({"point": i, "field": name, "message": str(exc)})
        series_index[i] = index.setdefault(SeriesKey(*tags), len(index))
    if problems:
        raise PayloadInvalid(problems)
    return PointBatch(collection, list(index), series_index, times, values, _extra_arrays(collection, fields))


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _extra_arrays(collection: Collection, fields: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, kind in EXTRA_FIELDS[collection].items():
        column = fields.get(name)
        if column is None or all(v is None for v in column):
            continue
        if kind == "float":
            out[name] = np.array([np.nan if v is None else v for v in column], dtype=np.float64)
        else:
            out[name] = np.array(["" if v is None else v for v in column], dtype=object)
    return out


def _columns(data: Mapping[str, Any]) -> PointBatch:
    collection, parse_time, problems = _common(data)
    raw_times, columns = data.get("times"), data["columns"]
    if not isinstance(raw_times, list) or not raw_times:
        raise PayloadInvalid([{"field": "times", "message": "must be a non-empty list"}])
    if not isinstance(columns, list) or not columns:
        raise PayloadInvalid([{"field": "columns", "message": "must be a non-empty list"}])
    if len(raw_times) * len(columns) > MAX_POINTS_PER_REQUEST:
        raise PayloadInvalid([{"field": "columns", "message": f"at most {MAX_POINTS_PER_REQUEST} cells per request"}])
    n = len(raw_times)
    times = np.empty(n, dtype=np.int64)
    for i, value in enumerate(raw_times):
        try:
            times[i] = parse_time(value)
        except ValueError as exc:
            problems.append({"row": i, "field": "times", "message": str(exc)})
            if len(problems) >= MAX_PROBLEMS:
                raise PayloadInvalid(problems) from None
    extras = EXTRA_FIELDS[collection]
    series: list[SeriesKey] = []
    idx_parts, time_parts, value_parts = [], [], []
    field_parts: dict[str, list[Any]] = {name: [] for name in extras}
    for j, column in enumerate(columns):
        if not isinstance(column, Mapping):
            problems.append({"column": j, "field": "column", "message": "must be an object"})
            continue
        unknown = set(column) - {"source", "observed_property", "model_id", "version", "values"} - set(extras)
        if unknown:
            problems.append({"column": j, "field": sorted(unknown)[0], "message": "is not a known field"})
            continue
        tags = []
        for tag in TAGS:
            value = column.get(tag, data.get(tag, ""))
            if not isinstance(value, str):
                problems.append({"column": j, "field": tag, "message": "must be a string"})
                value = ""
            elif not value and tag in REQUIRED_TAGS:
                problems.append({"column": j, "field": tag, "message": "is required"})
            tags.append(value)
        cells = column.get("values")
        if not isinstance(cells, list) or len(cells) != n:
            problems.append({"column": j, "field": "values", "message": f"must be a list of {n} values (one per time)"})
            continue
        filled = [i for i, v in enumerate(cells) if v is not None]
        column_values = np.empty(len(filled), dtype=np.float64)
        for k, i in enumerate(filled):
            try:
                column_values[k] = _number(cells[i])
            except ValueError as exc:
                problems.append({"column": j, "row": i, "field": "values", "message": str(exc)})
                if len(problems) >= MAX_PROBLEMS:
                    raise PayloadInvalid(problems) from None
        for name, kind in extras.items():
            given = column.get(name)
            if given is None:
                field_parts[name].extend([None] * len(filled))
                continue
            if not isinstance(given, list) or len(given) != n:
                problems.append({"column": j, "field": name, "message": f"must be a list of {n} values"})
                continue
            for i in filled:
                try:
                    field_parts[name].append(
                        None if given[i] is None else (_number(given[i]) if kind == "float" else _string(given[i]))
                    )
                except ValueError as exc:
                    problems.append({"column": j, "row": i, "field": name, "message": str(exc)})
                    field_parts[name].append(None)
        series.append(SeriesKey(*tags))
        idx_parts.append(np.full(len(filled), len(series) - 1, dtype=np.int32))
        time_parts.append(times[filled] if filled else np.empty(0, dtype=np.int64))
        value_parts.append(column_values)
    if problems:
        raise PayloadInvalid(problems)
    if len(set(series)) != len(series):
        raise PayloadInvalid([{"field": "columns", "message": "two columns name the same series"}])
    return PointBatch(
        collection,
        series,
        np.concatenate(idx_parts) if idx_parts else np.empty(0, dtype=np.int32),
        np.concatenate(time_parts) if time_parts else np.empty(0, dtype=np.int64),
        np.concatenate(value_parts) if value_parts else np.empty(0),
        _extra_arrays(collection, field_parts),
    )

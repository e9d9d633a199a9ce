"""InfluxQL for the InfluxDB backend, as text and back as arrays: quoting, WHERE clauses, time bounds,
and the decoding of ``/query`` answers. Pure (no HTTP), so the quoting rules are tested without a server.

Every identifier is double-quoted and every string literal single-quoted, backslash-escaped (``ident`` /
``literal``); every query has both time bounds, as integer nanoseconds within what InfluxDB stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from ..asof import last_wins
from ..types import MAX_TIME_NS, READ_MEASUREMENTS, SERIES_TAGS, SeriesFilter, SeriesKey, bound_ns

#: The FROM list of every read: both measurement names STAMM writes under.
MEASUREMENTS = ",".join(f'"{m}"' for m in READ_MEASUREMENTS)
#: Both time bounds of a query that means "any time" (InfluxQL wants them anyway).
ALL_TIME = (0, MAX_TIME_NS)

#: One series of an answer: its tags, its column names, its rows.
ResultRows = list[tuple[dict[str, str], list[str], list[list[Any]]]]


def ident(name: str) -> str:
    """An InfluxQL identifier: double-quoted, with ``\\`` and ``"`` escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: str) -> str:
    """An InfluxQL string literal: single-quoted, with ``\\`` and ``'`` escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def time_clause(start_ns: int, end_ns: int) -> str:
    return f"time >= {int(start_ns)} AND time <= {int(end_ns)}"


def tag_clause(tags: Mapping[str, str | None]) -> str:
    """Equality on every tag given (None: any value)."""
    return " AND ".join(f"{ident(k)} = {literal(v)}" for k, v in tags.items() if v is not None)


def where_clause(tags: Mapping[str, str | None], start_ns: int, end_ns: int, extra: str = "") -> str:
    """`` WHERE`` the tags, an extra condition and the time bounds."""
    parts = [p for p in (tag_clause(tags), extra, time_clause(start_ns, end_ns)) if p]
    return " WHERE " + " AND ".join(parts)


def filter_tags(where: SeriesFilter) -> dict[str, str | None]:
    return {tag: getattr(where, tag) for tag in SERIES_TAGS}


def series_key(tags: Mapping[str, str]) -> SeriesKey:
    """The series an answer's tags name (a tag InfluxDB leaves out is empty)."""
    return SeriesKey(*(tags.get(t) or "" for t in SERIES_TAGS))


def clamped_range(start_ns: int, end_ns: int) -> tuple[int, int]:
    """[start_ns, end_ns] within the times InfluxDB stores (1970 .. 2262)."""
    return max(start_ns, 0), min(end_ns, MAX_TIME_NS)


def time_bounds(start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """An optional range in nanoseconds, clamped; an open side reaches the first or last storable time."""
    return clamped_range(bound_ns(start) if start is not None else 0, bound_ns(end) if end is not None else MAX_TIME_NS)


def result_rows(result: Mapping[str, Any]) -> ResultRows:
    """``(tags, columns, rows)`` of every series of one statement's answer."""
    return [(s.get("tags") or {}, s["columns"], s.get("values") or []) for s in result.get("series", [])]


def result_points(result: Mapping[str, Any], predictions: bool) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Merge every series of a raw-point result (one per measurement) into ascending arrays."""
    times: list[int] = []
    values: list[Any] = []
    validity: list[Any] = []
    corrected: list[Any] = []
    for _tags, columns, rows in result_rows(result):
        times.extend(r[0] for r in rows)
        values.extend(r[1] for r in rows)
        if predictions:
            vi, ci = columns.index("validity"), columns.index("corrected_value")
            validity.extend(r[vi] for r in rows)
            corrected.extend(r[ci] for r in rows)
    t = np.array(times, dtype=np.int64)
    v = np.array(values, dtype=np.float64)
    fields: dict[str, np.ndarray] = {}
    if predictions:
        fields = {
            "validity": np.array(["" if x is None else str(x) for x in validity], dtype=object),
            "corrected_value": np.array(corrected, dtype=np.float64),
        }
    present = ~np.isnan(v)
    order = np.argsort(t, kind="stable")
    order = order[present[order]]
    t, v = t[order], v[order]
    fields = {name: column[order] for name, column in fields.items()}
    if t.shape[0] > 1 and np.any(t[1:] == t[:-1]):  # the same point under both measurement names
        keep = last_wins(np.zeros(t.shape[0], dtype=np.int32), t)
        t, v = t[keep], v[keep]
        fields = {name: column[keep] for name, column in fields.items()}
    return t, v, fields

"""A batch as the SQL backend stores it: de-duplicated columns ordered by (series id, time), and the
PostgreSQL binary COPY form of raw points.

Pure NumPy (no connection, except ``copy_points``, which is handed a cursor): the single write path
(``writes``) and the write stream (``stream``) both build their rows here, so the two cannot disagree
on what a point looks like in the database.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...asof import last_wins
from ...types import Collection, PointBatch, SeriesKey
from .store import point_columns

# PostgreSQL binary COPY: header, one fixed-size tuple per raw point, trailer.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)
_RAW_COPY_DTYPE = np.dtype(
    [("n", ">i2"), ("l1", ">i4"), ("sid", ">i8"), ("l2", ">i4"), ("t", ">i8"), ("l3", ">i4"), ("v", ">f8")]
)
#: Raw points per write of a single binary COPY (bounds the slices handed to psycopg, not the batch).
COPY_CHUNK_POINTS = 200_000


@dataclass(slots=True)
class PointColumns:
    """A de-duplicated batch as database columns, ordered by (series id, time).

    ``stats`` holds one ``(series id, first time, last time, points)`` per series of the batch.
    """

    series_ids: np.ndarray
    times: np.ndarray
    values: np.ndarray
    extras: dict[str, np.ndarray]
    stats: list[tuple[int, int, int, int]]

    def appends_after(self, last_known: Mapping[int, int | None]) -> bool:
        """True when every series' first point here is after its newest stored one (no key can clash)."""
        return all(last_known.get(sid) is None or lo > last_known[sid] for sid, lo, _hi, _n in self.stats)


def kept_points(batch: PointBatch) -> tuple[np.ndarray, list[SeriesKey]]:
    """Indexes of the points kept (last wins), ordered by (series, time), and the series they use."""
    keep = last_wins(batch.series_index, batch.times_ns)
    used = np.unique(batch.series_index[keep])
    return keep, [batch.series[int(i)] for i in used]


def batch_columns(batch: PointBatch, keep: np.ndarray, ids: Mapping[SeriesKey, int]) -> PointColumns:
    """The kept points as database columns, with each series' (id, first, last, count) in the batch."""
    lookup = np.zeros(len(batch.series), dtype=np.int64)
    for i, key in enumerate(batch.series):
        sid = ids.get(key)
        if sid is not None:
            lookup[i] = sid
    series_ids = lookup[batch.series_index[keep]]
    times = batch.times_ns[keep].astype(np.int64, copy=False)
    values = batch.values[keep].astype(np.float64, copy=False)
    extras: dict[str, np.ndarray] = {}
    if batch.collection is Collection.PREDICTIONS:
        validity = batch.fields.get("validity")
        corrected = batch.fields.get("corrected_value")
        extras["validity"] = (
            np.array(["" if v is None else str(v) for v in validity[keep]], dtype=object)
            if validity is not None
            else np.full(len(keep), "", dtype=object)
        )
        extras["corrected_value"] = (
            corrected[keep].astype(np.float64) if corrected is not None else np.full(len(keep), np.nan)
        )
    # Points are sorted by series, then time: each series is one run.
    starts = np.flatnonzero(np.r_[True, series_ids[1:] != series_ids[:-1]])
    ends = np.r_[starts[1:], len(series_ids)] - 1
    stats = list(
        zip(
            series_ids[starts].tolist(),
            times[starts].tolist(),
            times[ends].tolist(),
            (ends - starts + 1).tolist(),
            strict=True,
        )
    )
    return PointColumns(series_ids, times, values, extras, stats)


def raw_copy_rows(columns: PointColumns) -> bytes:
    """Raw points as binary COPY tuples (no header or trailer), built by NumPy without a Python loop."""
    rows = np.empty(len(columns.times), dtype=_RAW_COPY_DTYPE)
    rows["n"], rows["l1"], rows["l2"], rows["l3"] = 3, 8, 8, 8
    rows["sid"], rows["t"], rows["v"] = columns.series_ids, columns.times, columns.values
    return rows.tobytes()


def copy_points(cursor: Any, table: str, columns: PointColumns) -> None:
    """``COPY table FROM STDIN (FORMAT BINARY)`` of ``columns``; raw rows are built by NumPy in one go."""
    collection = Collection.PREDICTIONS if columns.extras else Collection.RAW
    with cursor.copy(f"COPY {table} ({point_columns(collection)}) FROM STDIN (FORMAT BINARY)") as copy:
        if collection is Collection.RAW:
            payload = memoryview(raw_copy_rows(columns))
            step = COPY_CHUNK_POINTS * _RAW_COPY_DTYPE.itemsize
            copy.write(COPY_HEADER)
            for offset in range(0, len(payload), step):
                copy.write(payload[offset : offset + step])
            copy.write(COPY_TRAILER)
            return
        copy.set_types(["int8", "int8", "float8", "text", "float8"])
        for sid, t, v, ok, c in zip(
            columns.series_ids.tolist(),
            columns.times.tolist(),
            columns.values.tolist(),
            columns.extras["validity"],
            columns.extras["corrected_value"].tolist(),
            strict=True,
        ):
            copy.write_row((sid, t, v, ok, None if c != c else c))

"""A write stream for raw points on PostgreSQL that keeps one binary COPY open while batches append.

Why: the line-protocol endpoint parses a body piece by piece. Written batch by batch through
``SQLBackend.write``, every piece pays for its own statements, and the web process and PostgreSQL take
turns. Here the pieces that only append (each series' points after everything stored or streamed
before them: live data, imports, replays) go into one ``COPY ... FROM STDIN (FORMAT BINARY)`` that stays
open across pieces, so PostgreSQL inserts one piece while the web process parses the next: on two cores
the two overlap (``benchmarks/ingest.py`` measures it).

Correctness:
- Everything runs on the request's connection inside the caller's transaction: a body refused half way
  (a bad line) aborts the COPY and the transaction rolls back, so nothing is written.
- A series seen for the first time is created if needed, locked (``FOR UPDATE``, as every SQL writer
  does) and its newest stored time read from the point table, with the COPY ended first: no other
  statement may run while a COPY is open.
- A piece that does not only append (a duplicate, an overwrite, out-of-order data) ends the COPY and goes
  through the backend's staging-table upsert, so the last line still wins.
- Series statistics (first/last time, point count) are added up in memory and written once, on close.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from ...types import Collection, PointBatch, SeriesKey
from ...validation import batch_validate
from ..base import WriteStream
from .columns import COPY_HEADER, COPY_TRAILER, batch_columns, kept_points, raw_copy_rows
from .store import POINT_TABLES, point_columns
from .writes import SQLWrites


class PostgresAppendStream(WriteStream):
    """``WriteStream`` of raw points for ``SQLBackend`` on PostgreSQL; see the module docstring.

    It drives the backend's write path (``SQLWrites``: series ids and locks, newest times, the staging
    upsert, statistics) and only adds the COPY kept open; ``SQLBackend.write_stream`` makes it.
    """

    backend: SQLWrites

    def __init__(self, backend: SQLWrites, collection: Collection) -> None:
        super().__init__(backend, collection)
        if self.collection is not Collection.RAW:
            raise ValueError("the append stream writes raw points only")
        self._ids: dict[SeriesKey, int] = {}
        #: Newest time per series id: stored (read under the lock) or streamed since.
        self._newest: dict[int, int | None] = {}
        #: Per series id: [first time, last time, points added] over everything this stream wrote.
        self._stats: dict[int, list[int]] = {}
        self._open: ExitStack | None = None
        self._copy: Any = None

    def write(self, batch: PointBatch) -> int:
        self._check_collection(batch)
        batch_validate(batch)
        if len(batch) == 0:
            return 0
        backend = self.backend
        keep, keys = kept_points(batch)
        new = [key for key in keys if key not in self._ids]
        if new:
            self._end_copy()
            ids = backend._series_ids_for(self.collection, new, lock=True)
            self._ids.update(ids)
            self._newest.update(backend._newest_times(self.collection, sorted(ids.values())))
            self.groups.update(key.group for key in new)
        columns = batch_columns(batch, keep, self._ids)
        if columns.appends_after(self._newest):
            self._start_copy().write(raw_copy_rows(columns))
            added = {sid: n for sid, _lo, _hi, n in columns.stats}
        else:
            self._end_copy()
            added = backend._write_postgres(self.collection, columns, appending=False) or {}
        for sid, lo, hi, _n in columns.stats:
            entry = self._stats.setdefault(sid, [lo, hi, 0])
            entry[0], entry[1], entry[2] = min(entry[0], lo), max(entry[1], hi), entry[2] + added.get(sid, 0)
            newest = self._newest.get(sid)
            self._newest[sid] = hi if newest is None else max(newest, hi)
        return int(len(keep))

    def close(self) -> None:
        self._end_copy()
        self.backend._stats_add([(sid, lo, hi, added) for sid, (lo, hi, added) in sorted(self._stats.items())])
        self._stats = {}

    def abort(self) -> None:
        """End an open COPY with an error (PostgreSQL discards its rows); the transaction rolls back."""
        if self._open is not None:
            stack, self._open, self._copy = self._open, None, None
            try:
                stack.__exit__(RuntimeError, RuntimeError("write stream aborted"), None)
            except Exception:  # noqa: BLE001 - the server's "COPY cancelled" answer; the caller's error wins
                pass

    # --- the open COPY ---------------------------------------------------------------------------
    def _start_copy(self) -> Any:
        if self._copy is None:
            stack = ExitStack()
            cursor = stack.enter_context(self.backend.connection.cursor())
            table = POINT_TABLES[self.collection]
            self._copy = stack.enter_context(
                cursor.copy(f"COPY {table} ({point_columns(self.collection)}) FROM STDIN (FORMAT BINARY)")
            )
            self._open = stack
            self._copy.write(COPY_HEADER)
        return self._copy

    def _end_copy(self) -> None:
        """Send the trailer and wait for PostgreSQL to finish inserting (a key clash raises here)."""
        if self._open is not None:
            stack, copy = self._open, self._copy
            self._open = self._copy = None
            copy.write(COPY_TRAILER)
            stack.close()

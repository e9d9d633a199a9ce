"""The SQL backend's writes: ``write`` (append COPY or staging upsert), series statistics, ``delete``.

Every statement runs on Django's own connection, so a write joins the caller's ``transaction.atomic``
block and a rejected batch (validation runs before any SQL) writes nothing.

Duplicates inside a batch are resolved in NumPy first (last occurrence wins), because PostgreSQL refuses
an ``ON CONFLICT DO UPDATE`` that touches one row twice. The batch's series rows are then locked
(``FOR UPDATE``) and each series' newest stored time read from the point table. A batch whose every point
is after its series' newest one (live data, imports) *appends*:

- PostgreSQL: psycopg 3 ``COPY ... FROM STDIN (FORMAT BINARY)`` (the binary rows built by NumPy in one
  go, no per-row Python, ``columns``) straight into the point table when appending; otherwise into a
  session-local temporary staging table, then one ``INSERT ... SELECT ... ON CONFLICT (series_id, time)
  DO UPDATE``. ``SQLBackend.write_stream`` keeps one such COPY open across batches (``stream``).
- SQLite: one ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE`` inside the transaction.

Each series row keeps first/last time and point count, updated in the same transaction. An appending
batch's points are all new; otherwise the new keys are counted (``RETURNING (xmax = 0)`` on PostgreSQL,
a staging-table join on SQLite). The point tables carry no foreign-key constraint: PostgreSQL's deferred
per-row FK checks cost about a third of the ingest time, and the lock on the series rows already
guarantees that a series is never deleted while points are written to it (deletes only drop series
left empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction

from ...types import Collection, GroupKey, PointBatch
from ...validation import batch_validate
from .columns import PointColumns, batch_columns, copy_points, kept_points
from .series import SQLSeriesIds
from .store import POINT_TABLES, SERIES_TABLE, STAGE_TABLES, placeholders, point_columns


class SQLWrites(SQLSeriesIds):
    """``write``, ``delete`` and the series statistics of ``SQLBackend``."""

    def write(self, batch: PointBatch) -> int:
        """Validate, de-duplicate (last wins), then upsert in one transaction and update series statistics.

        The series rows are locked first (``SELECT ... FOR UPDATE`` on PostgreSQL), which serialises
        writers of the same series, keeps the statistics exact, and lets the common case, a batch that
        only appends after each series' last point, skip telling inserted rows from updated ones (and,
        on PostgreSQL, COPY straight into the point table).
        """
        batch_validate(batch)
        if len(batch) == 0:
            return 0
        with transaction.atomic(using=self.alias):
            keep, keys = kept_points(batch)
            ids = self._series_ids_for(batch.collection, keys, lock=True)
            columns = batch_columns(batch, keep, ids)
            last_known = self._newest_times(batch.collection, [sid for sid, *_ in columns.stats])
            appending = columns.appends_after(last_known)
            if self.is_postgres:
                added = self._write_postgres(batch.collection, columns, appending=appending)
            else:
                added = self._write_sqlite(batch.collection, columns, appending=appending)
            if added is None:  # appending: every point is new
                added = {sid: n for sid, _lo, _hi, n in columns.stats}
            self._stats_add([(sid, lo, hi, int(added.get(sid, 0))) for sid, lo, hi, _n in columns.stats])
        return int(len(keep))

    def _stats_add(self, stats: list[tuple[int, int, int, int]]) -> None:
        """Widen each series' first/last time and add to its point count: ``(id, first, last, added)``.

        One statement on PostgreSQL (arrays unnested), an ``executemany`` on SQLite.
        """
        if not stats:
            return
        with self.connection.cursor() as cursor:
            if self.is_postgres:
                ids, firsts, lasts, added = (list(column) for column in zip(*stats, strict=True))
                cursor.execute(
                    f"UPDATE {SERIES_TABLE} s SET point_count = s.point_count + b.added,"
                    " first_time = LEAST(COALESCE(s.first_time, b.lo), b.lo),"
                    " last_time = GREATEST(COALESCE(s.last_time, b.hi), b.hi)"
                    " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) AS b(id, lo, hi, added)"
                    " WHERE s.id = b.id",
                    [ids, firsts, lasts, added],
                )
                return
            cursor.executemany(
                f"UPDATE {SERIES_TABLE} SET point_count = point_count + %s,"
                " first_time = CASE WHEN first_time IS NULL OR first_time > %s THEN %s ELSE first_time END,"
                " last_time = CASE WHEN last_time IS NULL OR last_time < %s THEN %s ELSE last_time END"
                " WHERE id = %s",
                [(n, lo, lo, hi, hi, sid) for sid, lo, hi, n in stats],
            )

    def _newest_times(self, collection: Collection, series_ids: list[int]) -> dict[int, int | None]:
        """Each series' newest stored point time (None when it has none), one backward index probe each.

        Read from the point table, not from the statistics, and after the series rows are locked (a new
        statement sees every writer that committed before the lock was granted), so the append decision
        holds even if the statistics were ever behind the points.
        """
        table = self._point_table(collection)
        among, params = self._ids_in("s.id", series_ids)
        rows = self._fetch(
            f"SELECT s.id, (SELECT MAX(p.time) FROM {table} p WHERE p.series_id = s.id) FROM {SERIES_TABLE} s"
            f" WHERE {among}",
            params,
        )
        return {int(sid): (None if last is None else int(last)) for sid, last in rows}

    def _write_postgres(
        self, collection: Collection, columns: PointColumns, *, appending: bool
    ) -> dict[int, int] | None:
        """Appending: binary COPY straight into the point table (no key can clash: the series rows are
        locked and every point is after its series' newest). Otherwise: binary COPY into a temporary
        staging table, then one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING (xmax = 0)``.

        Returns the points newly inserted per series, or None when ``appending`` (all of them).
        """
        table, stage = POINT_TABLES[collection], STAGE_TABLES[collection]
        predictions = collection is Collection.PREDICTIONS
        names = point_columns(collection)
        with self.connection.cursor() as cursor:
            if appending:
                copy_points(cursor, table, columns)
                return None
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (series_id bigint, time bigint, value double precision"
                + (", validity text, corrected_value double precision" if predictions else "")
                + ") ON COMMIT DELETE ROWS"
            )
            cursor.execute(f"TRUNCATE {stage}")
            copy_points(cursor, stage, columns)
            updates = "value = EXCLUDED.value" + (
                ", validity = EXCLUDED.validity, corrected_value = EXCLUDED.corrected_value" if predictions else ""
            )
            upsert = (
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage}"
                f" ON CONFLICT (series_id, time) DO UPDATE SET {updates}"
            )
            cursor.execute(
                f"WITH written AS ({upsert} RETURNING series_id, (xmax = 0) AS inserted)"
                " SELECT series_id, count(*) FILTER (WHERE inserted) FROM written GROUP BY series_id"
            )
            return {int(sid): int(n) for sid, n in cursor.fetchall()}

    def _write_sqlite(self, collection: Collection, points: PointColumns, *, appending: bool) -> dict[int, int] | None:
        """``executemany`` upsert; a batch that may overwrite goes through a staging table to count new keys."""
        table = POINT_TABLES[collection]
        predictions = collection is Collection.PREDICTIONS
        columns = point_columns(collection)
        updates = "value = excluded.value" + (
            ", validity = excluded.validity, corrected_value = excluded.corrected_value" if predictions else ""
        )
        data: list[list[Any]] = [points.series_ids.tolist(), points.times.tolist(), points.values.tolist()]
        if predictions:
            data.append(list(points.extras["validity"]))
            data.append([None if c != c else c for c in points.extras["corrected_value"].tolist()])
        rows = list(zip(*data, strict=True))
        marks = placeholders(len(data))
        with self.connection.cursor() as cursor:
            if appending:
                sql = (
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})"
                    f" ON CONFLICT (series_id, time) DO UPDATE SET {updates}"
                )
                for offset in range(0, len(rows), self.sqlite_chunk):
                    cursor.executemany(sql, rows[offset : offset + self.sqlite_chunk])
                return None
            stage = STAGE_TABLES[collection]
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (series_id INTEGER, time INTEGER, value REAL"
                + (", validity TEXT, corrected_value REAL" if predictions else "")
                + ")"
            )
            cursor.execute(f"DELETE FROM temp.{stage}")
            for offset in range(0, len(rows), self.sqlite_chunk):
                cursor.executemany(
                    f"INSERT INTO temp.{stage} ({columns}) VALUES ({marks})", rows[offset : offset + self.sqlite_chunk]
                )
            cursor.execute(
                "SELECT st.series_id, SUM(CASE WHEN p.series_id IS NULL THEN 1 ELSE 0 END)"
                f" FROM temp.{stage} st LEFT JOIN {table} p ON p.series_id = st.series_id AND p.time = st.time"
                " GROUP BY st.series_id"
            )
            added = {int(sid): int(n) for sid, n in cursor.fetchall()}
            # "WHERE true" disambiguates SQLite's upsert-from-SELECT grammar.
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM temp.{stage} WHERE true"
                f" ON CONFLICT (series_id, time) DO UPDATE SET {updates}"
            )
            cursor.execute(f"DELETE FROM temp.{stage}")
            return added

    def refresh_stats(self, series_ids: Sequence[int] | None = None) -> None:
        """Recompute first/last time and point count of some series (all when None) from their points.

        Needed after deletes, and after TimescaleDB's retention policy has dropped old chunks.
        """
        ids = list(series_ids) if series_ids is not None else None
        where = f" WHERE id IN ({placeholders(len(ids))})" if ids else ""
        if ids is not None and not ids:
            return
        with self.connection.cursor() as cursor:
            for collection, table in POINT_TABLES.items():
                cursor.execute(
                    f"UPDATE {SERIES_TABLE} SET"
                    f" point_count = (SELECT COUNT(*) FROM {table} p WHERE p.series_id = {SERIES_TABLE}.id),"
                    f" first_time = (SELECT MIN(p.time) FROM {table} p WHERE p.series_id = {SERIES_TABLE}.id),"
                    f" last_time = (SELECT MAX(p.time) FROM {table} p WHERE p.series_id = {SERIES_TABLE}.id)"
                    + (where + " AND" if where else " WHERE")
                    + " collection = %s",
                    [*(ids or []), collection.value],
                )

    def delete(
        self,
        *,
        collection: Collection,
        group: GroupKey,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        table = self._point_table(collection)
        with transaction.atomic(using=self.alias):
            ids = [int(r[0]) for r in self._group_series(collection, group)]
            if not ids:
                return 0
            clause, params = self._points_where(ids, start=start, end=end)
            with self.connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {table} WHERE {clause}", params)
                deleted = cursor.rowcount
            if deleted:
                self.refresh_stats(ids)
            with self.connection.cursor() as cursor:
                # Series left without points disappear too, so pickers never list empty batches.
                cursor.execute(
                    f"DELETE FROM {SERIES_TABLE} WHERE id IN ({placeholders(len(ids))}) AND point_count = 0", ids
                )
        return int(deleted)

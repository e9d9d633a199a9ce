"""The SQL backend: the time series live in the Django database (SQLite or PostgreSQL).

Schema (see ``apps.tsdb.models``): a ``Series`` table of tag sets and two point tables keyed by
``(series_id, time)`` with ``time`` in int64 nanoseconds. Every statement runs on Django's own
connection, so a write joins the caller's ``transaction.atomic`` block and a rejected batch (validation
runs before any SQL) writes nothing.

Writes
  Duplicates inside a batch are resolved in NumPy first (last occurrence wins), because PostgreSQL
  refuses an ``ON CONFLICT DO UPDATE`` that touches one row twice. The batch's series rows are then
  locked (``FOR UPDATE``) and each series' newest stored time read from the point table. A batch whose
  every point is after its series' newest one (live data, imports) *appends*:
  - PostgreSQL: psycopg 3 ``COPY ... FROM STDIN (FORMAT BINARY)`` (the binary rows built by NumPy in
    one go, no per-row Python) straight into the point table when appending; otherwise into a
    session-local temporary staging table, then one ``INSERT ... SELECT ... ON CONFLICT (series_id,
    time) DO UPDATE``. ``write_stream`` keeps one such COPY open across batches (``sql_stream``).
  - SQLite: one ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE`` inside the transaction.
  Each series row keeps first/last time and point count, updated in the same transaction. An appending
  batch's points are all new; otherwise the new keys are counted (``RETURNING (xmax = 0)`` on
  PostgreSQL, a staging-table join on SQLite). The point tables carry no foreign-key constraint:
  PostgreSQL's deferred per-row FK checks cost about a third of the ingest time, and the lock on the
  series rows already guarantees that a series is never deleted while points are written to it
  (deletes only drop series left empty).

Reads
  Every read takes a time range and is served by the primary-key btree. Downsampling runs in SQL for
  ``mean`` (per-bucket avg/min/max/count) and ``minmax`` (each bucket's min and max point: a per-bucket
  aggregate joined back to the points); ``lttb`` fetches the range's points and reduces them in NumPy
  (``apps.tsdb.asof.lttb``).

TimescaleDB
  When the ``timescaledb`` extension is available on the server, ``ensure_collections`` turns both point
  tables into hypertables (7-day chunks on the integer time column, ``integer_now`` in ns) with a
  compression policy segmenting by series, and a retention policy (STAMM's 90 / 180 days unless the
  ``RETENTION_DAYS`` option says otherwise). Without it, nothing changes: plain tables, BRIN + btree.

Options: ``DATABASE`` (alias, default ``"default"``), ``SQLITE_CHUNK`` (rows per executemany, 50 000),
``TIMESCALE`` (use TimescaleDB when present, default True), ``COMPRESS_AFTER_DAYS`` (7),
``RETENTION_DAYS`` (``{"raw": 90, "predictions": 180}``; 0 keeps forever).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import DatabaseError, connections, transaction

from ..asof import asof_matrix, bucket_width, last_wins, lttb
from ..types import (
    LAB_SOURCE,
    NS_PER_S,
    BackendHealth,
    Collection,
    Downsample,
    GroupInfo,
    GroupKey,
    Point,
    PointBatch,
    SeriesData,
    SeriesFilter,
    SeriesInfo,
    SeriesKey,
    SnapshotSet,
    VariableMetadata,
    from_ns,
    to_ns,
)
from ..validation import MAX_TAG_LENGTH, InvalidBatch, Problem, batch_validate
from .base import BackendError, TimeSeriesBackend, WriteStream

logger = logging.getLogger(__name__)

SERIES_TABLE = "tsdb_series"
METADATA_TABLE = "tsdb_variablemetadata"
POINT_TABLES = {Collection.RAW: "tsdb_rawpoint", Collection.PREDICTIONS: "tsdb_predictionpoint"}
STAGE_TABLES = {Collection.RAW: "tsdb_stage_raw", Collection.PREDICTIONS: "tsdb_stage_predictions"}
TAG_COLUMNS = ("project_name", "device_id", "batch_id", "source", "observed_property", "model_id", "version")
DEFAULT_RETENTION_DAYS = {"raw": 90, "predictions": 180}
NS_PER_DAY = 86_400 * NS_PER_S
#: Series ids a process remembers per collection before it starts over.
SERIES_ID_CACHE_SIZE = 50_000

# PostgreSQL binary COPY: header, one fixed-size tuple per raw point, trailer.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)
_RAW_COPY_DTYPE = np.dtype(
    [("n", ">i2"), ("l1", ">i4"), ("sid", ">i8"), ("l2", ">i4"), ("t", ">i8"), ("l3", ">i4"), ("v", ">f8")]
)


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


def point_columns(collection: Collection) -> str:
    """The column list of a collection's point table, in COPY order."""
    predictions = Collection(collection) is Collection.PREDICTIONS
    return "series_id, time, value" + (", validity, corrected_value" if predictions else "")


def raw_copy_rows(columns: PointColumns) -> bytes:
    """Raw points as binary COPY tuples (no header or trailer), built by NumPy without a Python loop."""
    rows = np.empty(len(columns.times), dtype=_RAW_COPY_DTYPE)
    rows["n"], rows["l1"], rows["l2"], rows["l3"] = 3, 8, 8, 8
    rows["sid"], rows["t"], rows["v"] = columns.series_ids, columns.times, columns.values
    return rows.tobytes()


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


class SQLBackend(TimeSeriesBackend):
    """Time series in the Django database; see the module docstring for the design."""

    name = "sql"
    transactional = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.alias = str(self.options.get("DATABASE", "default"))
        self.database_alias = self.alias
        self.sqlite_chunk = int(self.options.get("SQLITE_CHUNK", 50_000))
        self.use_timescale = bool(self.options.get("TIMESCALE", True))
        self.compress_after_days = int(self.options.get("COMPRESS_AFTER_DAYS", 7))
        self.retention_days = {**DEFAULT_RETENTION_DAYS, **dict(self.options.get("RETENTION_DAYS", {}))}
        if self.sqlite_chunk < 1:
            raise ValueError("SQLITE_CHUNK must be at least 1")
        #: Per collection, series ids seen by this process (checked against the row on every use).
        self._id_cache: dict[str, dict[SeriesKey, int]] = {}

    # --- plumbing --------------------------------------------------------------------------------
    @property
    def connection(self):  # noqa: ANN201 (Django's connection wrapper type is backend specific)
        return connections[self.alias]

    @property
    def is_postgres(self) -> bool:
        return self.connection.vendor == "postgresql"

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, list(params))
            return cursor.fetchall()

    @staticmethod
    def _point_table(collection: Collection) -> str:
        try:
            return POINT_TABLES[Collection(collection)]
        except (KeyError, ValueError):
            raise ValueError(f"{collection!r} holds no points (use raw or predictions)") from None

    @staticmethod
    def _series_where(collection: Collection, where: SeriesFilter, alias: str = "s") -> tuple[str, list[Any]]:
        clauses = [f"{alias}.collection = %s"]
        params: list[Any] = [Collection(collection).value]
        for column in TAG_COLUMNS:
            wanted = getattr(where, column)
            if wanted is not None:
                clauses.append(f"{alias}.{column} = %s")
                params.append(wanted)
        return " AND ".join(clauses), params

    def _ids_in(self, column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
        """``column`` among ``ids``: one array parameter on PostgreSQL (the statement text, and so its
        client-side conversion, stays the same whatever the count), a list of placeholders on SQLite."""
        if self.is_postgres:
            return f"{column} = ANY(%s::bigint[])", [list(ids)]
        return f"{column} IN ({_placeholders(len(ids))})", list(ids)

    def _series_id(self, collection: Collection, key: SeriesKey) -> int | None:
        rows = self._fetch(
            f"SELECT id FROM {SERIES_TABLE} WHERE collection = %s AND "
            + " AND ".join(f"{c} = %s" for c in TAG_COLUMNS),
            [Collection(collection).value, *(getattr(key, c) for c in TAG_COLUMNS)],
        )
        return int(rows[0][0]) if rows else None

    def _group_series(
        self, collection: Collection, group: GroupKey, extra: str = "", params: Sequence[Any] = ()
    ) -> list[tuple]:
        return self._fetch(
            f"SELECT id, observed_property, source FROM {SERIES_TABLE} "
            f"WHERE collection = %s AND project_name = %s AND device_id = %s AND batch_id = %s{extra} ORDER BY id",
            [Collection(collection).value, group.project_name, group.device_id, group.batch_id, *params],
        )

    def _series_ids_for(
        self, collection: Collection, keys: list[SeriesKey], *, lock: bool = False
    ) -> dict[SeriesKey, int]:
        """Ids of ``keys``, creating the missing series rows (concurrency-safe: ON CONFLICT DO NOTHING).

        With ``lock`` (PostgreSQL), the rows are also locked for the transaction (``FOR UPDATE``, in id
        order, as every SQL writer does), which serialises writers of the same series and keeps a series
        from being deleted while points are written to it. PostgreSQL looks all keys up in one statement
        (the keys unnested from arrays); SQLite, which serialises writers itself, one group at a time.
        """
        from ..models import Series

        value = Collection(collection).value

        def lookup_postgres(wanted: list[SeriesKey]) -> dict[SeriesKey, int]:
            columns = ", ".join(TAG_COLUMNS)
            arrays = ", ".join(["%s::text[]"] * len(TAG_COLUMNS))
            rows = self._fetch(
                f"SELECT s.id, {', '.join('s.' + c for c in TAG_COLUMNS)} FROM {SERIES_TABLE} s"
                f" JOIN unnest({arrays}) AS k({columns}) USING ({columns})"
                " WHERE s.collection = %s ORDER BY s.id" + (" FOR UPDATE OF s" if lock else ""),
                [[getattr(key, c) for key in wanted] for c in TAG_COLUMNS] + [value],
            )
            return {SeriesKey(*row[1:]): int(row[0]) for row in rows}

        def lookup_sqlite(wanted: list[SeriesKey]) -> dict[SeriesKey, int]:
            found: dict[SeriesKey, int] = {}
            wanted_set = set(wanted)
            for group in dict.fromkeys(key.group for key in wanted):
                for row in self._fetch(
                    f"SELECT id, {', '.join(TAG_COLUMNS)} FROM {SERIES_TABLE} "
                    "WHERE collection = %s AND project_name = %s AND device_id = %s AND batch_id = %s",
                    [value, group.project_name, group.device_id, group.batch_id],
                ):
                    key = SeriesKey(*row[1:])
                    if key in wanted_set:
                        found[key] = int(row[0])
            return found

        lookup = lookup_postgres if self.is_postgres else lookup_sqlite
        ids = self._cached_series_ids(value, keys, lock=lock)
        if ids is None:
            ids = lookup(keys)
        missing = [key for key in keys if key not in ids]
        if missing:
            Series.objects.using(self.alias).bulk_create(
                [Series(collection=value, **key.tags()) for key in missing],
                ignore_conflicts=True,
                batch_size=500,
            )
            ids.update(lookup(missing))
        cache = self._id_cache.setdefault(value, {})
        if len(cache) + len(ids) > SERIES_ID_CACHE_SIZE:
            cache.clear()
        cache.update(ids)
        return ids

    def _cached_series_ids(self, collection: str, keys: list[SeriesKey], *, lock: bool) -> dict[SeriesKey, int] | None:
        """Ids of ``keys`` from this process's cache, confirmed (and locked) by primary key; None on a miss.

        A writer sends the same series in every request; fetching rows by id skips matching seven tag
        columns. Each row read back must still carry the cached tags (a series deleted since, or an id
        reused after a rollback on SQLite, is a miss), so the cache can never route points to the wrong
        series.
        """
        cache = self._id_cache.get(collection, {})
        wanted = {}
        for key in keys:
            sid = cache.get(key)
            if sid is None:
                return None
            wanted[sid] = key
        among, params = self._ids_in("id", list(wanted))
        rows = self._fetch(
            f"SELECT id, {', '.join(TAG_COLUMNS)} FROM {SERIES_TABLE} WHERE {among}"
            " AND collection = %s ORDER BY id" + (" FOR UPDATE" if lock and self.is_postgres else ""),
            [*params, collection],
        )
        found = {int(row[0]): SeriesKey(*row[1:]) for row in rows}
        if found != wanted:
            for key in keys:
                cache.pop(key, None)
            return None
        return {key: sid for sid, key in wanted.items()}

    # --- health and setup ------------------------------------------------------------------------
    def _existing_tables(self) -> set[str]:
        with self.connection.cursor() as cursor:
            return set(self.connection.introspection.table_names(cursor))

    def _timescale_state(self) -> tuple[bool, bool]:
        """(available on the server, installed in this database); always (False, False) off PostgreSQL."""
        if not self.is_postgres:
            return False, False
        rows = self._fetch(
            "SELECT (SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'),"
            " (SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb')"
        )
        return bool(rows[0][0]), bool(rows[0][1])

    def ping(self) -> BackendHealth:
        try:
            tables = self._existing_tables()
            _, timescale = self._timescale_state()
        except DatabaseError as exc:
            return BackendHealth(ok=False, detail=f"database unreachable: {exc}".strip(), collections={})
        collections = {
            Collection.RAW.value: {SERIES_TABLE, POINT_TABLES[Collection.RAW]} <= tables,
            Collection.PREDICTIONS.value: {SERIES_TABLE, POINT_TABLES[Collection.PREDICTIONS]} <= tables,
            Collection.METADATA.value: METADATA_TABLE in tables,
        }
        ok = all(collections.values())
        engine = f"{self.connection.vendor}{' + timescaledb' if timescale else ''}"
        missing = [name for name, present in collections.items() if not present]
        detail = f"{engine}, collections ready" if ok else f"{engine}, missing: {', '.join(missing)} (run migrate)"
        return BackendHealth(ok=ok, detail=detail, collections=collections)

    def ensure_collections(self) -> None:
        """Create the tables (the tsdb migrations) if missing; on TimescaleDB set up hypertables."""
        try:
            tables = self._existing_tables()
        except DatabaseError as exc:
            raise BackendError(f"database unreachable: {exc}") from exc
        needed = {SERIES_TABLE, METADATA_TABLE, *POINT_TABLES.values()}
        if not needed <= tables:
            self._migrate()
        if self.is_postgres and self.use_timescale:
            available, _ = self._timescale_state()
            if available:
                self._timescale_setup()

    def _migrate(self) -> None:
        """Apply the tsdb app's own migrations to this database (no other app's, no post-migrate hooks)."""
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(self.connection)
        executor.migrate(executor.loader.graph.leaf_nodes("tsdb"))

    def _timescale_setup(self) -> None:
        """Hypertables + compression + retention (idempotent). Needs timescaledb preloaded on the server."""
        chunk = 7 * NS_PER_DAY
        try:
            with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                cursor.execute(
                    "CREATE OR REPLACE FUNCTION tsdb_now_ns() RETURNS bigint LANGUAGE SQL STABLE AS "
                    "$$ SELECT (extract(epoch FROM now()) * 1000000000)::bigint $$"
                )
                for collection, table in POINT_TABLES.items():
                    cursor.execute(
                        "SELECT create_hypertable(%s, 'time', chunk_time_interval => %s,"
                        " migrate_data => true, if_not_exists => true)",
                        [table, chunk],
                    )
                    cursor.execute("SELECT set_integer_now_func(%s, 'tsdb_now_ns', replace_if_exists => true)", [table])
                    cursor.execute(
                        f"ALTER TABLE {table} SET (timescaledb.compress,"
                        " timescaledb.compress_segmentby = 'series_id', timescaledb.compress_orderby = 'time')"
                    )
                    cursor.execute(
                        "SELECT add_compression_policy(%s, compress_after => %s::bigint, if_not_exists => true)",
                        [table, self.compress_after_days * NS_PER_DAY],
                    )
                    days = int(self.retention_days.get(collection.value, 0) or 0)
                    if days > 0:
                        cursor.execute(
                            "SELECT add_retention_policy(%s, drop_after => %s::bigint, if_not_exists => true)",
                            [table, days * NS_PER_DAY],
                        )
        except DatabaseError as exc:
            raise BackendError(f"TimescaleDB is available but could not be set up: {exc}") from exc

    def uses_timescale(self) -> bool:
        """True when the point tables are TimescaleDB hypertables."""
        _, installed = self._timescale_state()
        if not installed:
            return False
        rows = self._fetch(
            "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
            [POINT_TABLES[Collection.RAW]],
        )
        return bool(rows[0][0])

    # --- writes ----------------------------------------------------------------------------------
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
            keep, keys = self._keep(batch)
            ids = self._series_ids_for(batch.collection, keys, lock=True)
            columns = self._columns(batch, keep, ids)
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

    def write_stream(self, collection: Collection) -> WriteStream:
        """On PostgreSQL, a stream that keeps one COPY open while batches append (``sql_stream``)."""
        if self.is_postgres and Collection(collection) is Collection.RAW:
            from .sql_stream import PostgresAppendStream

            return PostgresAppendStream(self, collection)
        return super().write_stream(collection)

    @staticmethod
    def _keep(batch: PointBatch) -> tuple[np.ndarray, list[SeriesKey]]:
        """Indexes of the points kept (last wins), ordered by (series, time), and the series they use."""
        keep = last_wins(batch.series_index, batch.times_ns)
        used = np.unique(batch.series_index[keep])
        return keep, [batch.series[int(i)] for i in used]

    @staticmethod
    def _columns(batch: PointBatch, keep: np.ndarray, ids: Mapping[SeriesKey, int]) -> PointColumns:
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
                self._copy_points(cursor, table, columns)
                return None
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (series_id bigint, time bigint, value double precision"
                + (", validity text, corrected_value double precision" if predictions else "")
                + ") ON COMMIT DELETE ROWS"
            )
            cursor.execute(f"TRUNCATE {stage}")
            self._copy_points(cursor, stage, columns)
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

    @staticmethod
    def _copy_points(cursor: Any, table: str, columns: PointColumns) -> None:
        """``COPY table FROM STDIN (FORMAT BINARY)`` of ``columns``; raw rows are built by NumPy in one go."""
        collection = Collection.PREDICTIONS if columns.extras else Collection.RAW
        with cursor.copy(f"COPY {table} ({point_columns(collection)}) FROM STDIN (FORMAT BINARY)") as copy:
            if collection is Collection.RAW:
                payload = memoryview(raw_copy_rows(columns))
                step = 200_000 * _RAW_COPY_DTYPE.itemsize
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
        marks = _placeholders(len(data))
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
        where = f" WHERE id IN ({_placeholders(len(ids))})" if ids else ""
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

    # --- reads -----------------------------------------------------------------------------------
    @staticmethod
    def _check_range(start: datetime, end: datetime) -> tuple[int, int]:
        if start is None or end is None:
            raise ValueError("start and end are required (reads never cover the whole history)")
        start_ns, end_ns = to_ns(start), to_ns(end)
        if end_ns < start_ns:
            raise ValueError("end must not be before start")
        return start_ns, end_ns

    def read(
        self,
        *,
        collection: Collection,
        series: SeriesKey,
        start: datetime,
        end: datetime,
        max_points: int | None = None,
        method: Downsample = Downsample.MEAN,
    ) -> SeriesData:
        table = self._point_table(collection)
        start_ns, end_ns = self._check_range(start, end)
        method = Downsample(method)
        if max_points is not None and max_points < 1:
            raise ValueError("max_points must be at least 1")
        predictions = Collection(collection) is Collection.PREDICTIONS
        empty = SeriesData(series, np.empty(0, dtype=np.int64), np.empty(0), total_points=0)
        sid = self._series_id(collection, series)
        if sid is None:
            return empty
        window = "series_id = %s AND time >= %s AND time <= %s"
        params = [sid, start_ns, end_ns]
        extra_cols = ", validity, corrected_value" if predictions else ""
        raw_sql = f"SELECT time, value{extra_cols} FROM {table} WHERE {window} ORDER BY time"
        if max_points is None:
            rows = self._fetch(raw_sql, params)
            return self._series_data(series, rows, predictions, total=len(rows))
        total = int(self._fetch(f"SELECT COUNT(*) FROM {table} WHERE {window}", params)[0][0])
        if total <= max_points:
            return self._series_data(series, self._fetch(raw_sql, params), predictions, total=total)
        if method is Downsample.MEAN:
            width = bucket_width(start_ns, end_ns, max_points)
            # No ORDER BY: PostgreSQL then hash-aggregates instead of sorting every point by bucket (it
            # cannot know the bucket grows with time); the few buckets are ordered in NumPy.
            rows = self._fetch(
                f"SELECT (time - %s) / %s AS bucket, AVG(value), MIN(value), MAX(value), COUNT(*)"
                f" FROM {table} WHERE {window} GROUP BY bucket",
                [start_ns, width, *params],
            )
            rows.sort(key=lambda row: row[0])
            buckets = np.array([r[0] for r in rows], dtype=np.int64)
            return SeriesData(
                series,
                times_ns=start_ns + buckets * width,
                values=np.array([r[1] for r in rows], dtype=np.float64),
                fields={
                    "min": np.array([r[2] for r in rows], dtype=np.float64),
                    "max": np.array([r[3] for r in rows], dtype=np.float64),
                    "count": np.array([r[4] for r in rows], dtype=np.int64),
                },
                downsampled=method.value,
                total_points=total,
            )
        if method is Downsample.MINMAX:
            # Per-bucket min and max by hash aggregation, joined back to find their points: about twice
            # as fast as ranking every point with window functions (two sorts).
            width = bucket_width(start_ns, end_ns, max(1, max_points // 2))
            point_cols = ", p.validity, p.corrected_value" if predictions else ""
            rows = self._fetch(
                f"WITH b AS (SELECT (time - %s) / %s AS bucket, MIN(value) AS lo, MAX(value) AS hi"
                f" FROM {table} WHERE {window} GROUP BY bucket)"
                f" SELECT p.time, p.value{point_cols}, b.bucket, b.lo, b.hi FROM {table} p"
                " JOIN b ON (p.time - %s) / %s = b.bucket AND (p.value = b.lo OR p.value = b.hi)"
                " WHERE p.series_id = %s AND p.time >= %s AND p.time <= %s ORDER BY p.time",
                [start_ns, width, *params, start_ns, width, *params],
            )
            data = self._series_data(series, [r[:-3] for r in rows], predictions, total=total)
            if rows:
                bucket = np.array([r[-3] for r in rows], dtype=np.int64)
                lo = data.values == np.array([r[-2] for r in rows], dtype=np.float64)
                hi = data.values == np.array([r[-1] for r in rows], dtype=np.float64)
                # Ties: the earliest minimum and the earliest maximum of each bucket.
                first_lo = np.flatnonzero(lo)[np.unique(bucket[lo], return_index=True)[1]]
                first_hi = np.flatnonzero(hi)[np.unique(bucket[hi], return_index=True)[1]]
                keep = np.union1d(first_lo, first_hi)
                data = SeriesData(
                    series,
                    data.times_ns[keep],
                    data.values[keep],
                    {name: arr[keep] for name, arr in data.fields.items()},
                    total_points=total,
                )
            data.downsampled = method.value
            return data
        data = self._series_data(series, self._fetch(raw_sql, params), predictions, total=total)
        keep = lttb(data.times_ns, data.values, max_points)
        return SeriesData(
            series,
            times_ns=data.times_ns[keep],
            values=data.values[keep],
            fields={name: arr[keep] for name, arr in data.fields.items()},
            downsampled=method.value,
            total_points=total,
        )

    @staticmethod
    def _series_data(series: SeriesKey, rows: list[tuple], predictions: bool, *, total: int) -> SeriesData:
        if not rows:
            return SeriesData(series, np.empty(0, dtype=np.int64), np.empty(0), total_points=total)
        columns = list(zip(*rows, strict=True))
        fields: dict[str, np.ndarray] = {}
        if predictions:
            fields["validity"] = np.array(columns[2], dtype=object)
            fields["corrected_value"] = np.array([np.nan if c is None else c for c in columns[3]], dtype=np.float64)
        return SeriesData(
            series,
            times_ns=np.fromiter(columns[0], dtype=np.int64, count=len(rows)),
            values=np.fromiter(columns[1], dtype=np.float64, count=len(rows)),
            fields=fields,
            total_points=total,
        )

    def latest(self, *, collection: Collection, where: SeriesFilter) -> list[Point]:
        table = self._point_table(collection)
        predictions = Collection(collection) is Collection.PREDICTIONS
        clause, params = self._series_where(collection, where)
        extra_cols = ", p.validity, p.corrected_value" if predictions else ""
        tags = ", ".join("s." + c for c in TAG_COLUMNS)
        rows = self._fetch(
            f"SELECT {tags}, p.time, p.value{extra_cols} FROM {SERIES_TABLE} s"
            f" JOIN {table} p ON p.series_id = s.id AND p.time = s.last_time"
            f" WHERE {clause} AND s.point_count > 0 ORDER BY {tags}",
            params,
        )
        points = []
        for row in rows:
            fields: dict[str, Any] = {}
            if predictions:
                fields = {"validity": row[9], "corrected_value": row[10]}
            points.append(Point(SeriesKey(*row[:7]), from_ns(row[7]), float(row[8]), fields))
        return points

    def list_series(
        self,
        *,
        collection: Collection,
        where: SeriesFilter,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SeriesInfo]:
        """Without a range: the series table's statistics. With one: counted over the range (index scans)."""
        table = self._point_table(collection)
        clause, params = self._series_where(collection, where)
        tags = ", ".join("s." + c for c in TAG_COLUMNS)
        if start is None and end is None:
            rows = self._fetch(
                f"SELECT {tags}, s.first_time, s.last_time, s.point_count FROM {SERIES_TABLE} s"
                f" WHERE {clause} AND s.point_count > 0 ORDER BY {tags}",
                params,
            )
        else:
            if start is not None:
                clause += " AND p.time >= %s"
                params.append(to_ns(start))
            if end is not None:
                clause += " AND p.time <= %s"
                params.append(to_ns(end))
            rows = self._fetch(
                f"SELECT {tags}, MIN(p.time), MAX(p.time), COUNT(*) FROM {SERIES_TABLE} s"
                f" JOIN {table} p ON p.series_id = s.id WHERE {clause} GROUP BY s.id, {tags} ORDER BY {tags}",
                params,
            )
        return [SeriesInfo(SeriesKey(*row[:7]), from_ns(row[7]), from_ns(row[8]), int(row[9])) for row in rows]

    def groups(
        self,
        *,
        collection: Collection = Collection.RAW,
        project_name: str | None = None,
        device_id: str | None = None,
        since: datetime | None = None,
    ) -> list[GroupInfo]:
        self._point_table(collection)
        clause, params = self._series_where(collection, SeriesFilter(project_name=project_name, device_id=device_id))
        # One pass over the series table (statistics kept by writes), never over the points.
        rows = self._fetch(
            "SELECT s.project_name, s.device_id, s.batch_id, s.observed_property, s.first_time, s.last_time,"
            f" s.point_count FROM {SERIES_TABLE} s WHERE {clause} AND s.point_count > 0",
            params,
        )
        acc: dict[GroupKey, list[Any]] = {}
        for project, device, batch, prop, first, last, count in rows:
            key = GroupKey(project, device, batch)
            entry = acc.setdefault(key, [first, last, 0, set()])
            entry[0], entry[1] = min(entry[0], first), max(entry[1], last)
            entry[2] += int(count)
            entry[3].add(prop)
        since_ns = to_ns(since) if since is not None else None
        return [
            GroupInfo(key, from_ns(first), from_ns(last), count, tuple(sorted(props)))
            for key, (first, last, count, props) in sorted(acc.items())
            if since_ns is None or last >= since_ns
        ]

    def snapshots_stored(
        self,
        *,
        group: GroupKey,
        variables: tuple[str, ...],
        after: datetime | None,
        until: datetime | None = None,
        max_age: timedelta,
        limit: int | None = None,
    ) -> SnapshotSet:
        """As-of rows at each timestamp of the requested variables (raw, non-lab series) in (after, until].

        Lab samples are not snapshot inputs (they are the targets predictions are judged against).
        One query finds the row times, one fetches every variable's points in
        [first row - max_age, last row], one finds the last point before that window (to tell a stale
        input from a missing one); the alignment itself is NumPy ``searchsorted``.
        """
        variables = tuple(variables)
        if not variables:
            raise ValueError("variables must name at least one variable")
        if len(set(variables)) != len(variables):
            raise ValueError("variables must not repeat")
        max_age_ns = int(max_age.total_seconds() * NS_PER_S)
        if max_age_ns < 0:
            raise ValueError("max_age must not be negative")
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        table = POINT_TABLES[Collection.RAW]
        empty = SnapshotSet(
            group, variables, np.empty(0, dtype=np.int64), np.empty((0, len(variables))), np.empty(0, dtype=bool), []
        )
        series = self._group_series(
            Collection.RAW,
            group,
            f" AND source <> %s AND observed_property IN ({_placeholders(len(variables))})",
            [LAB_SOURCE, *variables],
        )
        if not series:
            return empty
        ids = [int(r[0]) for r in series]
        id_list = _placeholders(len(ids))
        clause, params = f"series_id IN ({id_list})", list(ids)
        if after is not None:
            clause += " AND time > %s"
            params.append(to_ns(after))
        if until is not None:
            clause += " AND time <= %s"
            params.append(to_ns(until))
        sql = f"SELECT DISTINCT time FROM {table} WHERE {clause} ORDER BY time"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(int(limit))
        row_times = np.array([r[0] for r in self._fetch(sql, params)], dtype=np.int64)
        if row_times.shape[0] == 0:
            return empty
        low, high = int(row_times[0]) - max_age_ns, int(row_times[-1])
        rows = self._fetch(
            f"SELECT series_id, time, value FROM {table} WHERE series_id IN ({id_list})"
            " AND time >= %s AND time <= %s ORDER BY series_id, time",
            [*ids, low, high],
        )
        prior_rows = self._fetch(
            f"SELECT s.id, (SELECT MAX(p.time) FROM {table} p WHERE p.series_id = s.id AND p.time < %s)"
            f" FROM {SERIES_TABLE} s WHERE s.id IN ({id_list})",
            [low, *ids],
        )
        prop_of = {int(r[0]): r[1] for r in series}
        if rows:
            cols = list(zip(*rows, strict=True))
            sids = np.fromiter(cols[0], dtype=np.int64, count=len(rows))
            times = np.fromiter(cols[1], dtype=np.int64, count=len(rows))
            values = np.fromiter(cols[2], dtype=np.float64, count=len(rows))
        else:
            sids = times = np.empty(0, dtype=np.int64)
            values = np.empty(0)
        var_times, var_values, priors = [], [], []
        for name in variables:
            mine = [sid for sid, prop in prop_of.items() if prop == name]
            mask = np.isin(sids, mine)
            t, v = times[mask], values[mask]
            if len(mine) > 1:  # the same property from two sources: merge by time
                order = np.argsort(t, kind="stable")
                t, v = t[order], v[order]
            var_times.append(t)
            var_values.append(v)
            before = [int(r[1]) for r in prior_rows if int(r[0]) in mine and r[1] is not None]
            priors.append(max(before) if before else None)
        matrix, complete, reasons = asof_matrix(
            row_times, variables, var_times, var_values, max_age_ns=max_age_ns, prior_times=priors
        )
        return SnapshotSet(group, variables, row_times, matrix, complete, reasons)

    # --- deletes ---------------------------------------------------------------------------------
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
            id_list = _placeholders(len(ids))
            clause, params = f"series_id IN ({id_list})", list(ids)
            if start is not None:
                clause += " AND time >= %s"
                params.append(to_ns(start))
            if end is not None:
                clause += " AND time <= %s"
                params.append(to_ns(end))
            with self.connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {table} WHERE {clause}", params)
                deleted = cursor.rowcount
            if deleted:
                self.refresh_stats(ids)
            with self.connection.cursor() as cursor:
                # Series left without points disappear too, so pickers never list empty batches.
                cursor.execute(f"DELETE FROM {SERIES_TABLE} WHERE id IN ({id_list}) AND point_count = 0", ids)
        return int(deleted)

    # --- metadata --------------------------------------------------------------------------------
    def metadata_write(self, items: Iterable[VariableMetadata]) -> int:
        from ..models import VariableMetadata as MetadataRow

        latest: dict[tuple[str, str, str], VariableMetadata] = {}
        problems: list[Problem] = []
        for i, item in enumerate(items):
            for name in ("project_name", "device_id", "observed_property"):
                value = getattr(item, name)
                if not isinstance(value, str) or not value or len(value) > MAX_TAG_LENGTH:
                    problems.append(
                        Problem(name, f"must be a non-empty string of at most {MAX_TAG_LENGTH} characters", point=i)
                    )
            if not isinstance(item.decimals, int) or not 0 <= item.decimals <= 15:
                problems.append(Problem("decimals", "must be an integer between 0 and 15", point=i))
            if len(item.unit or "") > 64:
                problems.append(Problem("unit", "is longer than 64 characters", point=i))
            if len(item.display_name or "") > 200:
                problems.append(Problem("display_name", "is longer than 200 characters", point=i))
            latest[(item.project_name, item.device_id, item.observed_property)] = item
        if problems:
            raise InvalidBatch(problems)
        if not latest:
            return 0
        MetadataRow.objects.using(self.alias).bulk_create(
            [
                MetadataRow(
                    project_name=m.project_name,
                    device_id=m.device_id,
                    observed_property=m.observed_property,
                    unit=m.unit or "",
                    display_name=m.display_name or "",
                    decimals=m.decimals,
                )
                for m in latest.values()
            ],
            update_conflicts=True,
            unique_fields=["project_name", "device_id", "observed_property"],
            update_fields=["unit", "display_name", "decimals"],
            batch_size=500,
        )
        return len(latest)

    def metadata_read(self, *, project_name: str, device_id: str | None = None) -> list[VariableMetadata]:
        from ..models import VariableMetadata as MetadataRow

        rows = MetadataRow.objects.using(self.alias).filter(project_name=project_name)
        if device_id is not None:
            rows = rows.filter(device_id=device_id)
        return [
            VariableMetadata(r.project_name, r.device_id, r.observed_property, r.unit, r.display_name, r.decimals)
            for r in rows.order_by("device_id", "observed_property")
        ]

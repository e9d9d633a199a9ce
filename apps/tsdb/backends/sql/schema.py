"""The SQL backend's tables: health, creation (the tsdb migrations) and TimescaleDB set-up.

The tables themselves are the ``apps.tsdb.models`` migrations: ``ensure_collections`` applies them to the
backend's database when they are missing.

TimescaleDB
  When the ``timescaledb`` extension is available on the server, ``ensure_collections`` turns both point
  tables into hypertables (7-day chunks on the integer time column, ``integer_now`` in ns) with a
  compression policy segmenting by series, and a retention policy (STAMM's 90 / 180 days unless the
  ``RETENTION_DAYS`` option says otherwise). Without it, nothing changes: plain tables, BRIN + btree.
"""

from __future__ import annotations

from django.db import DatabaseError, transaction

from ...types import NS_PER_S, BackendHealth, Collection
from ..base import BackendError
from .store import METADATA_TABLE, POINT_TABLES, SERIES_TABLE, SQLStore

NS_PER_DAY = 86_400 * NS_PER_S


class SQLSchema(SQLStore):
    """``ping``, ``ensure_collections`` and the TimescaleDB set-up of ``SQLBackend``."""

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

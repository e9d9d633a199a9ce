"""What every part of the SQL backend stands on: its tables, its options, its connection, shared clauses.

``SQLBackend`` is put together from one mixin per job (``schema``, ``series``, ``writes``, ``reads``,
``snapshots``, ``metadata``); each subclasses ``SQLStore``, so each statement it runs goes through the
same connection (Django's own, so writes join the caller's ``transaction.atomic``) and names the same
tables.

Options (``settings.TSDB["OPTIONS"]``): ``DATABASE`` (alias, default ``"default"``), ``SQLITE_CHUNK``
(rows per executemany, 50 000), ``TIMESCALE`` (use TimescaleDB when present, default True),
``COMPRESS_AFTER_DAYS`` (7), ``RETENTION_DAYS`` (``{"raw": 90, "predictions": 180}``; 0 keeps forever).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connections

from ...types import SERIES_TAGS, Collection, GroupKey, SeriesFilter, bound_ns
from ..base import TimeSeriesBackend

SERIES_TABLE = "tsdb_series"
METADATA_TABLE = "tsdb_variablemetadata"
POINT_TABLES = {Collection.RAW: "tsdb_rawpoint", Collection.PREDICTIONS: "tsdb_predictionpoint"}
#: Session-local staging tables of the overwriting write path (``writes``).
STAGE_TABLES = {Collection.RAW: "tsdb_stage_raw", Collection.PREDICTIONS: "tsdb_stage_predictions"}
#: The series table's tag columns, in ``SeriesKey`` order (so a row's tags build a key as they come).
TAG_COLUMNS = SERIES_TAGS
#: STAMM's retention, in days per collection (TimescaleDB only).
DEFAULT_RETENTION_DAYS = {"raw": 90, "predictions": 180}


def placeholders(n: int) -> str:
    """``%s, %s, ...``: ``n`` parameter markers."""
    return ", ".join(["%s"] * n)


def point_columns(collection: Collection) -> str:
    """The column list of a collection's point table, in COPY order."""
    predictions = Collection(collection) is Collection.PREDICTIONS
    return "series_id, time, value" + (", validity, corrected_value" if predictions else "")


class SQLStore(TimeSeriesBackend):
    """The options and the plumbing every part of ``SQLBackend`` uses (see the module docstring)."""

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

    @classmethod
    def _point_table(cls, collection: Collection) -> str:
        """The point table of a collection that holds points (``ValueError`` for any other)."""
        return POINT_TABLES[cls._points_collection(collection)]

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
        return f"{column} IN ({placeholders(len(ids))})", list(ids)

    @staticmethod
    def _group_where(
        collection: Collection, group: GroupKey, extra: str = "", params: Sequence[Any] = ()
    ) -> tuple[str, list[Any]]:
        """A group's series rows (plus ``extra``): the WHERE clause on the series table and its parameters."""
        return (
            f"collection = %s AND project_name = %s AND device_id = %s AND batch_id = %s{extra}",
            [Collection(collection).value, group.project_name, group.device_id, group.batch_id, *params],
        )

    def _group_series(
        self, collection: Collection, group: GroupKey, extra: str = "", params: Sequence[Any] = ()
    ) -> list[tuple]:
        """``(id, observed_property, source)`` of a group's series, by id."""
        clause, values = self._group_where(collection, group, extra, params)
        return self._fetch(
            f"SELECT id, observed_property, source FROM {SERIES_TABLE} WHERE {clause} ORDER BY id", values
        )

    @staticmethod
    def _points_where(
        series_ids: Sequence[int],
        *,
        after: datetime | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> tuple[str, list[Any]]:
        """Points of ``series_ids`` with time after ``after`` (exclusive), from ``start`` to ``end``
        (inclusive): the WHERE clause and its parameters, for the bounds that are not None."""
        clause, params = f"series_id IN ({placeholders(len(series_ids))})", list(series_ids)
        for bound, operator in ((after, ">"), (start, ">="), (end, "<=")):
            if bound is not None:
                clause += f" AND time {operator} %s"
                params.append(bound_ns(bound))
        return clause, params

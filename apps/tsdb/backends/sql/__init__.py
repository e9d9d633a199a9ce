"""The SQL backend: the time series live in the Django database (SQLite or PostgreSQL, TimescaleDB when present).

Schema (see ``apps.tsdb.models``): a ``Series`` table of tag sets and two point tables keyed by
``(series_id, time)`` with ``time`` in int64 nanoseconds. Every statement runs on Django's own
connection, so a write joins the caller's ``transaction.atomic`` block and a rejected batch (validation
runs before any SQL) writes nothing. ``settings.TSDB["BACKEND"]`` names ``apps.tsdb.backends.sql.SQLBackend``.

One class, one module per job (each a mixin on ``store.SQLStore``; docs/tsdb.md describes the design):

- ``store``: tables, options, the connection and the clauses every part shares;
- ``schema``: health, table creation (the tsdb migrations), TimescaleDB hypertables and policies;
- ``series``: series ids by tag set, created when missing, remembered per process;
- ``columns``: a batch as de-duplicated database columns and as binary COPY rows (pure NumPy);
- ``writes``: ``write`` (append COPY or staging upsert), series statistics, ``delete``;
- ``stream``: the PostgreSQL write stream that keeps one COPY open across batches;
- ``reads``: ``read`` with server-side downsampling, ``latest``, ``list_series``, ``groups``;
- ``snapshots``: as-of snapshots of a group's stored inputs;
- ``metadata``: the metadata collection.
"""

from __future__ import annotations

from ...types import Collection
from ..base import WriteStream
from .metadata import SQLMetadata
from .reads import SQLReads
from .schema import SQLSchema
from .snapshots import SQLSnapshots
from .stream import PostgresAppendStream
from .writes import SQLWrites


class SQLBackend(SQLSchema, SQLWrites, SQLReads, SQLSnapshots, SQLMetadata):
    """Time series in the Django database; see the package docstring for the design."""

    name = "sql"
    transactional = True

    def write_stream(self, collection: Collection) -> WriteStream:
        """On PostgreSQL, a stream that keeps one COPY open while batches append (``stream``)."""
        if self.is_postgres and Collection(collection) is Collection.RAW:
            return PostgresAppendStream(self, collection)
        return super().write_stream(collection)


__all__ = ["SQLBackend"]

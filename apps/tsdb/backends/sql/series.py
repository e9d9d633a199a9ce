"""Series ids of the SQL backend: found or created by tag set, remembered per process.

Points are stored against a series id; the ``tsdb_series`` row holds the tags once. A writer sends the
same series in every request, so ids seen before are remembered (``SERIES_ID_CACHE_SIZE`` per
collection) and confirmed by primary key, which skips matching seven tag columns; a row that no longer
carries the remembered tags is a miss, so the cache can never route points to the wrong series.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...types import Collection, SeriesKey
from .store import SERIES_TABLE, TAG_COLUMNS, SQLStore

#: Series ids a process remembers per collection before it starts over.
SERIES_ID_CACHE_SIZE = 50_000


class SQLSeriesIds(SQLStore):
    """Series lookup and creation for ``SQLBackend`` (the id cache lives on the backend instance)."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        #: Per collection, series ids seen by this process (checked against the row on every use).
        self._id_cache: dict[str, dict[SeriesKey, int]] = {}

    def _series_id(self, collection: Collection, key: SeriesKey) -> int | None:
        """The id of one series, None when it does not exist (a read never creates one)."""
        rows = self._fetch(
            f"SELECT id FROM {SERIES_TABLE} WHERE collection = %s AND "
            + " AND ".join(f"{c} = %s" for c in TAG_COLUMNS),
            [Collection(collection).value, *(getattr(key, c) for c in TAG_COLUMNS)],
        )
        return int(rows[0][0]) if rows else None

    def _series_ids_for(
        self, collection: Collection, keys: list[SeriesKey], *, lock: bool = False
    ) -> dict[SeriesKey, int]:
        """Ids of ``keys``, creating the missing series rows (concurrency-safe: ON CONFLICT DO NOTHING).

        With ``lock`` (PostgreSQL), the rows are also locked for the transaction (``FOR UPDATE``, in id
        order, as every SQL writer does), which serialises writers of the same series and keeps a series
        from being deleted while points are written to it. PostgreSQL looks all keys up in one statement
        (the keys unnested from arrays); SQLite, which serialises writers itself, one group at a time.
        """
        from ...models import Series

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

"""The InfluxDB backend: line protocol on ``/write``, InfluxQL on ``/query``, nothing else.

Those two endpoints are what InfluxDB 1.x serves natively, 2.x through its v1 compatibility API and 3.x
as well, so one client works against all of them, including an existing STAMM InfluxDB 2.7: databases
(buckets) ``stamm_raw``, ``stamm_predictions``, ``stamm_metadata``, measurement ``device_obs`` (reads also
take ``bioreactor_obs``), STAMM tags and fields (``../shared/docs/stamm-contracts.md`` §1).

Writes
  ``batch_validate`` runs on the whole batch and every line is formatted before the first request is
  sent, so a batch with any bad point sends nothing. The lines (sorted by series then time, duplicates
  resolved with the last one winning) go out gzip-compressed in requests of ``BATCH_SIZE`` lines (5 000)
  with ``precision=ns``. InfluxDB makes each point idempotent on (series, time) natively. What it does
  not offer is atomicity across requests: if the server fails half-way through a large batch, the
  earlier requests stay written and ``BackendError`` says how many points were; re-sending the whole
  batch is safe because writes are idempotent.

Reads
  InfluxQL with every identifier double-quoted and every string literal single-quoted, backslash-escaped
  (``influxql``: ``ident`` / ``literal``); every query has both time bounds, as integer nanoseconds. ``mean`` is
  ``GROUP BY time(w, offset)`` server-side (buckets start at ``start``), ``minmax`` is ``top``/``bottom``
  per bucket server-side (real points), ``lttb`` fetches the range and reduces it in NumPy.

Auth: ``TOKEN`` (sent as ``Authorization: Token ...``, InfluxDB 2.x/3.x) or ``USERNAME``/``PASSWORD``
(HTTP basic, InfluxDB 1.x with auth enabled, or 2.x v1 authorizations).

Options (``settings.TSDB["OPTIONS"]``): ``URL``, ``TOKEN``, ``USERNAME``, ``PASSWORD``, ``TIMEOUT``
(seconds), ``BATCH_SIZE`` (lines per write request, 5 000), ``DATABASES`` (collection -> database name,
STAMM's by default), ``RETENTION`` (collection -> InfluxQL duration; 90d / 180d / INF as upstream).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import numpy as np
import requests

from ..asof import asof_matrix, bucket_width, last_wins, lttb, minmax_buckets
from ..lineprotocol_format import format_batch, format_metadata, series_prefix
from ..types import (
    DEFAULT_BUCKETS,
    LAB_SOURCE,
    MAX_TIME_NS,
    READ_MEASUREMENTS,
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
    bound_ns,
    from_ns,
    to_ns,
)
from ..validation import InvalidBatch, Problem, batch_validate, metadata_validate
from .base import BackendError, TimeSeriesBackend
from .influx_http import InfluxHttp
from .influxql import (
    ALL_TIME,
    MEASUREMENTS,
    clamped_range,
    filter_tags,
    ident,
    literal,
    result_points,
    result_rows,
    series_key,
    tag_clause,
    time_bounds,
    where_clause,
)

DEFAULT_RETENTION = {Collection.RAW: "90d", Collection.PREDICTIONS: "180d", Collection.METADATA: "INF"}
_DURATION = re.compile(r"^(INF|[1-9][0-9]*[hdw])$")


class InfluxBackend(InfluxHttp, TimeSeriesBackend):
    """Time series in InfluxDB through its HTTP API (``/ping``, ``/write``, ``/query``)."""

    name = "influxdb"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        url = str(self.options.get("URL") or "http://127.0.0.1:8086").rstrip("/")
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"URL {url!r} must be an http:// or https:// address")
        self.url = url
        self.timeout = float(self.options.get("TIMEOUT") or 10)
        self.batch_size = int(self.options.get("BATCH_SIZE", 5000))
        if not 1 <= self.batch_size <= 100_000:
            raise ValueError("BATCH_SIZE must be between 1 and 100000 lines")
        databases = dict(self.options.get("DATABASES") or {})
        self.databases = {c: str(databases.get(c.value, DEFAULT_BUCKETS[c])) for c in Collection}
        retention = dict(self.options.get("RETENTION") or {})
        self.retention = {c: str(retention.get(c.value, DEFAULT_RETENTION[c])) for c in Collection}
        for collection, duration in self.retention.items():
            if not _DURATION.match(duration):
                raise ValueError(f"RETENTION[{collection.value!r}]={duration!r} is not INF or a duration like 90d")
        token = self.options.get("TOKEN") or ""
        username = self.options.get("USERNAME") or ""
        password = self.options.get("PASSWORD") or ""
        if token and username:
            raise ValueError("give either TOKEN or USERNAME/PASSWORD, not both")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"
        elif username:
            self.session.auth = (username, password)
        self._last_metadata_ns = 0

    # --- health and collections ------------------------------------------------------------------
    def ping(self) -> BackendHealth:
        try:
            response = self._request("GET", "/ping")
            if response.status_code not in (200, 204):
                return BackendHealth(ok=False, detail=f"{self.url}/ping answered {response.status_code}")
            version = response.headers.get("X-Influxdb-Version", "unknown version")
            results = self.query("SHOW DATABASES")
        except BackendError as exc:
            return BackendHealth(ok=False, detail=str(exc), collections={})
        names = {row[0] for s in results[0].get("series", []) for row in s.get("values", [])}
        collections = {c.value: self.databases[c] in names for c in Collection}
        missing = [self.databases[c] for c in Collection if not collections[c.value]]
        ok = not missing
        detail = f"InfluxDB {version} at {self.url}, " + (
            "collections ready" if ok else f"missing: {', '.join(missing)} (run tsdb_ensure_collections)"
        )
        return BackendHealth(ok=ok, detail=detail, collections=collections)

    def ensure_collections(self) -> None:
        """CREATE DATABASE for each collection and set its default retention policy's duration.

        Idempotent. On InfluxDB 2.x/3.x the v1 API cannot create buckets: create them (with DBRP
        mappings on 2.x) with the server's own tools; the error says so.
        """
        for collection in Collection:
            database = self.databases[collection]
            duration = self.retention[collection]
            try:
                self.query(f"CREATE DATABASE {ident(database)}")
                results = self.query(f"SHOW RETENTION POLICIES ON {ident(database)}")
            except BackendError as exc:
                raise BackendError(
                    f"could not create database {database}: {exc}. On InfluxDB 2.x/3.x create the bucket "
                    "(and a DBRP mapping on 2.x) with the server's tools; see docs/influxdb.md"
                ) from exc
            default = None
            for series in results[0].get("series", []):
                columns = series["columns"]
                for row in series.get("values", []):
                    if row[columns.index("default")]:
                        default = row[columns.index("name")]
            if default is None:
                self.query(
                    f'CREATE RETENTION POLICY "autogen" ON {ident(database)} DURATION {duration} REPLICATION 1 DEFAULT'
                )
            else:
                self.query(f"ALTER RETENTION POLICY {ident(default)} ON {ident(database)} DURATION {duration}")

    # --- writes ----------------------------------------------------------------------------------
    def write(self, batch: PointBatch) -> int:
        batch_validate(batch)
        if len(batch) == 0:
            return 0
        keep = last_wins(batch.series_index, batch.times_ns)
        if keep.shape[0] != len(batch) or np.any(np.diff(keep) < 0):
            batch = PointBatch(
                collection=batch.collection,
                series=batch.series,
                series_index=batch.series_index[keep],
                times_ns=batch.times_ns[keep],
                values=batch.values[keep],
                fields={name: column[keep] for name, column in batch.fields.items()},
            )
        try:  # format the tag sets once up front: a bad one fails the batch before anything is sent
            for key in batch.series:
                series_prefix(key)
        except ValueError as exc:
            raise InvalidBatch([Problem("tags", str(exc))]) from None
        for name, column in batch.fields.items():  # line protocol has no way to carry a newline
            if column.dtype == object:
                bad = [i for i, v in enumerate(column.tolist()) if isinstance(v, str) and ("\n" in v or "\r" in v)]
                if bad:
                    raise InvalidBatch([Problem(name, "must not contain a line break", point=bad[0])])
        database = self.databases[batch.collection]
        sent = 0
        # One slice of points at a time, so memory holds one request's lines, not the whole batch's.
        for start in range(0, len(batch), self.batch_size):
            stop = start + self.batch_size
            part = PointBatch(
                collection=batch.collection,
                series=batch.series,
                series_index=batch.series_index[start:stop],
                times_ns=batch.times_ns[start:stop],
                values=batch.values[start:stop],
                fields={name: column[start:stop] for name, column in batch.fields.items()},
            )
            lines = format_batch(part)
            sent += self._write_lines(database, lines, already=sent, total=len(batch))
        return sent

    # --- reads -----------------------------------------------------------------------------------
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
        collection, start_ns, end_ns, method = self._read_arguments(
            collection=collection, start=start, end=end, max_points=max_points, method=method
        )
        start_ns, end_ns = clamped_range(start_ns, end_ns)
        predictions = collection is Collection.PREDICTIONS
        database = self.databases[collection]
        where = where_clause(series.tags() | {"model_id": series.model_id, "version": series.version}, start_ns, end_ns)
        columns = '"value"' + (', "validity", "corrected_value"' if predictions else "")
        select_raw = f"SELECT {columns} FROM {MEASUREMENTS}{where}"
        if max_points is None:
            times, values, fields = result_points(self.query(select_raw, database=database)[0], predictions)
            return SeriesData(series, times, values, fields, total_points=int(times.shape[0]))
        counted = self.query(f'SELECT count("value") FROM {MEASUREMENTS}{where}', database=database)[0]
        total = sum(int(rows[0][1]) for _t, _c, rows in result_rows(counted) if rows)
        if total <= max_points:
            times, values, fields = result_points(self.query(select_raw, database=database)[0], predictions)
            return SeriesData(series, times, values, fields, total_points=total)
        if method is Downsample.MEAN:
            return self._read_mean(series, database, where, start_ns, end_ns, max_points, total)
        if method is Downsample.MINMAX:
            width = bucket_width(start_ns, end_ns, max(1, max_points // 2))
            group = f" GROUP BY time({width}ns, {start_ns % width}ns) fill(none)"
            extra = ', "validity", "corrected_value"' if predictions else ""
            results = self.query(
                [
                    f'SELECT top("value", 1) AS "value"{extra} FROM {MEASUREMENTS}{where}{group}',
                    f'SELECT bottom("value", 1) AS "value"{extra} FROM {MEASUREMENTS}{where}{group}',
                ],
                database=database,
            )
            merged = {"series": [s for r in results for s in r.get("series", [])]}
            times, values, fields = result_points(merged, predictions)
            if times.shape[0] > max_points:  # both measurement names in use: reduce the union once more
                keep = minmax_buckets(times, values, start_ns=start_ns, end_ns=end_ns, max_points=max_points)
                times, values = times[keep], values[keep]
                fields = {name: column[keep] for name, column in fields.items()}
            return SeriesData(series, times, values, fields, downsampled=method.value, total_points=total)
        times, values, fields = result_points(self.query(select_raw, database=database)[0], predictions)
        keep = lttb(times, values, max_points)
        return SeriesData(
            series,
            times[keep],
            values[keep],
            {name: column[keep] for name, column in fields.items()},
            downsampled=method.value,
            total_points=total,
        )

    def _read_mean(
        self, series: SeriesKey, database: str, where: str, start_ns: int, end_ns: int, max_points: int, total: int
    ) -> SeriesData:
        width = bucket_width(start_ns, end_ns, max_points)
        result = self.query(
            'SELECT mean("value"), min("value"), max("value"), count("value")'
            f" FROM {MEASUREMENTS}{where} GROUP BY time({width}ns, {start_ns % width}ns) fill(none)",
            database=database,
        )[0]
        rows = [row for _t, _c, values in result_rows(result) for row in values]
        t = np.array([r[0] for r in rows], dtype=np.int64)
        mean = np.array([r[1] for r in rows], dtype=np.float64)
        low = np.array([r[2] for r in rows], dtype=np.float64)
        high = np.array([r[3] for r in rows], dtype=np.float64)
        count = np.array([r[4] for r in rows], dtype=np.int64)
        # Combine the buckets of both measurement names (a no-op when only device_obs is used).
        buckets, inverse = np.unique(t, return_inverse=True)
        n = buckets.shape[0]
        sums, counts = np.zeros(n), np.zeros(n, dtype=np.int64)
        np.add.at(sums, inverse, mean * count)
        np.add.at(counts, inverse, count)
        mins, maxs = np.full(n, np.inf), np.full(n, -np.inf)
        np.minimum.at(mins, inverse, low)
        np.maximum.at(maxs, inverse, high)
        return SeriesData(
            series,
            buckets,
            sums / np.maximum(counts, 1),
            {"min": mins, "max": maxs, "count": counts},
            downsampled=Downsample.MEAN.value,
            total_points=total,
        )

    def latest(self, *, collection: Collection, where: SeriesFilter) -> list[Point]:
        collection = self._points_collection(collection)
        predictions = collection is Collection.PREDICTIONS
        extra = ', "validity", "corrected_value"' if predictions else ""
        result = self.query(
            f'SELECT last("value") AS "value"{extra} FROM {MEASUREMENTS}{where_clause(filter_tags(where), *ALL_TIME)}'
            " GROUP BY *",
            database=self.databases[collection],
        )[0]
        newest: dict[SeriesKey, tuple[int, float, dict[str, Any]]] = {}
        for tags, columns, rows in result_rows(result):
            if not rows:
                continue
            key = series_key(tags)
            row = rows[0]
            fields: dict[str, Any] = {}
            if predictions:
                corrected = row[columns.index("corrected_value")]
                fields = {
                    "validity": row[columns.index("validity")] or "",
                    "corrected_value": np.nan if corrected is None else float(corrected),
                }
            if key not in newest or row[0] >= newest[key][0]:
                newest[key] = (int(row[0]), float(row[1]), fields)
        return [Point(key, from_ns(t), v, f) for key, (t, v, f) in sorted(newest.items())]

    def list_series(
        self,
        *,
        collection: Collection,
        where: SeriesFilter,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SeriesInfo]:
        collection = self._points_collection(collection)
        clause = f"FROM {MEASUREMENTS}{where_clause(filter_tags(where), *time_bounds(start, end))} GROUP BY *"
        results = self.query(
            [f'SELECT count("value") {clause}', f'SELECT first("value") {clause}', f'SELECT last("value") {clause}'],
            database=self.databases[collection],
        )
        counts: dict[SeriesKey, int] = defaultdict(int)
        firsts: dict[SeriesKey, int] = {}
        lasts: dict[SeriesKey, int] = {}
        for tags, _columns, rows in result_rows(results[0]):
            if rows and rows[0][1]:
                counts[series_key(tags)] += int(rows[0][1])
        for tags, _columns, rows in result_rows(results[1]):
            if rows:
                key = series_key(tags)
                firsts[key] = min(firsts.get(key, MAX_TIME_NS), int(rows[0][0]))
        for tags, _columns, rows in result_rows(results[2]):
            if rows:
                key = series_key(tags)
                lasts[key] = max(lasts.get(key, 0), int(rows[0][0]))
        return [
            SeriesInfo(key, from_ns(firsts[key]), from_ns(lasts[key]), count)
            for key, count in sorted(counts.items())
            if count and key in firsts and key in lasts
        ]

    def groups(
        self,
        *,
        collection: Collection = Collection.RAW,
        project_name: str | None = None,
        device_id: str | None = None,
        since: datetime | None = None,
    ) -> list[GroupInfo]:
        infos = self.list_series(
            collection=collection, where=SeriesFilter(project_name=project_name, device_id=device_id)
        )
        series = (
            (i.series.group, i.series.observed_property, to_ns(i.first_time), to_ns(i.last_time), i.point_count)
            for i in infos
        )
        return self._groups_of(series, since)

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

        One request fetches the variables' points in the window (``LIMIT`` per series when ``limit`` is
        given: the first ``limit`` row times are among each series' first ``limit`` points); a second
        fetches the points in [first row - max_age, window start) and each series' last point before
        that (so an old value reads "stale", not "missing"). The alignment is ``asof_matrix``.
        """
        variables, max_age_ns = self._snapshot_arguments(variables, max_age, limit)
        empty = SnapshotSet.empty(group, variables)
        database = self.databases[Collection.RAW]
        tags = {"project_name": group.project_name, "device_id": group.device_id, "batch_id": group.batch_id}
        selection = (
            f"{ident('source')} != {literal(LAB_SOURCE)} AND ("
            + " OR ".join(f"{ident('observed_property')} = {literal(v)}" for v in variables)
            + ")"
        )
        window_start = bound_ns(after) + 1 if after is not None else 0
        window_end = bound_ns(until) if until is not None else MAX_TIME_NS
        if window_end < window_start:
            return empty
        by = ' GROUP BY "observed_property", "source"'
        limit_clause = f" LIMIT {int(limit)}" if limit is not None else ""
        in_window = where_clause(tags, max(window_start, 0), window_end, selection)
        window = self.query(f'SELECT "value" FROM {MEASUREMENTS}{in_window}{by}{limit_clause}', database=database)[0]
        found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        for series_tags, _columns, rows in result_rows(window):
            found[series_tags.get("observed_property", "")].append(
                (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float64))
            )
        all_times = [t for parts in found.values() for t, _v in parts]
        if not all_times:
            return empty
        row_times = np.unique(np.concatenate(all_times))
        if limit is not None:
            row_times = row_times[:limit]
        low, high = int(row_times[0]) - max_age_ns, int(row_times[-1])
        statements = [
            f'SELECT last("value") FROM {MEASUREMENTS}{where_clause(tags, 0, max(low - 1, 0), selection)}{by}'
        ]
        if after is not None and low < window_start:
            statements.append(
                f'SELECT "value" FROM {MEASUREMENTS}{where_clause(tags, max(low, 0), window_start - 1, selection)}{by}'
            )
        results = self.query(statements, database=database) if low > 0 or len(statements) > 1 else [{}]
        priors: dict[str, int] = {}
        if low > 0:
            for series_tags, _columns, rows in result_rows(results[0]):
                if rows:
                    prop = series_tags.get("observed_property", "")
                    priors[prop] = max(priors.get(prop, 0), int(rows[0][0]))
        if len(statements) > 1:
            for series_tags, _columns, rows in result_rows(results[1]):
                found[series_tags.get("observed_property", "")].append(
                    (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float64))
                )
        var_times, var_values, prior_times = [], [], []
        for name in variables:
            parts = found.get(name, [])
            t = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, dtype=np.int64)
            v = np.concatenate([p[1] for p in parts]) if parts else np.empty(0)
            order = np.argsort(t, kind="stable")
            t, v = t[order], v[order]
            inside = (t >= low) & (t <= high)
            var_times.append(t[inside])
            var_values.append(v[inside])
            prior_times.append(priors.get(name))
        matrix, complete, reasons = asof_matrix(
            row_times, variables, var_times, var_values, max_age_ns=max_age_ns, prior_times=prior_times
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
        """``DROP SERIES`` for a whole batch, ``DELETE ... WHERE time`` for a range (InfluxDB 1.x only)."""
        database = self.databases[self._points_collection(collection)]
        tags = {"project_name": group.project_name, "device_id": group.device_id, "batch_id": group.batch_id}
        start_ns, end_ns = time_bounds(start, end)
        counted = self.query(
            f'SELECT count("value") FROM {MEASUREMENTS}{where_clause(tags, start_ns, end_ns)}', database=database
        )
        total = sum(int(rows[0][1]) for _t, _c, rows in result_rows(counted[0]) if rows)
        if total == 0:
            return 0
        if start is None and end is None:
            self.query(f"DROP SERIES FROM {MEASUREMENTS} WHERE {tag_clause(tags)}", database=database)
        else:
            self.query(
                [f"DELETE FROM {ident(m)}{where_clause(tags, start_ns, end_ns)}" for m in READ_MEASUREMENTS],
                database=database,
            )
        return total

    # --- metadata --------------------------------------------------------------------------------
    def metadata_write(self, items: Iterable[VariableMetadata]) -> int:
        latest = metadata_validate(items)
        if not latest:
            return 0
        # Upsert = a newer point: reads take each variable's last value, so the newest write wins.
        now = max(time.time_ns(), self._last_metadata_ns + 1)
        self._last_metadata_ns = now
        try:
            lines = format_metadata(latest, now)
        except ValueError as exc:
            raise InvalidBatch([Problem("metadata", str(exc))]) from None
        return self._write_lines(self.databases[Collection.METADATA], lines)

    def metadata_read(self, *, project_name: str, device_id: str | None = None) -> list[VariableMetadata]:
        tags = {"project_name": project_name, "device_id": device_id}
        result = self.query(
            'SELECT last("unit") AS "unit", last("display_name") AS "display_name", last("decimals") AS "decimals"'
            f' FROM {MEASUREMENTS}{where_clause(tags, *ALL_TIME)} GROUP BY "device_id", "observed_property"',
            database=self.databases[Collection.METADATA],
        )[0]
        items: dict[tuple[str, str], VariableMetadata] = {}
        for series_tags, columns, rows in result_rows(result):
            if not rows:
                continue
            row = dict(zip(columns, rows[0], strict=True))
            device, prop = series_tags.get("device_id", ""), series_tags.get("observed_property", "")
            items[(device, prop)] = VariableMetadata(
                project_name=project_name,
                device_id=device,
                observed_property=prop,
                unit=row.get("unit") or "",
                display_name=row.get("display_name") or "",
                decimals=int(row["decimals"]) if row.get("decimals") is not None else 2,
            )
        return [items[k] for k in sorted(items)]

    def close(self) -> None:
        self.session.close()


__all__ = ["InfluxBackend", "ident", "literal"]

"""The SQL backend's reads: ``read`` (with server-side downsampling), ``latest``, ``list_series``, ``groups``.

Every read takes a time range and is served by the primary-key btree ``(series_id, time)``. Downsampling
runs in SQL for ``mean`` (per-bucket avg/min/max/count) and ``minmax`` (each bucket's min and max point:
a per-bucket aggregate joined back to the points); ``lttb`` fetches the range's points and reduces them
in NumPy (``apps.tsdb.asof.lttb``). ``latest``, ``groups`` and ``list_series`` without a range read the
statistics the writes keep on the series rows, never the points.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from ...asof import bucket_width, lttb
from ...types import (
    Collection,
    Downsample,
    GroupInfo,
    GroupKey,
    Point,
    SeriesData,
    SeriesFilter,
    SeriesInfo,
    SeriesKey,
    bound_ns,
    from_ns,
)
from .series import SQLSeriesIds
from .store import POINT_TABLES, SERIES_TABLE, TAG_COLUMNS


class SQLReads(SQLSeriesIds):
    """``read``, ``latest``, ``list_series`` and ``groups`` of ``SQLBackend``."""

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
        table = POINT_TABLES[collection]
        predictions = collection is Collection.PREDICTIONS
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
                params.append(bound_ns(start))
            if end is not None:
                clause += " AND p.time <= %s"
                params.append(bound_ns(end))
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
        collection = self._points_collection(collection)
        clause, params = self._series_where(collection, SeriesFilter(project_name=project_name, device_id=device_id))
        # One pass over the series table (statistics kept by writes), never over the points.
        rows = self._fetch(
            "SELECT s.project_name, s.device_id, s.batch_id, s.observed_property, s.first_time, s.last_time,"
            f" s.point_count FROM {SERIES_TABLE} s WHERE {clause} AND s.point_count > 0",
            params,
        )
        return self._groups_of(((GroupKey(*row[:3]), *row[3:]) for row in rows), since)

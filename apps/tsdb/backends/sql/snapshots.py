"""The SQL backend's reads of a group's stored inputs: as-of snapshots (``snapshots_stored``) aligned at each
row time, and how many input points there are up to a time (``input_points_upto``).

The base class's ``snapshots`` adds derived inputs (``apps.tsdb.derived``) on top of these.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from ...asof import asof_matrix
from ...derived import split_derived
from ...types import LAB_SOURCE, Collection, GroupKey, SnapshotSet
from .store import POINT_TABLES, SERIES_TABLE, SQLStore, placeholders


def _inputs(variables: tuple[str, ...]) -> tuple[str, list[str]]:
    """The series-table condition of snapshot inputs: raw series of ``variables`` that are not lab samples
    (lab samples are the targets predictions are judged against)."""
    return f" AND source <> %s AND observed_property IN ({placeholders(len(variables))})", [LAB_SOURCE, *variables]


class SQLSnapshots(SQLStore):
    """``snapshots_stored`` and ``input_points_upto`` of ``SQLBackend``."""

    def input_points_upto(self, *, group: GroupKey, variables: tuple[str, ...], end_ns: int) -> int:
        """The series rows' point counts minus the points after ``end_ns`` (one statement; an index range
        scan of the newest points only). The counts are written in the same transaction as the points, so
        inside one read snapshot the two agree."""
        stored, _ = split_derived(tuple(variables))
        if not stored:
            return 0
        table = POINT_TABLES[Collection.RAW]
        clause, params = self._group_where(Collection.RAW, group, *_inputs(stored))
        rows = self._fetch(
            f"SELECT COALESCE(SUM(point_count - (SELECT COUNT(*) FROM {table} p"
            f" WHERE p.series_id = {SERIES_TABLE}.id AND p.time > %s)), 0) FROM {SERIES_TABLE} WHERE {clause}",
            [int(end_ns), *params],
        )
        return int(rows[0][0])

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
        variables, max_age_ns = self._snapshot_arguments(variables, max_age, limit)
        table = POINT_TABLES[Collection.RAW]
        series = self._group_series(Collection.RAW, group, *_inputs(variables))
        if not series:
            return SnapshotSet.empty(group, variables)
        ids = [int(r[0]) for r in series]
        id_list = placeholders(len(ids))
        clause, params = self._points_where(ids, after=after, end=until)
        sql = f"SELECT DISTINCT time FROM {table} WHERE {clause} ORDER BY time"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(int(limit))
        row_times = np.array([r[0] for r in self._fetch(sql, params)], dtype=np.int64)
        if row_times.shape[0] == 0:
            return SnapshotSet.empty(group, variables)
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

"""Framework-free NumPy helpers shared by the time-series backends.

- ``last_wins``: de-duplicate a batch on (series, time), keeping the last occurrence.
- ``bucket_width`` / ``mean_buckets`` / ``minmax_buckets``: time-bucket reductions, the NumPy twins of the
  SQL the SQL backend runs server-side (kept here for backends whose store lacks them, and as the
  reference the SQL is tested against).
- ``lttb``: Largest-Triangle-Three-Buckets (Steinarsson, 2013), a shape-preserving subset of real points.
- ``asof_matrix``: as-of alignment of several variables at a set of row times, within a maximum age,
  with the reason each incomplete row is incomplete.

Everything is vectorised except LTTB's bucket loop (which is O(buckets), each step vectorised).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def last_wins(series_index: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
    """Indices of the points to keep so that (series, time) is unique and the later duplicate wins.

    The result is ordered by (series, time), the order the point tables' primary key wants.
    """
    n = times_ns.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    # Stable sort by (series, time, position): the last position of each key is the one to keep.
    order = np.lexsort((np.arange(n), times_ns, series_index))
    s = series_index[order]
    t = times_ns[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    return order[last]


def bucket_width(start_ns: int, end_ns: int, buckets: int) -> int:
    """Integer bucket width (ns) so that [start, end] splits into at most ``buckets`` buckets."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    span = end_ns - start_ns + 1
    return max(1, -(-span // buckets))


def mean_buckets(
    times_ns: np.ndarray, values: np.ndarray, *, start_ns: int, end_ns: int, max_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-bucket (bucket start time, mean, min, max, count) of ascending points in [start, end]."""
    width = bucket_width(start_ns, end_ns, max_points)
    bucket = (times_ns - start_ns) // width
    keys, first, counts = np.unique(bucket, return_index=True, return_counts=True)
    sums = np.add.reduceat(values, first) if len(first) else np.empty(0)
    mins = np.minimum.reduceat(values, first) if len(first) else np.empty(0)
    maxs = np.maximum.reduceat(values, first) if len(first) else np.empty(0)
    return start_ns + keys * width, sums / np.maximum(counts, 1), mins, maxs, counts


def minmax_buckets(
    times_ns: np.ndarray, values: np.ndarray, *, start_ns: int, end_ns: int, max_points: int
) -> np.ndarray:
    """Indices (ascending) of each bucket's min and max point; at most ``max_points`` of them."""
    n = times_ns.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    width = bucket_width(start_ns, end_ns, max(1, max_points // 2))
    bucket = (times_ns - start_ns) // width
    idx = np.arange(n)
    by_min = np.lexsort((idx, values, bucket))  # per bucket ascending value, earliest first on ties
    by_max = np.lexsort((idx, -values, bucket))
    sb = bucket[by_min]
    first = np.ones(n, dtype=bool)
    first[1:] = sb[1:] != sb[:-1]
    keep = np.union1d(by_min[first], by_max[first])
    return keep


def lttb(times_ns: np.ndarray, values: np.ndarray, threshold: int) -> np.ndarray:
    """Indices of the points LTTB keeps (first and last always kept), ascending."""
    n = times_ns.shape[0]
    if threshold >= n or n <= 2:
        return np.arange(n)
    if threshold < 3:
        return np.array([0, n - 1]) if threshold == 2 else np.array([0])
    x = (times_ns - times_ns[0]).astype(np.float64)
    y = values.astype(np.float64)
    # Inner points 1..n-2 split into threshold-2 buckets.
    edges = np.linspace(1, n - 1, threshold - 1).astype(np.int64)
    keep = np.empty(threshold, dtype=np.int64)
    keep[0] = 0
    a = 0
    for i in range(threshold - 2):
        lo, hi = edges[i], edges[i + 1]
        if hi <= lo:
            hi = lo + 1
        # Average of the next bucket (or the last point for the final bucket).
        if i + 2 < len(edges):
            nlo, nhi = edges[i + 1], max(edges[i + 2], edges[i + 1] + 1)
            avg_x, avg_y = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        else:
            avg_x, avg_y = x[n - 1], y[n - 1]
        area = np.abs((x[a] - avg_x) * (y[lo:hi] - y[a]) - (x[a] - x[lo:hi]) * (avg_y - y[a]))
        a = lo + int(np.argmax(area))
        keep[i + 1] = a
    keep[-1] = n - 1
    return np.unique(keep)


def asof_matrix(
    row_times: np.ndarray,
    variables: Sequence[str],
    var_times: Sequence[np.ndarray],
    var_values: Sequence[np.ndarray],
    *,
    max_age_ns: int,
    prior_times: Sequence[int | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """As-of alignment: each variable's latest value at or before each row time, within ``max_age_ns``.

    ``var_times[j]`` must be ascending. ``prior_times[j]`` is the time of the variable's latest point
    before the fetched window (or None): it turns "missing" into "stale" for rows whose only earlier
    value lies before the window. Returns (matrix with NaN for missing/stale, complete flags, reasons).
    """
    rows = row_times.shape[0]
    cols = len(variables)
    matrix = np.full((rows, cols), np.nan)
    missing = np.zeros((rows, cols), dtype=bool)
    stale = np.zeros((rows, cols), dtype=bool)
    ages = np.zeros((rows, cols), dtype=np.int64)
    for j in range(cols):
        t = var_times[j]
        pos = np.searchsorted(t, row_times, side="right") - 1
        has = pos >= 0
        src_time = np.where(has, t[np.clip(pos, 0, None)] if t.shape[0] else 0, 0)
        prior = prior_times[j] if prior_times is not None else None
        if prior is not None:
            src_time = np.where(has, src_time, prior)
            has_any = np.ones(rows, dtype=bool)
        else:
            has_any = has
        age = row_times - src_time
        fresh = has & (age <= max_age_ns)
        if t.shape[0]:
            matrix[fresh, j] = var_values[j][pos[fresh]]
        missing[:, j] = ~has_any
        stale[:, j] = has_any & ~fresh
        ages[:, j] = np.where(has_any, age, 0)
    complete = ~(missing | stale).any(axis=1) if cols else np.ones(rows, dtype=bool)
    reasons: list[str | None] = [None] * rows
    for i in np.flatnonzero(~complete):
        parts = []
        miss = [variables[j] for j in np.flatnonzero(missing[i])]
        if miss:
            parts.append("missing: " + ", ".join(miss))
        old = [f"{variables[j]} (age {ages[i, j] / 1e9:g} s)" for j in np.flatnonzero(stale[i])]
        if old:
            parts.append("stale: " + ", ".join(old))
        reasons[i] = "; ".join(parts)
    return matrix, complete, reasons

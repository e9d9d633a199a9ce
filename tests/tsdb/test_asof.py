"""Pure NumPy helpers: last-wins de-duplication, buckets, LTTB against a reference, as-of alignment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.tsdb.asof import asof_matrix, bucket_width, last_wins, lttb, mean_buckets, minmax_buckets

S = 1_000_000_000


def lttb_reference(xs: list[float], ys: list[float], threshold: int) -> list[int]:
    """Steinarsson's LTTB, written the way the paper's reference code is (plain loops)."""
    n = len(xs)
    if threshold >= n or threshold == 0:
        return list(range(n))
    every = (n - 2) / (threshold - 2)
    a = 0
    sampled = [0]
    for i in range(threshold - 2):
        avg_start = math.floor((i + 1) * every) + 1
        avg_end = min(math.floor((i + 2) * every) + 1, n)
        avg_x = sum(xs[avg_start:avg_end]) / (avg_end - avg_start)
        avg_y = sum(ys[avg_start:avg_end]) / (avg_end - avg_start)
        start = math.floor(i * every) + 1
        end = math.floor((i + 1) * every) + 1
        best, best_area = start, -1.0
        for j in range(start, end):
            area = abs((xs[a] - avg_x) * (ys[j] - ys[a]) - (xs[a] - xs[j]) * (avg_y - ys[a])) * 0.5
            if area > best_area:
                best, best_area = j, area
        sampled.append(best)
        a = best
    sampled.append(n - 1)
    return sampled


@pytest.mark.parametrize(("n", "threshold"), [(1000, 50), (997, 13), (100, 99), (10, 3), (5000, 700)])
def test_lttb_matches_reference(n, threshold):
    rng = np.random.default_rng(n)
    t = np.cumsum(rng.integers(1, 5, n)).astype(np.int64) * S
    y = np.cumsum(rng.normal(size=n))
    expected = lttb_reference((t - t[0]).astype(float).tolist(), y.tolist(), threshold)
    got = lttb(t, y, threshold)
    assert got.tolist() == sorted(set(expected))
    assert len(got) <= threshold and got[0] == 0 and got[-1] == n - 1


def test_lttb_small_inputs_unchanged():
    t = np.arange(5, dtype=np.int64)
    assert lttb(t, np.ones(5), 10).tolist() == [0, 1, 2, 3, 4]


def test_last_wins_keeps_last_duplicate_sorted():
    series = np.array([1, 0, 1, 0, 1], dtype=np.int32)
    times = np.array([5, 3, 5, 1, 2], dtype=np.int64)
    keep = last_wins(series, times)
    assert keep.tolist() == [3, 1, 4, 2]  # (0,1) (0,3) (1,2) (1,5: the later of positions 0 and 2)


def test_bucket_width_covers_range():
    assert bucket_width(0, 99, 10) == 10
    assert bucket_width(0, 100, 10) == 11
    with pytest.raises(ValueError):
        bucket_width(0, 1, 0)


def test_mean_and_minmax_buckets():
    t = np.arange(0, 100, dtype=np.int64)
    v = np.arange(100, dtype=np.float64)
    v[37] = 1000
    times, means, mins, maxs, counts = mean_buckets(t, v, start_ns=0, end_ns=99, max_points=10)
    assert times.tolist() == list(range(0, 100, 10))
    assert counts.tolist() == [10] * 10
    assert maxs[3] == 1000 and mins[3] == 30
    assert means[0] == pytest.approx(4.5)
    keep = minmax_buckets(t, v, start_ns=0, end_ns=99, max_points=20)
    assert len(keep) <= 20 and 37 in keep.tolist() and 0 in keep.tolist()


def test_asof_matrix_fresh_stale_missing():
    rows = np.array([10, 20, 30, 100], dtype=np.int64) * S
    a_t = np.array([5, 20, 95], dtype=np.int64) * S
    b_t = np.array([25], dtype=np.int64) * S
    matrix, complete, reasons = asof_matrix(
        rows,
        ("a", "b", "c"),
        [a_t, b_t, np.empty(0, np.int64)],
        [np.array([1.0, 2.0, 3.0]), np.array([9.0]), np.empty(0)],
        max_age_ns=10 * S,
        prior_times=[None, None, 0],
    )
    assert matrix[:, 0].tolist() == [1.0, 2.0, 2.0, 3.0]
    assert np.isnan(matrix[0, 1]) and matrix[2, 1] == 9.0 and np.isnan(matrix[3, 1])
    assert not complete.any()
    assert reasons[0] == "missing: b; stale: c (age 10 s)"  # a prior point outside the window is never fresh
    assert reasons[3] == "stale: b (age 75 s), c (age 100 s)"
    ok, complete2, reasons2 = asof_matrix(rows[:3], ("a",), [a_t], [np.array([1.0, 2.0, 3.0])], max_age_ns=10 * S)
    assert complete2.tolist() == [True, True, True] and reasons2 == [None, None, None]

"""Late data: has any input point arrived at or before a group's watermark, and from where must it be rescored?

A run cannot tell when a point arrived, only how many input points there are up to a time. So each watermark
keeps **checkpoints**: ``[time_ns, input points at or before it]`` for its watermark and a few earlier
positions, newest first. The next run counts the points up to the watermark (``input_points_upto``: the
series' statistics minus the newest points, so the cost follows the new data, not the history); when the count
still matches, nothing is late. Otherwise the points arrived somewhere at or before the watermark, and the
newest earlier checkpoint whose count still matches bounds them: the group is rescored from just after it.
Counts only grow as points arrive, so every older checkpoint matches too and stays valid. When none matches,
the group is rescored from its start, as it always was.

This keeps the common case cheap: a device's tags for one instant split over two ingests, the first scored
with the others' previous values, are late by a second, and the next run rescores that instant, not the whole
batch. A rescore that is not from the group's start is exact: every row before the checkpoint saw the same
points then as now, and its stored estimates stand.

Checkpoints are thinned by age: at most one per power-of-two number of seconds behind the newest (so a day of
history holds about 17), newest kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from apps.tsdb.backends import get_backend
from apps.tsdb.types import GroupKey

from ..scoring import Estimator

NS = 1_000_000_000
#: Checkpoints a watermark keeps at most (power-of-two age buckets fill about 17 a day, 25 a year).
MAX_CHECKPOINTS = 32

Checkpoints = list[list[int]]


def input_points_upto(estimator: Estimator, group: GroupKey, end_ns: int | None) -> int:
    """The estimator's input points in ``group`` at or before ``end_ns`` (0 before any watermark)."""
    if end_ns is None:
        return 0
    return get_backend().input_points_upto(group=group, variables=estimator.snapshot_variables, end_ns=end_ns)


def late_rescore_from(
    estimator: Estimator,
    group: GroupKey,
    *,
    watermark_ns: int,
    checkpoints: Sequence[Sequence[int]],
    start_ns: int | None,
) -> int | None:
    """None when no input point arrived at or before ``watermark_ns`` since it was recorded; otherwise the
    time to rescore from (``dirty_from_ns``): just after the newest checkpoint whose count still matches, else
    the group's start (``start_ns``, or 0). Call it inside the run's consistent read."""
    points = [(int(t), int(n)) for t, n in checkpoints]
    newest = points[0] if points else None
    if newest is not None and newest[0] == watermark_ns:
        if input_points_upto(estimator, group, watermark_ns) == newest[1]:
            return None
    for t, n in points:
        if t < watermark_ns and input_points_upto(estimator, group, t) == n:
            return t + 1
    return start_ns if start_ns is not None else 0


def checkpoints_next(
    checkpoints: Sequence[Sequence[int]], *, after_ns: int | None, watermark_ns: int | None, points: int
) -> Checkpoints:
    """The checkpoints once a window read after ``after_ns`` moves the watermark to ``watermark_ns``, where
    ``points`` input points are at or before it. Those later than ``after_ns`` go (the window rescored past
    them, so their counts may be stale); the rest are thinned by age."""
    if watermark_ns is None:
        return []
    kept = [[int(t), int(n)] for t, n in checkpoints if after_ns is not None and int(t) <= after_ns]
    kept = [[watermark_ns, int(points)], *[c for c in kept if c[0] < watermark_ns]]
    thinned: Checkpoints = []
    buckets: set[int] = set()
    for t, n in kept:
        bucket = max(0, (watermark_ns - t) // NS).bit_length()
        if bucket not in buckets:
            buckets.add(bucket)
            thinned.append([t, n])
    return thinned[:MAX_CHECKPOINTS]

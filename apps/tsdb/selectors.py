"""Reads from the time-series store, with the argument rules every interface shares.

Interfaces parse their input and call these; backend failures become ``ServiceUnavailable`` (503) and
bad arguments ``ValidationFailed`` (400), never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from apps.common.errors import ServiceUnavailable, ValidationFailed

from .backends import BackendError, TimeSeriesBackend, get_backend
from .types import (
    POINT_COLLECTIONS,
    Collection,
    Downsample,
    GroupInfo,
    GroupKey,
    Point,
    SeriesData,
    SeriesFilter,
    SeriesInfo,
    SeriesKey,
    SnapshotSet,
    VariableMetadata,
)

#: Upper bound of points one read returns (after downsampling).
MAX_READ_POINTS = 20_000
#: Upper bound of snapshot rows one call returns.
MAX_SNAPSHOT_ROWS = 10_000

T = TypeVar("T")


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except BackendError as exc:
        raise ServiceUnavailable(f"The time-series store is unavailable: {exc}") from exc
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc


def _points_collection(collection: Collection) -> Collection:
    collection = Collection(collection)
    if collection not in POINT_COLLECTIONS:
        raise ValidationFailed("collection must be raw or predictions", details={"collection": collection.value})
    return collection


def series_list(
    *,
    collection: Collection = Collection.RAW,
    where: SeriesFilter | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    backend: TimeSeriesBackend | None = None,
) -> list[SeriesInfo]:
    """Series matching ``where`` (with points in [start, end] when given), with first/last time and count."""
    backend = backend or get_backend()
    collection = _points_collection(collection)
    where = where or SeriesFilter()
    if start is not None and end is not None and end < start:
        raise ValidationFailed("end must not be before start", details={"end": "before start"})
    return _call(lambda: backend.list_series(collection=collection, where=where, start=start, end=end))


def series_read(
    *,
    collection: Collection = Collection.RAW,
    series: SeriesKey,
    start: datetime,
    end: datetime,
    max_points: int | None = None,
    method: Downsample = Downsample.MEAN,
    backend: TimeSeriesBackend | None = None,
) -> SeriesData:
    """One series over [start, end], reduced server-side to at most ``max_points`` (default and cap 20 000)."""
    backend = backend or get_backend()
    collection = _points_collection(collection)
    if end < start:
        raise ValidationFailed("end must not be before start", details={"end": "before start"})
    if max_points is None:
        max_points = MAX_READ_POINTS
    if not 1 <= max_points <= MAX_READ_POINTS:
        raise ValidationFailed(
            f"max_points must be between 1 and {MAX_READ_POINTS}", details={"max_points": max_points}
        )
    return _call(
        lambda: backend.read(
            collection=collection, series=series, start=start, end=end, max_points=max_points, method=method
        )
    )


def latest_points(
    *, collection: Collection = Collection.RAW, where: SeriesFilter, backend: TimeSeriesBackend | None = None
) -> list[Point]:
    """The newest point of each series matching ``where``."""
    backend = backend or get_backend()
    collection = _points_collection(collection)
    return _call(lambda: backend.latest(collection=collection, where=where))


def groups_list(
    *,
    collection: Collection = Collection.RAW,
    project_name: str | None = None,
    device_id: str | None = None,
    since: datetime | None = None,
    backend: TimeSeriesBackend | None = None,
) -> list[GroupInfo]:
    """(project, device, batch) groups, most recent data first, for pickers."""
    backend = backend or get_backend()
    collection = _points_collection(collection)
    groups = _call(
        lambda: backend.groups(collection=collection, project_name=project_name, device_id=device_id, since=since)
    )
    return sorted(groups, key=lambda g: (g.last_time, g.group), reverse=True)


def snapshots_get(
    *,
    group: GroupKey,
    variables: tuple[str, ...],
    after: datetime | None,
    until: datetime | None = None,
    max_age: timedelta,
    limit: int | None = None,
    backend: TimeSeriesBackend | None = None,
) -> SnapshotSet:
    """As-of snapshots of ``variables`` for ``group`` after the watermark ``after`` (see the contract)."""
    backend = backend or get_backend()
    if limit is None:
        limit = MAX_SNAPSHOT_ROWS
    if not 1 <= limit <= MAX_SNAPSHOT_ROWS:
        raise ValidationFailed(f"limit must be between 1 and {MAX_SNAPSHOT_ROWS}", details={"limit": limit})
    if after is not None and until is not None and until < after:
        raise ValidationFailed("until must not be before after", details={"until": "before after"})
    return _call(
        lambda: backend.snapshots(
            group=group, variables=tuple(variables), after=after, until=until, max_age=max_age, limit=limit
        )
    )


def variable_metadata_list(
    *, project_name: str, device_id: str | None = None, backend: TimeSeriesBackend | None = None
) -> list[VariableMetadata]:
    """Display metadata of a project's variables (optionally one device's)."""
    backend = backend or get_backend()
    return _call(lambda: backend.metadata_read(project_name=project_name, device_id=device_id))

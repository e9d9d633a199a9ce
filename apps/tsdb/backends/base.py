"""The time-series backend contract (the Django cache-backend pattern).

This class is the spec. Required operations raise ``NotImplementedError``; helpers built on them have
defaults a backend may override for speed. One contract test mixin in ``tests/tsdb/`` runs against every
backend. Only the plain dataclasses of ``apps.tsdb.types`` cross this boundary.

Rules every backend keeps:
- Writes are idempotent on (series, time): writing the same point twice keeps one, the last value wins.
- Reads take a time range, never the whole history; ``max_points`` reduces server-side.
- All times are timezone-aware UTC; inside batches, int64 nanoseconds since the epoch.

The checks of the operations' arguments (a points collection, a time range, ``max_points``, snapshot
arguments) and the folding of series into groups are helpers of the base class, so every backend
refuses the same arguments with the same words; validation of what is written lives in
``apps.tsdb.validation``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ..derived import split_derived, with_derived
from ..types import (
    LAB_SOURCE,
    NS_PER_S,
    POINT_COLLECTIONS,
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


class BackendError(Exception):
    """The store could not do what was asked (unreachable, refused, malformed answer)."""


class WriteStream:
    """Batches of one collection written one after another inside the caller's database transaction.

    Made by ``TimeSeriesBackend.write_stream`` for a backend whose writes are ``transactional``: a caller
    that parses a long body can write each piece as soon as it is parsed and still commit all or nothing.
    Batches are written in order, so a later duplicate of a (series, time) replaces an earlier one.
    This default writes each batch with ``write``; a backend may override it to keep work open between
    batches (the PostgreSQL one keeps a COPY running). ``close`` must be called before the commit.
    """

    def __init__(self, backend: TimeSeriesBackend, collection: Collection) -> None:
        self.backend = backend
        self.collection = Collection(collection)
        #: Every (project, device, batch) group this stream has written to.
        self.groups: set[GroupKey] = set()

    def write(self, batch: PointBatch) -> int:
        """Validate and write one batch of this collection; returns the number of points written."""
        self._check_collection(batch)
        written = self.backend.write(batch)
        self.groups.update(batch.groups())
        return written

    def _check_collection(self, batch: PointBatch) -> None:
        if batch.collection is not self.collection:
            raise ValueError(f"this stream writes {self.collection.value} points, not {batch.collection.value}")

    def close(self) -> None:
        """Finish what is still open; the caller's transaction then commits."""

    def abort(self) -> None:
        """Give up after an error; the caller's transaction rolls back."""


class TimeSeriesBackend:
    """Base class of every time-series backend; ``options`` come from ``settings.TSDB["OPTIONS"]``."""

    #: Short name shown in health reports and benchmarks.
    name = "base"
    #: True when ``write`` joins the caller's database transaction (so ``write_stream`` is atomic).
    transactional = False
    #: The Django database alias whose transaction a ``transactional`` backend's writes join.
    database_alias: str | None = None

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    # --- required -------------------------------------------------------------------------------
    def ping(self) -> BackendHealth:
        """Reachability and whether each of the three collections exists."""
        raise NotImplementedError

    def ensure_collections(self) -> None:
        """Create the three collections (with retention where the backend supports it); idempotent."""
        raise NotImplementedError

    def write(self, batch: PointBatch) -> int:
        """Write a batch atomically (all or nothing); returns the number of points written."""
        raise NotImplementedError

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
        """One series in [start, end], ascending; reduced to at most ``max_points`` when given."""
        raise NotImplementedError

    def latest(self, *, collection: Collection, where: SeriesFilter) -> list[Point]:
        """The newest point of every series matching ``where``."""
        raise NotImplementedError

    def list_series(
        self,
        *,
        collection: Collection,
        where: SeriesFilter,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SeriesInfo]:
        """Series matching ``where`` with first/last time and point count (within [start, end] if given)."""
        raise NotImplementedError

    def groups(
        self,
        *,
        collection: Collection = Collection.RAW,
        project_name: str | None = None,
        device_id: str | None = None,
        since: datetime | None = None,
    ) -> list[GroupInfo]:
        """The (project, device, batch) groups with first/last time, point count and variables."""
        raise NotImplementedError

    def snapshots(
        self,
        *,
        group: GroupKey,
        variables: tuple[str, ...],
        after: datetime | None,
        until: datetime | None = None,
        max_age: timedelta,
        limit: int | None = None,
    ) -> SnapshotSet:
        """As-of rows at every raw timestamp of ``group`` in (after, until], oldest first.

        Each variable takes its latest raw value at or before the row's time, within ``max_age``;
        rows with a missing or stale input stay in the set with ``complete=False`` and the reason.
        Derived variables (``apps.tsdb.derived``, e.g. ``batch_age``) are computed, not read: backends
        implement ``snapshots_stored`` for the stored ones and this method adds the rest.
        """
        stored, derived = split_derived(tuple(variables))
        if not stored:
            raise ValueError("variables must name at least one stored variable besides derived ones")
        result = self.snapshots_stored(
            group=group, variables=stored, after=after, until=until, max_age=max_age, limit=limit
        )
        if not derived:
            return result
        start_ns = self.group_start_ns(group) if len(result) else None
        return with_derived(result, tuple(variables), group_start_ns=start_ns)

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
        """``snapshots`` restricted to stored variables: what each backend implements."""
        raise NotImplementedError

    def delete(
        self,
        *,
        collection: Collection,
        group: GroupKey,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Delete a batch, or its points in [start, end]; returns points deleted (or -1 if unknown)."""
        raise NotImplementedError

    def metadata_write(self, items: Iterable[VariableMetadata]) -> int:
        """Upsert display metadata per (project, device, variable)."""
        raise NotImplementedError

    def metadata_read(self, *, project_name: str, device_id: str | None = None) -> list[VariableMetadata]:
        """Display metadata of a project's variables (optionally one device's)."""
        raise NotImplementedError

    # --- helpers with defaults ------------------------------------------------------------------
    def input_points_upto(self, *, group: GroupKey, variables: tuple[str, ...], end_ns: int) -> int:
        """Raw points of the group's stored ``variables`` (lab samples excluded: they are targets, not
        inputs) at or before ``end_ns``: the pipeline's late-data measure. This default counts them over
        the range; a backend that keeps per-series counts answers from those minus the points after
        ``end_ns``, so the cost follows the newest data, not the history."""
        stored, _ = split_derived(tuple(variables))
        infos = self.list_series(
            collection=Collection.RAW,
            where=SeriesFilter(project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id),
            end=from_ns(end_ns),
        )
        return sum(
            info.point_count
            for info in infos
            if info.series.source != LAB_SOURCE and info.series.observed_property in stored
        )

    def group_start_ns(self, group: GroupKey) -> int | None:
        """Time of the group's first raw point (any source), or None when it has none."""
        infos = self.list_series(
            collection=Collection.RAW,
            where=SeriesFilter(project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id),
        )
        return min((to_ns(info.first_time) for info in infos), default=None)

    def write_points(self, collection: Collection, points: Iterable[Point]) -> int:
        """Convenience for small writes: builds a ``PointBatch``."""
        return self.write(PointBatch.from_points(collection, points))

    def write_stream(self, collection: Collection) -> WriteStream:
        """A ``WriteStream`` of ``collection``; only atomic when the backend is ``transactional``."""
        return WriteStream(self, collection)

    def close(self) -> None:
        """Release connections or sessions held by the backend."""

    # --- argument checks and shared rules for backends --------------------------------------------
    @staticmethod
    def _points_collection(collection: Collection | str) -> Collection:
        """``collection`` as a member; ``ValueError`` unless it holds points (raw or predictions)."""
        try:
            member = Collection(collection)
        except ValueError:
            member = None
        if member not in POINT_COLLECTIONS:
            name = member.value if member is not None else collection
            raise ValueError(f"collection {name!r} holds no points (use raw or predictions)")
        return member

    @staticmethod
    def _check_range(start: datetime, end: datetime) -> tuple[int, int]:
        """``(start_ns, end_ns)`` of a read's required time range; ``ValueError`` when open or reversed."""
        if start is None or end is None:
            raise ValueError("start and end are required (reads never cover the whole history)")
        start_ns, end_ns = bound_ns(start), bound_ns(end)
        if end_ns < start_ns:
            raise ValueError("end must not be before start")
        return start_ns, end_ns

    @classmethod
    def _read_arguments(
        cls,
        *,
        collection: Collection,
        start: datetime,
        end: datetime,
        max_points: int | None,
        method: Downsample,
    ) -> tuple[Collection, int, int, Downsample]:
        """``read``'s arguments checked: ``(collection, start_ns, end_ns, method)``; ``ValueError`` if wrong."""
        collection = cls._points_collection(collection)
        start_ns, end_ns = cls._check_range(start, end)
        method = Downsample(method)
        if max_points is not None and max_points < 1:
            raise ValueError("max_points must be at least 1")
        return collection, start_ns, end_ns, method

    @staticmethod
    def _snapshot_arguments(
        variables: tuple[str, ...], max_age: timedelta, limit: int | None
    ) -> tuple[tuple[str, ...], int]:
        """``snapshots_stored``'s arguments checked: ``(variables, max_age_ns)``; ``ValueError`` if wrong."""
        variables = tuple(variables)
        if not variables:
            raise ValueError("variables must name at least one variable")
        if len(set(variables)) != len(variables):
            raise ValueError("variables must not repeat")
        max_age_ns = int(max_age.total_seconds() * NS_PER_S)
        if max_age_ns < 0:
            raise ValueError("max_age must not be negative")
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        return variables, max_age_ns

    @staticmethod
    def _groups_of(series: Iterable[tuple[GroupKey, str, int, int, int]], since: datetime | None) -> list[GroupInfo]:
        """``groups``' answer from its series ``(group, observed_property, first_ns, last_ns, points)``.

        A group spans its series' first to last time and counts all their points; ``since`` keeps the
        groups with data at or after it. Ordered by group key.
        """
        acc: dict[GroupKey, list[Any]] = {}
        for group, prop, first, last, count in series:
            entry = acc.setdefault(group, [first, last, 0, set()])
            entry[0], entry[1] = min(entry[0], first), max(entry[1], last)
            entry[2] += int(count)
            entry[3].add(prop)
        since_ns = bound_ns(since) if since is not None else None
        return [
            GroupInfo(group, from_ns(first), from_ns(last), count, tuple(sorted(props)))
            for group, (first, last, count, props) in sorted(acc.items())
            if since_ns is None or last >= since_ns
        ]

"""Plain data that crosses the time-series backend contract: no ORM, no client objects.

All times are timezone-aware UTC ``datetime`` at the edges and int64 nanoseconds since the epoch inside
columnar batches (``PointBatch``, ``SeriesData``, ``SnapshotSet``), so bulk paths stay vectorised.
Series identity follows STAMM: collection + project_name, device_id, batch_id, source, observed_property,
plus model_id and version for predictions.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

UTC = UTC
NS_PER_S = 1_000_000_000
#: Earliest and latest accepted timestamps (1970-01-01 .. 2262-04-11, the int64-ns range).
MIN_TIME_NS = 0
MAX_TIME_NS = np.iinfo(np.int64).max - 1


class Collection(str, enum.Enum):
    RAW = "raw"
    PREDICTIONS = "predictions"
    METADATA = "metadata"


#: The collections that hold points (``metadata`` holds display metadata, written and read apart).
POINT_COLLECTIONS = (Collection.RAW, Collection.PREDICTIONS)
#: A series' tags in ``SeriesKey`` field order: the columns of the SQL series table, InfluxDB's tag keys.
SERIES_TAGS = ("project_name", "device_id", "batch_id", "source", "observed_property", "model_id", "version")


#: STAMM's bucket (InfluxDB) names for the three collections.
DEFAULT_BUCKETS: Mapping[Collection, str] = {
    Collection.RAW: "stamm_raw",
    Collection.PREDICTIONS: "stamm_predictions",
    Collection.METADATA: "stamm_metadata",
}
#: Measurement written; both names are accepted on read (some STAMM docs say ``bioreactor_obs``).
MEASUREMENT = "device_obs"
READ_MEASUREMENTS = ("device_obs", "bioreactor_obs")
#: Sources of raw points (STAMM's four plus ``lab`` for offline samples); predictions use ``soft_sensor``.
RAW_SOURCES = ("sensor", "actuator", "computed_variable", "computed", "lab")
PREDICTION_SOURCE = "soft_sensor"
LAB_SOURCE = "lab"


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (naive datetimes are refused)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} (times must be timezone-aware)")
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def bound_ns(moment: datetime) -> int:
    """``to_ns`` of a query bound, clamped to the storable range [MIN_TIME_NS, MAX_TIME_NS].

    No point lies outside that range, so a bound beyond it (``end=9999-12-31``) selects exactly what the
    range's own end does; unclamped, the nanoseconds overflow the database's 64-bit integer (a 500).
    Writes never use this: a time outside the range is refused there, not moved.
    """
    return min(max(to_ns(moment), MIN_TIME_NS), MAX_TIME_NS)


def from_ns(ns: int) -> datetime:
    """Aware UTC datetime of an epoch-nanosecond value (microsecond resolution)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(ns) // 1000)


@dataclass(frozen=True, slots=True, order=True)
class GroupKey:
    """A (project, device, batch) group: the unit the pipeline detects and scores."""

    project_name: str
    device_id: str
    batch_id: str


@dataclass(frozen=True, slots=True, order=True)
class SeriesKey:
    """The identity of one series inside a collection (STAMM tags)."""

    project_name: str
    device_id: str
    batch_id: str
    source: str
    observed_property: str
    model_id: str = ""
    version: str = ""

    @property
    def group(self) -> GroupKey:
        return GroupKey(self.project_name, self.device_id, self.batch_id)

    def tags(self) -> dict[str, str]:
        """The STAMM tag set; ``model_id`` and ``version`` only when set."""
        tags = {
            "project_name": self.project_name,
            "device_id": self.device_id,
            "batch_id": self.batch_id,
            "source": self.source,
            "observed_property": self.observed_property,
        }
        if self.model_id:
            tags["model_id"] = self.model_id
        if self.version:
            tags["version"] = self.version
        return tags


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    """Optional equality filters on series tags; ``None`` means any."""

    project_name: str | None = None
    device_id: str | None = None
    batch_id: str | None = None
    source: str | None = None
    observed_property: str | None = None
    model_id: str | None = None
    version: str | None = None

    def matches(self, key: SeriesKey) -> bool:
        return all(getattr(self, tag) is None or getattr(key, tag) == getattr(self, tag) for tag in SERIES_TAGS)


@dataclass(frozen=True, slots=True)
class Point:
    """One point, for small writes and tests; bulk paths use ``PointBatch``."""

    series: SeriesKey
    time: datetime
    value: float
    fields: Mapping[str, Any] = field(default_factory=dict)


#: Extra per-point fields a collection accepts besides ``value`` (name -> "float" | "str").
EXTRA_FIELDS: Mapping[Collection, Mapping[str, str]] = {
    Collection.RAW: {},
    # validity: "ok" | "out_of_range"; corrected_value: bias-corrected estimate (the raw output stays in value).
    Collection.PREDICTIONS: {"validity": "str", "corrected_value": "float"},
    Collection.METADATA: {},
}


@dataclass(slots=True)
class PointBatch:
    """Columnar points of one collection: what every backend ``write`` takes.

    ``series`` holds the distinct series; ``series_index[i]`` says which one point ``i`` belongs to.
    ``fields`` holds the collection's extra fields (see ``EXTRA_FIELDS``), one array per field.
    """

    collection: Collection
    series: list[SeriesKey]
    series_index: np.ndarray
    times_ns: np.ndarray
    values: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.times_ns.shape[0])

    @classmethod
    def from_points(cls, collection: Collection, points: Iterable[Point]) -> PointBatch:
        index: dict[SeriesKey, int] = {}
        series_index: list[int] = []
        times: list[int] = []
        values: list[float] = []
        extra_names = list(EXTRA_FIELDS[collection])
        extras: dict[str, list[Any]] = {name: [] for name in extra_names}
        for point in points:
            series_index.append(index.setdefault(point.series, len(index)))
            times.append(to_ns(point.time))
            values.append(float(point.value))
            for name in extra_names:
                extras[name].append(point.fields.get(name))
        fields = {}
        for name, values_ in extras.items():
            if any(v is not None for v in values_):
                kind = EXTRA_FIELDS[collection][name]
                fields[name] = (
                    np.array([np.nan if v is None else float(v) for v in values_], dtype=np.float64)
                    if kind == "float"
                    else np.array(["" if v is None else str(v) for v in values_], dtype=object)
                )
        return cls(
            collection=collection,
            series=list(index),
            series_index=np.asarray(series_index, dtype=np.int32),
            times_ns=np.asarray(times, dtype=np.int64),
            values=np.asarray(values, dtype=np.float64),
            fields=fields,
        )

    @classmethod
    def concat(cls, batches: Sequence[PointBatch]) -> PointBatch:
        """One batch of several of one collection (one write instead of many): the series are merged, and an
        extra field some batches lack is empty there (NaN or "")."""
        if not batches:
            raise ValueError("concat needs at least one batch")
        collection = batches[0].collection
        if any(b.collection is not collection for b in batches):
            raise ValueError("concat takes batches of one collection")
        index: dict[SeriesKey, int] = {}
        parts: list[np.ndarray] = []
        for batch in batches:
            remap = np.array([index.setdefault(key, len(index)) for key in batch.series], dtype=np.int32)
            parts.append(remap[batch.series_index] if len(batch) else np.empty(0, dtype=np.int32))
        names = list(dict.fromkeys(name for b in batches for name in b.fields))
        fields: dict[str, np.ndarray] = {}
        for name in names:
            kind = EXTRA_FIELDS[collection].get(name, "float")
            chunks = []
            for b in batches:
                if name in b.fields:
                    chunks.append(b.fields[name])
                elif kind == "float":
                    chunks.append(np.full(len(b), np.nan))
                else:
                    chunks.append(np.full(len(b), "", dtype=object))
            fields[name] = np.concatenate(chunks)
        return cls(
            collection=collection,
            series=list(index),
            series_index=np.concatenate(parts).astype(np.int32),
            times_ns=np.concatenate([b.times_ns for b in batches]).astype(np.int64),
            values=np.concatenate([b.values for b in batches]).astype(np.float64),
            fields=fields,
        )

    def points(self) -> Iterator[Point]:
        for i in range(len(self)):
            fields = {name: arr[i] for name, arr in self.fields.items()}
            series = self.series[int(self.series_index[i])]
            yield Point(series, from_ns(int(self.times_ns[i])), float(self.values[i]), fields)

    def groups(self) -> set[GroupKey]:
        used = np.unique(self.series_index) if len(self) else np.array([], dtype=np.int32)
        return {self.series[int(i)].group for i in used}


class Downsample(str, enum.Enum):
    """Server-side reduction of a read to at most ``max_points``."""

    MEAN = "mean"  # per time bucket: mean, with min and max in fields
    MINMAX = "minmax"  # per time bucket: the min and the max point (keeps spikes)
    LTTB = "lttb"  # largest-triangle-three-buckets: shape-preserving subset of real points


@dataclass(slots=True)
class SeriesData:
    """One series over a time range, ascending in time; ``downsampled`` names the method when reduced."""

    series: SeriesKey
    times_ns: np.ndarray
    values: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    downsampled: str | None = None
    total_points: int | None = None

    def __len__(self) -> int:
        return int(self.times_ns.shape[0])


def estimate_values(data: SeriesData) -> np.ndarray:
    """A predictions series as deployed: ``corrected_value`` (the raw output plus the lab bias update in
    force) where the pipeline stored one, else the raw ``value``. What pages show and the plant receives
    as "the estimate"; the raw output stays in ``values``."""
    corrected = data.fields.get("corrected_value")
    if corrected is None or not len(data):
        return data.values
    corrected = np.asarray(corrected, dtype=np.float64)
    return np.where(np.isfinite(corrected), corrected, data.values)


def point_estimate(point: Point) -> float:
    """One stored prediction as deployed (the rule of ``estimate_values``)."""
    corrected = point.fields.get("corrected_value")
    if corrected is None:
        return point.value
    corrected = float(corrected)
    return corrected if np.isfinite(corrected) else point.value


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    series: SeriesKey
    first_time: datetime
    last_time: datetime
    point_count: int


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A group for pickers: "batch_91 — last data 5 minutes ago", with its variables."""

    group: GroupKey
    first_time: datetime
    last_time: datetime
    point_count: int
    variables: tuple[str, ...]


@dataclass(slots=True)
class SnapshotSet:
    """As-of wide rows of ``variables`` at every new timestamp of a group after a watermark.

    ``matrix[i, j]`` is variable ``j``'s latest value at or before ``times_ns[i]`` within the maximum
    age, NaN when missing or stale. ``complete[i]`` is True when every input is present and fresh;
    otherwise ``reasons[i]`` says which inputs were missing or stale (``"missing: x; stale: y (age 3600 s)"``).
    """

    group: GroupKey
    variables: tuple[str, ...]
    times_ns: np.ndarray
    matrix: np.ndarray
    complete: np.ndarray
    reasons: list[str | None]

    @classmethod
    def empty(cls, group: GroupKey, variables: tuple[str, ...]) -> SnapshotSet:
        """No rows (nothing stored in the window), with the columns asked for."""
        return cls(
            group, variables, np.empty(0, dtype=np.int64), np.empty((0, len(variables))), np.empty(0, dtype=bool), []
        )

    def __len__(self) -> int:
        return int(self.times_ns.shape[0])


@dataclass(frozen=True, slots=True)
class VariableMetadata:
    """Per-variable display metadata (STAMM's metadata collection)."""

    project_name: str
    device_id: str
    observed_property: str
    unit: str = ""
    display_name: str = ""
    decimals: int = 2


@dataclass(frozen=True, slots=True)
class BackendHealth:
    ok: bool
    detail: str
    collections: Mapping[str, bool] = field(default_factory=dict)

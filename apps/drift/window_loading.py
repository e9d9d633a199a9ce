"""Reference and test windows of a drift run, read from the time-series store.

A window spec (stored on a ``DriftJob`` or sent to the ad hoc API) is resolved in two steps:

1. **Segments.** The spec becomes a list of ``Segment`` — one (project, device, batch) group and a time
   range in it. Reference: the model version's training batches (descriptor ``experiments_ID`` 92 →
   batch ``batch_92``), an explicit batch list, or a time range (every group in scope with data in it).
   Test: the last N points of a batch, a time range, or a batch phase (time since the batch's first
   point; phases per project, IndPenSim's by default). When the test window is a phase, the reference
   batches are cut to the same phase, so a log-phase window is compared with log-phase references.
2. **Data.** Each segment is read once, by time range only: process features as as-of snapshots (one
   paged read per segment, vectorised alignment in the store), lab-residual error events from the
   deployment's residual ledger (one query for all segments), or the estimates of several model versions
   side by side (``version_windows``: each scored on the one scoring path, joined on time).

The result keeps one block per segment: calibration leaves one reference *batch* out at a time, so the
reference must stay split by group. Everything a run used is described in ``Window.describe()``, which
is stored with the result.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.utils.dateparse import parse_datetime
from stamm_drift import DataError

from apps.common.errors import ValidationFailed
from apps.tsdb import selectors as tsdb
from apps.tsdb.types import (
    LAB_SOURCE,
    NS_PER_S,
    Collection,
    GroupInfo,
    GroupKey,
    SeriesFilter,
    from_ns,
    to_ns,
)

from .windows import INDPENSIM_PHASES, Phase, parse_phases

NS_PER_H = 3600 * NS_PER_S
REFERENCE_KINDS = ("training", "batches", "time_range", "values")
TEST_KINDS = ("last_points", "time_range", "phase", "values")
#: Largest last-N window and inline window (rows).
MAX_POINTS = 100_000
#: Snapshot rows per store read (the selector's cap).
PAGE_ROWS = 10_000


# -- specs ------------------------------------------------------------------------------------------

def _fail(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", details={where: message})


def _moment(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and (parsed := parse_datetime(value)) is not None:
        moment = parsed
    else:
        raise _fail(where, f"expected an ISO 8601 date-time, got {value!r}")
    if moment.tzinfo is None:
        raise _fail(where, "needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    return moment


def batch_id_of(value: Any, where: str) -> str:
    """``92`` or ``"92"`` → ``batch_92`` (STAMM's experiments_ID convention); other strings as they are."""
    if isinstance(value, bool):
        raise _fail(where, f"expected a batch id, got {value!r}")
    if isinstance(value, int):
        return f"batch_{value}"
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return f"batch_{text}" if text.isdigit() else text
    raise _fail(where, f"expected a batch id (e.g. batch_92 or 92), got {value!r}")


def _rows(value: Any, where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise _fail(where, "expected a list of numbers or of rows of numbers") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[0] > MAX_POINTS:
        raise _fail(where, f"expected 1 to {MAX_POINTS} rows of numbers")
    if not np.isfinite(array).all():
        raise _fail(where, "holds missing or non-finite values")
    return array


def _check_keys(data: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"unknown field; allowed: {', '.join(sorted(allowed))}")


def _kind(data: Any, kinds: Sequence[str], where: str, example: str) -> str:
    """The ``kind`` of a window spec object, one of ``kinds``."""
    if not isinstance(data, Mapping):
        raise _fail(where, f"expected an object such as {example}")
    kind = data.get("kind")
    if kind not in kinds:
        raise _fail(f"{where}.kind", f"expected one of {', '.join(kinds)}, got {kind!r}")
    return kind


def _device(data: Mapping[str, Any], where: str) -> str | None:
    device = data.get("device_id")
    if device is not None and (not isinstance(device, str) or not device):
        raise _fail(f"{where}.device_id", "expected a non-empty string")
    return device


def _time_range(data: Mapping[str, Any], where: str) -> tuple[datetime, datetime]:
    start, end = _moment(data.get("start"), f"{where}.start"), _moment(data.get("end"), f"{where}.end")
    if end <= start:
        raise _fail(f"{where}.end", "must be after start")
    return start, end


@dataclass(frozen=True)
class ReferenceSpec:
    """``training`` | ``batches`` (``batches``) | ``time_range`` (``start``, ``end``) | ``values`` (``rows``)."""

    kind: str
    batches: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    device_id: str | None = None
    rows: np.ndarray | None = None

    @classmethod
    def parse(cls, data: Any, *, where: str = "reference", allow_values: bool = False) -> ReferenceSpec:
        kinds = REFERENCE_KINDS if allow_values else REFERENCE_KINDS[:-1]
        kind = _kind(data, kinds, where, '{"kind": "training"}')
        device = _device(data, where)
        if kind == "training":
            _check_keys(data, ("kind", "device_id"), where)
            return cls(kind, device_id=device)
        if kind == "batches":
            _check_keys(data, ("kind", "batches", "device_id"), where)
            batches = data.get("batches")
            if not isinstance(batches, list) or not batches:
                raise _fail(f"{where}.batches", "expected a non-empty list of batch ids")
            ids = tuple(dict.fromkeys(batch_id_of(b, f"{where}.batches") for b in batches))
            return cls(kind, batches=ids, device_id=device)
        if kind == "time_range":
            _check_keys(data, ("kind", "start", "end", "device_id"), where)
            start, end = _time_range(data, where)
            return cls(kind, start=start, end=end, device_id=device)
        _check_keys(data, ("kind", "rows"), where)
        return cls(kind, rows=_rows(data.get("rows"), f"{where}.rows"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.batches:
            out["batches"] = list(self.batches)
        if self.start is not None:
            out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        if self.device_id:
            out["device_id"] = self.device_id
        if self.rows is not None:
            out["rows"] = self.rows.tolist()
        return out


@dataclass(frozen=True)
class TestSpec:
    """``last_points`` (``n``) | ``time_range`` (``start``, ``end``) | ``phase`` (``phase``) | ``values``.

    ``batch_id`` (and ``device_id``) name the test batch; without it the most recent batch in scope.
    """

    kind: str
    n: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    phase: str | None = None
    batch_id: str | None = None
    device_id: str | None = None
    rows: np.ndarray | None = None

    @classmethod
    def parse(cls, data: Any, *, where: str = "test", allow_values: bool = False) -> TestSpec:
        kinds = TEST_KINDS if allow_values else TEST_KINDS[:-1]
        kind = _kind(data, kinds, where, '{"kind": "phase", "phase": "log"}')
        if kind == "values":
            _check_keys(data, ("kind", "rows"), where)
            return cls(kind, rows=_rows(data.get("rows"), f"{where}.rows"))
        common = ("kind", "batch_id", "device_id")
        device = _device(data, where)
        batch = batch_id_of(data["batch_id"], f"{where}.batch_id") if data.get("batch_id") is not None else None
        if kind == "last_points":
            _check_keys(data, (*common, "n"), where)
            n = data.get("n")
            if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_POINTS:
                raise _fail(f"{where}.n", f"expected an integer between 2 and {MAX_POINTS}, got {n!r}")
            return cls(kind, n=n, batch_id=batch, device_id=device)
        if kind == "time_range":
            _check_keys(data, (*common, "start", "end"), where)
            start, end = _time_range(data, where)
            return cls(kind, start=start, end=end, batch_id=batch, device_id=device)
        _check_keys(data, (*common, "phase"), where)
        phase = data.get("phase")
        if not isinstance(phase, str) or not phase:
            raise _fail(f"{where}.phase", "expected a phase name, e.g. log")
        return cls(kind, phase=phase, batch_id=batch, device_id=device)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for name in ("n", "phase", "batch_id", "device_id"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.start is not None:
            out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        if self.rows is not None:
            out["rows"] = self.rows.tolist()
        return out


def phases_for(spec: str | None) -> tuple[Phase, ...]:
    """A project's phases from its settings text; IndPenSim's when empty."""
    return parse_phases(spec) if spec else INDPENSIM_PHASES


def phase_named(phases: Sequence[Phase], name: str, *, where: str = "test.phase") -> Phase:
    for phase in phases:
        if phase.name == name:
            return phase
    raise _fail(where, f"unknown phase {name!r}; this project's phases: {', '.join(str(p) for p in phases)}")


# -- scope and segments -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """Where a job looks: the project tag, optionally some devices and a batch pattern (a deployment's)."""

    project_name: str
    device_ids: tuple[str, ...] = ()
    batch_pattern: str = ""
    max_age: timedelta = timedelta(hours=1)

    def admits_reference(self, group: GroupKey, *, device_id: str | None = None) -> bool:
        """Reference batches: any device of the project (training batches may come from another unit),
        unless the spec names one; the deployment's device and batch filters apply to test windows only."""
        if group.project_name != self.project_name:
            return False
        return device_id is None or group.device_id == device_id

    def admits_test(self, group: GroupKey, *, device_id: str | None = None) -> bool:
        import fnmatch

        if group.project_name != self.project_name:
            return False
        if device_id is not None and group.device_id != device_id:
            return False
        if device_id is None and self.device_ids and group.device_id not in self.device_ids:
            return False
        return not self.batch_pattern or fnmatch.fnmatchcase(group.batch_id, self.batch_pattern)


@dataclass(frozen=True)
class Segment:
    """One group and a time range in it (``start_ns``/``end_ns`` inclusive); ``last_n`` = its last N rows."""

    group: GroupKey
    start_ns: int
    end_ns: int
    last_n: int | None = None

    @property
    def label(self) -> str:
        return f"{self.group.project_name}/{self.group.device_id}/{self.group.batch_id}"


def _groups(scope: Scope) -> list[GroupInfo]:
    """The project's groups in time order (oldest first), so multi-batch windows read chronologically."""
    groups = tsdb.groups_list(collection=Collection.RAW, project_name=scope.project_name)
    return sorted(groups, key=lambda g: (g.first_time, g.group))


def _phase_range(info: GroupInfo, phase: Phase | None) -> tuple[int, int] | None:
    """The group's [start, end] in ns, cut to ``phase`` (time since the group's first point)."""
    first, last = to_ns(info.first_time), to_ns(info.last_time)
    if phase is None:
        return first, last
    start = first + int(phase.start_h * NS_PER_H)
    end = last if math.isinf(phase.end_h) else min(last, first + int(phase.end_h * NS_PER_H) - 1)
    return (start, end) if start <= end else None


def _overlapping(groups: Sequence[GroupInfo], start: datetime, end: datetime) -> list[Segment]:
    """Each group's data within [start, end], for the groups that have any."""
    lo, hi = to_ns(start), to_ns(end)
    return [
        Segment(g.group, max(lo, to_ns(g.first_time)), min(hi, to_ns(g.last_time)))
        for g in groups
        if to_ns(g.first_time) <= hi and to_ns(g.last_time) >= lo
    ]


def reference_segments(
    spec: ReferenceSpec, *, scope: Scope, experiments: Sequence[int | str] = (), phase: Phase | None = None,
) -> list[Segment]:
    """The reference's segments, one per group (batch) of raw data, cut to ``phase`` for batch references."""
    groups = [g for g in _groups(scope) if scope.admits_reference(g.group, device_id=spec.device_id)]
    if spec.kind == "time_range":
        found = _overlapping(groups, spec.start, spec.end)
        if not found:
            raise DataError(f"reference: no data of project {scope.project_name} between {spec.start} and {spec.end}")
        return found
    if spec.kind == "training":
        if not experiments:
            raise DataError("reference: the model version's descriptor names no training batches (experiments_ID)")
        wanted = tuple(batch_id_of(e, "reference.experiments") for e in experiments)
    else:
        wanted = spec.batches
    by_batch: dict[str, list[GroupInfo]] = {}
    for info in groups:
        by_batch.setdefault(info.group.batch_id, []).append(info)
    missing = [b for b in wanted if b not in by_batch]
    if missing:
        raise DataError(f"reference: batches not in the store for project {scope.project_name}: {', '.join(missing)}")
    segments = []
    for batch in wanted:
        for info in by_batch[batch]:
            cut = _phase_range(info, phase)
            if cut is None:
                raise DataError(f"reference: batch {batch} has no data in phase {phase}")
            segments.append(Segment(info.group, *cut))
    return segments


def test_segments(spec: TestSpec, *, scope: Scope, phase: Phase | None = None) -> list[Segment]:
    """The test window's segments: one group (last N, phase), or every group with data in the range."""
    groups = [g for g in _groups(scope) if scope.admits_test(g.group, device_id=spec.device_id)]
    if spec.batch_id is not None:
        groups = [g for g in groups if g.group.batch_id == spec.batch_id]
        if not groups:
            raise DataError(f"test: batch {spec.batch_id} is not in the store for project {scope.project_name}"
                            " (or outside the deployment's scope)")
    if not groups:
        raise DataError(f"test: no batch of project {scope.project_name} in scope")
    if spec.kind == "time_range":
        found = _overlapping(groups, spec.start, spec.end)
        if not found:
            raise DataError(f"test: no data between {spec.start} and {spec.end}")
        return found
    info = max(groups, key=lambda g: (g.last_time, g.group))  # the named batch, or the most recent one
    if spec.kind == "last_points":
        return [Segment(info.group, to_ns(info.first_time), to_ns(info.last_time), last_n=spec.n)]
    cut = _phase_range(info, phase)
    if cut is None:
        raise DataError(f"test: batch {info.group.batch_id} has not reached phase {phase} yet")
    return [Segment(info.group, *cut)]


# -- data -------------------------------------------------------------------------------------------

@dataclass
class Window:
    """The data of a window: one block (rows × columns) per segment, with the row times."""

    kind: str
    columns: tuple[str, ...]
    blocks: dict[str, np.ndarray]
    times: dict[str, np.ndarray] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def matrix(self) -> np.ndarray:
        return np.vstack(list(self.blocks.values())) if self.blocks else np.empty((0, len(self.columns)))

    @property
    def rows(self) -> int:
        return int(sum(b.shape[0] for b in self.blocks.values()))

    def describe(self) -> dict[str, Any]:
        parts = []
        for segment in self.segments:
            times = self.times.get(segment.label)
            used = times is not None and times.size > 0
            parts.append({
                "group": segment.label,
                "project_name": segment.group.project_name,
                "device_id": segment.group.device_id,
                "batch_id": segment.group.batch_id,
                "start": from_ns(int(times[0] if used else segment.start_ns)).isoformat(),
                "end": from_ns(int(times[-1] if used else segment.end_ns)).isoformat(),
                "rows": int(self.blocks[segment.label].shape[0]) if segment.label in self.blocks else 0,
            })
        return {"kind": self.kind, "columns": list(self.columns), "rows": self.rows, "segments": parts, **self.extra}


def _read_features(segment: Segment, variables: tuple[str, ...], max_age: timedelta) -> tuple[np.ndarray, np.ndarray]:
    """Complete as-of rows of ``variables`` in the segment (paged reads by time range); last N when asked."""
    if segment.last_n is not None:
        return _read_last(segment, variables, max_age)
    times: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    after = segment.start_ns - 1
    while True:
        snap = tsdb.snapshots_get(group=segment.group, variables=variables, after=from_ns(after),
                                  until=from_ns(segment.end_ns), max_age=max_age, limit=PAGE_ROWS)
        if len(snap) == 0:
            break
        ok = np.asarray(snap.complete, dtype=bool)
        times.append(snap.times_ns[ok])
        rows.append(snap.matrix[ok])
        if len(snap) < PAGE_ROWS:
            break
        after = int(snap.times_ns[-1])
    if not times:
        return np.empty(0, dtype=np.int64), np.empty((0, len(variables)))
    return np.concatenate(times), np.vstack(rows)


def _read_last(segment: Segment, variables: tuple[str, ...], max_age: timedelta) -> tuple[np.ndarray, np.ndarray]:
    """The last N complete rows: read a span sized from the sampling interval, widening it until it has N."""
    n = int(segment.last_n or 0)
    infos = tsdb.series_list(collection=Collection.RAW, where=SeriesFilter(
        project_name=segment.group.project_name, device_id=segment.group.device_id,
        batch_id=segment.group.batch_id, observed_property=variables[0]))
    infos = [i for i in infos if i.series.source != LAB_SOURCE]
    if not infos:
        return np.empty(0, dtype=np.int64), np.empty((0, len(variables)))
    info = max(infos, key=lambda i: i.point_count)
    span_ns = to_ns(info.last_time) - to_ns(info.first_time)
    step = span_ns / max(info.point_count - 1, 1)
    width = int(step * n * 1.2) + 1
    while True:
        start = max(segment.start_ns, segment.end_ns - width)
        times, rows = _read_features(Segment(segment.group, start, segment.end_ns), variables, max_age)
        if times.size >= n or start <= segment.start_ns:
            return times[-n:], rows[-n:]
        width *= 2


def load_features(segments: Sequence[Segment], variables: Sequence[str], *, kind: str, max_age: timedelta,
                  min_rows: int = 2) -> Window:
    """Process features of every segment (as-of snapshots of ``variables``, complete rows only)."""
    variables = tuple(variables)
    window = Window(kind, variables, {}, segments=list(segments))
    for segment in segments:
        times, rows = _read_features(segment, variables, max_age)
        if times.size < min_rows:
            raise DataError(f"{kind}: {segment.label} has {times.size} complete rows of "
                            f"{', '.join(variables)} in {from_ns(segment.start_ns)} .. {from_ns(segment.end_ns)}")
        window.blocks[segment.label] = rows
        window.times[segment.label] = times
    return window


def load_events(segments: Sequence[Segment], *, deployment_id: int, target: str, kind: str,
                sigma: float | None, k: float) -> tuple[Window, np.ndarray]:
    """Lab-residual error events (0/1) of every segment from the deployment's residual ledger.

    One query for all segments. ``sigma`` None: the caller computes σ from these residuals (reference).
    Returns the window of events and the residuals it came from (concatenated).
    """
    from django.db.models import Q
    from stamm_drift.residual_events import residual_events, residual_sigma

    from .models import LabResidual

    where = Q()
    for s in segments:
        where |= Q(project_name=s.group.project_name, device_id=s.group.device_id, batch_id=s.group.batch_id,
                   lab_time__gte=from_ns(s.start_ns), lab_time__lte=from_ns(s.end_ns))
    rows = list(
        LabResidual.objects.filter(where, deployment_id=deployment_id, target=target)
        .order_by("lab_time").values_list("project_name", "device_id", "batch_id", "lab_time", "residual")
    )
    by_label: dict[str, list[tuple[datetime, float]]] = {}
    for project, device, batch, lab_time, residual in rows:
        by_label.setdefault(f"{project}/{device}/{batch}", []).append((lab_time, residual))
    residuals = {s.label: np.array([r for _, r in by_label.get(s.label, [])], dtype=float) for s in segments}
    lab_times = {s.label: np.array([to_ns(t) for t, _ in by_label.get(s.label, [])], dtype=np.int64) for s in segments}
    for s in segments:
        if s.last_n is not None:
            residuals[s.label], lab_times[s.label] = residuals[s.label][-s.last_n:], lab_times[s.label][-s.last_n:]
    all_residuals = np.concatenate(list(residuals.values())) if residuals else np.empty(0)
    if sigma is None:
        try:
            sigma = residual_sigma(all_residuals)
        except ValueError as exc:
            raise DataError(f"{kind}: {exc} (run lab scoring for the reference batches first)") from None
    window = Window(kind, ("lab_error_events",), {}, segments=list(segments),
                    extra={"sigma": sigma, "k": k, "source": "lab residual ledger"})
    for s in segments:
        if residuals[s.label].size == 0:
            raise DataError(f"{kind}: no lab residuals for {s.label} in the window (run lab scoring first)")
        window.blocks[s.label] = residual_events(residuals[s.label], sigma=sigma, k=k).astype(float)[:, None]
        window.times[s.label] = lab_times[s.label]
    return window, all_residuals


def read_series_range(collection: Collection, series: Any, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """All points of one series in [start, end] without downsampling: slices of at most the read cap."""
    infos = tsdb.series_list(collection=collection, where=_filter_of(series), start=from_ns(start_ns),
                             end=from_ns(end_ns))
    count = sum(i.point_count for i in infos if i.series == series)
    slices = max(1, math.ceil(count / (tsdb.MAX_READ_POINTS * 0.8)))
    # Integer slice edges in microseconds (the resolution of the datetimes the store reads take); slices
    # share their edges, and points read twice are dropped below.
    lo_us, hi_us = start_ns // 1000, -(-end_ns // 1000)
    edges = [lo_us + (hi_us - lo_us) * i // slices for i in range(slices + 1)]
    times, values = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        data = tsdb.series_read(collection=collection, series=series, start=from_ns(lo * 1000),
                                end=from_ns(hi * 1000), max_points=tsdb.MAX_READ_POINTS)
        times.append(np.asarray(data.times_ns, dtype=np.int64))
        values.append(np.asarray(data.values, dtype=float))
    t, v = np.concatenate(times), np.concatenate(values)
    _, first = np.unique(t, return_index=True)
    return t[first], v[first]


def _filter_of(series: Any) -> SeriesFilter:
    return SeriesFilter(project_name=series.project_name, device_id=series.device_id, batch_id=series.batch_id,
                        source=series.source, observed_property=series.observed_property,
                        model_id=series.model_id or None, version=series.version or None)


def values_window(rows: np.ndarray, *, kind: str, columns: Sequence[str]) -> Window:
    """An inline window (ad hoc runs on values sent in the request)."""
    if rows.shape[1] != len(columns):
        raise _fail(f"{kind}.rows", f"rows have {rows.shape[1]} columns but {len(columns)} variables are named")
    return Window(kind, tuple(columns), {"values": rows}, extra={"source": "request"})


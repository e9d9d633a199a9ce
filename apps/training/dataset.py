"""Training data from the time-series store: load the chosen batches, then align them to the target.

``batches_load`` reads, through the tsdb selectors, every series a run needs for each chosen
(project, device, batch) group: the target (its true online series), the features and the target's lab
samples (source ``lab``), plus the group's start (its first raw point). ``dataset_align`` then builds
one row per target timestamp: each feature takes its latest value at or before that time within the
maximum input age (the same as-of rule the pipeline uses to build snapshots), batch age is added
(hours since the group's first raw point), and rows with a gap are dropped or forward-filled as
configured, with the count of every reason recorded.

Both results are saved as ``.npz`` files between workflow steps, so a step running on another worker
(or re-run after a crash) starts from exactly what the previous step produced.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import ValidationFailed
from apps.tsdb import selectors as tsdb
from apps.tsdb.asof import asof_matrix
from apps.tsdb.derived import BATCH_AGE, NS_PER_HOUR  # one definition for training and inference
from apps.tsdb.types import LAB_SOURCE, Collection, GroupKey, SeriesFilter, SeriesInfo, SeriesKey, from_ns, to_ns

#: Sources whose series are model inputs by default (STAMM: the project's sensor and actuator variables).
DEFAULT_FEATURE_SOURCES = ("sensor", "actuator")
INPUT_SOURCES = ("sensor", "actuator", "computed_variable", "computed")


@dataclass
class GroupData:
    group: GroupKey
    start_ns: int
    series: dict[str, tuple[np.ndarray, np.ndarray]]  # variable -> (times, values); the target included
    lab: tuple[np.ndarray, np.ndarray]


@dataclass
class Aligned:
    """Rows aligned to the target's timestamps, in batch then time order."""

    features: list[str]
    X: np.ndarray
    y: np.ndarray
    times_ns: np.ndarray
    batch_index: np.ndarray
    batch_age_h: np.ndarray
    batch_ids: list[str]
    labs: list[tuple[np.ndarray, np.ndarray]]
    summary: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        arrays = {
            "X": self.X,
            "y": self.y,
            "times_ns": self.times_ns,
            "batch_index": self.batch_index,
            "batch_age_h": self.batch_age_h,
        }
        for b, (t, v) in enumerate(self.labs):
            arrays[f"lab_t_{b}"], arrays[f"lab_v_{b}"] = t, v
        meta = {"features": self.features, "batch_ids": self.batch_ids, "summary": self.summary}
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path: Path) -> Aligned:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            labs = [(data[f"lab_t_{b}"], data[f"lab_v_{b}"]) for b in range(len(meta["batch_ids"]))]
            return cls(
                features=meta["features"],
                X=data["X"],
                y=data["y"],
                times_ns=data["times_ns"],
                batch_index=data["batch_index"],
                batch_age_h=data["batch_age_h"],
                batch_ids=meta["batch_ids"],
                labs=labs,
                summary=meta["summary"],
            )


def save_groups(groups: Sequence[GroupData], path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for g, data in enumerate(groups):
        names = sorted(data.series)
        for j, name in enumerate(names):
            arrays[f"g{g}_s{j}_t"], arrays[f"g{g}_s{j}_v"] = data.series[name]
        arrays[f"g{g}_lab_t"], arrays[f"g{g}_lab_v"] = data.lab
        meta.append(
            {
                "group": [data.group.project_name, data.group.device_id, data.group.batch_id],
                "start_ns": data.start_ns,
                "series": names,
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def load_groups(path: Path) -> list[GroupData]:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        return [
            GroupData(
                group=GroupKey(*item["group"]),
                start_ns=int(item["start_ns"]),
                series={name: (data[f"g{g}_s{j}_t"], data[f"g{g}_s{j}_v"]) for j, name in enumerate(item["series"])},
                lab=(data[f"g{g}_lab_t"], data[f"g{g}_lab_v"]),
            )
            for g, item in enumerate(meta)
        ]


def groups_resolve(*, project_name: str, batches: Sequence[str], device_id: str | None = None) -> list[GroupKey]:
    """The stored groups of the chosen batch ids (one device, or all); refuses batches not in the store."""
    known = tsdb.groups_list(project_name=project_name, device_id=device_id or None)
    by_batch: dict[str, list[GroupKey]] = {}
    for info in known:
        by_batch.setdefault(info.group.batch_id, []).append(info.group)
    missing = [b for b in batches if b not in by_batch]
    if missing:
        raise ValidationFailed(
            f"batches: {', '.join(missing)} not found in the store for project {project_name}"
            + (f" on device {device_id}" if device_id else ""),
            details={"batches": missing},
        )
    ambiguous = [b for b in batches if len(by_batch[b]) > 1]
    if ambiguous:
        raise ValidationFailed(
            f"batches: {', '.join(ambiguous)} exist on several devices; choose a device",
            details={"batches": ambiguous, "devices": sorted({g.device_id for b in ambiguous for g in by_batch[b]})},
        )
    return [by_batch[b][0] for b in batches]


def group_series(group: GroupKey) -> list[SeriesInfo]:
    return tsdb.series_list(
        where=SeriesFilter(project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id)
    )


def default_features(*, groups: Sequence[GroupKey], target: str) -> list[str]:
    """Sensor and actuator variables present in every chosen batch, except the target, sorted by name."""
    common: set[str] | None = None
    for group in groups:
        names = {i.series.observed_property for i in group_series(group) if i.series.source in DEFAULT_FEATURE_SOURCES}
        common = names if common is None else common & names
    return sorted((common or set()) - {target})


def series_read_all(
    series: SeriesKey, start: datetime, end: datetime, *, collection: Collection = Collection.RAW
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Every point of a series in [start, end] with its extra fields; windows are halved until no read
    is downsampled (one read returns at most ``MAX_READ_POINTS``)."""
    data = tsdb.series_read(collection=collection, series=series, start=start, end=end)
    if data.downsampled is None:
        return data.times_ns.astype(np.int64), data.values.astype(float), dict(data.fields)
    middle = start + (end - start) / 2
    t1, v1, f1 = series_read_all(series, start, middle, collection=collection)
    t2, v2, f2 = series_read_all(series, middle + timedelta(microseconds=1), end, collection=collection)
    fields = {name: np.concatenate([f1[name], f2[name]]) for name in f1 if name in f2}
    return np.concatenate([t1, t2]), np.concatenate([v1, v2]), fields


def series_values(series: SeriesKey, start: datetime, end: datetime) -> tuple[np.ndarray, np.ndarray]:
    times, values, _ = series_read_all(series, start, end)
    return times, values


def batches_load(
    *, groups: Sequence[GroupKey], target: str, features: Sequence[str]
) -> tuple[list[GroupData], dict[str, Any]]:
    """Read the target, the features and the target's lab samples of each group; refuse missing inputs."""
    loaded: list[GroupData] = []
    summary: dict[str, Any] = {"batches": {}}
    wanted = [target, *[f for f in features if f != BATCH_AGE]]
    problems: dict[str, list[str]] = {}
    for group in groups:
        infos = group_series(group)
        if not infos:
            problems[group.batch_id] = ["no raw data"]
            continue
        by_name: dict[str, SeriesInfo] = {}
        for info in sorted(
            infos, key=lambda i: INPUT_SOURCES.index(i.series.source) if i.series.source in INPUT_SOURCES else 99
        ):
            if info.series.source in INPUT_SOURCES:
                by_name.setdefault(info.series.observed_property, info)
        lab_info = next(
            (i for i in infos if i.series.source == LAB_SOURCE and i.series.observed_property == target), None
        )
        missing = [name for name in wanted if name not in by_name]
        if missing:
            problems[group.batch_id] = missing
            continue
        start_ns = min(to_ns(i.first_time) for i in infos)
        series = {
            name: series_values(by_name[name].series, by_name[name].first_time, by_name[name].last_time)
            for name in wanted
        }
        lab = (
            series_values(lab_info.series, lab_info.first_time, lab_info.last_time)
            if lab_info is not None
            else (np.empty(0, dtype=np.int64), np.empty(0))
        )
        loaded.append(GroupData(group=group, start_ns=start_ns, series=series, lab=lab))
        summary["batches"][group.batch_id] = {
            "device_id": group.device_id,
            "start": from_ns(start_ns).isoformat(),
            "target_points": int(series[target][0].shape[0]),
            "lab_samples": int(lab[0].shape[0]),
        }
        summary.setdefault("sources", {}).update({name: by_name[name].series.source for name in wanted})
    if problems:
        raise ValidationFailed(
            "features: some batches lack chosen variables: "
            + "; ".join(f"{batch}: {', '.join(names)}" for batch, names in problems.items()),
            details={"missing": problems},
        )
    return loaded, summary


def dataset_align(
    groups: Sequence[GroupData],
    *,
    target: str,
    features: Sequence[str],
    max_input_age_ns: int,
    gaps: str = "drop",
) -> Aligned:
    """One row per target timestamp with as-of features and batch age; gaps dropped or forward-filled."""
    if gaps not in ("drop", "ffill"):
        raise ValidationFailed("preprocessing.gaps: must be drop or ffill", details={"preprocessing.gaps": gaps})
    stored = [f for f in features if f != BATCH_AGE]
    blocks_X, blocks_y, blocks_t, blocks_b, blocks_age = [], [], [], [], []
    dropped: Counter[str] = Counter()
    per_batch: dict[str, dict[str, int]] = {}
    for b, data in enumerate(groups):
        t_target, y = data.series[target]
        keep_target = np.isfinite(y)
        dropped["target not a number"] += int((~keep_target).sum())
        t_rows, y = t_target[keep_target], y[keep_target]
        var_times = [data.series[name][0] for name in stored]
        var_values = [data.series[name][1] for name in stored]
        matrix, complete, reasons = asof_matrix(t_rows, stored, var_times, var_values, max_age_ns=max_input_age_ns)
        if gaps == "ffill":
            # Forward fill: the latest earlier value whatever its age; only rows before a first value stay empty.
            strict = complete
            matrix, complete, reasons = asof_matrix(
                t_rows, stored, var_times, var_values, max_age_ns=np.iinfo(np.int64).max // 2
            )
            per_batch.setdefault(data.group.batch_id, {})["rows_forward_filled"] = int((complete & ~strict).sum())
        for i in np.flatnonzero(~complete):
            for part in (reasons[i] or "incomplete").split("; "):
                dropped[part.split(" (age")[0]] += 1
        age_h = (t_rows - data.start_ns) / NS_PER_HOUR
        columns = [matrix[:, stored.index(f)] if f != BATCH_AGE else age_h for f in features]
        X = np.column_stack(columns) if columns else np.empty((t_rows.shape[0], 0))
        blocks_X.append(X[complete])
        blocks_y.append(y[complete])
        blocks_t.append(t_rows[complete])
        blocks_b.append(np.full(int(complete.sum()), b, dtype=np.int32))
        blocks_age.append(age_h[complete])
        per_batch.setdefault(data.group.batch_id, {}).update(
            {
                "target_rows": int(t_target.shape[0]),
                "kept": int(complete.sum()),
                "dropped": int((~complete).sum() + (~keep_target).sum()),
            }
        )
    if not blocks_X or sum(x.shape[0] for x in blocks_X) == 0:
        raise ValidationFailed(
            "no complete row after alignment: every target time lacks an input", details={"dropped": dict(dropped)}
        )
    return Aligned(
        features=list(features),
        X=np.vstack(blocks_X),
        y=np.concatenate(blocks_y),
        times_ns=np.concatenate(blocks_t),
        batch_index=np.concatenate(blocks_b),
        batch_age_h=np.concatenate(blocks_age),
        batch_ids=[g.group.batch_id for g in groups],
        labs=[g.lab for g in groups],
        summary={
            "rows": int(sum(x.shape[0] for x in blocks_X)),
            "per_batch": per_batch,
            "dropped": {k: v for k, v in dropped.items() if v},
            "gaps": gaps,
            "max_input_age_seconds": max_input_age_ns // 1_000_000_000,
        },
    )


def envelope(X: np.ndarray, features: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per-feature min and max of the training rows (the descriptor's expected_range)."""
    return {name: {"min": float(np.min(X[:, j])), "max": float(np.max(X[:, j]))} for j, name in enumerate(features)}


def experiment_ids(batch_ids: Sequence[str]) -> list[int]:
    """STAMM ``experiments_ID``: the number in each batch id (``batch_92`` → 92), when there is one."""
    import re  # noqa: PLC0415

    numbers = []
    for batch in batch_ids:
        found = re.findall(r"\d+", batch)
        if found:
            numbers.append(int(found[-1]))
    return numbers

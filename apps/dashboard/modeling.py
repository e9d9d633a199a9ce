"""Selectors of the modeler's drift-analysis page: the detectors it offers, windows of process variables cut
from several batches, densities, and the verdict (the drift app's catalogue and calibration). Soft sensors,
simulation and divergence live in ``soft_sensors`` and ``simulation``; nothing here writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from apps.common.errors import ValidationFailed
from apps.tsdb.selectors import series_list, snapshots_get
from apps.tsdb.types import Collection, GroupKey

from .selectors import group_filter, variable_units

#: Most snapshot rows one batch window reads (the store's cap on one snapshot read).
MAX_WINDOW_ROWS = 10_000
#: An input older than this at a snapshot's time makes the row incomplete (the deployment default).
WINDOW_MAX_AGE = timedelta(hours=1)


# --------------------------------------------------------------------------------------------- drift


def feature_detectors() -> list[dict[str, Any]]:
    """Catalogue entries of the detectors that compare process-variable windows (the page's choice)."""
    from stamm_drift import catalogue

    return [entry for entry in catalogue() if entry["input"] == "features"]


@dataclass
class DriftAnalysis:
    result: Any  # stamm_drift.DriftResult
    calibrated: bool
    reference_batches: list[str]
    test_batch: str
    window_h: tuple[float, float]
    variables: list[str]
    units: dict[str, str]
    reference: np.ndarray
    test: np.ndarray
    densities: list[dict[str, Any]]


def _window_rows(group: GroupKey, variables: tuple[str, ...], window_h: tuple[float, float]) -> np.ndarray:
    snapshots = snapshots_get(
        group=group, variables=variables, after=None, max_age=WINDOW_MAX_AGE, limit=MAX_WINDOW_ROWS
    )
    complete = np.asarray(snapshots.complete, dtype=bool)
    if not complete.any():
        return np.empty((0, len(variables)))
    times = snapshots.times_ns[complete]
    hours = (times - times[0]) / 3.6e12
    keep = (hours >= window_h[0]) & (hours <= window_h[1])
    return snapshots.matrix[complete][keep]


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from scipy import stats

    if values.size < 3 or float(np.std(values)) == 0.0:
        hist, edges = np.histogram(values, bins=grid.size - 1, range=(grid[0], grid[-1]), density=True)
        return np.append(hist, hist[-1] if hist.size else 0.0)
    return stats.gaussian_kde(values)(grid)


def _constant(values: np.ndarray) -> float | None:
    """The value of a window whose values are all equal (relative tolerance 1e-9), else ``None``."""
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    return low if high - low <= 1e-9 * max(abs(low), abs(high), 1e-300) else None


def densities(
    reference: np.ndarray, test: np.ndarray, variables: Sequence[str], points: int = 160
) -> list[dict[str, Any]]:
    """Reference and test densities per variable on a shared grid (Gaussian KDE). A variable that is constant
    in the reference or the test window has no density worth drawing: its item says ``constant`` with the
    constant values (``None`` for a side that varies) and carries no grid."""
    out = []
    for j, name in enumerate(variables):
        ref, tst = reference[:, j], test[:, j]
        ref_constant = _constant(ref)
        test_constant = _constant(tst)
        if ref_constant is not None or test_constant is not None:
            out.append(
                {"variable": name, "constant": True, "reference_value": ref_constant, "test_value": test_constant}
            )
            continue
        both = np.concatenate([ref, tst])
        low, high = float(both.min()), float(both.max())
        pad = (high - low) * 0.1 or max(abs(low) * 0.05, 1e-6)
        grid = np.linspace(low - pad, high + pad, points)
        out.append(
            {
                "variable": name,
                "constant": False,
                "grid": grid.tolist(),
                "reference": _density(ref, grid).tolist(),
                "test": _density(tst, grid).tolist(),
            }
        )
    return out


def drift_analyse(
    *,
    detector_key: str,
    params: Mapping[str, Any],
    variables: Sequence[str],
    reference: Sequence[GroupKey],
    test: GroupKey,
    window_h: tuple[float, float],
) -> DriftAnalysis:
    """Compare the test batch's window with the same window of the reference batches.

    With two or more reference batches the verdict uses the drift app's reference-calibrated rule
    (``stamm_drift.calibration``): thresholds from how much the reference batches differ among
    themselves; with one, the detector's nominal threshold.
    """
    from stamm_drift import DriftError, build_detector, calibrate, calibrated_detect

    if not variables:
        raise ValidationFailed("choose at least one variable", details={"variables": []})
    if not reference:
        raise ValidationFailed("choose at least one reference batch", details={"reference": []})
    if test in reference:
        raise ValidationFailed("the test batch must not be a reference batch", details={"test": test.batch_id})
    low, high = float(window_h[0]), float(window_h[1])
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < high):
        raise ValidationFailed("window: need 0 ≤ start < end (hours)", details={"window": [low, high]})
    try:
        detector = build_detector(detector_key, params)
    except DriftError as exc:
        raise ValidationFailed(str(exc), details={"parameters": str(exc)}) from exc
    names = tuple(dict.fromkeys(variables))
    labels = {group: _label(group) for group in (*reference, test)}
    windows = {labels[group]: _window_rows(group, names, (low, high)) for group in (*reference, test)}
    for label, rows in windows.items():
        if rows.shape[0] < max(detector.min_rows, 2):
            raise ValidationFailed(
                f"{label}: {rows.shape[0]} complete rows in {low:g}–{high:g} h;"
                f" {detector.label} needs {detector.min_rows}",
                details={"batch": label, "rows": int(rows.shape[0])},
            )
    reference_labels = [labels[g] for g in reference]
    reference_rows = np.vstack([windows[b] for b in reference_labels])
    test_rows = windows[labels[test]]
    try:
        if len(reference_labels) >= 2:
            calibration = calibrate(
                detector,
                {b: windows[b] for b in reference_labels},
                components=list(names) if detector.per_variable else ["all variables"],
            )
            result = calibrated_detect(detector, calibration, reference_rows, test_rows, variables=names)
            calibrated = True
        else:
            result = detector.detect(reference_rows, test_rows, variables=names)
            calibrated = False
    except DriftError as exc:
        raise ValidationFailed(str(exc), details={"detector": detector_key}) from exc
    return DriftAnalysis(
        result=result,
        calibrated=calibrated,
        reference_batches=reference_labels,
        test_batch=labels[test],
        window_h=(low, high),
        variables=list(names),
        units=variable_units(project_name=test.project_name, device_id=test.device_id),
        reference=reference_rows,
        test=test_rows,
        densities=densities(reference_rows, test_rows, names),
    )


def _label(group: GroupKey) -> str:
    return f"{group.device_id}/{group.batch_id}"


def batch_hours(*, group: GroupKey) -> float:
    """Length of a batch in hours (for the window slider), from the series index."""
    infos = series_list(collection=Collection.RAW, where=group_filter(group))
    if not infos:
        return 0.0
    first = min(i.first_time for i in infos)
    last = max(i.last_time for i in infos)
    return (last - first).total_seconds() / 3600

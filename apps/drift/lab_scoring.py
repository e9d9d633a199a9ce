"""Lab-sample scoring: a deployment's predictions against the lab samples of the same batch.

Lab samples are slow (IndPenSim: one every 12 h) and are the only ground truth a soft sensor gets. Each
lab sample is paired with the deployment's *nearest* prediction of the target within a tolerance; the
pair is a row of the residual ledger (``LabResidual``: residual = lab − predicted). From the ledger come
the rolling MAE / RMSE / bias the dashboards show, and the 0/1 error events EDDM and HDDM-A read
(``stamm_drift.residual_events``).

Which series are read (per group, by time range only):

- lab: the raw series with source ``lab`` named by the deployment's lab setting; by default
  ``offline_<target>``, else ``<target>`` (the CSV import stores IndPenSim's
  ``offline_penicillin_concentration`` as ``penicillin_concentration`` with source ``lab``);
- predictions: every version's series of the deployment's model (tag ``model_id``) for the target, in
  [first lab − tolerance, last lab + tolerance]. Where two versions predicted the same time (a rescore
  after an alias move) the higher version number wins; the row records the version used.

The pure functions here (alignment, rolling metrics) take NumPy arrays and are tested on hand-built cases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.tsdb import selectors as tsdb
from apps.tsdb.types import LAB_SOURCE, PREDICTION_SOURCE, Collection, GroupKey, SeriesFilter, from_ns, to_ns

from .window_loading import read_series_range


@dataclass(frozen=True)
class Matched:
    """Lab samples matched with a prediction (arrays of equal length, lab time ascending)."""

    lab_times_ns: np.ndarray
    lab_values: np.ndarray
    prediction_times_ns: np.ndarray
    predicted_values: np.ndarray
    versions: np.ndarray  # version tag of each matched prediction

    @property
    def residuals(self) -> np.ndarray:
        return self.lab_values - self.predicted_values

    def __len__(self) -> int:
        return int(self.lab_times_ns.shape[0])


def merge_versions(parts: list[tuple[str, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions of several versions → one series; at a time predicted twice the higher version wins."""
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=object)
    order = sorted(parts, key=lambda p: (_version_key(p[0])), reverse=True)  # highest version first
    times = np.concatenate([p[1] for p in order]).astype(np.int64)
    values = np.concatenate([p[2] for p in order]).astype(float)
    versions = np.concatenate([np.full(p[1].shape[0], p[0], dtype=object) for p in order])
    _, first = np.unique(times, return_index=True)  # np.unique keeps the first occurrence: the highest version
    return times[first], values[first], versions[first]


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def align(lab_times_ns: np.ndarray, lab_values: np.ndarray, pred_times_ns: np.ndarray, pred_values: np.ndarray,
          pred_versions: np.ndarray, *, tolerance_ns: int) -> Matched:
    """Each lab sample with the nearest prediction within ``tolerance_ns`` (ties: the earlier prediction)."""
    lab_t = np.asarray(lab_times_ns, dtype=np.int64)
    order = np.argsort(lab_t, kind="stable")
    lab_t, lab_v = lab_t[order], np.asarray(lab_values, dtype=float)[order]
    pt = np.asarray(pred_times_ns, dtype=np.int64)
    empty = Matched(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64), np.empty(0), np.empty(0, object))
    if pt.size == 0 or lab_t.size == 0:
        return empty
    p_order = np.argsort(pt, kind="stable")
    pt, pv, pver = pt[p_order], np.asarray(pred_values, float)[p_order], np.asarray(pred_versions, object)[p_order]
    right = np.clip(np.searchsorted(pt, lab_t, side="left"), 0, pt.size - 1)
    left = np.clip(right - 1, 0, pt.size - 1)
    nearest = np.where(np.abs(pt[left] - lab_t) <= np.abs(pt[right] - lab_t), left, right)
    ok = (np.abs(pt[nearest] - lab_t) <= tolerance_ns) & np.isfinite(lab_v) & np.isfinite(pv[nearest])
    idx = nearest[ok]
    return Matched(lab_t[ok], lab_v[ok], pt[idx], pv[idx], pver[idx])


def rolling_metrics(residuals: np.ndarray, window: int) -> dict[str, np.ndarray]:
    """Trailing MAE, RMSE and bias (mean residual) over the last ``window`` samples, at every sample."""
    r = np.asarray(residuals, dtype=float)
    if window < 1:
        raise ValueError("window must be at least 1")
    if r.size == 0:
        return {"mae": np.empty(0), "rmse": np.empty(0), "bias": np.empty(0), "n": np.empty(0, dtype=int)}

    def trailing_mean(x: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(x)])
        hi = np.arange(1, x.size + 1)
        lo = np.maximum(hi - window, 0)
        return (c[hi] - c[lo]) / (hi - lo)

    n = np.minimum(np.arange(1, r.size + 1), window)
    return {"mae": trailing_mean(np.abs(r)), "rmse": np.sqrt(trailing_mean(r * r)), "bias": trailing_mean(r), "n": n}


def summary(residuals: np.ndarray) -> dict[str, float | int | None]:
    """MAE, RMSE, bias and count of a set of residuals (None when empty)."""
    r = np.asarray(residuals, dtype=float)
    if r.size == 0:
        return {"n": 0, "mae": None, "rmse": None, "bias": None}
    return {"n": int(r.size), "mae": float(np.mean(np.abs(r))), "rmse": float(np.sqrt(np.mean(r * r))),
            "bias": float(np.mean(r))}


def lab_property_candidates(target: str, configured: str = "") -> tuple[str, ...]:
    return (configured,) if configured else (f"offline_{target}", target)


def read_group(
    *, group: GroupKey, target: str, lab_property: str, model_tag: str, tolerance_ns: int,
    versions: set[str] | None = None,
) -> tuple[Matched, str | None]:
    """Lab samples and the deployment model's predictions of one group, aligned; and the lab series used.
    ``versions`` narrows the prediction series to those version tags (a champion and its shadow share a model
    tag; each reads its own versions)."""
    lab_series = tsdb.series_list(collection=Collection.RAW, where=SeriesFilter(
        project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id, source=LAB_SOURCE))
    by_name = {info.series.observed_property: info for info in lab_series}
    chosen = next((by_name[name] for name in lab_property_candidates(target, lab_property) if name in by_name), None)
    empty = align(np.empty(0), np.empty(0), np.empty(0), np.empty(0), np.empty(0), tolerance_ns=tolerance_ns)
    if chosen is None:
        return empty, None
    lab_t, lab_v = read_series_range(Collection.RAW, chosen.series, to_ns(chosen.first_time), to_ns(chosen.last_time))
    if lab_t.size == 0:
        return empty, chosen.series.observed_property
    lo, hi = int(lab_t.min()) - tolerance_ns, int(lab_t.max()) + tolerance_ns
    infos = tsdb.series_list(collection=Collection.PREDICTIONS, where=SeriesFilter(
        project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id,
        source=PREDICTION_SOURCE, observed_property=target, model_id=model_tag), start=from_ns(lo), end=from_ns(hi))
    parts = []
    for info in infos:
        if versions is not None and info.series.version not in versions:
            continue
        t, v = read_series_range(Collection.PREDICTIONS, info.series, lo, hi)
        parts.append((info.series.version, t, v))
    pt, pv, pver = merge_versions(parts)
    return align(lab_t, lab_v, pt, pv, pver, tolerance_ns=tolerance_ns), chosen.series.observed_property

"""Turn a regression soft sensor's residuals at lab samples into 0/1 error events (for EDDM / HDDM-A).

EDDM and HDDM-A watch a *classifier's* error stream. A regression soft sensor has no right or wrong,
so an "error" is a lab sample whose residual is unusually large: ``|residual| > k·σ``, with σ the SD
of the residuals on the reference (the training batches). ``k = 2`` makes about 5 % of in-control
samples errors if residuals are roughly normal.
"""
from __future__ import annotations

import numpy as np


def align_to_lab(pred_time: np.ndarray, predictions: np.ndarray, lab_time: np.ndarray, lab_values: np.ndarray,
                 *, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Residuals ``lab − prediction`` at each lab sample, using the nearest prediction within ``tolerance``
    (same unit as the times). Returns the residuals and the indices of the lab samples that matched."""
    pred_time = np.asarray(pred_time, dtype=float)
    lab_time = np.asarray(lab_time, dtype=float)
    if pred_time.size == 0 or lab_time.size == 0:
        return np.empty(0), np.empty(0, dtype=int)
    order = np.argsort(pred_time)
    pt, pv = pred_time[order], np.asarray(predictions, dtype=float)[order]
    pos = np.clip(np.searchsorted(pt, lab_time), 1, pt.size - 1) if pt.size > 1 else np.zeros(lab_time.size, int)
    left = np.maximum(pos - 1, 0)
    nearest = np.where(np.abs(pt[left] - lab_time) <= np.abs(pt[pos] - lab_time), left, pos)
    ok = np.abs(pt[nearest] - lab_time) <= tolerance
    return np.asarray(lab_values, dtype=float)[ok] - pv[nearest[ok]], np.flatnonzero(ok)


def residual_sigma(reference_residuals: np.ndarray) -> float:
    """σ of the reference residuals (SD, ddof = 1); refuses fewer than three residuals."""
    r = np.asarray(reference_residuals, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 3:
        raise ValueError(f"need at least 3 reference residuals to estimate σ, got {r.size}")
    sigma = float(r.std(ddof=1))
    if sigma <= 0:
        raise ValueError("the reference residuals are all equal; σ = 0")
    return sigma


def residual_events(residuals: np.ndarray, *, sigma: float, k: float = 2.0) -> np.ndarray:
    """0/1 events: 1 where ``|residual| > k·σ``."""
    if sigma <= 0 or k <= 0:
        raise ValueError("sigma and k must be positive")
    return (np.abs(np.asarray(residuals, dtype=float)) > k * sigma).astype(np.int8)

"""Filtered bias update from lab samples (the classic soft-sensor correction), framework-free.

For each lab sample of a batch, in order of the time its result becomes known (sample time + lab delay):

    residual = lab value − raw model prediction at the sample time
    new bias = (1 − alpha) · bias + alpha · residual

A sample is rejected (and the bias left alone) when its value is outside [lab_min, lab_max], when there
is no prediction at or before its sample time, or when it is older than ``max_age`` by the time its result
is known. The corrected estimate at time t is the raw prediction plus the bias known at t, so the raw
model output is kept untouched and the correction never looks into the future.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BiasParams:
    alpha: float
    lab_delay_ns: int
    max_age_ns: int
    lab_min: float | None = None
    lab_max: float | None = None
    initial_bias: float = 0.0


@dataclass
class BiasTrace:
    """Bias in force at each prediction time, and what happened to each lab sample."""

    bias: np.ndarray
    corrected: np.ndarray
    final_bias: float
    used: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)


def bias_trace(
    pred_times_ns: np.ndarray,
    predictions: np.ndarray,
    lab_times_ns: np.ndarray,
    lab_values: np.ndarray,
    params: BiasParams,
) -> BiasTrace:
    """Apply the filtered bias update to one batch's predictions (ascending times on both sides)."""
    pred_times_ns = np.asarray(pred_times_ns, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=float)
    lab_times_ns = np.asarray(lab_times_ns, dtype=np.int64)
    lab_values = np.asarray(lab_values, dtype=float)
    if not 0.0 <= params.alpha <= 1.0:
        raise ValueError("alpha must be between 0 and 1")
    rejected: dict[str, int] = {}
    # Residual of each lab sample against the prediction in force at its sample time.
    pos = np.searchsorted(pred_times_ns, lab_times_ns, side="right") - 1
    has_pred = pos >= 0
    residual = np.where(
        has_pred, lab_values - predictions[np.clip(pos, 0, None)] if predictions.size else np.nan, np.nan
    )
    known_at = lab_times_ns + int(params.lab_delay_ns)
    ok = has_pred & np.isfinite(residual)
    rejected["no prediction at sample time"] = int((~has_pred).sum())
    low_bad = (lab_values < params.lab_min) if params.lab_min is not None else np.zeros(lab_values.shape, bool)
    high_bad = (lab_values > params.lab_max) if params.lab_max is not None else np.zeros(lab_values.shape, bool)
    out_of_range = ok & (low_bad | high_bad)
    rejected["lab value outside [min, max]"] = int(out_of_range.sum())
    ok &= ~out_of_range
    too_old = ok & ((known_at - lab_times_ns) > params.max_age_ns)
    rejected["older than max age when known"] = int(too_old.sum())
    ok &= ~too_old
    order = np.argsort(known_at[ok], kind="stable")
    use_times = known_at[ok][order]
    use_res = residual[ok][order]
    # The recursion runs over lab samples only (tens per batch); predictions are then vectorised.
    levels = np.empty(use_res.shape[0] + 1)
    levels[0] = params.initial_bias
    for i, r in enumerate(use_res):
        levels[i + 1] = (1.0 - params.alpha) * levels[i] + params.alpha * r
    step = np.searchsorted(use_times, pred_times_ns, side="right")
    bias = levels[step]
    updates = [
        {"known_at_ns": int(t), "residual": round(float(r), 6), "bias": round(float(b), 6)}
        for t, r, b in zip(use_times, use_res, levels[1:], strict=True)
    ]
    return BiasTrace(
        bias=bias,
        corrected=predictions + bias,
        final_bias=float(levels[-1]),
        used=int(ok.sum()),
        rejected={k: v for k, v in rejected.items() if v},
        updates=updates,
    )

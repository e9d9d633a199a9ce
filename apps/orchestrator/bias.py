"""Filtered bias update from lab samples (the classic soft-sensor correction), framework-free.

For each lab sample of a batch, in order of the time its result becomes known (sample time + lab delay):

    residual = lab value − raw estimate in force at the sample time
    new bias = (1 − alpha) · bias + alpha · residual

A sample is rejected (and the bias left alone) when its value is outside [lab_min, lab_max], when there
is no raw estimate at or before its sample time, or when it is older than ``max_age`` by the time its
result is known. The corrected estimate at time t is the raw estimate plus the bias known at t, so the raw
model output is kept untouched and the correction never looks into the future.

The rule is split in two so the live pipeline can run it a chunk at a time: ``raw_in_force`` finds the raw
estimate at each lab sample time (the only step that needs past estimates; the pipeline remembers the
answers per group), and ``bias_levels`` + ``bias_at`` fold the samples into the bias in force at any time.
``bias_trace`` composes them over one whole batch (replays, the bias study, tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NO_PREDICTION = "no prediction at sample time"
OUT_OF_RANGE = "lab value outside [min, max]"
TOO_OLD = "older than max age when known"


@dataclass(frozen=True)
class BiasParams:
    alpha: float
    lab_delay_ns: int
    max_age_ns: int
    lab_min: float | None = None
    lab_max: float | None = None
    initial_bias: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must be between 0 and 1")


@dataclass(frozen=True)
class BiasLevels:
    """The bias after each used lab sample, in the order the samples became known."""

    known_ns: np.ndarray  # ascending times at which the bias changed
    levels: np.ndarray  # levels[0] = initial bias; levels[i + 1] = bias from known_ns[i] on
    used: int
    rejected: dict[str, int]
    updates: list[dict[str, Any]]

    @property
    def final(self) -> float:
        return float(self.levels[-1])


@dataclass
class BiasTrace:
    """Bias in force at each prediction time, and what happened to each lab sample."""

    bias: np.ndarray
    corrected: np.ndarray
    final_bias: float
    used: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)


def raw_in_force(
    pred_times_ns: np.ndarray, predictions: np.ndarray, lab_times_ns: np.ndarray, *, max_gap_ns: int | None = None
) -> np.ndarray:
    """The raw estimate at or before each lab time, at most ``max_gap_ns`` older than it (NaN where there is
    none); ascending prediction times. The gap is the deployment's maximum input age: an estimate older
    than the inputs it could have had says nothing about the sample."""
    pred_times_ns = np.asarray(pred_times_ns, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=float)
    lab_times_ns = np.asarray(lab_times_ns, dtype=np.int64)
    pos = np.searchsorted(pred_times_ns, lab_times_ns, side="right") - 1
    out = np.full(lab_times_ns.shape[0], np.nan)
    has = pos >= 0
    if max_gap_ns is not None and predictions.size:
        has &= lab_times_ns - pred_times_ns[np.clip(pos, 0, None)] <= max_gap_ns
    if predictions.size:
        out[has] = predictions[pos[has]]
    return out


def bias_levels(
    lab_times_ns: np.ndarray, lab_values: np.ndarray, raw_at_lab: np.ndarray, params: BiasParams
) -> BiasLevels:
    """Fold the lab samples (with the raw estimate in force at each) into the bias steps."""
    lab_times_ns = np.asarray(lab_times_ns, dtype=np.int64)
    lab_values = np.asarray(lab_values, dtype=float)
    residual = lab_values - np.asarray(raw_at_lab, dtype=float)
    known_at = lab_times_ns + int(params.lab_delay_ns)
    ok = np.isfinite(residual)
    rejected = {NO_PREDICTION: int((~ok).sum())}
    low_bad = (lab_values < params.lab_min) if params.lab_min is not None else np.zeros(lab_values.shape, bool)
    high_bad = (lab_values > params.lab_max) if params.lab_max is not None else np.zeros(lab_values.shape, bool)
    out_of_range = ok & (low_bad | high_bad)
    rejected[OUT_OF_RANGE] = int(out_of_range.sum())
    ok &= ~out_of_range
    too_old = ok & ((known_at - lab_times_ns) > params.max_age_ns)
    rejected[TOO_OLD] = int(too_old.sum())
    ok &= ~too_old
    order = np.argsort(known_at[ok], kind="stable")
    use_times = known_at[ok][order]
    use_res = residual[ok][order]
    # The recursion runs over lab samples only (tens per batch); estimates are then vectorised.
    levels = np.empty(use_res.shape[0] + 1)
    levels[0] = params.initial_bias
    for i, r in enumerate(use_res):
        levels[i + 1] = (1.0 - params.alpha) * levels[i] + params.alpha * r
    updates = [
        {"known_at_ns": int(t), "residual": round(float(r), 6), "bias": round(float(b), 6)}
        for t, r, b in zip(use_times, use_res, levels[1:], strict=True)
    ]
    return BiasLevels(
        known_ns=use_times,
        levels=levels,
        used=int(ok.sum()),
        rejected={k: v for k, v in rejected.items() if v},
        updates=updates,
    )


def bias_at(times_ns: np.ndarray, steps: BiasLevels) -> np.ndarray:
    """The bias in force at each time: the level after every lab result known at or before it."""
    return steps.levels[np.searchsorted(steps.known_ns, np.asarray(times_ns, dtype=np.int64), side="right")]


def bias_trace(
    pred_times_ns: np.ndarray,
    predictions: np.ndarray,
    lab_times_ns: np.ndarray,
    lab_values: np.ndarray,
    params: BiasParams,
    *,
    max_gap_ns: int | None = None,
) -> BiasTrace:
    """Apply the filtered bias update to one batch's predictions (ascending times on both sides)."""
    predictions = np.asarray(predictions, dtype=float)
    raw = raw_in_force(pred_times_ns, predictions, lab_times_ns, max_gap_ns=max_gap_ns)
    steps = bias_levels(lab_times_ns, lab_values, raw, params)
    bias = bias_at(pred_times_ns, steps)
    return BiasTrace(
        bias=bias,
        corrected=predictions + bias,
        final_bias=steps.final,
        used=steps.used,
        rejected=steps.rejected,
        updates=steps.updates,
    )

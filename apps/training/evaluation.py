"""Holdout metrics and the two baselines a soft sensor must be judged against (framework-free).

Metrics: RMSE, MAE, R² and bias (mean of prediction − truth: positive means the model over-estimates),
overall and per process phase when the project defines phases on batch age.

What is judged is the estimator **as deployed**: the model plus its lab bias update, scored on the holdout
through the platform's one scoring path (``apps.orchestrator.scoring``), beside the raw model.

Baselines, both computed on the same holdout rows as the candidates:
- the training mean: a constant, what any model must beat to be worth anything;
- delayed-lab persistence: at each time, the last lab value whose result was already known, i.e. sampled
  at least ``lab_delay`` earlier. This is what an operator has without a soft sensor. Rows before the
  first lab result of their batch have no persistence value; they are left out of every comparison with
  persistence (and the coverage is reported).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

NS_PER_HOUR = 3600 * 1_000_000_000

#: The IndPenSim variables a real plant measures online (IndPenSim also simulates substrate and biomass, which
#: a plant only knows from the lab): the inputs of the demo and of the tests' soft sensors.
INDPENSIM_ONLINE_INPUTS: tuple[str, ...] = (
    "temperature",
    "sugar_feed_rate",
    "aeration_rate",
    "dissolved_oxygen_concentration",
    "ph",
    "vessel_volume",
    "co2_percent_in_off_gas",
    "oxygen_in_percent_in_off_gas",
)

#: IndPenSim's four growth phases (Goldrick et al.), on batch age in hours.
INDPENSIM_PHASES: tuple[dict[str, Any], ...] = (
    {"name": "lag", "start_h": 0.0, "end_h": 30.0},
    {"name": "log", "start_h": 30.0, "end_h": 120.0},
    {"name": "stationary", "start_h": 120.0, "end_h": 200.0},
    {"name": "death", "start_h": 200.0, "end_h": None},
)


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """RMSE, MAE, R² and bias of ``y_pred`` against ``y_true`` (rows with a NaN on either side left out)."""
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    n = int(ok.sum())
    if n == 0:
        return {"n": 0, "rmse": None, "mae": None, "r2": None, "bias": None}
    err = y_pred[ok] - y_true[ok]
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((y_true[ok] - y_true[ok].mean()) ** 2))
    return {
        "n": n,
        "rmse": _round(np.sqrt(ss_res / n)),
        "mae": _round(np.mean(np.abs(err))),
        "r2": _round(1.0 - ss_res / ss_tot) if n > 1 and ss_tot > 0 else None,
        "bias": _round(np.mean(err)),
    }


def phase_masks(batch_age_h: np.ndarray, phases: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Row mask per phase: start_h ≤ age < end_h (an open end when end_h is None)."""
    masks = {}
    for phase in phases:
        start = float(phase.get("start_h") or 0.0)
        end = phase.get("end_h")
        mask = batch_age_h >= start
        if end is not None:
            mask &= batch_age_h < float(end)
        masks[str(phase["name"])] = mask
    return masks


def metrics_by_phase(
    y_true: np.ndarray, y_pred: np.ndarray, batch_age_h: np.ndarray, phases: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    return {name: metrics(y_true[mask], y_pred[mask]) for name, mask in phase_masks(batch_age_h, phases).items()}


def persistence_predictions(
    times_ns: np.ndarray,
    batch_index: np.ndarray,
    labs: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    lab_delay_ns: int,
) -> np.ndarray:
    """The last lab value known at each row (sampled at least ``lab_delay_ns`` before it), NaN if none yet.

    ``labs[b]`` holds the ascending (times, values) of batch ``b``'s lab samples.
    """
    out = np.full(times_ns.shape[0], np.nan)
    for b, (lab_t, lab_v) in enumerate(labs):
        rows = np.flatnonzero(batch_index == b)
        if not rows.size or not len(lab_t):
            continue
        known_at = np.asarray(lab_t, dtype=np.int64) + int(lab_delay_ns)
        pos = np.searchsorted(known_at, times_ns[rows], side="right") - 1
        has = pos >= 0
        out[rows[has]] = np.asarray(lab_v, dtype=float)[pos[has]]
    return out


def _with_phases(
    y_true: np.ndarray, y_pred: np.ndarray, batch_age_h: np.ndarray, phases: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    return {
        "overall": metrics(y_true, y_pred),
        "phases": metrics_by_phase(y_true, y_pred, batch_age_h, phases) if phases else {},
    }


def estimator_report(
    *,
    y_true: np.ndarray,
    raw: np.ndarray,
    corrected: np.ndarray,
    persistence: np.ndarray,
    train_mean: float,
    batch_age_h: np.ndarray,
    phases: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """How an estimator did on the holdout rows it scored, raw and as deployed, beside both baselines.

    ``raw`` and ``corrected`` are NaN on rows the estimator did not score (an input missing or stale, as in
    the plant). Every figure is computed on the rows scored; the comparison with persistence uses exactly
    the rows where both the estimator and persistence have a value (``on_persistence_rows``), and
    ``beats_persistence`` compares the estimator **as deployed** (with its bias update) there.
    """
    y_true = np.asarray(y_true, dtype=float)
    raw, corrected = np.asarray(raw, dtype=float), np.asarray(corrected, dtype=float)
    persistence = np.asarray(persistence, dtype=float)
    scored = np.isfinite(raw) & np.isfinite(y_true)
    both = scored & np.isfinite(persistence)
    y, age = y_true[scored], batch_age_h[scored]
    mean_pred = np.full(y.shape[0], float(train_mean))
    deployed_rmse = metrics(y_true[both], corrected[both])["rmse"]
    persistence_rmse = metrics(y_true[both], persistence[both])["rmse"]
    return {
        "rows": {"holdout": int(y_true.shape[0]), "scored": int(scored.sum()), "with_persistence": int(both.sum())},
        "raw": _with_phases(y, raw[scored], age, phases),
        "as_deployed": _with_phases(y, corrected[scored], age, phases),
        "training_mean": {"value": _round(train_mean), **_with_phases(y, mean_pred, age, phases)},
        "persistence": _with_phases(y_true[both], persistence[both], batch_age_h[both], phases),
        "on_persistence_rows": {
            "raw": metrics(y_true[both], raw[both]),
            "as_deployed": metrics(y_true[both], corrected[both]),
            "persistence": metrics(y_true[both], persistence[both]),
        },
        "beats_persistence": None
        if deployed_rmse is None or persistence_rmse is None
        else bool(deployed_rmse < persistence_rmse),
    }

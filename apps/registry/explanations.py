"""Model-agnostic explanations, computed through a version's ``predict`` only (framework-free: numpy).

Three questions, one function each:

- **Which inputs matter to this version?** :func:`permutation_importance`: the holdout RMSE after shuffling one
  input's column (``repeats`` times, seeded), minus the RMSE as is. An input the model ignores scores about 0.
- **How does the estimate move with an input?** :func:`partial_dependence`: the average estimate over (a sample
  of) the holdout rows with that input set to each point of a grid of its holdout quantiles.
- **Why this estimate?** :func:`shapley_values`: each input's Shapley contribution to one estimate against a
  background (the rows an explanation is measured from), with baseline substitution: the value of a set of
  inputs is the average estimate with those inputs from the row and the others from each background row.
  Exact (every subset) up to :data:`EXACT_MAX_FEATURES` inputs, else averaged over seeded random orderings.
  Either way the contributions add up exactly: ``base + sum(contributions) == estimate``, where ``base`` is the
  average estimate over the background.

Tree models get exact TreeSHAP contributions from their worker instead (``runtimes/pyworker/explain.py``); this
module is the fallback for every other model (R, ONNX, Keras, linear pipelines).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]

#: Up to this many inputs the Shapley values are exact (2^n subsets); beyond, sampled orderings.
EXACT_MAX_FEATURES = 10
#: Random orderings of the inputs when sampling (each costs n + 1 model rows per background row).
SAMPLED_PERMUTATIONS = 64
#: Background rows used for an estimate's contributions (the stored holdout sample).
MAX_BACKGROUND = 16
#: Holdout rows averaged for a partial-dependence curve, and points on its grid.
PDP_MAX_ROWS = 200
PDP_GRID_POINTS = 20
#: Inputs that get a partial-dependence curve: the most important ones.
PDP_TOP_INPUTS = 3


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    return float(np.sqrt(np.mean((y_true[ok] - y_pred[ok]) ** 2))) if ok.any() else math.nan


def permutation_importance(
    predict: Predict, X: np.ndarray, y: np.ndarray, names: Sequence[str], *, repeats: int = 3, seed: int = 0
) -> tuple[float, list[dict[str, Any]]]:
    """``(rmse as is, [{feature, mean, std}])``: RMSE increase when each input is shuffled, most important
    first. All shuffled copies go to ``predict`` in one call."""
    rng = np.random.default_rng(seed)
    n, p = X.shape
    blocks = [X]
    for j in range(p):
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[:, j] = X[rng.permutation(n), j]
            blocks.append(shuffled)
    predictions = np.asarray(predict(np.vstack(blocks)), dtype=float).reshape(-1)
    reference = rmse(y, predictions[:n])
    rows = []
    for j, name in enumerate(names):
        scores = [
            rmse(y, predictions[n * (1 + j * repeats + r) : n * (2 + j * repeats + r)]) - reference
            for r in range(repeats)
        ]
        rows.append({"feature": name, "mean": float(np.mean(scores)), "std": float(np.std(scores))})
    rows.sort(key=lambda row: -row["mean"])
    return reference, rows


def partial_dependence(
    predict: Predict, X: np.ndarray, column: int, *, points: int = PDP_GRID_POINTS, max_rows: int = PDP_MAX_ROWS
) -> tuple[list[float], list[float]]:
    """``(grid, average estimate)`` for input ``column`` over its holdout quantiles (5 %–95 %)."""
    rows = X if X.shape[0] <= max_rows else X[np.linspace(0, X.shape[0] - 1, max_rows).astype(int)]
    grid = np.unique(np.quantile(X[:, column], np.linspace(0.05, 0.95, points)))
    stacked = np.repeat(rows[np.newaxis, :, :], grid.size, axis=0)
    stacked[:, :, column] = grid[:, np.newaxis]
    predictions = np.asarray(predict(stacked.reshape(-1, X.shape[1])), dtype=float).reshape(grid.size, rows.shape[0])
    return grid.tolist(), np.nanmean(predictions, axis=1).tolist()


@dataclass(frozen=True)
class Contributions:
    """One estimate explained: ``base + contributions.sum() == prediction``."""

    method: str
    base: float
    prediction: float
    contributions: np.ndarray


def shapley_values(
    predict: Predict,
    x: np.ndarray,
    background: np.ndarray,
    *,
    exact_max_features: int = EXACT_MAX_FEATURES,
    permutations: int = SAMPLED_PERMUTATIONS,
    seed: int = 0,
) -> Contributions:
    """Shapley contributions of each input of row ``x`` against ``background`` rows (baseline substitution)."""
    x = np.asarray(x, dtype=float).reshape(-1)
    background = np.asarray(background, dtype=float).reshape(-1, x.size)
    p, k = x.size, background.shape[0]
    if p <= exact_max_features:
        masks = np.array(list(itertools.product((False, True), repeat=p)), dtype=bool)  # 2^p subsets
        method = "exact_shapley"
    else:
        rng = np.random.default_rng(seed)
        orders = [rng.permutation(p) for _ in range(permutations)]
        masks = np.zeros((permutations * (p + 1), p), dtype=bool)
        for index, order in enumerate(orders):
            for step in range(1, p + 1):
                masks[index * (p + 1) + step, order[:step]] = True
        method = "sampled_shapley"
    # every subset (row of masks) against every background row: x where the mask is set, background elsewhere
    rows = np.where(masks[:, np.newaxis, :], x[np.newaxis, np.newaxis, :], background[np.newaxis, :, :])
    values = np.asarray(predict(rows.reshape(-1, p)), dtype=float).reshape(masks.shape[0], k).mean(axis=1)
    contributions = np.zeros(p)
    if method == "exact_shapley":
        index = {tuple(mask): i for i, mask in enumerate(masks)}
        sizes = masks.sum(axis=1)
        weights = [math.factorial(s) * math.factorial(p - s - 1) / math.factorial(p) for s in range(p)]
        for i, mask in enumerate(masks):
            for j in np.flatnonzero(~mask):
                with_j = mask.copy()
                with_j[j] = True
                contributions[j] += weights[sizes[i]] * (values[index[tuple(with_j)]] - values[i])
    else:
        for o, order in enumerate(orders):
            start = o * (p + 1)
            steps = values[start : start + p + 1]
            contributions[order] += np.diff(steps)
        contributions /= len(orders)
    full = values[int(np.flatnonzero(masks.all(axis=1))[0])]
    empty = values[int(np.flatnonzero(~masks.any(axis=1))[0])]
    return Contributions(method=method, base=float(empty), prediction=float(full), contributions=contributions)


def outside_envelope(
    x: np.ndarray, names: Sequence[str], low: np.ndarray, high: np.ndarray
) -> list[dict[str, Any]]:
    """The inputs of row ``x`` outside the version's training envelope, with the bound they crossed."""
    found = []
    for j, name in enumerate(names):
        value = float(x[j])
        if np.isfinite(low[j]) and value < low[j]:
            found.append({"feature": name, "value": value, "bound": "min", "limit": float(low[j])})
        elif np.isfinite(high[j]) and value > high[j]:
            found.append({"feature": name, "value": value, "bound": "max", "limit": float(high[j])})
    return found

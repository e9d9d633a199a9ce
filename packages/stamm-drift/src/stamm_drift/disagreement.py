"""Model disagreement: how differently several models predict the same rows, and seven estimators."""
from __future__ import annotations

import itertools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np

from .base import Bounds, Detector, DriftResult, register
from .errors import ParameterError

LEVELS = ("low", "moderate", "high")


def _rank(x: np.ndarray) -> np.ndarray:
    # scipy.stats is imported where it is used: importing it costs ~0.8 s of CPU, and every process that
    # imports the package (a web process through the admin, each worker) would pay that at start.
    from scipy import stats  # noqa: PLC0415

    return stats.rankdata(x, axis=0)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


#: The pairwise disagreement measures of :class:`ModelDisagreement` (0 for identical predictions).
PairMetric = Literal["mse", "pearson", "spearman"]
PAIR_METRICS: tuple[str, ...] = typing.get_args(PairMetric)


def pair_disagreement(a: np.ndarray, b: np.ndarray, metric: str, *, variance: float = 1.0) -> float:
    """Disagreement of two prediction series: mean (a − b)² / ``variance`` (a variance that makes it
    dimensionless, e.g. the reference predictions'), 1 − Pearson r, or 1 − Spearman ρ."""
    if metric == "mse":
        return float(np.mean((a - b) ** 2) / variance)
    if metric == "pearson":
        return 1.0 - _corr(a, b)
    if metric == "spearman":
        return 1.0 - _corr(_rank(a), _rank(b))
    raise ParameterError("metric", f"expected one of {', '.join(PAIR_METRICS)}, got {metric!r}")


def prediction_variance(predictions: np.ndarray) -> float:
    """Variance of all predictions pooled (1 when they are constant): the MSE's yardstick."""
    var = float(np.var(predictions))
    return var if var > 0 and np.isfinite(var) else 1.0


def pairwise_disagreement(predictions: np.ndarray, metric: str, scale: float) -> list[dict[str, Any]]:
    """:func:`pair_disagreement` of every pair of columns; ``scale`` is the variance of the MSE."""
    if metric == "spearman":  # Spearman's ρ is Pearson's r of the ranks: rank every column once
        predictions, metric = _rank(predictions), "pearson"
    return [
        {"pair": [i, j], "value": pair_disagreement(predictions[:, i], predictions[:, j], metric, variance=scale)}
        for i, j in itertools.combinations(range(predictions.shape[1]), 2)
    ]


@register
class ModelDisagreement(Detector):
    """Disagreement between several models' predictions on the same rows.

    Models that agreed on the training distribution start to disagree where the inputs leave it, so
    rising disagreement signals drift without waiting for lab values. The score is the mean pairwise
    disagreement on the test window: MSE divided by the variance of the reference predictions
    (dimensionless), 1 − Pearson r or 1 − Spearman ρ. Columns are models.

    Parameters
    ----------
    metric
        Pairwise disagreement measure: "mse" (normalised by the reference predictions' variance),
        "pearson" (1 − r) or "spearman" (1 − ρ).
    threshold
        Mean pairwise disagreement above which the models are said to disagree.
    """

    key = "model_disagreement"
    label = "Model disagreement"
    kind = "model-based"
    mode = "batch"
    input = "predictions"
    description = "Compares several models' predictions on the same data; rising disagreement flags unfamiliar inputs."
    references = ("Raab, C., Heusinger, M., Schleif, F.-M. (2020). Reactive soft prototype computing for concept "
                  "drift streams. Neurocomputing 416, 340-351 (disagreement-based drift signals).",
                  "STAMM drift_detectors_pack v0.4: model disagreement (pairwise MSE / Pearson / Spearman).")

    def __init__(
        self, *, metric: PairMetric = "mse",
        threshold: Annotated[float, Bounds(ge=0)] = 0.25,
    ) -> None:
        self.metric = metric
        self.threshold = threshold

    def _detect(self, reference, test, variables):
        scale = prediction_variance(reference)
        pairs = pairwise_disagreement(test, self.metric, scale)
        ref_pairs = pairwise_disagreement(reference, self.metric, scale)
        for row in pairs:
            row["models"] = [variables[row["pair"][0]], variables[row["pair"][1]]]
        score = float(np.mean([p["value"] for p in pairs]))
        worst = max(pairs, key=lambda p: p["value"])
        return DriftResult(
            detector=self.key, drift=score > self.threshold, score=score, threshold=self.threshold,
            variables=tuple(variables),
            details={"metric": self.metric, "pairs": pairs, "worst_pair": worst["models"],
                     "reference_score": float(np.mean([p["value"] for p in ref_pairs])),
                     "estimators": disagreement_estimators(test[:, worst["pair"][0]], test[:, worst["pair"][1]],
                                                           scale=float(np.sqrt(scale)))},
        )

    def score(self, reference, test):
        pairs = pairwise_disagreement(test, self.metric, prediction_variance(reference))
        return float(np.mean([p["value"] for p in pairs]))

    def _explain_details(self, result):
        d = result.details
        return (f"Mean pairwise {d['metric']} disagreement {result.score:.3g} (reference {d['reference_score']:.3g}); "
                f"most apart: {' vs '.join(d['worst_pair'])}, overall level {d['estimators']['verdict']}.")


# -- the seven estimators of STAMM's model-comparison dashboard ------------------------------------------

@dataclass(frozen=True)
class Band:
    """Cut points between low / moderate / high disagreement. ``higher_is_worse`` is False for
    similarity estimators (Pearson r, cosine), where low values mean high disagreement."""

    moderate: float
    high: float
    higher_is_worse: bool = True

    def level(self, value: float) -> str:
        if not np.isfinite(value):
            return "high"
        if self.higher_is_worse:
            return "high" if value >= self.high else "moderate" if value >= self.moderate else "low"
        return "high" if value <= self.high else "moderate" if value <= self.moderate else "low"


#: Default bands. Scale-dependent estimators (MAE, RMSE, MSE, variance of differences) are taken
#: relative to ``scale`` (the SD of the predictions, or of the reference predictions), so the same
#: bands hold for any unit: MAE/RMSE of 10 % / 25 % of an SD, MSE and variance at their squares.
DEFAULT_BANDS: dict[str, Band] = {
    "mae": Band(0.10, 0.25),
    "rmse": Band(0.10, 0.25),
    "mse": Band(0.01, 0.0625),
    "pearson_r": Band(0.95, 0.80, higher_is_worse=False),
    "variance_of_differences": Band(0.01, 0.0625),
    "coefficient_of_variation": Band(0.05, 0.15),
    "cosine_similarity": Band(0.999, 0.99, higher_is_worse=False),
}


def disagreement_estimators(a: Any, b: Any, *, scale: float | None = None,
                            bands: Mapping[str, Band] | None = None) -> dict[str, Any]:
    """The seven estimators between two models' predictions, each with its level, and a verdict.

    - ``mae``, ``rmse``: mean absolute / root mean square difference, divided by ``scale``;
    - ``mse``, ``variance_of_differences``: divided by ``scale``²;
    - ``pearson_r``: correlation of the two prediction series;
    - ``coefficient_of_variation``: mean over rows of SD/|mean| of the two predictions (ddof = 0);
    - ``cosine_similarity``: of the two prediction vectors.
    ``scale`` defaults to the SD of both series pooled. The verdict is the worst level reached by at
    least two estimators (one outlying estimator alone does not decide), else the most common level.
    """
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.size != b.size or a.size < 2:
        raise ValueError("two prediction series of the same length (≥ 2) are needed")
    bands = {**DEFAULT_BANDS, **(bands or {})}
    if scale is None:
        scale = float(np.concatenate([a, b]).std())
    scale = scale if scale > 0 else 1.0
    diff = a - b
    mean_ab = 0.5 * (a + b)
    sd_ab = 0.5 * np.abs(diff)  # SD (ddof = 0) of two numbers
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(mean_ab != 0, sd_ab / np.abs(mean_ab), 0.0)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    values = {
        "mae": float(np.mean(np.abs(diff)) / scale),
        "rmse": float(np.sqrt(np.mean(diff**2)) / scale),
        "mse": float(np.mean(diff**2) / scale**2),
        "pearson_r": _corr(a, b),
        "variance_of_differences": float(np.var(diff) / scale**2),
        "coefficient_of_variation": float(np.mean(cv)),
        "cosine_similarity": float(a @ b / norm) if norm > 0 else 1.0,
    }
    levels = {name: bands[name].level(value) for name, value in values.items()}
    counts = {lvl: sum(1 for v in levels.values() if v == lvl) for lvl in LEVELS}
    reached = [lvl for lvl in LEVELS if sum(counts[x] for x in LEVELS[LEVELS.index(lvl):]) >= 2]
    verdict = reached[-1] if reached else max(LEVELS, key=lambda lvl: counts[lvl])
    return {
        "values": values,
        "levels": levels,
        "bands": {k: {"moderate": v.moderate, "high": v.high, "higher_is_worse": v.higher_is_worse}
                  for k, v in bands.items()},
        "verdict": verdict,
    }

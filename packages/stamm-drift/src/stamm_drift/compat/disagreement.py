"""drift_detectors_pack's model disagreement (``ModelDisagreementMetric`` with pluggable metrics) on stamm_drift.

The pair formulas are :func:`stamm_drift.disagreement.pair_disagreement`'s, so with reference
predictions and the default metrics the score is stamm_drift's ``model_disagreement`` score.
"""
from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..disagreement import disagreement_estimators, pair_disagreement, prediction_variance
from ..errors import DataError
from ._base import DriftDetector, ScoreDriftResult


class DisagreementMetric(ABC):
    """A pairwise disagreement measure: ``pair(y_i, y_j, *, scale)`` → 0 when two models agree.

    ``name`` keys the detector's ``details``; ``kind`` is its family ("error": magnitudes,
    "correlation": shape), since the detector averages within a family and never across families.
    ``scale`` is a standard deviation of the predictions, so an error metric can be unit-free.
    """

    name: str = "abstract"
    kind: str = "abstract"

    @abstractmethod
    def pair(self, y_i: np.ndarray, y_j: np.ndarray, *, scale: float = 1.0) -> float:
        """Disagreement between two prediction vectors of equal length."""

    def __call__(self, y_i: Any, y_j: Any, *, scale: float = 1.0) -> float:
        return self.pair(np.asarray(y_i, dtype=float).ravel(), np.asarray(y_j, dtype=float).ravel(),
                         scale=float(scale))


def _unit(scale: float) -> float:
    return scale if scale > 0 and np.isfinite(scale) else 1.0


class MSEDisagreement(DisagreementMetric):
    """Mean squared difference divided by scale² (stamm_drift's ``mse``): not clipped, not a root."""

    name, kind = "mse", "error"

    def pair(self, y_i: np.ndarray, y_j: np.ndarray, *, scale: float = 1.0) -> float:
        return pair_disagreement(y_i, y_j, "mse", variance=_unit(scale) ** 2)


class PearsonDisagreement(DisagreementMetric):
    """1 − Pearson r (stamm_drift's ``pearson``), in [0, 2]."""

    name, kind = "pearson", "correlation"

    def pair(self, y_i: np.ndarray, y_j: np.ndarray, *, scale: float = 1.0) -> float:
        return pair_disagreement(y_i, y_j, "pearson")


class SpearmanDisagreement(DisagreementMetric):
    """1 − Spearman ρ (stamm_drift's ``spearman``), in [0, 2]."""

    name, kind = "spearman", "correlation"

    def pair(self, y_i: np.ndarray, y_j: np.ndarray, *, scale: float = 1.0) -> float:
        return pair_disagreement(y_i, y_j, "spearman")


def _default_metrics() -> list[DisagreementMetric]:
    return [MSEDisagreement(), PearsonDisagreement(), SpearmanDisagreement()]


def _prediction_matrix(predictions: Any, name: str) -> np.ndarray:
    """Rows × models from a sequence of per-model 1-D arrays (or a 2-D array with one model per row)."""
    try:
        columns = [np.asarray(p, dtype=float).ravel() for p in predictions]
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected one numeric 1-D array per model ({exc})") from None
    if len({c.size for c in columns}) > 1:
        raise DataError(f"{name}: the models' prediction arrays differ in length: {[c.size for c in columns]}")
    matrix = np.column_stack(columns) if columns else np.empty((0, 0))
    if not np.isfinite(matrix).all():
        raise DataError(f"{name}: {int((~np.isfinite(matrix)).sum())} missing or non-finite predictions")
    return matrix


class ModelDisagreementMetric(DriftDetector):
    """Pairwise disagreement of co-deployed models' predictions (stamm_drift ``model_disagreement``).

    ``calculate(predictions=[y1, y2, ...])`` with one 1-D array per model; or, with ``models=[f1, f2]``
    (callables) given to the constructor, ``calculate(X)`` predicts first. ``reference_data`` (optional,
    the same shape as ``predictions``) holds the models' predictions on the reference window: the error
    metrics are then scaled by the reference predictions' spread, as stamm_drift's detector does.
    """

    stamm_key, folder, acronym = "model_disagreement", "model_disagreement", "MDM"
    notes = {
        **DriftDetector.notes,
        "predictions": "One 1-D array per co-deployed model, all of equal length (the test window's predictions).",
        "reference_data": "Optional: the same models' predictions on the reference window; they set the scale.",
        "metrics": "DisagreementMetric instances (default: MSE, Pearson, Spearman); subclass DisagreementMetric "
                   "for your own.",
        "models": "Optional callables X → predictions; calculate(X) then predicts with each model.",
        "test_data": "The inputs X the models= callables predict from (unused with predictions=).",
    }
    differences = (
        "The error metric is the mean squared difference divided by the variance of the predictions (the "
        "reference predictions' when reference_data is given, else the test predictions'), as stamm_drift's "
        "model_disagreement 'mse'; upstream uses the root, divided by the standard deviation and clipped at 1. "
        "The threshold applies to that scale (default 0.25, i.e. an RMS difference of half an SD).",
        "Correlation metrics are 1 − r and 1 − ρ, in [0, 2]; upstream halves them to [0, 1].",
        "reference_data (the reference predictions) sets the scale; upstream ignores it.",
        "models=[callables] works: calculate(X) predicts with each (upstream keeps the argument but ignores it).",
        "Drift when the score is above the threshold (upstream: at or above).",
    )

    def __init__(self, metrics: Sequence[DisagreementMetric] | None = None, threshold: float = 0.25,
                 online: bool = False, models: Sequence[Callable[[Any], Any]] | None = None) -> None:
        super().__init__(reference_data=None, online=online)
        self._metrics: list[DisagreementMetric] = list(metrics) if metrics else _default_metrics()
        self._threshold = float(threshold)
        self._models = list(models) if models is not None else None

    def add_metric(self, metric: DisagreementMetric) -> None:
        self._metrics.append(metric)

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self._metrics]

    def calculate(self, test_data: Any = None, reference_data: Any = None,
                  predictions: Sequence[Any] | None = None, threshold: float | None = None) -> ScoreDriftResult:
        if predictions is None:
            if self._models is None or test_data is None:
                raise DataError("ModelDisagreementMetric.calculate() requires predictions=[...] (one 1-D array "
                                "per model, all of equal length), or models=[...] and test_data")
            predictions = [model(test_data) for model in self._models]
        test = _prediction_matrix(predictions, "predictions")
        n_samples, n_models = test.shape
        if n_models < 2:
            raise DataError("At least two models are required to compute disagreement.")
        if n_samples < 2:
            return ScoreDriftResult(score=0.0, drift=False, details={
                "status": "not_enough_samples", "n_models": n_models, "mode": self._mode})
        scale_from = "predictions"
        variance = prediction_variance(test)
        if reference_data is not None:
            reference = _prediction_matrix(reference_data, "reference_data")
            if reference.shape[1] != n_models or reference.shape[0] < 2:
                raise DataError(f"reference_data: expected predictions of the same {n_models} models on at least "
                                f"two rows, got {reference.shape[1]} models × {reference.shape[0]} rows")
            variance, scale_from = prediction_variance(reference), "reference_data"
        scale = float(np.sqrt(variance))
        thr = self._threshold if threshold is None else float(threshold)

        pairwise = {m.name: np.zeros((n_models, n_models)) for m in self._metrics}
        values: dict[str, list[float]] = {m.name: [] for m in self._metrics}
        for i, j in itertools.combinations(range(n_models), 2):
            for metric in self._metrics:
                v = float(metric(test[:, i], test[:, j], scale=scale))
                values[metric.name].append(v)
                pairwise[metric.name][i, j] = pairwise[metric.name][j, i] = v
        means = {name: float(np.mean(v)) for name, v in values.items()}
        by_kind: dict[str, list[float]] = {}
        for metric in self._metrics:
            by_kind.setdefault(metric.kind, []).append(means[metric.name])
        score_by_kind = {kind: float(np.mean(v)) for kind, v in by_kind.items()}
        score = score_by_kind.get("error", max(score_by_kind.values(), default=0.0))
        first = self._metrics[0].name if self._metrics else None
        details: dict[str, Any] = {
            "threshold": thr, "n_models": n_models, "n_samples": n_samples, "metrics": self.metric_names,
            "metric_means": means, "score_by_kind": score_by_kind,
            "pairwise": {name: matrix.tolist() for name, matrix in pairwise.items()},
            "scale": scale, "scale_from": scale_from, "mode": self._mode,
        }
        if first is not None:  # the seven estimators of the pair furthest apart by the first metric
            i, j = np.unravel_index(np.argmax(pairwise[first]), pairwise[first].shape)
            details["most_apart"] = [int(i), int(j)]
            details["estimators"] = disagreement_estimators(test[:, i], test[:, j], scale=scale)
        return ScoreDriftResult(score=float(score), drift=bool(score > thr), details=details)

"""Explanations as services: what a version depends on (stored), and why one estimate is what it is.

``model_version_explanation_build`` measures a version on holdout rows — permutation importance, partial
dependence of its top inputs, a background sample — through ``version_predict`` (the model runs in its worker,
never here) and stores it (``VersionExplanation``). The training workflow calls it on every candidate's holdout;
the ``.../explanation/`` API recomputes it for any version on batches a modeler names.

``estimate_explain`` answers for one input row: TreeSHAP from the worker for tree models, else Shapley values
through ``version_predict`` against the stored background (``apps/registry/explanations.py``), and the inputs
outside the training envelope. The contributions always add up to the raw estimate minus the base value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import transaction

from apps.common.errors import Conflict, ValidationFailed

from .. import explanations
from ..models import VersionExplanation
from ..selectors import version_artifacts, version_explanation_get
from ..serving import explain_matrix
from ..spec import ModelSpec
from .predict import runtime_errors, version_predict, version_servable

#: Fewest holdout rows an explanation is measured on.
MIN_ROWS = 10
#: Most holdout rows used (an even sample beyond): keeps a build to a few model calls of ~30k rows.
MAX_ROWS = 600


def _predictor(spec: ModelSpec, *, output: int, allow_offline: bool):
    def predict(X: np.ndarray) -> np.ndarray:
        values = np.asarray(version_predict(spec=spec, X=X, allow_offline=allow_offline).predictions, dtype=float)
        return values.reshape(X.shape[0], -1)[:, output]

    return predict


def _finite_rows(X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    ok = np.isfinite(X).all(axis=1)
    if y is not None:
        ok &= np.isfinite(y)
    return ok


def model_version_explanation_build(
    *,
    spec: ModelSpec,
    X: np.ndarray,
    y: np.ndarray,
    source: str,
    output: int = 0,
    allow_offline: bool = False,
) -> VersionExplanation:
    """Measure and store what ``spec``'s estimates of output ``output`` depend on, from holdout rows ``X``
    (columns in the spec's feature order) and their lab truth ``y``. Replaces an earlier explanation."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    names = list(spec.feature_names)
    if X.ndim != 2 or X.shape[1] != len(names) or X.shape[0] != y.shape[0]:
        raise ValidationFailed(
            f"explanation rows: expected n × {len(names)} inputs and n lab values, got {X.shape} and {y.shape}",
            details={"features": names},
        )
    ok = _finite_rows(X, y)
    X, y = X[ok], y[ok]
    if X.shape[0] < MIN_ROWS:
        raise ValidationFailed(
            f"explanation rows: {X.shape[0]} complete rows with a lab value, at least {MIN_ROWS} needed",
            details={"rows": int(X.shape[0])},
        )
    if X.shape[0] > MAX_ROWS:
        keep = np.linspace(0, X.shape[0] - 1, MAX_ROWS).astype(int)
        X, y = X[keep], y[keep]
    predict = _predictor(spec, output=output, allow_offline=allow_offline)
    reference, importance = explanations.permutation_importance(predict, X, y, names)
    curves = []
    for row in importance[: explanations.PDP_TOP_INPUTS]:
        column = names.index(row["feature"])
        grid, average = explanations.partial_dependence(predict, X, column)
        curves.append({"feature": row["feature"], "grid": grid, "average": average})
    background = X[np.linspace(0, X.shape[0] - 1, min(explanations.MAX_BACKGROUND, X.shape[0])).astype(int)]
    data = {
        "output": spec.output_names[output],
        "rows": int(X.shape[0]),
        "rmse": reference,
        "method": "permutation importance (RMSE increase, 3 shuffles), partial dependence over holdout quantiles",
        "feature_names": names,
        "importance": importance,
        "partial_dependence": curves,
        "background": background.tolist(),
    }
    with transaction.atomic():
        explanation, _ = VersionExplanation.objects.update_or_create(
            version_id=spec.version_id, defaults={"source": source[:300], "data": data}
        )
    return explanation


@dataclass
class EstimateExplanation:
    """One estimate explained: ``base_value + sum(contributions) == raw_estimate`` (the model's output
    before any bias update)."""

    output: str
    method: str
    base_value: float
    raw_estimate: float
    features: list[dict[str, Any]]
    outside_envelope: list[dict[str, Any]]
    background: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "method": self.method,
            "base_value": self.base_value,
            "raw_estimate": self.raw_estimate,
            "contributions": self.features,
            "outside_envelope": self.outside_envelope,
            "background": self.background,
            "notes": self.notes,
        }


def _background(spec: ModelSpec) -> tuple[np.ndarray, str]:
    """The rows contributions are measured from: the stored holdout sample, else the middle of the envelope."""
    stored = version_explanation_get(version_id=spec.version_id)
    if stored is not None and stored.data.get("feature_names") == list(spec.feature_names):
        rows = np.asarray(stored.data.get("background") or [], dtype=float)
        if rows.ndim == 2 and rows.shape[0] and rows.shape[1] == len(spec.feature_names):
            return rows, f"{rows.shape[0]} holdout rows ({stored.source})"
    low, high = spec.bounds()
    if np.isfinite(low).all() and np.isfinite(high).all():
        return np.asarray([spec.probe_row()], dtype=float), "the middle of the training envelope"
    raise Conflict(
        f"{spec.title} has no stored explanation and no complete training envelope to measure contributions from.",
        code="no_background",
    )


def estimate_explain(
    *, spec: ModelSpec, x: Sequence[float], output: int = 0, allow_offline: bool = False
) -> EstimateExplanation:
    """The contribution of each input of row ``x`` (the spec's feature order) to the raw estimate of output
    ``output``, and which inputs lie outside the training envelope."""
    names = list(spec.feature_names)
    row = np.asarray(x, dtype=float).reshape(-1)
    if row.size != len(names) or not np.isfinite(row).all():
        raise ValidationFailed(
            f"inputs: expected {len(names)} finite values in the order {', '.join(names)}", details={"inputs": names}
        )
    if not 0 <= output < len(spec.output_names):
        raise ValidationFailed(f"output: {output} is not an output of {spec.title}", details={"output": output})
    version_servable(spec=spec, allow_offline=allow_offline)
    with runtime_errors(spec):
        artifacts = version_artifacts(version_id=spec.version_id, created_at=spec.created_at)
        exact = explain_matrix(spec, row[np.newaxis, :], artifacts=artifacts, output=output)
    notes = []
    if exact is not None:
        method, base, raw = exact.method, exact.base, float(exact.prediction[0])
        contributions = exact.contributions[0]
        background = "the training data's tree paths (TreeSHAP)"
    else:
        rows, background = _background(spec)
        result = explanations.shapley_values(
            _predictor(spec, output=output, allow_offline=allow_offline), row, rows
        )
        method, base, raw, contributions = result.method, result.base, result.prediction, result.contributions
        if method == "sampled_shapley":
            notes.append(f"Shapley values averaged over {explanations.SAMPLED_PERMUTATIONS} random input orders.")
    low, high = spec.bounds()
    outside = explanations.outside_envelope(row, names, low, high)
    features = [
        {"feature": name, "value": float(row[j]), "contribution": float(contributions[j])}
        for j, name in enumerate(names)
    ]
    features.sort(key=lambda item: -abs(item["contribution"]))
    return EstimateExplanation(
        output=spec.output_names[output],
        method=method,
        base_value=float(base),
        raw_estimate=raw,
        features=features,
        outside_envelope=outside,
        background=background,
        notes=notes,
    )

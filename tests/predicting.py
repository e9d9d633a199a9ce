"""Predict with a stored version the way every caller does: through the registry's predict service."""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.registry.selectors import version_spec
from apps.registry.services import version_predict, version_predict_body
from apps.registry.serving import PredictionResult


def predict_body(version: Any, body: Any) -> PredictionResult:
    """A predict request body (columnar, records, MLflow shapes) for a ModelVersion row."""
    return version_predict_body(spec=version_spec(version), body=body)


def predict_matrix(version: Any, X: np.ndarray, *, allow_offline: bool = False) -> PredictionResult:
    """A feature matrix (columns in the version's feature order) for a ModelVersion row."""
    X = np.atleast_2d(np.asarray(X, dtype=float))
    return version_predict(spec=version_spec(version), X=X, allow_offline=allow_offline)

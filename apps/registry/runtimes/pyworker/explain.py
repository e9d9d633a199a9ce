"""Explaining estimates inside the worker: exact TreeSHAP contributions of tree models (the ``shap`` package).

Model code never runs in the web or Celery processes, so contributions that need the model object itself are
computed here, next to ``predict``. The ``explain`` op answers for models TreeSHAP can read — scikit-learn
trees, forests and gradient boosting, alone or behind an element-wise input scaler (StandardScaler,
MinMaxScaler, MaxAbsScaler, RobustScaler: a feature's contribution is the same before and after scaling) and
an affine output scaler. Anything else answers ``supported: false`` with the reason, and the registry falls back
to a model-agnostic Shapley computation through ``predict`` (``apps/registry/explanations.py``).

Contributions add up: ``base + sum(contributions) == prediction`` for every row, up to float32 rounding of
the trees' thresholds; the reply carries the model's own prediction so the caller can check it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from . import models

#: Input scalers that transform each column on its own (contributions map one-to-one onto the inputs).
ELEMENTWISE_SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")
#: scikit-learn regressors whose trees TreeSHAP reads.
TREE_MODELS = (
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "DecisionTreeRegressor",
    "ExtraTreeRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
)
#: TreeExplainers kept per worker (building one reads every tree: about 50 ms for 100 trees).
MAX_EXPLAINERS = 8
EXPLAINERS: OrderedDict[str, Any] = OrderedDict()


class Unsupported(Exception):
    """No exact explainer for this model here; the message says why (the caller falls back)."""


def _tree_model(loaded: models.Loaded) -> Any:
    if loaded.flavor not in ("sklearn-pickle", "sklearn-skops", "mlflow") or loaded.predict_fn is not None:
        raise Unsupported(f"{loaded.flavor} models have no tree explainer")
    model = loaded.model
    if type(model).__name__ == "Pipeline":  # scaler steps then a tree model
        steps = [step for _, step in model.steps]
        *scalers, model = steps
        if any(type(s).__name__ not in ELEMENTWISE_SCALERS for s in scalers):
            raise Unsupported("the pipeline has a step that mixes inputs")
    if type(model).__name__ not in TREE_MODELS or not type(model).__module__.startswith("sklearn."):
        raise Unsupported(f"{type(model).__name__} is not a tree model")
    if loaded.input_scaler is not None and type(loaded.input_scaler).__name__ not in ELEMENTWISE_SCALERS:
        raise Unsupported(f"the input scaler {type(loaded.input_scaler).__name__} mixes inputs")
    return model


def _model_inputs(loaded: models.Loaded, X: np.ndarray) -> np.ndarray:
    """``X`` as the tree model sees it: through the input scaler and the pipeline's scaler steps."""
    names = loaded.features
    if loaded.input_scaler is not None:
        X = np.asarray(loaded.input_scaler.transform(models._named_input(loaded.input_scaler, X, names)), dtype=float)
    if type(loaded.model).__name__ == "Pipeline":
        for _, step in loaded.model.steps[:-1]:
            X = np.asarray(step.transform(models._named_input(step, X, names)), dtype=float)
    return X


def _affine_output(loaded: models.Loaded, outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of the output scaler's inverse per output (1 and 0 without one)."""
    if loaded.output_scaler is None:
        return np.ones(outputs), np.zeros(outputs)
    probe = np.array([[0.0] * outputs, [1.0] * outputs, [2.0] * outputs])
    mapped = np.asarray(loaded.output_scaler.inverse_transform(probe), dtype=float).reshape(3, outputs)
    slope, intercept = mapped[1] - mapped[0], mapped[0]
    if not np.allclose(mapped[2], intercept + 2 * slope, rtol=1e-9, atol=1e-12):
        raise Unsupported("the output scaler is not affine")
    return slope, intercept


def _explainer(key: str, model: Any) -> Any:
    explainer = EXPLAINERS.get(key)
    if explainer is None:
        try:
            import shap  # noqa: PLC0415 - only when a model is explained
        except ImportError:
            raise Unsupported("shap is not installed in this model's environment") from None
        explainer = shap.TreeExplainer(model)
        EXPLAINERS[key] = explainer
    EXPLAINERS.move_to_end(key)
    while len(EXPLAINERS) > MAX_EXPLAINERS:
        EXPLAINERS.popitem(last=False)
    return explainer


def explain(request: dict, payload: bytes) -> tuple[dict, bytes | None]:
    """TreeSHAP contributions of the rows in ``payload`` (``rows`` × ``cols`` float64) for output ``output``.

    Reply: ``supported``, and when supported ``base`` (the expected value), the model's ``prediction`` per row
    and, as payload, the contributions (``rows`` × ``cols`` float64, row-major)."""
    loaded = models._loaded(request)
    rows, cols = int(request.get("rows", -1)), int(request.get("cols", -1))
    if rows < 1 or cols < 1 or len(payload) != rows * cols * 8:
        raise models.ModelError(f"payload of {len(payload)} bytes is not {rows} × {cols} float64 values")
    output = int(request.get("output") or 0)
    X = np.frombuffer(payload, dtype="<f8").reshape(rows, cols)
    try:
        model = _tree_model(loaded)
        prediction = models.run(loaded, X)
        if not 0 <= output < prediction.shape[1]:
            raise models.ModelError(f"output {output} does not exist (the model has {prediction.shape[1]})")
        slope, intercept = _affine_output(loaded, prediction.shape[1])
        explainer = _explainer(str(request.get("key")), model)
    except Unsupported as exc:
        return {"supported": False, "reason": str(exc)}, None
    values = np.asarray(explainer.shap_values(_model_inputs(loaded, X), check_additivity=False), dtype=float)
    if values.ndim == 3:  # (rows, features, outputs)
        values = values[:, :, output]
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float)).reshape(-1)
    base = float(expected[output] if expected.size > output else expected[0])
    contributions = values * slope[output]
    base = base * slope[output] + intercept[output]
    return (
        {
            "supported": True,
            "method": "tree_shap",
            "base": base,
            "prediction": prediction[:, output].tolist(),
            "rows": rows,
            "cols": cols,
        },
        np.ascontiguousarray(contributions, dtype="<f8").tobytes(),
    )

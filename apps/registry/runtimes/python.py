"""The scikit-learn runtime: joblib/pickle (upstream's format) and skops (safe loading).

Files are read once, checked against their sha256 and loaded from those same bytes, so what is
unpickled is exactly what was uploaded. Loaded bundles sit in a process-wide LRU cache keyed by the
bundle's sha256 key. Prediction is vectorised (one ``predict`` call per request); for random forests
and single trees a small batch skips scikit-learn's per-call dispatch overhead (about 8 ms for 100
trees) by summing the trees' compiled ``tree_.predict`` directly, which gives identical numbers.
"""

from __future__ import annotations

import io
import logging
import pickle
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from ..artifacts import PYTHON_PICKLE_EXTENSIONS, PYTHON_SKOPS_EXTENSIONS, ArtifactIntegrityError, extension
from . import ArtifactBundle, ArtifactFile, ArtifactLoadError, LRUCache

logger = logging.getLogger(__name__)

#: Batches up to this many rows use the direct tree path for forests.
FAST_TREE_MAX_ROWS = 512


@dataclass
class LoadedModel:
    model: Any
    input_scaler: Any | None
    output_scaler: Any | None
    warnings: tuple[str, ...]


def _load_object(file: ArtifactFile) -> tuple[Any, list[str]]:
    data = file.read()  # sha256 verified
    ext = extension(file.name)
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        try:
            if ext in PYTHON_SKOPS_EXTENSIONS:
                import skops.io as sio  # noqa: PLC0415

                obj = sio.loads(data, trusted=list(file.trusted_types))
            elif ext in PYTHON_PICKLE_EXTENSIONS:
                import joblib  # noqa: PLC0415

                obj = joblib.load(io.BytesIO(data))
            else:
                raise ArtifactLoadError(f"{file.name}: unsupported file type {ext or '(none)'} for a Python model")
        except ArtifactLoadError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError) as exc:
            raise ArtifactLoadError(f"{file.name}: not a readable {ext} file ({type(exc).__name__}: {exc})") from exc
        except (ModuleNotFoundError, ImportError, AttributeError) as exc:
            raise ArtifactLoadError(
                f"{file.name}: written by an incompatible library version ({type(exc).__name__}: {exc})"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - skops untrusted types, truncated joblib, anything else
            raise ArtifactLoadError(f"{file.name}: cannot be loaded ({type(exc).__name__}: {exc})") from exc
    for record in records:
        if record.category.__name__ == "InconsistentVersionWarning" or issubclass(record.category, UserWarning):
            caught.append(f"{file.name}: {record.message}")
    return obj, caught


def _loader(bundle: ArtifactBundle) -> LoadedModel:
    model, notes = _load_object(bundle.model)
    if not hasattr(model, "predict"):
        raise ArtifactLoadError(f"{bundle.model.name}: the object ({type(model).__name__}) has no predict method")
    in_scaler = out_scaler = None
    if bundle.input_scaler is not None:
        in_scaler, more = _load_object(bundle.input_scaler)
        notes += more
        if not hasattr(in_scaler, "transform"):
            raise ArtifactLoadError(f"{bundle.input_scaler.name}: the input scaler has no transform method")
    if bundle.output_scaler is not None:
        out_scaler, more = _load_object(bundle.output_scaler)
        notes += more
        if not hasattr(out_scaler, "inverse_transform"):
            raise ArtifactLoadError(f"{bundle.output_scaler.name}: the output scaler has no inverse_transform method")
    return LoadedModel(model, in_scaler, out_scaler, tuple(notes))


def _named_input(estimator: Any, X: np.ndarray, names: Sequence[str]) -> Any:
    """``X`` as the estimator expects it: a DataFrame in its own column order if it was fitted on one."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is None:
        return X
    fitted = [str(name) for name in fitted]
    if set(fitted) != set(names) or len(fitted) != len(names):
        return X  # fitted under other names: the descriptor's order is the training order (contracts §2.2)
    import pandas as pd  # noqa: PLC0415

    if list(fitted) == list(names):
        return pd.DataFrame(X, columns=fitted, copy=False)
    position = {name: index for index, name in enumerate(names)}
    return pd.DataFrame(X[:, [position[name] for name in fitted]], columns=fitted)


def _tree_fast_path(model: Any, X: np.ndarray) -> np.ndarray | None:
    """Forest or tree regressor on a small batch: the compiled trees directly, no dispatch overhead."""
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor  # noqa: PLC0415
    from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor  # noqa: PLC0415

    kind = type(model)
    if X.shape[0] > FAST_TREE_MAX_ROWS or getattr(model, "feature_names_in_", None) is not None:
        return None
    if kind in (RandomForestRegressor, ExtraTreesRegressor):
        trees = [estimator.tree_ for estimator in model.estimators_]
    elif kind in (DecisionTreeRegressor, ExtraTreeRegressor):
        trees = [model.tree_]
    else:
        return None
    if getattr(model, "n_features_in_", X.shape[1]) != X.shape[1]:
        return None
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    total = None
    for tree in trees:
        part = tree.predict(X32)
        total = part.copy() if total is None else total + part
    total = total / len(trees)
    if total.ndim == 3:
        total = total[:, :, 0]
    return total[:, 0] if total.shape[1] == 1 else total


class PythonRuntime:
    """Serves ``sklearn-pickle`` and ``sklearn-skops`` versions."""

    name = "python"

    def __init__(self, cache_size: int | None = None) -> None:
        size = cache_size if cache_size is not None else int(getattr(settings, "REGISTRY_MODEL_CACHE_SIZE", 32))
        self.cache = LRUCache(size)

    def loaded(self, artifact: ArtifactBundle) -> LoadedModel:
        return self.cache.get_or_load(artifact.key, lambda: _loader(artifact))

    def load_error(self, artifact: ArtifactBundle) -> str | None:
        self.cache.discard(artifact.key)  # a status check re-reads and re-verifies the files
        try:
            loaded = self.loaded(artifact)
        except (ArtifactLoadError, ArtifactIntegrityError) as exc:
            return str(exc)
        expected = len(artifact.feature_names)
        for label, estimator in (("input scaler", loaded.input_scaler), ("model", loaded.model)):
            count = getattr(estimator, "n_features_in_", None)
            if estimator is not None and count is not None and int(count) != expected:
                self.cache.discard(artifact.key)
                return f"the {label} expects {int(count)} inputs but the descriptor lists {expected} features"
        try:
            probe = np.asarray([artifact.probe_row or [0.0] * expected], dtype=float)
            result = self.predict(artifact, probe, artifact.feature_names)
        except Exception as exc:  # noqa: BLE001 - whatever breaks here is the version's load error
            self.cache.discard(artifact.key)
            return f"test prediction failed: {type(exc).__name__}: {exc}"
        outputs = 1 if result.ndim == 1 else result.shape[1]
        if result.shape[0] != 1 or outputs != len(artifact.output_names):
            self.cache.discard(artifact.key)
            return f"the model returns {outputs} output(s) but the descriptor lists {len(artifact.output_names)}"
        for note in loaded.warnings:
            logger.warning("registry: %s", note)
        return None

    def predict(self, artifact: ArtifactBundle, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        loaded = self.loaded(artifact)
        names = list(feature_names)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            warnings.filterwarnings("ignore", message="X has feature names")
            if loaded.input_scaler is not None:
                X = np.asarray(loaded.input_scaler.transform(_named_input(loaded.input_scaler, X, names)), dtype=float)
            result = _tree_fast_path(loaded.model, X)
            if result is None:
                result = np.asarray(loaded.model.predict(_named_input(loaded.model, X, names)), dtype=float)
            if loaded.output_scaler is not None:
                shaped = result.reshape(X.shape[0], -1)
                result = np.asarray(loaded.output_scaler.inverse_transform(shaped), dtype=float)
                if result.shape[1] == 1:
                    result = result[:, 0]
        if result.ndim == 2 and result.shape[1] == 1:
            result = result[:, 0]
        return result

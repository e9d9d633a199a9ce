"""Loading artefacts and predicting, inside the worker (the environment's libraries, not the platform's).

Every file is read once, checked against the sha256 the registry recorded, and loaded from those same bytes,
so what is deserialised is exactly what was uploaded. Formats (``flavor``):

- ``sklearn-pickle`` (``.pkl``/``.pickle``/``.joblib``/``.sav``, joblib or plain pickle) and
  ``sklearn-skops`` (``.skops``, only the types the registry lists as trusted): anything with ``predict``;
- ``onnx``: an ONNX graph run by onnxruntime (code-free);
- ``keras``: a ``.keras``/``.h5`` model (``safe_mode``), an input of rank 3 gets one time step
  (``(rows, 1, features)``, as STAMM's LSTMs were trained);
- ``mlflow``: a zipped MLflow model directory (``MLmodel``): the sklearn flavour's pickled model, or any
  ``python_function`` model through ``mlflow.pyfunc`` when mlflow is installed in the environment.

Input scalers (``transform``) and output scalers (``inverse_transform``) are applied when the descriptor names
them. Random forests and trees on small batches skip scikit-learn's per-call dispatch (about 8 ms for 100 trees)
by summing the compiled trees directly, which gives identical numbers.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PICKLE_EXTENSIONS = (".pkl", ".pickle", ".joblib", ".sav")
#: Batches up to this many rows use the direct tree path for forests.
FAST_TREE_MAX_ROWS = 512
#: Loaded bundles kept per worker (least recently used dropped first; reloaded on demand by the client).
MAX_LOADED = 32


class ModelError(Exception):
    """An artefact that cannot be loaded or a model that cannot predict; the message is for people."""


@dataclass
class Loaded:
    flavor: str
    model: Any
    input_scaler: Any | None
    output_scaler: Any | None
    features: list[str]
    predict_fn: Any = None


LOADED: OrderedDict[str, Loaded] = OrderedDict()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in (
        "numpy",
        "scikit-learn",
        "skops",
        "onnxruntime",
        "skl2onnx",
        "keras",
        "jax",
        "tensorflow",
        "torch",
        "mlflow",
    ):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _verified(spec: dict) -> bytes:
    path = Path(str(spec.get("path", "")))
    name = spec.get("name") or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"artefact file {name} cannot be read: {exc.strerror or exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.get("sha256"):
        raise ModelError(
            f"artefact file {name} does not match its recorded sha256 "
            f"(expected {str(spec.get('sha256'))[:12]}…, found {actual[:12]}…)"
        )
    return data


def _extension(name: str) -> str:
    lowered = name.lower()
    return "." + lowered.rsplit(".", 1)[-1] if "." in lowered else ""


def _unpickle(data: bytes, name: str) -> Any:
    import joblib  # noqa: PLC0415 - a dependency of scikit-learn

    return joblib.load(io.BytesIO(data))


def load_object(spec: dict) -> Any:
    """One Python object (model or scaler) from a verified pickle/joblib/skops file."""
    data = _verified(spec)
    name = str(spec.get("name") or "artefact")
    ext = _extension(name)
    try:
        if ext == ".skops":
            import skops.io as sio  # noqa: PLC0415

            return sio.loads(data, trusted=list(spec.get("trusted_types") or []))
        if ext in PICKLE_EXTENSIONS:
            return _unpickle(data, name)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise ModelError(f"{name}: not a readable {ext} file ({type(exc).__name__}: {exc})") from None
    except (ModuleNotFoundError, ImportError, AttributeError) as exc:
        raise ModelError(f"{name}: written by an incompatible library version ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - skops untrusted types, truncated joblib, anything else
        raise ModelError(f"{name}: cannot be loaded ({type(exc).__name__}: {exc})") from None
    raise ModelError(f"{name}: unsupported file type {ext or '(none)'} for a Python object")


def _onnx_session(data: bytes, name: str) -> Any:
    try:
        import onnxruntime as ort  # noqa: PLC0415
    except ImportError:
        raise ModelError("onnxruntime is not installed in this model's environment") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ModelError(f"{name}: not a loadable ONNX model ({type(exc).__name__}: {exc})") from None


def _onnx_predict(session: Any, X: np.ndarray, features: list[str]) -> np.ndarray:
    inputs = session.get_inputs()
    types = {"tensor(float)": np.float32, "tensor(double)": np.float64}
    if len(inputs) == 1:
        kind = types.get(inputs[0].type, np.float32)
        feeds = {inputs[0].name: np.ascontiguousarray(X, dtype=kind)}
    else:
        by_name = {name: index for index, name in enumerate(features)}
        feeds = {}
        for item in inputs:
            if item.name not in by_name:
                raise ModelError(f"the ONNX model's input {item.name!r} is not one of the descriptor's features")
            column = X[:, by_name[item.name]].reshape(-1, 1)
            feeds[item.name] = np.ascontiguousarray(column, dtype=types.get(item.type, np.float32))
    result = session.run([session.get_outputs()[0].name], feeds)[0]
    return np.asarray(result, dtype=np.float64)


def _keras_model(data: bytes, name: str) -> Any:
    try:
        import keras  # noqa: PLC0415
    except ImportError:
        raise ModelError("keras is not installed in this model's environment (declare it in the packages)") from None
    path = Path(os.getcwd()) / f"model-{hashlib.sha256(data).hexdigest()[:16]}{_extension(name)}"
    path.write_bytes(data)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - keras raises many types for a bad file
        raise ModelError(f"{name}: not a loadable Keras model ({type(exc).__name__}: {exc})") from None
    finally:
        path.unlink(missing_ok=True)


def _keras_predict(model: Any, X: np.ndarray) -> np.ndarray:
    shape = getattr(model, "input_shape", None)
    data = X.astype(np.float32)
    if isinstance(shape, tuple) and len(shape) == 3:
        data = data.reshape(X.shape[0], 1, X.shape[1])  # one time step, as STAMM's LSTMs were trained
    return np.asarray(model.predict(data, verbose=0), dtype=np.float64)


def _mlflow_model(data: bytes, name: str, features: list[str]) -> tuple[Any, Any]:
    """``(model, predict_fn)`` of a zipped MLflow model directory (its ``MLmodel`` says how to load it)."""
    import yaml  # noqa: PLC0415 - in every environment that serves MLflow models (environments.py)

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ModelError(f"{name}: not a zip of an MLflow model directory") from None
    with archive:
        try:
            document = yaml.safe_load(archive.read("MLmodel"))
        except KeyError:
            raise ModelError(f"{name}: no MLmodel file in the MLflow model directory") from None
        flavors = (document or {}).get("flavors") or {}
        sklearn_flavor = flavors.get("sklearn") or {}
        if sklearn_flavor.get("pickled_model"):
            member = str(sklearn_flavor["pickled_model"])
            try:
                raw = archive.read(member)
            except KeyError:
                raise ModelError(f"{name}: the MLflow model has no {member}") from None
            if sklearn_flavor.get("serialization_format") == "skops":
                import skops.io as sio  # noqa: PLC0415

                # the types the modeler reviewed when logging it (MLflow's skops_trusted_types)
                return sio.loads(raw, trusted=list(sklearn_flavor.get("skops_trusted_types") or [])), None
            return _unpickle(raw, member), None
        if "python_function" not in flavors:
            raise ModelError(f"{name}: the MLflow model has neither a sklearn nor a python_function flavour")
        folder = Path(os.getcwd()) / f"mlflow-{hashlib.sha256(data).hexdigest()[:16]}"
        archive.extractall(folder)  # member names were checked when the registry stored the zip
    try:
        import mlflow.pyfunc  # noqa: PLC0415
        import pandas as pd  # noqa: PLC0415
    except ImportError:
        raise ModelError("this MLflow model needs mlflow in its environment (add it to the requirements)") from None
    model = mlflow.pyfunc.load_model(str(folder))

    def predict(X: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(pd.DataFrame(X, columns=features)), dtype=np.float64)

    return model, predict


def load(request: dict) -> dict:
    """Load a version's files (model and scalers) under ``key``; report what the loader learned."""
    key = str(request.get("key") or "")
    flavor = str(request.get("flavor") or "")
    files = request.get("files") or {}
    features = [str(name) for name in request.get("features") or []]
    if not key or "model" not in files:
        raise ModelError("load needs a key and a model file")
    model_spec = files["model"]
    predict_fn = None
    if flavor == "onnx":
        model = _onnx_session(_verified(model_spec), str(model_spec.get("name")))
    elif flavor == "keras":
        model = _keras_model(_verified(model_spec), str(model_spec.get("name")))
    elif flavor == "mlflow":
        model, predict_fn = _mlflow_model(_verified(model_spec), str(model_spec.get("name")), features)
    else:
        model = load_object(model_spec)
    if flavor in ("sklearn-pickle", "sklearn-skops") and not hasattr(model, "predict"):
        raise ModelError(f"{model_spec.get('name')}: the object ({type(model).__name__}) has no predict method")
    in_scaler = load_object(files["input_scaler"]) if files.get("input_scaler") else None
    out_scaler = load_object(files["output_scaler"]) if files.get("output_scaler") else None
    if in_scaler is not None and not hasattr(in_scaler, "transform"):
        raise ModelError(f"{files['input_scaler'].get('name')}: the input scaler has no transform method")
    if out_scaler is not None and not hasattr(out_scaler, "inverse_transform"):
        raise ModelError(f"{files['output_scaler'].get('name')}: the output scaler has no inverse_transform method")
    LOADED[key] = Loaded(flavor, model, in_scaler, out_scaler, features, predict_fn)
    LOADED.move_to_end(key)
    while len(LOADED) > max(1, int(request.get("max_loaded") or MAX_LOADED)):
        LOADED.popitem(last=False)
    return {
        "class": type(model).__name__,
        "model_inputs": _inputs_count(model),
        "scaler_inputs": _inputs_count(in_scaler),
    }


def _inputs_count(estimator: Any) -> int | None:
    count = getattr(estimator, "n_features_in_", None)
    return int(count) if count is not None else None


def _named_input(estimator: Any, X: np.ndarray, names: list[str]) -> Any:
    """``X`` as the estimator expects it: a DataFrame in its own column order if it was fitted on one."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is None:
        return X
    fitted = [str(name) for name in fitted]
    if set(fitted) != set(names) or len(fitted) != len(names):
        return X  # fitted under other names: the descriptor's order is the training order
    import pandas as pd  # noqa: PLC0415

    if fitted == names:
        return pd.DataFrame(X, columns=fitted, copy=False)
    position = {name: index for index, name in enumerate(names)}
    return pd.DataFrame(X[:, [position[name] for name in fitted]], columns=fitted)


def _tree_fast_path(model: Any, X: np.ndarray) -> np.ndarray | None:
    """Forest or tree regressor on a small batch: the compiled trees directly, no dispatch overhead."""
    kind = type(model).__name__
    if X.shape[0] > FAST_TREE_MAX_ROWS or getattr(model, "feature_names_in_", None) is not None:
        return None
    if not type(model).__module__.startswith("sklearn."):
        return None
    if kind in ("RandomForestRegressor", "ExtraTreesRegressor"):
        trees = [estimator.tree_ for estimator in model.estimators_]
    elif kind in ("DecisionTreeRegressor", "ExtraTreeRegressor"):
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
    return total


def run(loaded: Loaded, X: np.ndarray) -> np.ndarray:
    """Predictions of one loaded bundle as a 2-D float64 array (rows × outputs)."""
    names = loaded.features
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        warnings.filterwarnings("ignore", message="X has feature names")
        if loaded.input_scaler is not None:
            X = np.asarray(loaded.input_scaler.transform(_named_input(loaded.input_scaler, X, names)), dtype=float)
        if loaded.predict_fn is not None:
            result = loaded.predict_fn(X)
        elif loaded.flavor == "onnx":
            result = _onnx_predict(loaded.model, X, names)
        elif loaded.flavor == "keras":
            result = _keras_predict(loaded.model, X)
        else:
            result = _tree_fast_path(loaded.model, X)
            if result is None:
                result = np.asarray(loaded.model.predict(_named_input(loaded.model, X, names)), dtype=float)
        result = np.asarray(result, dtype=float).reshape(X.shape[0], -1)
        if loaded.output_scaler is not None:
            result = np.asarray(loaded.output_scaler.inverse_transform(result), dtype=float).reshape(X.shape[0], -1)
    return result


def _loaded(request: dict) -> Loaded:
    key = str(request.get("key") or "")
    loaded = LOADED.get(key)
    if loaded is None:
        raise ModelError(f"model {key} is not loaded")
    LOADED.move_to_end(key)
    return loaded


def predict(request: dict, payload: bytes) -> tuple[dict, bytes]:
    """Predict the row-major float64 matrix in ``payload`` (``rows`` × ``cols``)."""
    loaded = _loaded(request)
    rows, cols = int(request.get("rows", -1)), int(request.get("cols", -1))
    if rows < 0 or cols < 1 or len(payload) != rows * cols * 8:
        raise ModelError(f"payload of {len(payload)} bytes is not {rows} × {cols} float64 values")
    X = np.frombuffer(payload, dtype="<f8").reshape(rows, cols)
    result = run(loaded, X)
    return {"rows": int(result.shape[0]), "outputs": int(result.shape[1])}, np.ascontiguousarray(
        result, dtype="<f8"
    ).tobytes()


def to_onnx(request: dict) -> tuple[dict, bytes]:
    """The loaded scikit-learn model (with its input scaler, if any) converted to ONNX by skl2onnx."""
    loaded = _loaded(request)
    if loaded.flavor not in ("sklearn-pickle", "sklearn-skops"):
        raise ModelError("only scikit-learn models can be converted to ONNX")
    if loaded.output_scaler is not None:
        raise ModelError(
            "models with an output scaler cannot be converted to ONNX (the scaler's inverse is not exported)"
        )
    try:
        from skl2onnx import to_onnx as convert  # noqa: PLC0415
    except ImportError:
        raise ModelError("skl2onnx is not installed in this model's environment") from None
    model = loaded.model
    if loaded.input_scaler is not None:
        from sklearn.pipeline import make_pipeline  # noqa: PLC0415

        model = make_pipeline(loaded.input_scaler, model)
    cols = int(request.get("cols") or len(loaded.features))
    sample = np.zeros((1, cols), dtype=np.float32)  # float tensors: what onnxruntime's ML operators take
    try:
        onnx_model = convert(model, sample, target_opset=int(request.get("opset") or 17))
    except Exception as exc:  # noqa: BLE001 - skl2onnx raises many types for unsupported models
        raise ModelError(
            f"skl2onnx cannot convert {type(loaded.model).__name__}: {type(exc).__name__}: {exc}"
        ) from None
    return {"converter": package_versions().get("skl2onnx", "")}, onnx_model.SerializeToString()

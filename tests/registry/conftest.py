"""Registry fixtures: real scikit-learn models trained on IndPenSim batches, descriptors, project folders."""

from __future__ import annotations

import copy
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import INDPENSIM_DIR, pickle_approver

FEATURES = ["temperature", "sugar_feed_rate", "aeration_rate", "dissolved_oxygen_concentration", "pH", "vessel_volume"]
TARGET = "penicillin_concentration"

LANGUAGE_SHAPES = {
    "split-list": [{"name": "python"}, {"version": "3.11.7"}],
    "one-item-list": [{"name": "Python", "version": "3.11.7"}],
    "mapping": {"name": "python", "version": "3.11.7"},
}


def load_batches(batches: tuple[int, ...] = (92, 93), step: int = 6) -> pd.DataFrame:
    if not INDPENSIM_DIR.is_dir():
        pytest.fail(f"IndPenSim data not found at {INDPENSIM_DIR}")
    frames = [pd.read_csv(INDPENSIM_DIR / f"batch_{b}.csv").iloc[::step] for b in batches]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def training_frame() -> pd.DataFrame:
    """Batches 92 and 93 (in control), every 6th row: ~400 rows, enough for small real models."""
    return load_batches()


@pytest.fixture(scope="session")
def test_frame() -> pd.DataFrame:
    """Batch 96, every 10th row: rows the models did not see."""
    return load_batches((96,), step=10)


def train(kind: str, frame: pd.DataFrame, features: list[str] = FEATURES) -> dict[str, Any]:
    """A fitted model (and scalers) of the given kind, trained on numpy arrays in ``features`` order."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR
    from sklearn.tree import DecisionTreeRegressor

    X = frame[features].to_numpy(dtype=float)
    y = frame[TARGET].to_numpy(dtype=float)
    if kind == "rf":
        return {"model": RandomForestRegressor(n_estimators=8, max_depth=6, random_state=0).fit(X, y)}
    if kind == "rf-named":  # fitted on a DataFrame: the model knows its column names
        return {"model": RandomForestRegressor(n_estimators=5, max_depth=5, random_state=0).fit(frame[features], y)}
    if kind == "dt":
        return {"model": DecisionTreeRegressor(max_depth=6, random_state=0).fit(X, y)}
    if kind == "gb":
        return {"model": GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(X, y)}
    if kind == "svr":
        x_scaler = StandardScaler().fit(X)
        y_scaler = StandardScaler().fit(y.reshape(-1, 1))
        model = SVR(C=3.0).fit(x_scaler.transform(X), y_scaler.transform(y.reshape(-1, 1)).ravel())
        return {"model": model, "input_scaler": x_scaler, "output_scaler": y_scaler}
    if kind == "pipeline":
        return {"model": make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, y)}
    raise ValueError(kind)


def reference_predict(fitted: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """What the model gives when called directly in-process (the ground truth the registry must match)."""
    data = X
    if "input_scaler" in fitted:
        data = fitted["input_scaler"].transform(data)
    model = fitted["model"]
    if getattr(model, "feature_names_in_", None) is not None:
        data = pd.DataFrame(data, columns=list(model.feature_names_in_))
    result = np.asarray(model.predict(data), dtype=float)
    if "output_scaler" in fitted:
        result = fitted["output_scaler"].inverse_transform(result.reshape(-1, 1))[:, 0]
    return result


def dump(obj: Any, path: Path) -> Path:
    """Write ``obj`` in the format the extension names (.pkl pickle, .joblib joblib, .skops skops)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".skops":
        import skops.io as sio

        sio.dump(obj, path)
    elif path.suffix == ".joblib":
        joblib.dump(obj, path)
    else:
        with path.open("wb") as handle:
            pickle.dump(obj, handle)
    return path


def descriptor(
    model_id: str = "0001_[python]_penicillin_RF",
    *,
    model_file: str | None = None,
    features: list[str] = FEATURES,
    frame: pd.DataFrame | None = None,
    language: Any = None,
    input_scaler: str | None = None,
    output_scaler: str | None = None,
    status: str = "online",
    ranges: bool = True,
    version: str = "V.1.0",
    packages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A full STAMM descriptor document (with the root key), ranges taken from ``frame`` when given."""
    feats = []
    for name in features:
        entry: dict[str, Any] = {
            "name": name,
            "type": "sensor",
            "description": f"{name} of the bioreactor.",
            "units": "",
            "lag": 0,
            "feature_scaling": "none",
        }
        if ranges and frame is not None:
            entry["expected_range"] = {"min": float(frame[name].min()), "max": float(frame[name].max())}
        feats.append(entry)
    config: dict[str, Any] = {
        "model_identification": {
            "name": "Random Forest",
            "version": version,
            "ID": model_id,
            "UUID": "",
            "author": "A. Modeler",
            "doi": "",
            "creation_date": "22-01-2024",
            "project": "../project_info.yaml",
            "status": status,
            "status_description": "Model is loaded and ready for predictions.",
        },
        "model_description": {
            "learner": "random_forest",
            "model_type": "ensemble",
            "model_name": f"{model_id} [Python]",
            "description": "Soft sensor for penicillin concentration.",
            "language": copy.deepcopy(language if language is not None else LANGUAGE_SHAPES["split-list"]),
            "config_files": {"model_file": model_file or f"{model_id}.pkl"},
            "packages": copy.deepcopy(packages if packages is not None else _default_packages(language)),
            "input_time_interval": {
                "time_interval": {"value": 12, "unit": "minutes"},
                "aggregation": {"method": "NaN", "description": "NaN"},
                "description": "One measurement every 12 minutes",
            },
        },
        "training_information": {
            "number_of_instances": 400,
            "hyperparameters": {"number_of_trees": 8},
            "validation": "hold-out batch 96",
            "experiments_ID": [92, 93],
        },
        "inputs": {"features": feats},
        "outputs": {
            "information": [
                {
                    "name": TARGET,
                    "description": "Penicillin concentration.",
                    "units": "g L-1",
                    "forecast_horizon": 0,
                    "feature_scaling": "none",
                    "expected_range": {"min": 0, "max": 50},
                }
            ]
        },
    }
    if input_scaler:
        config["inputs"]["scaler"] = input_scaler
    if output_scaler:
        config["outputs"]["scaler"] = output_scaler
    return {"ml_model_configuration": config}


def _default_packages(language: Any) -> list[dict[str, Any]]:
    """The platform's scikit-learn for Python models (they run in the default runtime); none for R."""
    text = str(language).lower()
    if "'r'" in text or text == "r":
        return []
    import sklearn

    return [{"package": "sklearn.ensemble", "class": "RandomForestRegressor", "version": sklearn.__version__}]


def to_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False)


PROJECT_INFO = {
    "project_ID": "P0001",
    "project_name": "penicillin",
    "description": "IndPenSim fed-batch penicillin fermentation.",
    "coordinator": "C. Oordinator",
    "contributors": ["A. Modeler", "B. Engineer"],
    "start_date": "01/01/2024",
    "end_date": "31/12/2025",
    "data_sources": [
        {"name": "IndPenSim", "url": "http://www.industrialpenicillinsimulation.com", "notes": "batches 91-100"}
    ],
    "db_config": {"host": "influxdb", "port": 8086},
    "references": [
        {
            "id": 1,
            "authors": "Goldrick et al.",
            "title": "The development of an industrial-scale fed-batch fermentation simulation",
            "journal": "J. Biotechnol.",
            "year": 2015,
            "doi": "10.1016/j.jbiotec.2014.10.029",
            "apa": "Goldrick, S. (2015).",
        }
    ],
    "variables": [
        {
            "name": "Time (h)",
            "column_type": "Time",
            "units": "h",
            "renamed_variable": "time",
            "description": "Time since inoculation.",
        },
        {
            "name": "Temperature(T:K)",
            "column_type": "Sensor",
            "units": "K",
            "renamed_variable": "temperature",
            "description": "Temperature.",
        },
        {
            "name": "Sugar feed rate(Fs:L/h)",
            "column_type": "Actuator",
            "units": "L/h",
            "renamed_variable": "sugar_feed_rate",
            "description": "Fs.",
        },
        {
            "name": "Penicillin concentration(P:g/L)",
            "column_type": "Soft_sensor",
            "units": "g/L",
            "renamed_variable": "penicillin_concentration",
            "description": "P.",
        },
        {
            "name": "Offline Penicillin concentration(P_offline:P(g/L))",
            "column_type": "Offline_measurement",
            "units": "g/L",
            "renamed_variable": "offline_penicillin_concentration",
            "description": "Lab.",
        },
        {
            "name": "Batch ID",
            "column_type": "Experiment",
            "units": "",
            "renamed_variable": "experiment_id",
            "description": "Batch.",
        },
    ],
}


def write_project(
    root: Path, models: list[tuple[dict[str, Any], dict[str, Any]]], info: dict[str, Any] | None = None
) -> Path:
    """A STAMM project folder: project_info.yaml, configs/<ID>.yaml, models/<files>.

    ``models`` is a list of (descriptor document, {file name: object to dump}).
    """
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "project_info.yaml").write_text(yaml.safe_dump(info or PROJECT_INFO, sort_keys=False))
    for document, files in models:
        model_id = document["ml_model_configuration"]["model_identification"]["ID"]
        (root / "configs" / f"{model_id}.yaml").write_text(to_yaml(document))
        for name, obj in files.items():
            if isinstance(obj, bytes):
                (root / "models" / name).write_bytes(obj)
            else:
                dump(obj, root / "models" / name)
    return root


def zip_folder(root: Path, name: str = "folder.zip") -> io.BytesIO:
    """A folder zipped with its files at the top of the archive (a STAMM project, an MLflow model)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    buffer.seek(0)
    buffer.name = name
    return buffer


def kill_worker(pid: int) -> None:
    """SIGKILL a runtime worker as the kernel's OOM killer would: the model process itself and, under
    bubblewrap, the sandbox around it (the innermost first, so its pipes close at once)."""
    import os
    import signal
    import subprocess

    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in children:
        kill_worker(int(child))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def incompatible_pickle() -> bytes:
    """A pickle as written by another scikit-learn: it references a module path this one lacks."""
    return b"\x80\x02csklearn.ensemble._forest_legacy\nRandomForestRegressor\nq\x00)\x81q\x01}q\x02b."


@pytest.fixture
def project(db):
    from apps.registry.project_info import parse_project_info
    from apps.registry.services import project_upsert

    return project_upsert(info=parse_project_info(PROJECT_INFO))


@pytest.fixture
def register(project, role_users, tmp_path, training_frame):
    """``register(kind, model_id=..., fmt=".pkl", **descriptor options)`` → (version, fitted)."""
    from apps.registry.descriptors import parse_descriptor
    from apps.registry.services import ArtifactInput, model_version_register

    def build(
        kind: str = "rf",
        *,
        model_id: str = "0001_[python]_penicillin_RF",
        fmt: str = ".pkl",
        user: str = "modeler",
        training_data: dict | None = None,
        **options: Any,
    ):
        fitted = train(kind, training_frame)
        files: dict[str, ArtifactInput] = {}
        model_name = f"{model_id}{fmt}"
        files["model"] = ArtifactInput(dump(fitted["model"], tmp_path / kind / model_name), model_name)
        extra = {}
        if "input_scaler" in fitted:
            name = f"{model_id}_scaler_X{fmt}"
            files["input_scaler"] = ArtifactInput(dump(fitted["input_scaler"], tmp_path / kind / name), name)
            extra["input_scaler"] = name
        if "output_scaler" in fitted:
            name = f"{model_id}_scaler_y{fmt}"
            files["output_scaler"] = ArtifactInput(dump(fitted["output_scaler"], tmp_path / kind / name), name)
            extra["output_scaler"] = name
        options.setdefault("frame", training_frame)
        document = descriptor(model_id, model_file=model_name, **extra, **options)
        version = model_version_register(
            project=project,
            descriptor=parse_descriptor(document),
            files=files,
            user=role_users[user],
            training_data=training_data,
            pickle_approved_by=pickle_approver() if fmt in (".pkl", ".joblib") else None,
        )
        return version, fitted

    return build

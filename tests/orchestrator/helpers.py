"""Building blocks of the orchestrator tests (also used by the end-to-end seed script).

Real data and real models: IndPenSim batches from ``../shared/data/indpensim``, a scikit-learn random
forest trained here, registered through the registry's services, served by its REST endpoint.
"""

from __future__ import annotations

import io
import pickle
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.embedded_db import INDPENSIM_DIR as INDPENSIM

FEATURES = ["temperature", "sugar_feed_rate", "aeration_rate", "dissolved_oxygen_concentration", "pH", "vessel_volume"]
TARGET = "penicillin_concentration"
PROJECT = "penicillin"
MODEL_ID = "0001_[python]_penicillin_RF"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
PROJECT_INFO = {
    "project_ID": "P0001",
    "project_name": PROJECT,
    "description": "IndPenSim fed-batch penicillin fermentation.",
    "coordinator": "C. Oordinator",
    "variables": [
        {"name": name, "column_type": "Sensor", "units": "", "renamed_variable": name, "description": name}
        for name in FEATURES
    ],
}


def load_batch(number: int) -> pd.DataFrame:
    return pd.read_csv(INDPENSIM / f"batch_{number}.csv")


def descriptor_document(*, model_id: str = MODEL_ID, features: list[str] = FEATURES, status: str = "online") -> dict:
    return {
        "ml_model_configuration": {
            "model_identification": {
                "name": "Random Forest",
                "version": "V.1.0",
                "ID": model_id,
                "UUID": "",
                "author": "A. Modeler",
                "doi": "",
                "creation_date": "22-01-2024",
                "project": "../project_info.yaml",
                "status": status,
                "status_description": "ready",
            },
            "model_description": {
                "learner": "random_forest",
                "model_type": "ensemble",
                "model_name": "RF",
                "description": "RF soft sensor.",
                "language": [{"name": "python"}, {"version": "3.11.7"}],
                "config_files": {"model_file": f"{model_id}.pkl"},
                "packages": [
                    {
                        "package": "sklearn.ensemble",
                        "class": "RandomForestRegressor",
                        "version": package_version("scikit-learn"),
                    }
                ],
            },
            "training_information": {"number_of_instances": 500, "experiments_ID": [92]},
            "inputs": {
                "features": [
                    {"name": f, "type": "sensor", "description": f, "units": "", "lag": 0, "feature_scaling": "none"}
                    for f in features
                ]
            },
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
    }


def train_rf(*, n_estimators: int = 10, features: list[str] = FEATURES) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    frame = load_batch(92).iloc[::2]
    return RandomForestRegressor(n_estimators=n_estimators, max_depth=8, random_state=0).fit(
        frame[features].to_numpy(dtype=float), frame[TARGET].to_numpy(dtype=float)
    )


def pickled_rf_file(path: Path) -> Path:
    """``train_rf()`` pickled to ``path``, for a Django process to register with ``register_rf(pickled=...)``."""
    path.write_bytes(pickle.dumps(train_rf()))
    return path


def register_rf(
    *,
    user: Any = None,
    status: str = "online",
    alias: str | None = "production",
    n_estimators: int = 10,
    features: list[str] = FEATURES,
    model_id: str = MODEL_ID,
    pickled: bytes | None = None,
) -> tuple[Any, Any]:
    """Project (upserted), soft sensor version with a real RF artefact, alias → (version, model).

    ``pickled``: the RF already trained and pickled (``train_rf``), by a process that has scikit-learn loaded
    anyway; the end-to-end stacks' seed process then neither imports scikit-learn (about 1 s of CPU) nor trains.
    The model returned is then None."""
    from apps.registry.descriptors import parse_descriptor
    from apps.registry.project_info import parse_project_info
    from apps.registry.services import ArtifactInput, model_version_register, project_upsert
    from tests.conftest import pickle_approver

    project = project_upsert(info=parse_project_info(PROJECT_INFO))
    model = None
    if pickled is None:
        model = train_rf(n_estimators=n_estimators, features=features)
        blob = io.BytesIO()
        pickle.dump(model, blob)
        pickled = blob.getvalue()
    name = f"{model_id}.pkl"
    version = model_version_register(
        project=project,
        descriptor=parse_descriptor(descriptor_document(model_id=model_id, features=features, status=status)),
        files={"model": ArtifactInput(pickled, name)},
        user=user,
        status=status,
        pickle_approved_by=pickle_approver(),
    )
    if alias:
        from tests.signing import move_signed

        move_signed(version, alias, reason="test deployment")
    return version, model


def raw_batch(
    frame: pd.DataFrame,
    *,
    batch_id: str,
    start: datetime = T0,
    step_s: float = 20.0,
    device_id: str = "R1",
    variables: list[str] = FEATURES,
    offset_rows: int = 0,
):
    """Raw points of ``frame``'s rows, one row every ``step_s`` seconds from ``start`` (row i at start + i*step)."""
    from apps.tsdb.types import Collection, PointBatch, SeriesKey, to_ns

    n = len(frame)
    times = to_ns(start) + ((np.arange(n) + offset_rows) * step_s * 1e9).astype(np.int64)
    series = [SeriesKey(PROJECT, device_id, batch_id, "sensor", v) for v in variables]
    return PointBatch(
        collection=Collection.RAW,
        series=series,
        series_index=np.repeat(np.arange(len(variables), dtype=np.int32), n),
        times_ns=np.tile(times, len(variables)),
        values=np.concatenate([frame[v].to_numpy(dtype=float) for v in variables]),
    )


def expected_predictions(model: Any, frame: pd.DataFrame, features: list[str] = FEATURES) -> np.ndarray:
    return model.predict(frame[features].to_numpy(dtype=float))


def row_time(i: int, *, start: datetime = T0, step_s: float = 20.0) -> datetime:
    return start + timedelta(seconds=i * step_s)


def lab_points(
    times: list[datetime], values: list[float], *, batch_id: str, device_id: str = "R1", output: str = TARGET
):
    """Lab samples of ``output`` (source ``lab``) at the given times: what the bias update folds in."""
    from apps.tsdb.types import Collection, PointBatch, SeriesKey, to_ns

    return PointBatch(
        collection=Collection.RAW,
        series=[SeriesKey(PROJECT, device_id, batch_id, "lab", output)],
        series_index=np.zeros(len(times), dtype=np.int32),
        times_ns=np.array([to_ns(t) for t in times], dtype=np.int64),
        values=np.asarray(values, dtype=float),
    )


AGE_MODEL_ID = "0008_[python]_penicillin_age"
#: The bias update a version trained by the platform carries (``training_data["bias"]``).
TRAINED_BIAS = {"alpha": 0.5, "lab_delay_seconds": 120, "max_lab_age_seconds": 7200, "lab_min": 0.0, "lab_max": 50.0}


def register_age_model(
    *,
    frame: pd.DataFrame,
    user: Any = None,
    alias: str | None = "production",
    bias: dict | None = TRAINED_BIAS,
    envelope: dict | None = None,
) -> tuple[Any, Any]:
    """A linear soft sensor on FEATURES + ``batch_age`` (the demo's kind of model: a derived input), with the
    bias update it was trained with and, optionally, a training envelope (``{feature: {min, max}}``, the
    validity bounds) → (version, model). Row i of ``frame`` is taken to be 20 s · i old."""
    from sklearn.linear_model import LinearRegression

    from apps.registry.descriptors import parse_descriptor
    from apps.registry.project_info import parse_project_info
    from apps.registry.services import ArtifactInput, model_version_register, project_upsert
    from apps.tsdb.derived import BATCH_AGE
    from tests.conftest import pickle_approver

    features = [*FEATURES, BATCH_AGE]
    ages_h = np.arange(len(frame)) * 20.0 / 3600.0
    X = np.column_stack([frame[FEATURES].to_numpy(dtype=float), ages_h])
    model = LinearRegression().fit(X, frame[TARGET].to_numpy(dtype=float))
    blob = io.BytesIO()
    pickle.dump(model, blob)
    version = model_version_register(
        project=project_upsert(info=parse_project_info(PROJECT_INFO)),
        descriptor=parse_descriptor(descriptor_document(model_id=AGE_MODEL_ID, features=features)),
        files={"model": ArtifactInput(blob.getvalue(), f"{AGE_MODEL_ID}.pkl")},
        user=user,
        status="online",
        training_data={k: v for k, v in (("bias", bias), ("envelope", envelope)) if v} or None,
        pickle_approved_by=pickle_approver(),
    )
    if alias:
        from tests.signing import move_signed

        move_signed(version, alias, reason="test deployment")
    return version, model

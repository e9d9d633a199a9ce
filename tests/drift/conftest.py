"""Fixtures of the drift platform tests: a registered penicillin soft sensor, a deployment, IndPenSim
batches imported into the time-series store through the CSV parser and the ingest service."""
from __future__ import annotations

import io
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import pickle_approver

PROJECT = "penicillin"
DEVICE = "R1"
MODEL_ID = "0007_[python]_penicillin_ridge"
TARGET = "penicillin_concentration"
#: The study's eight inputs under their store names (the CSV import lower-cases pH and CO2_percent...).
INPUTS = (
    "aeration_rate", "sugar_feed_rate", "temperature", "ph", "dissolved_oxygen_concentration",
    "co2_percent_in_off_gas", "vessel_volume", "oxygen_uptake_rate",
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: Batches are laid one after the other, each starting BATCH_SPACING after the previous one.
BATCH_SPACING = timedelta(hours=300)


def descriptor(*, experiments: list[int] | str = (92, 93), features=INPUTS) -> dict:
    return {
        "ml_model_configuration": {
            "model_identification": {"name": "Ridge", "version": "V.1.0", "ID": MODEL_ID, "UUID": "",
                                     "author": "A. Modeler", "doi": "", "creation_date": "01-01-2026",
                                     "project": "../project_info.yaml", "status": "online",
                                     "status_description": "ready"},
            "model_description": {"learner": "ridge", "model_type": "interpretable", "model_name": "Ridge",
                                  "description": "Ridge soft sensor.", "language": [{"name": "python"}],
                                  "config_files": {"model_file": f"{MODEL_ID}.pkl"},
                                  "packages": [{"package": "sklearn.linear_model", "class": "Ridge"}]},
            "training_information": {"number_of_instances": 100, "experiments_ID": list(experiments)},
            "inputs": {"features": [{"name": f, "type": "sensor", "description": f, "units": "", "lag": 0,
                                     "feature_scaling": "none"} for f in features]},
            "outputs": {"information": [{"name": TARGET, "description": "Penicillin.", "units": "g L-1",
                                         "forecast_horizon": 0, "feature_scaling": "none",
                                         "expected_range": {"min": 0, "max": 50}}]},
        }
    }


def register_model(*, user=None, experiments=(92, 93), features=INPUTS):
    """A real (tiny) ridge model registered through the registry's services, alias ``production``."""
    from sklearn.linear_model import Ridge

    from apps.registry.descriptors import parse_descriptor
    from apps.registry.project_info import parse_project_info
    from apps.registry.services import ArtifactInput, model_version_register, project_upsert
    from tests.signing import move_signed

    project = project_upsert(info=parse_project_info({
        "project_ID": "P0007", "project_name": PROJECT, "description": "IndPenSim", "coordinator": "C. O.",
        "variables": [],
    }))
    rng = np.random.default_rng(0)
    model = Ridge().fit(rng.normal(size=(20, len(features))), rng.normal(size=20))
    version = model_version_register(
        project=project, descriptor=parse_descriptor(descriptor(experiments=list(experiments), features=features)),
        files={"model": ArtifactInput(pickle.dumps(model), f"{MODEL_ID}.pkl")}, user=user, status="online",
        pickle_approved_by=pickle_approver(),
    )
    move_signed(version, reason="drift tests")
    return version


@pytest.fixture
def model_version(db, role_users):
    return register_model(user=role_users["modeler"])


@pytest.fixture
def deployment(model_version, role_users):
    from apps.orchestrator.services import deployment_create

    return deployment_create(user=role_users["modeler"], name="penicillin-ridge",
                             soft_sensor=model_version.soft_sensor, alias="production", max_input_age_seconds=900)


def batch_start(index: int) -> datetime:
    return T0 + index * BATCH_SPACING


def import_batches(
    data_dir: Path, batches: tuple[int, ...], *, columns: tuple[str, ...] | None = None
) -> dict[int, datetime]:
    """Import IndPenSim batch files into the raw collection (wide CSV parser → ingest service).

    ``columns``: keep only these raw CSV columns (plus time) to keep the test fast; None = every column.
    Returns each batch's start (its time 0).
    """
    from apps.tsdb.csv_import import wide_csv_parse
    from apps.tsdb.services import points_ingest
    from apps.tsdb.types import GroupKey

    starts = {}
    for i, number in enumerate(batches):
        path = data_dir / f"batch_{number}.csv"
        source: Path | bytes = path
        if columns is not None:
            import pandas as pd

            frame = pd.read_csv(path, usecols=lambda c: c == "time" or c in columns)
            source = frame.to_csv(index=False).encode()
        table = wide_csv_parse(source, time_unit="h")
        start = batch_start(i)
        points_ingest(batch=table.to_batch(group=GroupKey(PROJECT, DEVICE, f"batch_{number}"),
                                           times_ns=table.absolute_times(start)))
        starts[number] = start
    return starts


#: Raw CSV headers of INPUTS plus the lab column.
CSV_COLUMNS = (
    "aeration_rate", "sugar_feed_rate", "temperature", "pH", "dissolved_oxygen_concentration",
    "CO2_percent_in_off_gas", "vessel_volume", "oxygen_uptake_rate", "offline_penicillin_concentration",
)


@pytest.fixture
def store_batches(db, indpensim_dir):
    """Batches 92, 93 (reference), 91 (substrate-feed fault) and 98 (near in control) in the store."""
    return import_batches(indpensim_dir, (92, 93, 91, 98), columns=CSV_COLUMNS)


def blob(model) -> bytes:
    buffer = io.BytesIO()
    pickle.dump(model, buffer)
    return buffer.getvalue()

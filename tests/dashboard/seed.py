"""Real demo data for the dashboard tests and benchmark: IndPenSim batches through the tsdb ingest
service, two real scikit-learn soft sensors registered through the registry's services, predictions as
the pipeline stores them (scored on the one scoring path), a deployment and a pipeline run.
"""

from __future__ import annotations

import functools
import io
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sklearn

from tests.conftest import pickle_approver
from tests.embedded_db import INDPENSIM_DIR as INDPENSIM

PROJECT = "penicillin"
DEVICE = "R1"
FEATURES = ["temperature", "sugar_feed_rate", "aeration_rate", "dissolved_oxygen_concentration", "ph", "vessel_volume"]
TARGET = "penicillin_concentration"
UNITS = {
    "temperature": "K",
    "sugar_feed_rate": "L/h",
    "aeration_rate": "m3/min",
    "dissolved_oxygen_concentration": "mg/L",
    "ph": "pH",
    "vessel_volume": "L",
    TARGET: "g/L",
}
PROJECT_INFO = {
    "project_ID": "P0001",
    "project_name": PROJECT,
    "description": "IndPenSim fed-batch penicillin fermentation.",
    "coordinator": "C. Oordinator",
    "variables": [
        {"name": name, "column_type": "Sensor", "units": UNITS[name], "renamed_variable": name, "description": name}
        for name in FEATURES
    ]
    + [
        {
            "name": "offline_penicillin_concentration",
            "column_type": "Offline_measurement",
            "units": "g/L",
            "renamed_variable": TARGET,
            "description": "lab penicillin",
        }
    ],
}


def batch_frame(number: int) -> pd.DataFrame:
    return pd.read_csv(INDPENSIM / f"batch_{number}.csv")


@functools.cache
def _parsed(number: int) -> Any:
    """The batch's CSV parsed once per test process (the demo is seeded by dozens of tests; the table is only
    read)."""
    from apps.tsdb.csv_import import wide_csv_parse

    return wide_csv_parse(INDPENSIM / f"batch_{number}.csv")


def ingest_batch(
    number: int, *, start: datetime, device: str = DEVICE, batch_id: str | None = None, rows: int | None = None
) -> int:
    """One IndPenSim CSV through the CSV parser and ``points_ingest`` (the tsdb ingest service)."""
    from apps.tsdb.services import points_ingest
    from apps.tsdb.types import GroupKey

    table = _parsed(number)
    times = table.absolute_times(start)
    selection = slice(None) if rows is None else slice(0, rows)
    batch = table.to_batch(
        group=GroupKey(PROJECT, device, batch_id or f"batch_{number}"), times_ns=times[selection], rows=selection
    )
    return points_ingest(batch=batch).points


def descriptor_document(*, model_id: str, learner: str, experiments: list[int], version: str) -> dict[str, Any]:
    frame = pd.concat([batch_frame(n) for n in experiments])
    return {
        "ml_model_configuration": {
            "model_identification": {
                "name": model_id.split("_", 2)[-1],
                "version": version,
                "ID": model_id,
                "UUID": "",
                "author": "A. Modeler",
                "doi": "",
                "creation_date": "22-01-2024",
                "project": "../project_info.yaml",
                "status": "online",
                "status_description": "ready",
            },
            "model_description": {
                "learner": learner,
                "model_type": "ensemble",
                "model_name": model_id,
                "description": f"{learner} soft sensor of penicillin concentration.",
                "language": [{"name": "python"}, {"version": "3.11.7"}],
                "config_files": {"model_file": f"{model_id}.pkl"},
                # the scikit-learn that pickled it (the platform's: it runs in the default runtime)
                "packages": [{"package": "sklearn", "class": learner, "version": sklearn.__version__}],
            },
            "training_information": {"number_of_instances": len(frame), "experiments_ID": experiments},
            "inputs": {
                "features": [
                    {
                        "name": f,
                        "type": "sensor",
                        "description": f,
                        "units": UNITS[f],
                        "lag": 0,
                        "feature_scaling": "none",
                        "expected_range": {
                            "min": float(frame[_column(f)].min()),
                            "max": float(frame[_column(f)].max()),
                        },
                    }
                    for f in FEATURES
                ]
            },
            "outputs": {
                "information": [
                    {
                        "name": TARGET,
                        "description": "Penicillin concentration.",
                        "units": "g/L",
                        "forecast_horizon": 0,
                        "feature_scaling": "none",
                        "expected_range": {"min": 0, "max": 50},
                    }
                ]
            },
        }
    }


def _column(feature: str) -> str:
    return "pH" if feature == "ph" else feature


def register_model(
    *,
    model_id: str,
    learner: str,
    experiments: list[int],
    alias: str | None = None,
    version: str = "V.1.0",
    n_estimators: int = 10,
) -> Any:
    """Train on the experiments' rows, register the pickle through the registry's services."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from apps.registry.descriptors import parse_descriptor
    from apps.registry.project_info import parse_project_info
    from apps.registry.services import ArtifactInput, model_version_register, project_upsert

    project = project_upsert(info=parse_project_info(PROJECT_INFO))
    frame = pd.concat([batch_frame(n).iloc[::3] for n in experiments])
    X = frame[[_column(f) for f in FEATURES]].to_numpy(dtype=float)
    y = frame[TARGET].to_numpy(dtype=float)
    if learner == "random_forest":
        model = RandomForestRegressor(n_estimators=n_estimators, max_depth=8, random_state=0).fit(X, y)
    else:
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, y)
    blob = io.BytesIO()
    pickle.dump(model, blob)
    found = model_version_register(
        project=project,
        descriptor=parse_descriptor(
            descriptor_document(model_id=model_id, learner=learner, experiments=experiments, version=version)
        ),
        files={"model": ArtifactInput(blob.getvalue(), f"{model_id}.pkl")},
        user=None,
        status="online",
        pickle_approved_by=pickle_approver(),
    )
    if alias:
        from tests.signing import move_signed

        move_signed(found, alias, reason="seeded for the dashboard")
    explain_on_batch(found, 96)
    return found


def explain_on_batch(version: Any, number: int) -> None:
    """Measure the version's explanation (importance, partial dependence, background) on one batch's rows, as the
    training workflow does on a holdout."""
    from apps.registry.selectors import version_spec
    from apps.registry.services import model_version_explanation_build

    frame = batch_frame(number).iloc[::5]
    model_version_explanation_build(
        spec=version_spec(version),
        X=frame[[_column(f) for f in FEATURES]].to_numpy(dtype=float),
        y=frame[TARGET].to_numpy(dtype=float),
        source=f"batch_{number}",
    )


def store_predictions(*, version: Any, batch_id: str, device: str = DEVICE) -> int:
    """Score the batch on the one scoring path (the orchestrator's simulation) and store the points the
    pipeline would (raw value, corrected value, validity)."""
    from apps.orchestrator.simulation import simulation_run
    from apps.registry.selectors import version_spec
    from apps.tsdb.services import points_ingest
    from apps.tsdb.types import GroupKey

    simulation = simulation_run(spec=version_spec(version), group=GroupKey(PROJECT, device, batch_id))
    return points_ingest(batch=simulation.estimates.points()).points


@dataclass
class Demo:
    rf: Any
    ridge: Any
    deployment: Any
    live_batch: str
    batches: list[str]


def seed_demo(
    *, batches: tuple[int, ...] = (92, 93, 94, 96), live_rows: int = 600, now: datetime | None = None
) -> Demo:
    """Batches back to back ending now (the last one "live", cut at ``live_rows`` rows), an RF soft
    sensor (production) and a ridge one, predictions for every batch, a deployment and one run."""
    from apps.orchestrator.models import PipelineRun
    from apps.orchestrator.services import deployment_create

    now = now or datetime.now(UTC)
    durations = [float(batch_frame(n)["time"].iloc[-1 if n != batches[-1] else live_rows - 1]) for n in batches]
    start = now - timedelta(minutes=3) - timedelta(hours=sum(durations)) - timedelta(hours=2 * (len(batches) - 1))
    names = []
    for number, hours in zip(batches, durations, strict=True):
        ingest_batch(number, start=start, rows=live_rows if number == batches[-1] else None)
        names.append(f"batch_{number}")
        start += timedelta(hours=hours + 2)
    rf = register_model(
        model_id="0001_[python]_penicillin_RF", learner="random_forest", experiments=[92, 93], alias="production"
    )
    ridge = register_model(model_id="0002_[python]_penicillin_ridge", learner="ridge", experiments=[92, 93])
    for name in names:
        store_predictions(version=rf, batch_id=name)
    store_predictions(version=ridge, batch_id=names[-1])
    deployment = deployment_create(
        name="penicillin-rf",
        soft_sensor=rf.soft_sensor,
        alias="production",
        description="RF penicillin soft sensor on reactor R1.",
    )
    import uuid

    PipelineRun.objects.create(
        deployment=deployment,
        project_name=PROJECT,
        device_id=DEVICE,
        batch_id=names[-1],
        trigger="event",
        status="succeeded",
        lease_token=uuid.uuid4(),
        started_at=now - timedelta(minutes=2),
        finished_at=now - timedelta(minutes=2) + timedelta(seconds=1),
        version=rf,
        model_id=rf.soft_sensor.model_id,
        snapshots=live_rows,
        predictions=live_rows,
    )
    return Demo(rf=rf, ridge=ridge, deployment=deployment, live_batch=names[-1], batches=names)

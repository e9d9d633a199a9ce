"""Windows beyond the training batches: soft-sensor jobs, time ranges, project phases, model disagreement
on the one scoring path, and the periodic ledger refresh."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from apps.common.errors import ValidationFailed
from apps.drift import services
from apps.drift.models import ProjectDriftSettings
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, PointBatch, SeriesKey, to_ns
from tests.embedded_db import INDPENSIM_DIR as INDPENSIM

from .conftest import BATCH_SPACING, DEVICE, PROJECT, TARGET, batch_start


@pytest.mark.django_db
def test_soft_sensor_job_with_time_ranges(deployment, store_batches, role_users):
    """A soft sensor (no deployment): reference = a time range covering 92 and 93, test = a range of 91."""
    reference = {"kind": "time_range", "start": batch_start(0).isoformat(),
                 "end": (batch_start(1) + BATCH_SPACING).isoformat()}
    test = {"kind": "time_range", "start": (batch_start(2) + timedelta(hours=30)).isoformat(),
            "end": (batch_start(2) + timedelta(hours=120)).isoformat()}
    job = services.drift_job_create(user=role_users["modeler"], name="ks-range", soft_sensor=deployment.soft_sensor,
                                    detector="ks", variables=["sugar_feed_rate", "aeration_rate"],
                                    reference=reference, test=test)
    result = services.drift_job_run(job=job)
    assert result.status == "succeeded", result.error
    assert [s["batch_id"] for s in result.reference_window["segments"]] == ["batch_92", "batch_93"]
    assert [s["batch_id"] for s in result.test_window["segments"]] == ["batch_91"]
    assert result.verdict_rule == "calibrated"  # two groups in the reference range → calibrated per batch
    assert result.drift is True and "sugar_feed_rate" in result.details["flagged_components"]
    assert result.deployment is None and result.soft_sensor == deployment.soft_sensor


@pytest.mark.django_db
def test_project_phases_replace_indpensim_defaults(deployment, store_batches, role_users):
    ProjectDriftSettings.objects.create(project_name=PROJECT, phases="early:0-50,late:50-")
    with pytest.raises(ValidationFailed, match="test.phase"):
        services.drift_job_create(user=None, name="x", deployment=deployment, detector="psi",
                                  reference={"kind": "training"}, test={"kind": "phase", "phase": "log"})
    job = services.drift_job_create(user=None, name="early", deployment=deployment, detector="psi",
                                    reference={"kind": "training"},
                                    test={"kind": "phase", "phase": "early", "batch_id": 98})
    result = services.drift_job_run(job=job)
    assert result.status == "succeeded", result.error
    segment = result.test_window["segments"][0]
    from datetime import datetime

    span = datetime.fromisoformat(segment["end"]) - datetime.fromisoformat(segment["start"])
    hours = span.total_seconds() / 3600
    assert 49.5 <= hours < 50 and result.test_window["phase"] == "early:0-50"


def register_trained(*, learner: str, bias: dict | None = None, user=None):
    """Another version of the drift tests' soft sensor, trained on batches 92 and 93 as stored, never deployed."""
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge

    from apps.registry.descriptors import parse_descriptor
    from apps.registry.selectors import project_get
    from apps.registry.services import ArtifactInput, model_version_register
    from tests.conftest import pickle_approver

    from .conftest import CSV_COLUMNS, INPUTS, MODEL_ID, blob, descriptor

    columns = ["time", "penicillin_concentration", *CSV_COLUMNS]
    frame = pd.concat([pd.read_csv(INDPENSIM / f"batch_{n}.csv", usecols=columns) for n in (92, 93)])
    frame = frame.rename(columns={"pH": "ph", "CO2_percent_in_off_gas": "co2_percent_in_off_gas"})
    X, y = frame[list(INPUTS)].to_numpy(dtype=float), frame["penicillin_concentration"].to_numpy(dtype=float)
    model = (
        RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0) if learner == "forest" else Ridge()
    ).fit(X, y)
    return model_version_register(
        project=project_get(project_id="P0007"),
        descriptor=parse_descriptor(descriptor()),
        files={"model": ArtifactInput(blob(model), f"{MODEL_ID}.pkl")},
        user=user,
        status="online",
        training_data={"bias": bias} if bias else None,
        pickle_approved_by=pickle_approver(),
    )


@pytest.mark.django_db
def test_model_disagreement_scores_each_version_on_the_scoring_path(
    deployment, store_batches, role_users, api_client_for, settings
):
    """Two versions that never ran anywhere (no stored predictions) are scored over every segment; their
    estimates are the ones the simulation gives (as deployed: with the bias update one of them carries)."""
    from apps.drift.version_windows import load_predictions
    from apps.drift.window_loading import Segment
    from apps.orchestrator.predictors import LocalPredictor
    from apps.orchestrator.simulation import simulation_run
    from apps.registry.selectors import version_spec
    from apps.tsdb.types import GroupKey

    settings.STAMM_PREDICTOR = "local"  # the job's predictor; the pipeline's default calls the registry over REST
    ridge = register_trained(learner="ridge", bias={"alpha": 0.6, "lab_delay_seconds": 3600,
                                                    "max_lab_age_seconds": 14400}, user=role_users["modeler"])
    forest = register_trained(learner="forest", user=role_users["modeler"])
    tag = ridge.soft_sensor.model_id.lower()
    columns = [f"{tag}@{ridge.number}", f"{tag}@{forest.number}"]
    response = api_client_for("modeler").post("/api/v1/drift/run", {
        "detector": "model_disagreement", "deployment": deployment.name, "variables": columns,
        "reference": {"kind": "batches", "batches": ["batch_92", "batch_93"]},
        "test": {"kind": "phase", "phase": "log", "batch_id": "batch_91"},
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["variables"] == columns and body["verdict_rule"] == "calibrated"
    assert body["test_window"]["source"] == "scoring path"
    assert body["test_window"]["bias_update"] == {columns[0]: True, columns[1]: False}
    assert 400 < body["test_window"]["rows"] < 460  # the log phase, 30–120 h, one row every 12 min

    # The window holds what the simulation of each version gives on the same rows.
    group = GroupKey(PROJECT, DEVICE, "batch_91")
    start = to_ns(batch_start(2) + timedelta(hours=30))
    window = load_predictions(
        [Segment(group, start, to_ns(batch_start(2) + timedelta(hours=120)))], target=TARGET, models=columns,
        kind="test", project_id="P0007", deployment=deployment, predictor=LocalPredictor(),
    )
    block, times = window.blocks[window.segments[0].label], window.times[window.segments[0].label]
    for j, version in enumerate((ridge, forest)):
        simulated = simulation_run(spec=version_spec(version), group=group).estimates
        rows = np.searchsorted(simulated.times_ns, times)
        np.testing.assert_array_equal(simulated.times_ns[rows], times)
        np.testing.assert_allclose(block[:, j], simulated.corrected[rows, 0])
    ridge_simulated = simulation_run(spec=version_spec(ridge), group=group).estimates
    assert np.abs(ridge_simulated.bias[np.searchsorted(ridge_simulated.times_ns, times)]).max() > 0

    missing = api_client_for("modeler").post("/api/v1/drift/run", {
        "detector": "model_disagreement", "deployment": deployment.name, "variables": [columns[0], "gbm@1"],
        "reference": {"kind": "batches", "batches": ["batch_92", "batch_93"]},
        "test": {"kind": "last_points", "n": 50, "batch_id": "batch_91"},
    }, format="json")
    assert missing.status_code == 400 and "gbm@1" in missing.json()["error"]["message"]
    # Without named versions: those that predicted the target in every segment; none ran here.
    nothing = api_client_for("modeler").post("/api/v1/drift/run", {
        "detector": "model_disagreement", "deployment": deployment.name,
        "reference": {"kind": "batches", "batches": ["batch_92", "batch_93"]},
        "test": {"kind": "last_points", "n": 50, "batch_id": "batch_91"},
    }, format="json")
    assert nothing.status_code == 400 and "at least two model versions" in nothing.json()["error"]["message"]


@pytest.mark.django_db
def test_periodic_refresh_covers_recent_groups_only(deployment):
    from apps.drift.models import LabResidual

    key = SeriesKey(PROJECT, DEVICE, "batch_5", "soft_sensor", TARGET, deployment.soft_sensor.model_id.lower(), "1")
    t = to_ns(batch_start(0))
    points_ingest(batch=PointBatch(Collection.PREDICTIONS, [key], np.zeros(2, np.int32),
                                   np.array([t, t + 600_000_000_000]), np.array([1.0, 2.0])))
    lab = SeriesKey(PROJECT, DEVICE, "batch_5", "lab", TARGET)
    points_ingest(batch=PointBatch(Collection.RAW, [lab], np.zeros(1, np.int32), np.array([t + 60_000_000_000]),
                                   np.array([1.25])))
    stale = services.lab_ledgers_refresh_all(now=batch_start(0) + timedelta(days=30))
    assert stale[deployment.name]["groups"] == 0 and not LabResidual.objects.exists()
    fresh = services.lab_ledgers_refresh_all(now=batch_start(0) + timedelta(hours=1))
    assert fresh[deployment.name]["created"] == 1
    assert LabResidual.objects.get().residual == 0.25

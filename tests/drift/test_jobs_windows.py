"""Windows beyond the training batches: soft-sensor jobs, time ranges, project phases, model disagreement
on the predictions collection, and the periodic ledger refresh."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from apps.common.errors import ValidationFailed
from apps.drift import services
from apps.drift.models import ProjectDriftSettings
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, PointBatch, SeriesKey, to_ns

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


def write_predictions(batch: str, model: str, version: str, times_ns: np.ndarray, values: np.ndarray) -> None:
    key = SeriesKey(PROJECT, DEVICE, batch, "soft_sensor", TARGET, model, version)
    points_ingest(batch=PointBatch(Collection.PREDICTIONS, [key], np.zeros(times_ns.size, dtype=np.int32),
                                   times_ns.astype(np.int64), values.astype(float)))


@pytest.mark.django_db
def test_model_disagreement_reads_the_predictions_of_several_models(deployment, role_users, api_client_for):
    rng = np.random.default_rng(1)
    for i, batch in enumerate(("batch_1", "batch_2", "batch_3")):
        times = to_ns(batch_start(i)) + np.arange(200, dtype=np.int64) * 600_000_000_000
        truth = np.linspace(0, 10, 200) + rng.normal(scale=0.05, size=200)
        write_predictions(batch, "ridge", "1", times, truth + rng.normal(scale=0.05, size=200))
        other = truth + rng.normal(scale=0.05, size=200)
        if batch == "batch_3":
            other[100:] += 3.0  # the second model departs half-way through the test batch
        write_predictions(batch, "forest", "4", times, other)
    response = api_client_for("modeler").post("/api/v1/drift/run", {
        "detector": "model_disagreement", "deployment": deployment.name,
        "reference": {"kind": "batches", "batches": ["batch_1", "batch_2"]},
        "test": {"kind": "last_points", "n": 150, "batch_id": "batch_3"},
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["variables"] == ["forest@4", "ridge@1"]
    assert body["test_window"]["rows"] == 150 and body["verdict_rule"] == "calibrated"
    assert body["drift"] is True

    missing = api_client_for("modeler").post("/api/v1/drift/run", {
        "detector": "model_disagreement", "deployment": deployment.name, "variables": ["ridge@1", "gbm@1"],
        "reference": {"kind": "batches", "batches": ["batch_1", "batch_2"]},
        "test": {"kind": "last_points", "n": 50, "batch_id": "batch_3"},
    }, format="json")
    assert missing.status_code == 400 and "gbm@1" in missing.json()["error"]["message"]


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

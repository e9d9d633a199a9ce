"""Lab-sample scoring: alignment rules, the residual ledger (correct on a hand-built case, idempotent),
rolling metrics, the API, and the ledger as EDDM / HDDM-A's event stream."""
from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from apps.drift import lab_scoring, services
from apps.drift.models import LabResidual
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, Point, PointBatch, SeriesKey

from .conftest import DEVICE, MODEL_ID, PROJECT, T0, TARGET

TAG = MODEL_ID.lower()
MIN = 60_000_000_000  # one minute in ns


def minutes(m: float):
    return T0 + timedelta(minutes=m)


def write_predictions(batch: str, values: dict[float, float], *, version: str = "1") -> None:
    key = SeriesKey(PROJECT, DEVICE, batch, "soft_sensor", TARGET, TAG, version)
    points = [Point(key, minutes(m), v, {"validity": "ok"}) for m, v in values.items()]
    points_ingest(batch=PointBatch.from_points(Collection.PREDICTIONS, points))


def write_lab(batch: str, values: dict[float, float], *, name: str = f"offline_{TARGET}") -> None:
    key = SeriesKey(PROJECT, DEVICE, batch, "lab", name)
    points_ingest(batch=PointBatch.from_points(Collection.RAW, [Point(key, minutes(m), v) for m, v in values.items()]))


def ledger(deployment) -> list[tuple]:
    return list(LabResidual.objects.filter(deployment=deployment).order_by("batch_id", "lab_time").values_list(
        "batch_id", "lab_time", "prediction_time", "lab_value", "predicted_value", "residual", "version"))


# -- pure functions -----------------------------------------------------------------------------------

def test_align_nearest_within_tolerance_ties_to_the_earlier_prediction():
    pred_t = np.array([0, 10, 20, 30]) * MIN
    pred_v = np.array([0.0, 1.0, 2.0, 3.0])
    versions = np.array(["1"] * 4, dtype=object)
    lab_t = np.array([31, 14, 15, 45]) * MIN  # unsorted on purpose; 15 is half-way between 10 and 20
    matched = lab_scoring.align(lab_t, np.array([3.5, 1.2, 2.5, 9.0]), pred_t, pred_v, versions,
                                tolerance_ns=5 * MIN)
    assert matched.lab_times_ns.tolist() == [14 * MIN, 15 * MIN, 31 * MIN]  # 45 is 15 min from 30: dropped
    assert matched.prediction_times_ns.tolist() == [10 * MIN, 10 * MIN, 30 * MIN]
    assert np.allclose(matched.residuals, [0.2, 1.5, 0.5])


def test_merge_versions_prefers_the_higher_version_at_a_shared_time():
    t, v, ver = lab_scoring.merge_versions([
        ("1", np.array([0, 10, 20]), np.array([1.0, 2.0, 3.0])),
        ("10", np.array([10]), np.array([20.0])),
        ("2", np.array([10, 30]), np.array([9.0, 4.0])),
    ])
    assert t.tolist() == [0, 10, 20, 30]
    assert v.tolist() == [1.0, 20.0, 3.0, 4.0]  # "10" beats "2" numerically, not as text
    assert ver.tolist() == ["1", "10", "1", "2"]


def test_rolling_metrics_by_hand():
    rolling = lab_scoring.rolling_metrics(np.array([0.5, 1.0, -2.0]), 2)
    assert np.allclose(rolling["mae"], [0.5, 0.75, 1.5])
    assert np.allclose(rolling["rmse"], [0.5, math.sqrt((0.25 + 1) / 2), math.sqrt((1 + 4) / 2)])
    assert np.allclose(rolling["bias"], [0.5, 0.75, -0.5])
    assert rolling["n"].tolist() == [1, 2, 2]
    assert lab_scoring.summary(np.array([1.0, -3.0])) == {"n": 2, "mae": 2.0, "rmse": math.sqrt(5), "bias": -1.0}


# -- the ledger -----------------------------------------------------------------------------------------

@pytest.fixture
def hand_built(deployment):
    """Predictions every 10 min (value = minute / 10), version 2 overriding minute 50, four lab samples."""
    write_predictions("batch_1", {m: m / 10 for m in range(0, 101, 10)})
    write_predictions("batch_1", {50: 99.0}, version="2")
    write_lab("batch_1", {12: 1.5, 55: 100.0, 104: 9.0, 200: 7.0})
    return deployment


@pytest.mark.django_db
def test_ledger_on_a_hand_built_case_then_idempotent(hand_built):
    deployment = hand_built
    change = services.lab_ledger_refresh(deployment=deployment)
    assert change.as_dict() == {"groups": 1, "created": 3, "updated": 0, "deleted": 0, "unchanged": 0,
                                "lab_samples_unmatched": 1}
    assert ledger(deployment) == [
        ("batch_1", minutes(12), minutes(10), 1.5, 1.0, 0.5, "1"),
        ("batch_1", minutes(55), minutes(50), 100.0, 99.0, 1.0, "2"),  # tie 50/60 → 50, where version 2 wins
        ("batch_1", minutes(104), minutes(100), 9.0, 10.0, -1.0, "1"),
    ]  # minute 200 is 100 min from the last prediction: beyond the 15-min tolerance
    ids = list(LabResidual.objects.order_by("lab_time").values_list("pk", "computed_at"))

    again = services.lab_ledger_refresh(deployment=deployment)
    assert again.as_dict()["created"] == again.as_dict()["updated"] == again.as_dict()["deleted"] == 0
    assert again.unchanged == 3
    assert list(LabResidual.objects.order_by("lab_time").values_list("pk", "computed_at")) == ids

    write_lab("batch_1", {104: 8.0})  # the lab corrects a value: one row changes, in place
    changed = services.lab_ledger_refresh(deployment=deployment)
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 2)
    assert LabResidual.objects.get(lab_time=minutes(104)).residual == -2.0
    assert LabResidual.objects.get(lab_time=minutes(104)).pk == ids[2][0]

    services.lab_settings_update(deployment=deployment, data={"tolerance_seconds": 180})  # 3 min
    tighter = services.lab_ledger_refresh(deployment=deployment)
    assert (tighter.deleted, tighter.unchanged) == (2, 1)
    assert [row[1] for row in ledger(deployment)] == [minutes(12)]


@pytest.mark.django_db
def test_lab_series_without_offline_prefix_and_explicit_setting(deployment):
    """The CSV import stores offline_penicillin_concentration as penicillin_concentration (source lab)."""
    write_predictions("batch_2", {0: 1.0, 10: 2.0})
    write_lab("batch_2", {9: 2.5}, name=TARGET)
    write_lab("batch_2", {1: 50.0}, name="biomass_check")
    assert services.lab_ledger_refresh(deployment=deployment).created == 1
    assert ledger(deployment)[0][3:6] == (2.5, 2.0, 0.5)

    services.lab_settings_update(deployment=deployment, data={"lab_property": "biomass_check"})
    change = services.lab_ledger_refresh(deployment=deployment)
    assert (change.created, change.deleted) == (1, 1)
    assert ledger(deployment)[0][3:6] == (50.0, 1.0, 49.0)


@pytest.mark.django_db
def test_lab_api_residuals_metrics_refresh_and_roles(hand_built, api_client_for):
    deployment = hand_built
    operator, modeler = api_client_for("operator"), api_client_for("modeler")
    assert operator.post("/api/v1/drift/lab/refresh", {"deployment": deployment.name}, format="json").status_code == 403
    response = modeler.post("/api/v1/drift/lab/refresh", {"deployment": deployment.name, "batch_id": "batch_1"},
                            format="json")
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 3

    rows = operator.get("/api/v1/drift/lab/residuals", {"deployment": deployment.name}).json()
    assert rows["count"] == 3 and [r["residual"] for r in rows["results"]] == [0.5, 1.0, -1.0]
    assert rows["results"][1]["version"] == "2"

    metrics = operator.get("/api/v1/drift/lab/metrics", {"deployment": deployment.pk, "window": 2}).json()
    assert metrics["overall"]["n"] == 3
    assert metrics["overall"]["mae"] == pytest.approx(2.5 / 3)
    assert metrics["overall"]["bias"] == pytest.approx(0.5 / 3)
    rolling = metrics["groups"][0]["rolling"]
    assert [r["mae"] for r in rolling] == pytest.approx([0.5, 0.75, 1.0])
    assert [r["bias"] for r in rolling] == pytest.approx([0.5, 0.75, 0.0])

    assert operator.get("/api/v1/drift/lab/residuals").status_code == 400  # deployment is required
    bad = operator.get("/api/v1/drift/lab/residuals", {"deployment": "nope"})
    assert bad.status_code == 400 and "deployment" in bad.json()["error"]["message"]
    assert api_client_for("outsider").get("/api/v1/drift/lab/metrics", {"deployment": deployment.pk}).status_code == 403

    settings_update = modeler.post("/api/v1/drift/lab/settings/update",
                                   {"deployment": deployment.name, "tolerance_seconds": 0}, format="json")
    assert settings_update.status_code == 400 and "tolerance_seconds" in settings_update.json()["error"]["message"]
    ok = modeler.post("/api/v1/drift/lab/settings/update", {"deployment": deployment.name, "rolling_samples": 7},
                      format="json")
    assert ok.status_code == 200 and ok.json()["rolling_samples"] == 7
    assert operator.get("/api/v1/drift/lab/settings", {"deployment": deployment.name}).json()["rolling_samples"] == 7


@pytest.mark.django_db
def test_ledger_is_the_event_stream_of_hddm_a(deployment, role_users):
    """Reference batches with small residuals, a test batch whose residuals blow up → HDDM-A fires."""
    rng = np.random.default_rng(3)
    for batch, scale in (("batch_1", 0.1), ("batch_2", 0.1), ("batch_3", 0.1)):
        times = np.arange(0, 60 * 40, 60.0)  # one prediction per hour for 40 h
        write_predictions(batch, dict(zip(times, np.zeros(times.size), strict=True)))
        lab_times = times[1::1] + 1
        residuals = rng.normal(scale=scale, size=lab_times.size)
        if batch == "batch_3":
            residuals[15:] += 2.0  # the soft sensor goes wrong two-fifths of the way in
        write_lab(batch, dict(zip(lab_times, residuals, strict=True)))
    services.lab_ledger_refresh(deployment=deployment)
    assert LabResidual.objects.count() == 3 * 39
    job = services.drift_job_create(user=role_users["modeler"], name="hddm", deployment=deployment,
                                    detector="hddm_a", reference={"kind": "batches", "batches": ["batch_1", "batch_2"]},
                                    test={"kind": "last_points", "n": 39, "batch_id": "batch_3"})
    result = services.drift_job_run(job=job)
    assert result.status == "succeeded", result.error
    assert result.variables == ["lab_error_events"] and result.drift is True
    assert result.test_window["rows"] == 39 and result.test_window["sigma"] > 0
    assert result.detection_index is not None and result.detection_index >= 15

    # a soft sensor job has no ledger: events detectors need a deployment
    from apps.common.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="detector"):
        services.drift_job_create(user=None, name="hddm-ss", soft_sensor=deployment.soft_sensor,
                                  detector="hddm_a", reference={"kind": "training"},
                                  test={"kind": "last_points", "n": 10})


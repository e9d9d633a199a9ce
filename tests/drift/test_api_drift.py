"""The drift REST API: catalogue, ad hoc runs, jobs, results, alerts; bad input and the role matrix."""
from __future__ import annotations

import numpy as np
import pytest
from stamm_drift import registry

from apps.drift.models import Alert, DriftJob, DriftResult
from tests.conftest import CALLERS

API = "/api/v1/drift"
#: Expected status per caller: anonymous 401, outsider (no role) 403, then operator, modeler, manager, admin.
READ = {"anonymous": 401, "outsider": 403, "operator": 200, "modeler": 200, "manager": 200, "admin": 200}
RUN = {"anonymous": 401, "outsider": 403, "operator": 403, "modeler": 201, "manager": 403, "admin": 201}
ACK = {"anonymous": 401, "outsider": 403, "operator": 200, "modeler": 200, "manager": 200, "admin": 200}


def inline(seed: int = 0, shift: float = 0.0, n: int = 200) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)).tolist(), (rng.normal(size=(n, 2)) + shift).tolist()


def run_body(**changes):
    ref, test = inline(shift=2.0)
    body = {"detector": "psi", "params": {"bins": 8}, "variables": ["a", "b"],
            "reference": {"kind": "values", "rows": ref}, "test": {"kind": "values", "rows": test}}
    body.update(changes)
    return body


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_catalogue_role_matrix(api_client_for, caller):
    response = api_client_for(caller).get(f"{API}/detectors")
    assert response.status_code == READ[caller]


@pytest.mark.django_db
def test_catalogue_lists_every_detector_with_a_parameter_schema(api_client_for):
    body = api_client_for("operator").get(f"{API}/detectors").json()
    assert {d["key"] for d in body} == set(registry())
    psi = next(d for d in body if d["key"] == "psi")
    assert psi["kind"] == "univariate" and psi["mode"] == "batch"
    assert {p["name"]: p["default"] for p in psi["parameters"]} == {"threshold": 0.1, "bins": 10, "epsilon": 1e-4}
    assert psi["schema"]["properties"]["bins"]["minimum"] == 2
    assert psi["schema"]["additionalProperties"] is False
    for entry in body:
        assert entry["description"] and entry["references"] and entry["schema"]["type"] == "object"

    one = api_client_for("operator").get(f"{API}/detectors/mmd")
    assert one.status_code == 200 and one.json()["kind"] == "multivariate"
    missing = api_client_for("operator").get(f"{API}/detectors/cusum")
    assert missing.status_code == 404 and "cusum" in missing.json()["error"]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_ad_hoc_run_role_matrix(api_client_for, caller):
    response = api_client_for(caller).post(f"{API}/run", run_body(), format="json")
    assert response.status_code == RUN[caller], response.content


@pytest.mark.django_db
def test_ad_hoc_run_on_inline_values(api_client_for, role_users):
    client = api_client_for("modeler")
    response = client.post(f"{API}/run", run_body(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["stored"] is True and body["job"] is None and body["trigger"] == "ad_hoc"
    assert body["drift"] is True and body["variables"] == ["a", "b"]
    assert body["verdict_rule"] == "nominal"  # inline values are one reference segment
    assert body["params"] == {"threshold": 0.1, "bins": 8, "epsilon": 1e-4}
    assert "a (mean" in body["explanation"] or "b (mean" in body["explanation"]
    stored = DriftResult.objects.get(pk=body["id"])
    assert stored.created_by == role_users["modeler"]

    quiet = client.post(f"{API}/run", run_body(test={"kind": "values", "rows": inline(seed=0)[0]}, store=False),
                        format="json")
    assert quiet.status_code == 200 and quiet.json()["stored"] is False and quiet.json()["id"] is None
    assert quiet.json()["drift"] is False
    assert DriftResult.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"params": {"bins": 1}}, "bins"),
        ({"params": {"bins": "ten"}}, "bins"),
        ({"params": {"threshold": -0.5}}, "threshold"),
        ({"params": {"window": 3}}, "window"),
        ({"detector": "mmd", "params": {"gamma": "mean"}}, "gamma"),
        ({"detector": "model_disagreement", "params": {"metric": "cosine"}}, "metric"),
    ],
)
def test_bad_parameter_is_400_naming_it(api_client_for, changes, named):
    response = api_client_for("modeler").post(f"{API}/run", run_body(**changes), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["message"].startswith(f"params.{named}:")
    assert named in error["details"]["params"]
    assert not DriftResult.objects.exists()


@pytest.mark.django_db
def test_unknown_detector_is_400_naming_it(api_client_for):
    response = api_client_for("modeler").post(f"{API}/run", run_body(detector="cusum"), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_detector" and "cusum" in error["message"] and "detector" in error["details"]


@pytest.mark.django_db
def test_bad_windows_are_400_naming_the_field(api_client_for, deployment):
    client = api_client_for("modeler")
    cases = [
        ({"reference": {"kind": "values", "rows": [[1, "x"]]}}, "reference.rows"),
        ({"test": {"kind": "values", "rows": [[1.0, None]]}}, "test.rows"),
        ({"test": {"kind": "phase", "phase": "log"}}, "reference.kind"),  # inline reference, stored test
        ({"reference": {"kind": "training"}, "test": {"kind": "phase", "phase": "log"}}, "deployment"),
        ({"deployment": "nope", "reference": {"kind": "training"}, "test": {"kind": "phase", "phase": "log"}},
         "deployment"),
        ({"deployment": deployment.name, "reference": {"kind": "training"},
          "test": {"kind": "phase", "phase": "growth"}}, "test.phase"),
        ({"deployment": deployment.name, "reference": {"kind": "training"},
          "test": {"kind": "last_points", "n": 1}}, "test.n"),
        ({"calibration": {"quantile": 2}}, "calibration.quantile"),
        ({"verdict_rule": "strict"}, "verdict_rule"),
    ]
    for changes, named in cases:
        response = client.post(f"{API}/run", run_body(**changes), format="json")
        assert response.status_code == 400, (named, response.content)
        assert named in response.json()["error"]["message"], (named, response.json())


@pytest.mark.django_db
def test_no_data_in_the_store_is_400_no_data(api_client_for, deployment):
    response = api_client_for("modeler").post(f"{API}/run", run_body(
        deployment=deployment.name, params={}, variables=[], reference={"kind": "training"},
        test={"kind": "phase", "phase": "log"}), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_data" and "batch_92" in response.json()["error"]["message"]


def job_body(deployment, **changes):
    body = {"name": "psi-log", "deployment": deployment.name, "detector": "psi",
            "reference": {"kind": "training"}, "test": {"kind": "phase", "phase": "log", "batch_id": 91}}
    body.update(changes)
    return body


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_jobs_role_matrix(api_client_for, deployment, caller):
    client = api_client_for(caller)
    created = client.post(f"{API}/jobs/create", job_body(deployment), format="json")
    assert created.status_code == RUN[caller], created.content
    job = DriftJob.objects.first() or DriftJob.objects.create(
        name="other", deployment=deployment, detector="psi", reference={"kind": "training"},
        test={"kind": "phase", "phase": "log"})
    assert client.get(f"{API}/jobs").status_code == READ[caller]
    assert client.get(f"{API}/jobs/{job.pk}").status_code == READ[caller]
    assert client.get(f"{API}/results").status_code == READ[caller]
    assert client.get(f"{API}/alerts").status_code == READ[caller]
    update = client.patch(f"{API}/jobs/{job.pk}/update", {"description": "x"}, format="json")
    assert update.status_code == {201: 200}.get(RUN[caller], RUN[caller])
    delete = client.post(f"{API}/jobs/{job.pk}/delete")
    assert delete.status_code == {201: 204}.get(RUN[caller], RUN[caller])


@pytest.mark.django_db
def test_job_crud(api_client_for, deployment):
    client = api_client_for("modeler")
    response = client.post(f"{API}/jobs/create", job_body(deployment, schedule_seconds=300), format="json")
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["params"] == {"threshold": 0.1, "bins": 10, "epsilon": 1e-4}  # defaults filled in and stored
    assert job["test"] == {"kind": "phase", "phase": "log", "batch_id": "batch_91"}
    assert job["model_id"] == deployment.soft_sensor.model_id and job["schedule_seconds"] == 300

    bad = client.patch(f"{API}/jobs/{job['id']}/update", {"params": {"bins": 0}}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("params.bins")
    dup = client.post(f"{API}/jobs/create", job_body(deployment), format="json")
    assert dup.status_code == 400 and "name" in dup.json()["error"]["message"]
    unknown = client.post(f"{API}/jobs/create", job_body(deployment, name="x", detector="cusum"), format="json")
    assert unknown.status_code == 400 and "cusum" in unknown.json()["error"]["message"]

    changed = client.patch(f"{API}/jobs/{job['id']}/update", {"detector": "ks", "params": {"alpha": 0.01}},
                           format="json")
    assert changed.status_code == 200 and changed.json()["params"] == {"alpha": 0.01}
    listed = client.get(f"{API}/jobs", {"deployment": deployment.name, "detector": "ks"}).json()
    assert [j["name"] for j in listed["results"]] == ["psi-log"]
    assert client.get(f"{API}/jobs", {"detector": "psi"}).json()["count"] == 0
    assert client.post(f"{API}/jobs/{job['id']}/delete").status_code == 204
    assert client.get(f"{API}/jobs/{job['id']}").status_code == 404


@pytest.mark.django_db
def test_job_run_results_alerts_and_acknowledge_over_http(api_client_for, deployment, store_batches):
    modeler = api_client_for("modeler")
    job = modeler.post(f"{API}/jobs/create", job_body(deployment), format="json").json()
    run = modeler.post(f"{API}/jobs/{job['id']}/run")
    assert run.status_code == 201, run.content
    result = run.json()
    assert result["drift"] is True and result["job"] == job["id"] and result["trigger"] == "manual"
    assert result["details"]["calibration"]["rule"]["margin"] == 0.5

    assert modeler.get(f"{API}/results", {"job": job["id"], "drift": "true"}).json()["count"] == 1
    assert modeler.get(f"{API}/results", {"drift": "false"}).json()["count"] == 0
    assert modeler.get(f"{API}/results/{result['id']}").json()["test_window"]["segments"][0]["batch_id"] == "batch_91"

    alerts = api_client_for("manager").get(f"{API}/alerts", {"state": "open"}).json()
    assert alerts["count"] == 1
    alert = alerts["results"][0]
    assert alert["job_name"] == "psi-log" and alert["open"] is True and alert["result"] == result["id"]

    assert api_client_for("outsider").post(f"{API}/alerts/{alert['id']}/acknowledge").status_code == 403
    ack = api_client_for("operator").post(f"{API}/alerts/{alert['id']}/acknowledge", {"note": "checked"},
                                          format="json")
    assert ack.status_code == 200, ack.content
    assert ack.json()["acknowledged_by"] == "test-operator" and ack.json()["open"] is False
    again = api_client_for("operator").post(f"{API}/alerts/{alert['id']}/acknowledge")
    assert again.status_code == 409
    assert modeler.get(f"{API}/alerts", {"state": "open"}).json()["count"] == 0
    assert api_client_for("operator").post(f"{API}/alerts/999/acknowledge").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_acknowledge_role_matrix(api_client_for, deployment, caller):
    job = DriftJob.objects.create(name="j", deployment=deployment, detector="psi", reference={"kind": "training"},
                                  test={"kind": "phase", "phase": "log"})
    result = DriftResult.objects.create(job=job, trigger="manual", detector="psi", drift=True, score=3.0,
                                        threshold=1.0)
    alert = Alert.objects.create(job=job, result=result, last_result=result, severity="critical", message="drift")
    response = api_client_for(caller).post(f"{API}/alerts/{alert.pk}/acknowledge")
    assert response.status_code == ACK[caller]


@pytest.mark.django_db
def test_schema_generates(api_client_for):
    """drf-spectacular builds the OpenAPI document with every drift operation."""
    response = api_client_for("modeler").get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    operations = {op["operationId"] for path in response.json()["paths"].values() for op in path.values()
                  if isinstance(op, dict) and "operationId" in op}
    assert {"drift_detector_list", "drift_run", "drift_job_create", "drift_result_list", "drift_alert_acknowledge",
            "drift_lab_metrics"} <= operations

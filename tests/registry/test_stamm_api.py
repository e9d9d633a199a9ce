"""The upstream STAMM endpoints under /stamm/, against the exact upstream shapes (contracts §3)."""

from __future__ import annotations

from urllib.parse import quote

import numpy as np
import pytest

from apps.registry.models import DescriptorRevision, ModelVersion
from tests.conftest import CALLERS as CALLERS_ALL

from .conftest import FEATURES, PROJECT_INFO, reference_predict

pytestmark = pytest.mark.django_db
RF = "0001_[python]_penicillin_RF"
DT = "0002_[python]_penicillin_DT"


@pytest.fixture
def models(register, role_users):
    from apps.registry.services import model_version_set_status

    rf, rf_fit = register("rf", model_id=RF)
    dt, dt_fit = register("dt", model_id=DT)
    model_version_set_status(version=dt, status="offline", description="under review", user=role_users["modeler"])
    return {RF: (rf, rf_fit), DT: (dt, dt_fit)}


def test_list_projects_shape(models, api_client_for):
    body = api_client_for("operator").get("/stamm/list_projects/").json()
    assert body == [
        {
            "project_ID": "P0001",
            "name": "penicillin",
            "description": PROJECT_INFO["description"],
            "coordinator": "C. Oordinator",
            "start_date": "01/01/2024",
            "end_date": "31/12/2025",
        }
    ]


def test_project_info_variables_references(models, api_client_for):
    client = api_client_for("operator")
    info = client.get("/stamm/P0001/project_info/").json()
    assert info["project_ID"] == "P0001" and info["project_name"] == "penicillin"
    assert info["db_config"] == PROJECT_INFO["db_config"]
    variables = client.get("/stamm/P0001/variables/").json()
    assert [v["name"] for v in variables] == [v["name"] for v in PROJECT_INFO["variables"]]
    assert {
        k: variables[1][k] for k in ("name", "column_type", "units", "renamed_variable", "description")
    } == PROJECT_INFO["variables"][1]
    assert client.get("/stamm/P0001/references").json() == PROJECT_INFO["references"]


def test_list_models_all_and_models_full_online_only(models, api_client_for):
    client = api_client_for("operator")
    listing = client.get("/stamm/P0001/list_models/").json()
    assert sorted(item["model_ID"] for item in listing) == [RF, DT]
    for item in listing:
        assert set(item) == {"model_ID", "model_name", "metadata"}
        assert item["metadata"]["ID"] == item["model_ID"]
    statuses = {item["model_ID"]: item["metadata"]["status"] for item in listing}
    assert statuses == {RF: "online", DT: "offline"}
    full = client.get("/stamm/P0001/models_full/").json()
    assert [set(item) for item in full] == [{"ml_model_configuration"}]
    assert full[0]["ml_model_configuration"]["model_identification"]["ID"] == RF


def test_metadata_returns_the_configuration_object(models, api_client_for):
    body = api_client_for("operator").get(f"/stamm/P0001/metadata/{quote(RF)}").json()
    assert set(body) == {"model_identification", "model_description", "training_information", "inputs", "outputs"}
    assert body["inputs"]["features"][0]["name"] == FEATURES[0]


def test_predict_shape_and_input_order(models, api_client_for, test_frame):
    client = api_client_for("operator")
    row = test_frame[FEATURES].iloc[7]
    forward = {"req": {"input_data": {name: float(row[name]) for name in FEATURES}}}
    backward = {"req": {"input_data": {name: float(row[name]) for name in reversed(FEATURES)}}}
    first = client.post(f"/stamm/P0001/predict/{quote(RF)}", forward, format="json")
    second = client.post(f"/stamm/P0001/predict/{quote(RF)}", backward, format="json")
    assert first.status_code == 200, first.content
    body = first.json()
    assert set(body) == {"output_model"} and len(body["output_model"]) == 1
    assert set(body["output_model"][0]) == {"metadata", "prediction"}
    assert body["output_model"][0]["metadata"] == models[RF][0].descriptor["outputs"]
    expected = reference_predict(models[RF][1], row.to_numpy(dtype=float).reshape(1, -1))
    np.testing.assert_allclose(body["output_model"][0]["prediction"], expected)
    assert second.json() == body


def test_predict_errors(models, api_client_for):
    client = api_client_for("operator")
    bad = client.post(f"/stamm/P0001/predict/{quote(RF)}", {"input_data": {}}, format="json")
    assert bad.status_code == 400 and "req.input_data" in bad.json()["error"]["message"]
    missing = client.post(
        f"/stamm/P0001/predict/{quote(RF)}", {"req": {"input_data": {"temperature": 298}}}, format="json"
    )
    assert (
        missing.status_code == 400
        and "req.input_data: missing input(s) sugar_feed_rate" in missing.json()["error"]["message"]
    )
    offline = client.post(
        f"/stamm/P0001/predict/{quote(DT)}", {"req": {"input_data": {f: 1.0 for f in FEATURES}}}, format="json"
    )
    assert offline.status_code == 409
    assert client.get("/stamm/P0001/metadata/0099_[python]_none").status_code == 404


def test_update_deep_merges_and_keeps_history(models, api_client_for):
    client = api_client_for("modeler")
    patch = {"model_identification": {"doi": "10.1234/x"}, "training_information": {"validation": "5-fold CV"}}
    response = client.put(f"/stamm/P0001/update/{quote(RF)}", patch, format="json")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    config = ModelVersion.objects.get(soft_sensor__model_id=RF).descriptor
    assert config["model_identification"]["doi"] == "10.1234/x"
    assert config["model_identification"]["name"] == "Random Forest"
    assert config["training_information"]["validation"] == "5-fold CV"
    assert config["training_information"]["experiments_ID"] == [92, 93]
    revision = DescriptorRevision.objects.get(source="stamm-update")
    assert revision.patch == patch and revision.before["model_identification"]["doi"] == ""
    # status through update: offline works, like upstream
    client.put(f"/stamm/P0001/update/{quote(RF)}", {"model_identification": {"status": "offline"}}, format="json")
    assert ModelVersion.objects.get(soft_sensor__model_id=RF).status == "offline"


@pytest.mark.parametrize("caller", CALLERS_ALL)
def test_legacy_role_matrix(models, api_client_for, caller):
    client = api_client_for(caller)
    read = client.get("/stamm/list_projects/").status_code
    predict = client.post(
        f"/stamm/P0001/predict/{quote(RF)}", {"req": {"input_data": {f: 1.0 for f in FEATURES}}}, format="json"
    ).status_code
    update = client.put(
        f"/stamm/P0001/update/{quote(RF)}", {"model_identification": {"doi": "x"}}, format="json"
    ).status_code
    expected = {
        "anonymous": (401, 401, 401),
        "outsider": (403, 403, 403),
        "operator": (200, 200, 403),
        "modeler": (200, 200, 200),
        "manager": (200, 403, 403),
        "admin": (200, 200, 200),
    }[caller]
    assert (read, predict, update) == expected

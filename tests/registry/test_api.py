"""The /api/v1/registry/ endpoints: role matrix, upload, zip import, aliases, status, predict."""

from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import quote

import pytest

from apps.registry.models import AliasMove, DescriptorRevision, ModelVersion, VersionStatus
from tests.conftest import CALLERS as CALLERS_ALL

from .conftest import FEATURES, descriptor, dump, reference_predict, to_yaml, train, write_project

pytestmark = pytest.mark.django_db
BASE = "/api/v1/registry"
MID = "0001_[python]_penicillin_RF"
SS = f"{BASE}/projects/P0001/soft-sensors/{quote(MID)}"


def upload(client, tmp_path, training_frame, *, kind="rf", fmt=".skops", model_id=MID, **extra):
    fitted = train(kind, training_frame)
    name = f"{model_id}{fmt}"
    path = dump(fitted["model"], tmp_path / "up" / name)
    document = descriptor(model_id, model_file=name, frame=training_frame)
    with path.open("rb") as handle:
        data = {"descriptor": io.BytesIO(to_yaml(document).encode()), "model_file": handle, **extra}
        data["descriptor"].name = f"{model_id}.yaml"
        response = client.post(f"{BASE}/projects/P0001/versions/upload/", data, format="multipart")
    return response, fitted


# ------------------------------------------------------------------------------------------ role matrix

READS = [
    ("get", f"{BASE}/projects/"),
    ("get", f"{BASE}/projects/P0001/"),
    ("get", f"{BASE}/projects/P0001/variables/"),
    ("get", f"{BASE}/projects/P0001/soft-sensors/"),
    ("get", f"{SS}/"),
    ("get", f"{SS}/aliases/"),
    ("get", f"{SS}/versions/1/"),
]
EXPECT_READ = {"anonymous": 401, "outsider": 403, "operator": 200, "modeler": 200, "manager": 200, "admin": 200}
EXPECT_PREDICT = {"anonymous": 401, "outsider": 403, "operator": 200, "modeler": 200, "manager": 403, "admin": 200}
EXPECT_WRITE = {"anonymous": 401, "outsider": 403, "operator": 403, "modeler": 200, "manager": 403, "admin": 200}


@pytest.fixture
def online(register):
    version, fitted = register("rf")
    return version, fitted


@pytest.mark.parametrize("caller", CALLERS_ALL)
def test_role_matrix_reads(online, api_client_for, caller):
    client = api_client_for(caller)
    for method, url in READS:
        response = getattr(client, method)(url)
        assert response.status_code == EXPECT_READ[caller], (url, response.content[:200])


@pytest.mark.parametrize("caller", CALLERS_ALL)
def test_role_matrix_predict(online, api_client_for, test_frame, caller):
    body = {"inputs": {f: test_frame[f].head(2).tolist() for f in FEATURES}}
    response = api_client_for(caller).post(f"{SS}/versions/1/predict/", body, format="json")
    assert response.status_code == EXPECT_PREDICT[caller]


@pytest.mark.parametrize("caller", CALLERS_ALL)
def test_role_matrix_writes(online, api_client_for, tmp_path, training_frame, caller):
    client = api_client_for(caller)
    status = client.post(f"{SS}/versions/1/status/", {"status": "offline"}, format="json").status_code
    alias = client.post(f"{SS}/aliases/staging/move/", {"version": 1, "reason": "try"}, format="json").status_code
    update = client.put(
        f"{SS}/versions/1/descriptor/", {"model_identification": {"author": "X"}}, format="json"
    ).status_code
    uploaded, _ = upload(client, tmp_path, training_frame, kind="dt", model_id="0002_[python]_penicillin_DT")
    expected = EXPECT_WRITE[caller]
    assert (status, alias, update) == (expected, expected, expected)
    assert uploaded.status_code == (201 if expected == 200 else expected)


# ---------------------------------------------------------------------------------------------- upload


def test_upload_descriptor_and_skops_artefact(project, api_client_for, tmp_path, training_frame, test_frame):
    client = api_client_for("modeler")
    response, fitted = upload(
        client,
        tmp_path,
        training_frame,
        alias="production",
        reason="first model",
        training_data=json.dumps({"batches": [92, 93]}),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == 1 and body["flavor"] == "sklearn-skops" and body["status"] == "online"
    assert body["aliases"] == ["production"] and body["training_data"] == {"batches": [92, 93]}
    assert body["artifacts"][0]["trusted_by"] == "test-modeler"
    assert body["descriptor"]["model_identification"]["ID"] == MID
    rows = test_frame.head(50)
    predicted = client.post(
        f"{SS}/aliases/production/predict/", {"inputs": {f: rows[f].tolist() for f in FEATURES}}, format="json"
    )
    assert predicted.status_code == 200
    out = predicted.json()
    assert out["version"] == 1 and out["alias"] == "production" and out["soft_sensor"] == MID
    assert out["predictions"] == pytest.approx(reference_predict(fitted, rows[FEATURES].to_numpy()).tolist())
    assert "app;dur=" in predicted["Server-Timing"]


def test_bad_descriptor_upload_is_a_400_naming_the_path(project, api_client_for):
    document = descriptor()
    document["ml_model_configuration"]["inputs"]["features"][3]["expected_range"] = {"min": "cold", "max": 3}
    response = api_client_for("modeler").post(
        f"{BASE}/projects/P0001/versions/upload/",
        {"descriptor": to_yaml(document), "model_file": io.BytesIO(b"x")},
        format="multipart",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("descriptor: inputs.features[3].expected_range.min: must be a number")
    assert "inputs.features[3].expected_range.min: must be a number" in error["details"]["descriptor"]
    assert not ModelVersion.objects.exists()


def test_upload_without_model_file_names_it(project, api_client_for):
    response = api_client_for("modeler").post(
        f"{BASE}/projects/P0001/versions/upload/", {"descriptor": to_yaml(descriptor())}, format="multipart"
    )
    assert response.status_code == 400
    assert "missing artefact" in response.json()["error"]["message"]


def test_zip_upload_of_a_project_folder(db, role_users, api_client_for, tmp_path, training_frame):
    fitted = train("dt", training_frame)
    root = write_project(
        tmp_path / "P0001",
        [
            (descriptor(MID, model_file=f"{MID}.pkl", frame=training_frame), {f"{MID}.pkl": fitted["model"]}),
        ],
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in root.rglob("*"):
            if path.is_file():
                archive.write(path, f"P0001/{path.relative_to(root)}")
    buffer.seek(0)
    buffer.name = "P0001.zip"
    response = api_client_for("modeler").post(f"{BASE}/projects/import/", {"bundle": buffer}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["models"][0]["status"] == "imported"
    assert ModelVersion.objects.get().status == VersionStatus.ONLINE


def test_zip_with_a_failing_model_imports_nothing(db, role_users, api_client_for, tmp_path, training_frame):
    fitted = train("dt", training_frame)
    root = write_project(
        tmp_path / "P0001",
        [
            (descriptor(MID, model_file=f"{MID}.pkl"), {f"{MID}.pkl": fitted["model"]}),
            (descriptor("0002_[python]_lost", model_file="lost.pkl"), {}),
        ],
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in root.rglob("*"):
            if path.is_file():
                archive.write(path, str(path.relative_to(root)))
    buffer.seek(0)
    response = api_client_for("admin").post(f"{BASE}/projects/import/", {"bundle": buffer}, format="multipart")
    assert response.status_code == 400
    assert "missing artefact: models/lost.pkl not found" in response.json()["error"]["message"]
    assert not ModelVersion.objects.exists()


def test_zip_slip_is_refused(db, role_users, api_client_for):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil.yaml", "x")
    buffer.seek(0)
    response = api_client_for("modeler").post(f"{BASE}/projects/import/", {"bundle": buffer}, format="multipart")
    assert response.status_code == 400 and "unsafe path" in response.json()["error"]["message"]


# --------------------------------------------------------------------------------------- predict bodies


def test_all_body_shapes_give_the_same_answer(online, api_client_for, test_frame):
    client = api_client_for("operator")
    rows = test_frame.head(7)
    records = rows[FEATURES + ["time"]].to_dict("records")
    bodies = [
        {"inputs": {f: rows[f].tolist() for f in reversed(FEATURES)}},
        {"instances": records},
        {"dataframe_records": records},
        {"dataframe_split": {"columns": ["time", *FEATURES], "data": rows[["time", *FEATURES]].to_numpy().tolist()}},
    ]
    answers = [client.post(f"{SS}/versions/1/predict/", body, format="json").json() for body in bodies]
    assert all(a["predictions"] == answers[0]["predictions"] for a in answers)
    assert answers[1]["ignored_inputs"] == ["time"] and answers[0]["ignored_inputs"] == []
    assert answers[0]["validity"][0]["verdict"] in ("ok", "out_of_range")
    assert ModelVersion.objects.get().first_predicted_at is not None


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"rows": []}, "expected exactly one of"),
        ({"inputs": {"temperature": [1]}}, "missing input(s)"),
        ({"instances": [{**{f: 1 for f in FEATURES}, "pH": "x"}]}, "instances.pH[0]: must be a number"),
    ],
)
def test_bad_predict_bodies_are_400(online, api_client_for, body, fragment):
    response = api_client_for("operator").post(f"{SS}/versions/1/predict/", body, format="json")
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_predict_unknown_alias_is_404_and_offline_is_409(online, api_client_for, role_users):
    from apps.registry.services import model_version_set_status

    client = api_client_for("operator")
    body = {"inputs": {f: [1.0] for f in FEATURES}}
    assert client.post(f"{SS}/aliases/production/predict/", body, format="json").status_code == 404
    model_version_set_status(version=online[0], status="offline", user=role_users["modeler"])
    response = client.post(f"{SS}/versions/1/predict/", body, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "offline"


# ----------------------------------------------------------------------------- aliases, status, updates


def test_alias_moves_are_recorded(online, register, api_client_for):
    client = api_client_for("modeler")
    register("dt")
    assert (
        client.post(f"{SS}/aliases/production/move/", {"version": 1, "reason": "first"}, format="json").status_code
        == 200
    )
    assert (
        client.post(
            f"{SS}/aliases/production/move/", {"version": 2, "reason": "better RMSE"}, format="json"
        ).status_code
        == 200
    )
    missing_reason = client.post(f"{SS}/aliases/production/move/", {"version": 1}, format="json")
    assert missing_reason.status_code == 400
    listing = client.get(f"{SS}/aliases/").json()
    assert listing["aliases"] == [
        {"name": "production", "version": 2, "updated_at": listing["aliases"][0]["updated_at"]}
    ]
    assert [(m["from_version"], m["to_version"], m["reason"], m["moved_by"]) for m in listing["history"]] == [
        (1, 2, "better RMSE", "test-modeler"),
        (None, 1, "first", "test-modeler"),
    ]
    assert client.post(f"{SS}/aliases/production/delete/", {"reason": "retired"}, format="json").status_code == 204
    assert AliasMove.objects.count() == 3


def test_status_and_descriptor_update_with_history(online, api_client_for):
    client = api_client_for("modeler")
    response = client.post(
        f"{SS}/versions/1/status/", {"status": "offline", "description": "maintenance"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["descriptor"]["model_identification"]["status"] == "offline"
    response = client.put(
        f"{SS}/versions/1/descriptor/",
        {
            "model_identification": {"author": "B. Other"},
            "inputs": {"features": online[0].descriptor["inputs"]["features"]},
        },
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["descriptor"]["model_identification"]["author"] == "B. Other"
    assert response.json()["status"] == "offline"
    revisions = DescriptorRevision.objects.order_by("number")
    assert [r.source for r in revisions] == ["api", "api"]
    assert revisions[1].before["model_identification"]["author"] == "A. Modeler"


def test_update_that_changes_the_computation_is_refused(online, api_client_for):
    features = list(reversed(online[0].descriptor["inputs"]["features"]))
    response = api_client_for("modeler").put(
        f"{SS}/versions/1/descriptor/", {"inputs": {"features": features}}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"immutable": ["features"]}


def test_update_with_invalid_value_names_path(online, api_client_for):
    response = api_client_for("modeler").put(
        f"{SS}/versions/1/descriptor/", {"training_information": {"experiments_ID": "92, abc"}}, format="json"
    )
    assert response.status_code == 400
    assert "training_information.experiments_ID[1]: must be an integer" in response.json()["error"]["message"]


def test_delete_erases_unused_and_archives_used(online, register, api_client_for, test_frame):
    client = api_client_for("modeler")
    register("dt")
    assert client.delete(f"{SS}/versions/2/delete/").json() == {"outcome": "deleted"}
    client.post(f"{SS}/versions/1/predict/", {"inputs": {f: [1.0] for f in FEATURES}}, format="json")
    assert client.delete(f"{SS}/versions/1/delete/").json() == {"outcome": "archived"}
    version = ModelVersion.objects.get()
    assert version.archived_at is not None and version.status == VersionStatus.OFFLINE


def test_downloads(online, api_client_for):
    client = api_client_for("operator")
    yaml_text = client.get(f"{SS}/versions/1/download/descriptor/")
    assert yaml_text.status_code == 200 and b"ml_model_configuration:" in yaml_text.content
    artefact = client.get(f"{SS}/versions/1/download/model/")
    assert artefact.status_code == 200 and len(artefact.content) == online[0].artifacts.get(role="model").size
    bundle = client.get(f"{SS}/versions/1/download/bundle/")
    names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    assert sorted(names) == [
        "P0001/configs/0001_[python]_penicillin_RF.yaml",
        "P0001/models/0001_[python]_penicillin_RF.pkl",
        "P0001/project_info.yaml",
    ]
    assert client.get(f"{SS}/versions/1/download/input_scaler/").status_code == 404


def test_variables_endpoints(project, api_client_for):
    listing = api_client_for("operator").get(f"{BASE}/projects/P0001/variables/").json()
    assert listing[1] == {
        "raw_name": "Temperature(T:K)",
        "canonical_name": "temperature",
        "column_type": "Sensor",
        "units": "K",
        "description": "Temperature.",
        "display_decimals": 2,
    }
    bad = api_client_for("modeler").put(
        f"{BASE}/projects/P0001/variables/replace/",
        {"variables": [{"name": "x", "column_type": "Nope"}]},
        format="json",
    )
    assert bad.status_code == 400 and "variables[0].column_type" in bad.json()["error"]["message"]


def test_service_account_with_only_the_predict_capability(online, django_user_model, test_frame):
    from django.contrib.auth.models import Permission
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    robot = django_user_model.objects.create_user("orchestrator-robot", password="not-used-really-123")
    robot.user_permissions.add(Permission.objects.get(content_type__app_label="accounts", codename="predict"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=robot).key}")
    body = {"inputs": {f: test_frame[f].head(3).tolist() for f in FEATURES}}
    assert client.post(f"{SS}/versions/1/predict/", body, format="json").status_code == 200
    robot.is_active = False
    robot.save()
    assert client.post(f"{SS}/versions/1/predict/", body, format="json").status_code in (401, 403)
    assert client.get(f"{BASE}/projects/").status_code in (401, 403)

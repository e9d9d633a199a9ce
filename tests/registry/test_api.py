"""The /api/v1/registry/ endpoints: role matrix, upload, zip import, aliases, status, predict."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

from apps.registry.models import AliasMove, DescriptorRevision, ModelVersion, Project, VersionStatus
from tests.conftest import CALLERS as CALLERS_ALL
from tests.conftest import issue_token

from .conftest import FEATURES, descriptor, dump, reference_predict, to_yaml, train, write_project, zip_folder

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
        alias="staging",
        reason="first model",
        training_data=json.dumps({"batches": [92, 93]}),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == 1 and body["flavor"] == "sklearn-skops" and body["status"] == "online"
    assert body["aliases"] == ["staging"] and body["training_data"] == {"batches": [92, 93]}
    assert len(body["sha256"]) == 64  # what a signature on this version binds to
    assert body["artifacts"][0]["trusted_by"] == "test-modeler"
    assert body["descriptor"]["model_identification"]["ID"] == MID
    rows = test_frame.head(50)
    predicted = client.post(
        f"{SS}/aliases/staging/predict/", {"inputs": {f: rows[f].tolist() for f in FEATURES}}, format="json"
    )
    assert predicted.status_code == 200
    out = predicted.json()
    assert out["version"] == 1 and out["alias"] == "staging" and out["soft_sensor"] == MID
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
    # STAMM's own pickles import, offline until an administrator approves them (loading runs their code).
    version = ModelVersion.objects.get()
    assert version.status == VersionStatus.OFFLINE
    assert "awaiting an administrator's approval" in version.status_description
    sha256 = version.artifacts.get(role="model").sha256
    assert api_client_for("modeler").post(f"{SS}/versions/1/approve-pickle/", {"sha256": sha256}).status_code == 403
    approved = api_client_for("admin").post(f"{SS}/versions/1/approve-pickle/", {"sha256": sha256}, format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "online" and approved.json()["pickle"]["state"] == "approved"


def test_zip_registers_a_model_whose_artefact_is_missing_offline_with_the_reason(
    db, role_users, api_client_for, tmp_path, training_frame
):
    fitted = train("dt", training_frame)
    root = write_project(
        tmp_path / "P0001",
        [
            (descriptor(MID, model_file=f"{MID}.pkl"), {f"{MID}.pkl": fitted["model"]}),
            (descriptor("0002_[python]_lost", model_file="lost.pkl"), {}),
        ],
    )
    bundle = {"bundle": zip_folder(root)}
    response = api_client_for("admin").post(f"{BASE}/projects/import/", bundle, format="multipart")
    assert response.status_code == 201, response.content
    models = {m["model"]: m for m in response.json()["models"]}
    # the pickle waits for an administrator's explicit approval of its sha256, even when an admin imports it
    assert models[MID]["version_status"] == "offline", models[MID]
    assert "awaiting an administrator" in models[MID]["reason"], models[MID]
    lost = models["0002_[python]_lost"]
    assert lost["status"] == "imported" and lost["version_status"] == "offline"
    assert lost["reason"] == "missing artefact: models/lost.pkl not found"
    version = ModelVersion.objects.get(soft_sensor__model_id="0002_[python]_lost")
    assert version.status == VersionStatus.OFFLINE and not version.artifacts.exists()
    # visible in the API and in STAMM's model list, and predict answers 409 with the reason
    detail = api_client_for("operator").get(f"{BASE}/projects/P0001/soft-sensors/0002_%5Bpython%5D_lost/versions/1/")
    assert detail.json()["status_description"] == "missing artefact: models/lost.pkl not found"
    listed = {m["model_ID"]: m for m in api_client_for("operator").get("/stamm/P0001/list_models/").json()}
    assert listed["0002_[python]_lost"]["metadata"]["status"] == "offline"
    assert "missing artefact" in listed["0002_[python]_lost"]["metadata"]["status_description"]
    answer = api_client_for("operator").post(
        "/stamm/P0001/predict/0002_%5Bpython%5D_lost", {"req": {"input_data": {"pH": 6.5}}}, format="json"
    )
    assert answer.status_code == 409
    assert "missing artefact: models/lost.pkl not found" in answer.json()["error"]["message"]


def test_zip_with_an_invalid_descriptor_imports_nothing(db, role_users, api_client_for, tmp_path, training_frame):
    fitted = train("dt", training_frame)
    broken = descriptor("0002_[python]_broken", model_file="b.pkl")
    broken["ml_model_configuration"]["inputs"]["features"][0]["expected_range"] = {"min": "low"}
    root = write_project(
        tmp_path / "P0001",
        [
            (descriptor(MID, model_file=f"{MID}.pkl"), {f"{MID}.pkl": fitted["model"]}),
            (broken, {"b.pkl": fitted["model"]}),
        ],
    )
    bundle = {"bundle": zip_folder(root)}
    response = api_client_for("admin").post(f"{BASE}/projects/import/", bundle, format="multipart")
    assert response.status_code == 400
    assert "invalid descriptor" in response.json()["error"]["message"]
    assert not ModelVersion.objects.exists()


def test_zip_slip_is_refused(db, role_users, api_client_for, tmp_path, monkeypatch):
    import tempfile

    from django.conf import settings

    # Extraction happens under a temporary folder of this test: an escaping member would land beside it.
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    media_before = sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*")) if Path(settings.MEDIA_ROOT).exists() else []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("configs/ok.yaml", "x")
        archive.writestr("../../evil.yaml", "x")
    buffer.seek(0)
    response = api_client_for("modeler").post(f"{BASE}/projects/import/", {"bundle": buffer}, format="multipart")
    assert response.status_code == 400 and "unsafe path" in response.json()["error"]["message"]
    # Nothing was written: not the escaping file, not the safe member, not a project, nothing under media.
    assert not list(tmp_path.rglob("evil.yaml")) and not (tmp_path.parent / "evil.yaml").exists()
    assert not [p for p in work.rglob("*") if p.is_file()]
    assert not Project.objects.exists()
    media_after = sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*")) if Path(settings.MEDIA_ROOT).exists() else []
    assert media_after == media_before


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

    def signed(number: int) -> dict:
        sha256 = client.get(f"{SS}/versions/{number}/").json()["sha256"]
        return {"password": "correct-horse-battery", "meaning": "approved", "sha256": sha256}

    first = {"version": 1, "reason": "first", "signature": signed(1)}
    assert client.post(f"{SS}/aliases/production/move/", first, format="json").status_code == 200
    second = {"version": 2, "reason": "better RMSE", "signature": signed(2)}
    assert client.post(f"{SS}/aliases/production/move/", second, format="json").status_code == 200
    missing_reason = client.post(f"{SS}/aliases/production/move/", {"version": 1}, format="json")
    assert missing_reason.status_code == 400
    listing = client.get(f"{SS}/aliases/").json()
    assert listing["aliases"] == [
        {"name": "production", "version": 2, "updated_at": listing["aliases"][0]["updated_at"]}
    ]
    assert [(m["from_version"], m["to_version"], m["reason"], m["moved_by"], m["signed_by"]) for m in
            listing["history"]] == [
        (1, 2, "better RMSE", "test-modeler", "test-modeler"),
        (None, 1, "first", "test-modeler", "test-modeler"),
    ]
    unsigned = client.post(f"{SS}/aliases/production/delete/", {"reason": "retired"}, format="json")
    assert unsigned.status_code == 403 and unsigned.json()["error"]["code"] == "signature_refused"
    removal = {"reason": "retired", "signature": signed(2)}
    assert client.post(f"{SS}/aliases/production/delete/", removal, format="json").status_code == 204
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
        f"{SS}/versions/1/descriptor/", {"training_information": {"experiments_ID": [92, True]}}, format="json"
    )
    assert response.status_code == 400
    assert "training_information.experiments_ID[1]: must be an experiment ID" in response.json()["error"]["message"]


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
    from rest_framework.test import APIClient

    robot = django_user_model.objects.create_user("orchestrator-robot", password="not-used-really-123")
    robot.user_permissions.add(Permission.objects.get(content_type__app_label="accounts", codename="predict"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(robot)}")
    body = {"inputs": {f: test_frame[f].head(3).tolist() for f in FEATURES}}
    assert client.post(f"{SS}/versions/1/predict/", body, format="json").status_code == 200
    robot.is_active = False
    robot.save()
    assert client.post(f"{SS}/versions/1/predict/", body, format="json").status_code in (401, 403)
    assert client.get(f"{BASE}/projects/").status_code in (401, 403)

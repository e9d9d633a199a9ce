"""Modeler pages: read-only for operators, full management for modelers and admins."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import quote

import pytest
import yaml
from django.test import Client

from apps.registry.models import AliasMove, DescriptorRevision, ModelVersion, VersionStatus
from apps.registry.selectors import version_sha256
from tests.predicting import predict_body

from .conftest import FEATURES, descriptor, dump, to_yaml, train, write_project, zip_folder

pytestmark = pytest.mark.django_db
MID = "0001_[python]_penicillin_RF"
MODEL = f"/registry/P0001/models/{quote(MID)}/"


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_home_pages_link_to_the_registry(role_users):
    assert "/registry/" in browser(role_users["modeler"]).get("/home/modeler/").content.decode()
    operator_home = browser(role_users["operator"]).get("/home/operator/").content.decode()
    assert 'data-testid="link-registry-browse"' in operator_home
    assert "link-registry-manage" not in operator_home


def test_operator_reads_but_cannot_manage(register, role_users):
    version, _ = register("rf")
    client = browser(role_users["operator"])
    assert client.get("/registry/").status_code == 200
    page = client.get("/registry/P0001/").content.decode()
    assert MID in page and "Temperature(T:K)" in page and "Goldrick" in page
    assert 'data-testid="upload-link"' not in page
    detail = client.get(MODEL).content.decode()
    assert 'data-testid="section-inputs"' in detail and "Edit YAML" not in detail
    assert client.get("/registry/P0001/upload/").status_code == 403
    assert client.post(f"{MODEL}v1/status/", {"status": "offline"}).status_code == 403
    assert client.get(f"{MODEL}v1/download/descriptor/").status_code == 200
    assert browser(role_users["outsider"]).get("/registry/").status_code == 403
    assert Client().get("/registry/").status_code == 302  # to the login page


def test_upload_form_registers_a_skops_version(project, role_users, tmp_path, training_frame):
    fitted = train("gb", training_frame)
    path = dump(fitted["model"], tmp_path / f"{MID}.skops")
    document = descriptor(MID, model_file=f"{MID}.skops", frame=training_frame)
    client = browser(role_users["modeler"])
    with path.open("rb") as handle:
        response = client.post(
            "/registry/P0001/upload/",
            {"descriptor_text": to_yaml(document), "model_file": handle, "alias": "staging", "reason": "first try"},
        )
    assert response.status_code == 302 and response["Location"] == f"{MODEL}?version=1"
    version = ModelVersion.objects.get()
    assert version.flavor == "sklearn-skops" and version.status == VersionStatus.ONLINE
    page = client.get(response["Location"]).content.decode()
    assert "staging" in page and "first try" in page and "sklearn-skops" in page


def test_upload_errors_are_shown_inline(project, role_users):
    document = descriptor()
    document["ml_model_configuration"]["inputs"]["features"][3]["expected_range"] = {"min": "cold", "max": 1}
    response = browser(role_users["modeler"]).post(
        "/registry/P0001/upload/", {"descriptor_text": to_yaml(document), "model_file": io.BytesIO(b"x")}
    )
    assert response.status_code == 200
    assert "inputs.features[3].expected_range.min: must be a number" in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_edit_yaml_saves_and_refuses_structural_changes(register, role_users):
    version, _ = register("rf")
    client = browser(role_users["modeler"])
    assert client.get(f"{MODEL}v1/edit/").status_code == 200
    document = {"ml_model_configuration": dict(version.descriptor)}
    document["ml_model_configuration"]["model_identification"] = {
        **version.descriptor["model_identification"],
        "author": "Z. Curator",
    }
    document["ml_model_configuration"].pop("training_information")
    response = client.post(f"{MODEL}v1/edit/", {"descriptor": yaml.safe_dump(document, sort_keys=False)})
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.descriptor["model_identification"]["author"] == "Z. Curator"
    assert "training_information" not in version.descriptor  # the editor replaces, it does not merge
    assert DescriptorRevision.objects.get().source == "ui"
    document["ml_model_configuration"]["inputs"]["features"].reverse()
    response = client.post(f"{MODEL}v1/edit/", {"descriptor": yaml.safe_dump(document, sort_keys=False)})
    assert response.status_code == 200 and "register a new version instead" in response.content.decode()
    response = client.post(f"{MODEL}v1/edit/", {"descriptor": "ml_model_configuration: [1, 2"})
    assert "not valid YAML" in response.content.decode()


def test_status_alias_and_delete(register, role_users):
    register("rf")
    register("dt")
    client = browser(role_users["modeler"])
    client.post(f"{MODEL}v2/status/", {"status": "offline", "description": "checking"})
    assert ModelVersion.objects.get(number=2).status == "offline"
    # production needs the mover's signature: without it the move is refused (and the attempt recorded).
    client.post(f"{MODEL}alias/", {"alias": "production", "version": 1, "reason": "validated on batch 96"})
    assert not AliasMove.objects.exists()
    signature = {"password": "correct-horse-battery", "meaning": "approved", "sha256": version_sha256(
        ModelVersion.objects.get(number=1))}
    client.post(f"{MODEL}alias/", {"alias": "production", "version": 1, "reason": "validated on batch 96", **signature})
    move = AliasMove.objects.get()
    assert move.reason == "validated on batch 96" and move.signature.signer_username == "test-modeler"
    detail = client.get(MODEL).content.decode()
    assert "production → v1" in detail and "validated on batch 96" in detail
    confirm = client.get(f"{MODEL}v1/delete/").content.decode()
    assert "move it first" in confirm
    assert "erased" in client.get(f"{MODEL}v2/delete/").content.decode()
    client.post(f"{MODEL}v2/delete/")
    assert not ModelVersion.objects.filter(number=2).exists()
    client.post(f"{MODEL}alias/", {"alias": "staging", "version": 1, "reason": "x"})
    client.post(f"{MODEL}alias/", {"alias": "production", "version": 1, "reason": "keep", **signature})
    assert ModelVersion.objects.filter(number=1).exists()


def test_downloads_and_bundle_reimport(register, role_users):
    register("svr")
    client = browser(role_users["modeler"])
    bundle = client.get(f"{MODEL}v1/download/bundle/")
    assert bundle.status_code == 200
    names = sorted(zipfile.ZipFile(io.BytesIO(bundle.content)).namelist())
    assert f"P0001/models/{MID}_scaler_X.pkl" in names and f"P0001/configs/{MID}.yaml" in names
    assert client.get(f"{MODEL}v1/download/output_scaler/").status_code == 200
    assert client.get(f"{MODEL}v1/download/nothing/").status_code == 404


def test_zip_import_page_reports_each_model(db, role_users, tmp_path, training_frame):
    fitted = train("dt", training_frame)
    root = write_project(
        tmp_path / "proj", [(descriptor(MID, model_file=f"{MID}.pkl"), {f"{MID}.pkl": fitted["model"]})]
    )
    response = browser(role_users["modeler"]).post("/registry/import/", {"bundle": zip_folder(root, "proj.zip")})
    assert response.status_code == 200
    assert 'data-testid="import-report"' in response.content.decode() and "imported" in response.content.decode()
    assert FEATURES[0] in ModelVersion.objects.get().descriptor["inputs"]["features"][0]["name"]


def builder_post(training_frame, handle, *, features=FEATURES, bad_range=False):
    data = {
        "model_id": "0003_[python]_penicillin_form",
        "name": "Form-built forest",
        "version": "V.0.1",
        "author": "A. Modeler",
        "doi": "",
        "language": "python",
        "language_version": "3.11",
        "learner": "random_forest",
        "model_type": "ensemble",
        "description": "Built with the form.",
        "number_of_instances": "400",
        "validation": "hold-out",
        "experiments_ID": "92, 93",
        "status": "online",
        "model_file": handle,
        "features-TOTAL_FORMS": "8",
        "features-INITIAL_FORMS": "0",
        "features-MIN_NUM_FORMS": "1",
        "features-MAX_NUM_FORMS": "1000",
        "outputs-TOTAL_FORMS": "2",
        "outputs-INITIAL_FORMS": "0",
        "outputs-MIN_NUM_FORMS": "1",
        "outputs-MAX_NUM_FORMS": "1000",
        "outputs-0-name": "penicillin_concentration",
        "outputs-0-units": "g/L",
        "outputs-0-forecast_horizon": "0",
    }
    for index, name in enumerate(features):
        data.update(
            {
                f"features-{index}-name": name,
                f"features-{index}-type": "sensor",
                f"features-{index}-lag": "0",
                f"features-{index}-min": str(training_frame[name].min()),
                f"features-{index}-max": str(training_frame[name].max()),
            }
        )
    if bad_range:
        data["features-0-min"], data["features-0-max"] = "500", "1"
    for index in range(len(features), 8):  # what a browser posts for an untouched row
        data[f"features-{index}-type"] = "sensor"
    return data


def test_descriptor_builder_form(project, role_users, tmp_path, training_frame, test_frame):

    fitted = train("rf", training_frame)
    path = dump(fitted["model"], tmp_path / "forest.joblib")
    client = browser(role_users["modeler"])
    assert client.get("/registry/P0001/describe/").status_code == 200
    with path.open("rb") as handle:
        refused = client.post("/registry/P0001/describe/", builder_post(training_frame, handle, bad_range=True))
    assert refused.status_code == 200
    assert "inputs.features[0].expected_range: min (500) is greater than max (1)" in refused.content.decode()
    with path.open("rb") as handle:
        response = client.post("/registry/P0001/describe/", builder_post(training_frame, handle))
    assert response.status_code == 302, response.content.decode()[:2000]
    version = ModelVersion.objects.get()
    assert version.status == VersionStatus.OFFLINE and version.flavor == "sklearn-pickle"
    # A joblib file is a pickle: offline until an administrator approves it, on the version's page.
    page_url = f"/registry/P0001/models/{quote(version.soft_sensor.model_id)}/"
    page = client.get(page_url).content.decode()
    assert "awaiting an administrator" in page and 'data-testid="approve-pickle"' not in page
    admin = browser(role_users["admin"])
    assert 'data-testid="approve-pickle"' in admin.get(page_url).content.decode()
    sha256 = version.artifacts.get(role="model").sha256
    assert admin.post(f"{page_url}v1/approve-pickle/", {"sha256": sha256}).status_code == 302
    version.refresh_from_db()
    assert version.status == VersionStatus.ONLINE
    assert version.artifacts.get(role="model").approved_by == role_users["admin"]
    config = version.descriptor
    assert [f["name"] for f in config["inputs"]["features"]] == FEATURES
    assert config["training_information"]["experiments_ID"] == "92, 93"
    assert config["model_description"]["config_files"]["model_file"] == "forest.joblib"
    result = predict_body(version, {"inputs": {f: test_frame[f].head(3).tolist() for f in FEATURES}})
    assert result.predictions.tolist() == pytest.approx(
        fitted["model"].predict(test_frame[FEATURES].head(3).to_numpy()).tolist()
    )

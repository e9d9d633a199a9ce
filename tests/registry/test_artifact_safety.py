"""No code runs from an uploaded model file: skops files hold only allow-listed types, and a pickle is
loaded only on a server that allows pickles and only once an administrator approved that exact file."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
import skops.io as sio

from apps.registry import artifact_safety
from apps.registry.models import ModelVersion, VersionArtifact, VersionStatus
from apps.registry.runtimes import ArtifactBundle, ArtifactFile, runtime_for
from apps.registry.selectors import version_artifacts

from .conftest import FEATURES, descriptor, to_yaml, train

pytestmark = pytest.mark.django_db
BASE = "/api/v1/registry"
MID = "0001_[python]_penicillin_RF"
SS = f"{BASE}/projects/P0001/soft-sensors/{quote(MID)}"


def skops_running(command: str) -> bytes:
    """A .skops file whose only type is ``os.system``: loading it with that type trusted runs ``command``."""
    inner = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps((command,)))).read("schema.json"))
    schema = {
        "__class__": "system",
        "__module__": "os",
        "__loader__": "ConstructorFromReduceNode",
        "content": {k: v for k, v in inner.items() if k not in ("protocol", "_skops_version")},
        "protocol": inner["protocol"],
        "_skops_version": inner["_skops_version"],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


class _Touch:
    """Unpickling it creates a file: a stand-in for any code a pickle may carry."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def upload(client, content: bytes, name: str, training_frame):
    document = descriptor(MID, model_file=name, frame=training_frame)
    data = {"descriptor": io.BytesIO(to_yaml(document).encode()), "model_file": io.BytesIO(content)}
    data["descriptor"].name, data["model_file"].name = f"{MID}.yaml", name
    return client.post(f"{BASE}/projects/P0001/versions/upload/", data, format="multipart")


def good_pickle(training_frame) -> bytes:
    return pickle.dumps(train("rf", training_frame)["model"])


# --- skops ----------------------------------------------------------------------------------------
def test_the_exploit_is_real_when_every_found_type_is_trusted(tmp_path):
    """What upload used to do (trust whatever the file names) runs the command."""
    marker = tmp_path / "ran"
    data = skops_running(f"touch {marker}")
    sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert marker.exists()


def test_a_skops_file_naming_os_system_is_refused_with_its_types_and_nothing_runs(
    project, api_client_for, tmp_path, training_frame, settings
):
    settings.MEDIA_ROOT = tmp_path / "media"
    marker = tmp_path / "ran"
    response = upload(api_client_for("modeler"), skops_running(f"touch {marker}"), f"{MID}.skops", training_frame)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "unsafe_artifact" and "os.system" in error["message"]
    assert error["details"] == {"model": ["os.system"]}
    assert not marker.exists(), "the command ran"
    assert not ModelVersion.objects.exists() and not VersionArtifact.objects.exists()
    assert not list((Path(settings.MEDIA_ROOT) / "registry").glob("**/*.skops")), "the refused file was kept"


@pytest.mark.parametrize("kind", ["rf", "rf-named", "pipeline", "gb", "dt"])
def test_real_estimators_saved_with_skops_are_accepted(project, api_client_for, training_frame, kind):
    fitted = train(kind, training_frame)
    response = upload(api_client_for("modeler"), sio.dumps(fitted["model"]), f"{MID}.skops", training_frame)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "online" and response.json()["pickle"]["state"] == "not_needed"


def stored_bundle(data: bytes, name: str, flavor: str, **file_fields) -> ArtifactBundle:
    """A bundle whose one file sits in the artefact store (where the runtime worker may read)."""
    from django.conf import settings

    folder = Path(settings.MEDIA_ROOT) / "registry" / "loader-test" / hashlib.sha256(data).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    file = ArtifactFile(path=path, sha256=hashlib.sha256(data).hexdigest(), name=name, **file_fields)
    return ArtifactBundle(flavor=flavor, model=file, feature_names=tuple(FEATURES), output_names=("penicillin",))


def test_the_loader_checks_types_itself_whatever_was_stored(tmp_path):
    """A file that reached storage by another path, with ``os.system`` recorded as trusted, is refused at load
    just the same: the recorded list is filtered through the allow-list before the worker sees it."""
    marker = tmp_path / "ran"
    bundle = stored_bundle(
        skops_running(f"touch {marker}"), "model.skops", "sklearn-skops", trusted_types=("os.system",)
    )
    error = runtime_for("sklearn-skops").load_error(bundle)
    assert error and "os.system" in error, error
    assert not marker.exists()


def test_a_skops_version_serves_from_its_stored_rows_in_a_fresh_worker(
    project, api_client_for, training_frame, test_frame
):
    """The allow-listed types recorded at upload travel with the stored rows: a worker that never saw the
    upload (restarted, another process) loads the file with them."""
    fitted = train("rf", training_frame)
    response = upload(api_client_for("modeler"), sio.dumps(fitted["model"]), f"{MID}.skops", training_frame)
    assert response.status_code == 201, response.content
    assert "sklearn.tree._tree.Tree" in VersionArtifact.objects.get(role="model").trusted_types
    runtime_for("sklearn-skops").close()  # every warm worker goes: the next call starts a fresh one
    predict = {"inputs": {f: test_frame[f].head(3).tolist() for f in FEATURES}}
    answer = api_client_for("operator").post(f"{SS}/versions/1/predict/", predict, format="json")
    assert answer.status_code == 200, answer.content
    expected = fitted["model"].predict(test_frame[FEATURES].head(3).to_numpy(dtype=float))
    assert answer.json()["predictions"] == pytest.approx(expected.tolist(), rel=1e-12)


def test_the_allow_list_is_scikit_learn_internals_only():
    assert artifact_safety.skops_allowed("sklearn.tree._tree.Tree")
    assert artifact_safety.skops_allowed("sklearn.gaussian_process.kernels.RBF")
    assert artifact_safety.skops_allowed("sklearn.metrics._dist_metrics.EuclideanDistance64")
    for name in (
        "os.system",
        "posix.system",
        "builtins.eval",
        "subprocess.Popen",
        "numpy.memmap",
        "sklearn.metrics._dist_metrics.PyFuncDistance64",
        "sklearn.utils._joblib.Parallel",
    ):
        assert not artifact_safety.skops_allowed(name), name


# --- pickles --------------------------------------------------------------------------------------
def test_with_pickle_loading_off_an_uploaded_pickle_is_stored_never_loaded(
    project, api_client_for, tmp_path, training_frame, settings
):
    settings.REGISTRY_ALLOW_PICKLE = False
    marker = tmp_path / "unpickled"
    response = upload(api_client_for("modeler"), pickle.dumps(_Touch(marker)), f"{MID}.pkl", training_frame)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "offline" and "REGISTRY_ALLOW_PICKLE is off" in body["status_description"]
    assert body["pickle"]["required"] and body["pickle"]["state"] == "disabled"
    assert "runs the code" in body["pickle"]["notice"]
    assert not marker.exists(), "the pickle was unpickled"
    sha256 = body["pickle"]["sha256"]
    refused = api_client_for("admin").post(f"{SS}/versions/1/approve-pickle/", {"sha256": sha256}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "pickle_disabled"
    online = api_client_for("modeler").post(f"{SS}/versions/1/status/", {"status": "online"}, format="json")
    assert online.status_code == 409 and "REGISTRY_ALLOW_PICKLE" in online.json()["error"]["message"]
    assert not marker.exists()


def test_an_uploaded_pickle_waits_for_an_admin_who_approves_that_exact_file(
    project, api_client_for, role_users, training_frame, test_frame
):
    response = upload(api_client_for("modeler"), good_pickle(training_frame), f"{MID}.pkl", training_frame)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "offline" and body["pickle"]["state"] == "awaiting_approval"
    sha256 = body["pickle"]["sha256"]
    assert sha256 == VersionArtifact.objects.get(role="model").sha256
    predict = {"inputs": {f: test_frame[f].head(2).tolist() for f in FEATURES}}
    assert api_client_for("operator").post(f"{SS}/versions/1/predict/", predict, format="json").status_code == 409
    # Not a modeler, not a wrong sha256, and putting it online does not get around it.
    approve = f"{SS}/versions/1/approve-pickle/"
    assert api_client_for("modeler").post(approve, {"sha256": sha256}, format="json").status_code == 403
    wrong = api_client_for("admin").post(approve, {"sha256": "0" * 64}, format="json")
    assert wrong.status_code == 400 and "sha256" in wrong.json()["error"]["message"]
    online = api_client_for("modeler").post(f"{SS}/versions/1/status/", {"status": "online"}, format="json")
    assert online.status_code == 409 and online.json()["error"]["code"] == "pickle_not_approved"
    version_artifacts(version_id=ModelVersion.objects.get().pk, created_at=ModelVersion.objects.get().created_at)

    approved = api_client_for("admin").post(approve, {"sha256": sha256}, format="json")
    assert approved.status_code == 200, approved.content
    body = approved.json()
    assert body["status"] == "online"
    assert body["pickle"]["state"] == "approved" and body["pickle"]["approved_by"] == "test-admin"
    artefact = VersionArtifact.objects.get(role="model")
    assert artefact.approved_by == role_users["admin"] and artefact.approved_at is not None
    assert artefact.approved_sha256 == artefact.sha256 == sha256
    # The rows read before the approval were not cached: the approved file serves at once.
    assert api_client_for("operator").post(f"{SS}/versions/1/predict/", predict, format="json").status_code == 200


def test_an_approved_pickle_that_does_not_load_records_its_load_error(
    project, api_client_for, tmp_path, training_frame
):
    marker = tmp_path / "unpickled"
    response = upload(api_client_for("modeler"), pickle.dumps(_Touch(marker)), f"{MID}.pkl", training_frame)
    sha256 = response.json()["pickle"]["sha256"]
    assert not marker.exists()
    approved = api_client_for("admin").post(f"{SS}/versions/1/approve-pickle/", {"sha256": sha256}, format="json")
    # Approving is consenting to run it, in a runtime worker: it ran there, and what it gave back is no
    # model. In the bubblewrap sandbox the host's file system is out of its reach.
    from apps.registry.runtimes import sandbox

    if sandbox.effective_mode() == sandbox.MODE_BWRAP:
        assert not marker.exists(), "the pickle's code reached the host's file system"
    assert approved.status_code == 409 and approved.json()["error"]["code"] == "load_error"
    assert ModelVersion.objects.get().status == VersionStatus.LOAD_ERROR


def test_the_loader_refuses_a_pickle_whose_approval_names_other_bytes(training_frame):
    data = good_pickle(training_frame)
    sha256 = hashlib.sha256(data).hexdigest()
    runtime = runtime_for("sklearn-pickle")
    for approved, fragment in (("", "awaiting an administrator"), ("1" * 64, "does not match")):
        error = runtime.load_error(stored_bundle(data, "model.pkl", "sklearn-pickle", approved_sha256=approved))
        assert error and fragment in error, error
    assert runtime.load_error(stored_bundle(data, "model.pkl", "sklearn-pickle", approved_sha256=sha256)) is None


def test_the_upload_page_says_what_accepting_a_pickle_means(project, client, role_users):
    client.force_login(role_users["modeler"])
    page = client.get("/registry/P0001/upload/").content.decode()
    assert 'data-testid="pickle-notice"' in page and "runs the code its author put in it" in page


@pytest.mark.django_db(transaction=True)
def test_upgrading_takes_online_pickles_offline_until_approved():
    from tests.migrating import migrate_to, migrate_to_latest

    old = migrate_to([("registry", "0001_initial")])
    try:
        _old_versions_upgrade(old)
    finally:
        migrate_to_latest()


def _old_versions_upgrade(old) -> None:
    """Versions stored before pickles needed approval: migrating takes the pickled one offline."""
    from tests.migrating import migrate_to_latest

    project = old.get_model("registry", "Project").objects.create(project_id="P0009", name="upgrade")
    soft_sensor = old.get_model("registry", "SoftSensor").objects.create(project=project, model_id="0001_[python]_x")
    versions = {}
    for number, name in ((1, "m.pkl"), (2, "m.skops")):
        versions[name] = old.get_model("registry", "ModelVersion").objects.create(
            soft_sensor=soft_sensor,
            number=number,
            descriptor={"model_identification": {"status": "online"}},
            flavor="sklearn-pickle" if name.endswith(".pkl") else "sklearn-skops",
            status="online",
        )
        old.get_model("registry", "VersionArtifact").objects.create(
            version=versions[name],
            role="model",
            original_name=name,
            path=f"registry/x/{name}",
            sha256="a" * 64,
            size=1,
        )
    migrate_to_latest()
    pickled = ModelVersion.objects.get(pk=versions["m.pkl"].pk)
    assert pickled.status == VersionStatus.OFFLINE and "awaiting an administrator" in pickled.status_description
    assert pickled.descriptor["model_identification"]["status"] == "offline"
    assert ModelVersion.objects.get(pk=versions["m.skops"].pk).status == VersionStatus.ONLINE

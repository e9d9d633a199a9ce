"""Declared environments and upstream-style STAMM projects: pickles written by scikit-learn 1.5.2 (STAMM's pin)
served from a built environment with exactly 1.5.2's predictions, a descriptor with string experiment ids and a
missing scaler, an R model whose package is missing: every one imported and shown with its status and reason.

The 1.5.2 environment is built once per machine (``STAMM_RUNTIME_ENV_DIR``, shared by every test process and
kept between runs); the pickles are written inside it by the test, never committed.
"""

from __future__ import annotations

import io
import pickle
import subprocess
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import yaml
from django.core.management import CommandError, call_command

from apps.registry.models import EnvironmentState, ModelVersion, RuntimeEnvironment, VersionStatus
from apps.registry.runtimes import environments
from apps.registry.services.environments import build_options
from tests.conftest import INDPENSIM_DIR, pickle_approver
from tests.services import r_available, require

from .conftest import PROJECT_INFO

pytestmark = pytest.mark.django_db

#: The inputs of STAMM's IndPenSim GBM and HGB models, in their descriptors' order.
UPSTREAM_FEATURES = [
    "temperature",
    "pH",
    "dissolved_oxygen_concentration",
    "agitator",
    "CO2_percent_in_off_gas",
    "oxygen_in_percent_in_off_gas",
    "vessel_volume",
    "sugar_feed_rate",
]
STAMM_PACKAGES = [{"package": "sklearn.ensemble", "class": "GradientBoostingRegressor", "version": "1.5.2"}]

TRAIN = """
import csv, pickle, sys
import numpy as np, sklearn
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor
features = sys.argv[4].split(",")
def columns(path, names, step):
    with open(path) as handle:
        rows = list(csv.DictReader(handle))[::step]
    return np.array([[float(row[name]) for name in names] for row in rows])
X = columns(sys.argv[1], features, 5)
y = columns(sys.argv[1], ["penicillin_concentration"], 5)[:, 0]
test = columns(sys.argv[2], features, 25)
out = sys.argv[3]
models = {
    "GBM": GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0).fit(X, y),
    "HGB": HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(X, y),
}
for name, model in models.items():
    with open(f"{out}/{name}.pkl", "wb") as handle:
        pickle.dump(model, handle)
    np.save(f"{out}/{name}.npy", model.predict(test))
np.save(f"{out}/X.npy", test)
print(sklearn.__version__)
"""


@pytest.fixture(scope="session")
def sklearn152(tmp_path_factory):
    """The environment the registry builds for STAMM's descriptors, and GBM/HGB pickles written inside it."""
    spec = environments.environment_spec(flavor="sklearn-pickle", packages=STAMM_PACKAGES, language_version="3.12.7")
    assert spec is not None and "scikit-learn==1.5.2" in spec.requirements
    result = environments.build(spec, build_options())
    require(result.ok, f"a scikit-learn 1.5.2 environment from the package index ({result.message[-300:]})")
    out = tmp_path_factory.mktemp("sklearn152")
    python = environments.python_for(result.location, build_options().root)
    done = subprocess.run(
        [str(python), "-c", TRAIN, str(INDPENSIM_DIR / "batch_92.csv"), str(INDPENSIM_DIR / "batch_96.csv"),
         str(out), ",".join(UPSTREAM_FEATURES)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "1.5.2"
    return out


def _upstream_descriptor(model_id: str, model_file: str, **changes) -> dict:
    """A descriptor shaped like STAMM's own (IndPenSim GBM/HGB, E. coli CART)."""
    config = {
        "model_identification": {
            "name": model_id.rsplit("_", 1)[-1],
            "version": "V.1.0",
            "ID": model_id,
            "UUID": "",
            "author": "Suarez, C. et al.",
            "creation_date": "17-02-2025",
            "project": "../project_info.yaml",
            "status": "online",
            "status_description": "Model is loaded and ready for predictions.",
        },
        "model_description": {
            "learner": "Gradient Boosting Machine (GBM)",
            "model_type": "black box",
            "model_name": f"{model_id} [Python version]",
            "language": [{"name": "python"}, {"version": "3.12.7"}],
            "config_files": {"model_file": model_file},
            "packages": STAMM_PACKAGES,
        },
        "training_information": {"number_of_instances": 89800, "experiments_ID": [92]},
        "inputs": {
            "features": [
                {"name": name, "type": "sensor", "lag": 0, "feature_scaling": "none"} for name in UPSTREAM_FEATURES
            ]
        },
        "outputs": {"information": [{"name": "penicillin_concentration", "units": "g L-1"}]},
    }
    for path, value in changes.items():
        section, key = path.split(".")
        config[section][key] = value
    return {"ml_model_configuration": config}


def _write(root: Path, documents: list[dict], files: dict[str, bytes]) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "project_info.yaml").write_text(yaml.safe_dump(PROJECT_INFO, sort_keys=False))
    for document in documents:
        model_id = document["ml_model_configuration"]["model_identification"]["ID"]
        (root / "configs" / f"{model_id}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    for name, data in files.items():
        (root / "models" / name).write_bytes(data)
    return root


def _rds(tmp_path: Path) -> bytes:
    path = tmp_path / "lm.rds"
    subprocess.run(
        ["Rscript", "-e", f"saveRDS(lm(mpg ~ wt, data = mtcars), '{path}')"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path.read_bytes()


def test_stamm_project_imports_every_model_with_its_status_and_reason(sklearn152, tmp_path, role_users, api_client_for):
    require(r_available(), "R (Rscript)")
    gbm_id, hgb_id = "0008_[Python]_penicillin_GBM", "0010_[Python]_penicillin_HGB"
    ecoli_id, cubist_id, lstm_id = (
        "0001_[python]_ecoli_CART",
        "0003_[R]_penicillin_CUBIST",
        "0009_[Python]_penicillin_LSTM",
    )
    documents = [
        _upstream_descriptor(gbm_id, f"{gbm_id}.pkl"),
        _upstream_descriptor(hgb_id, f"{hgb_id}.pkl"),
        # STAMM's E. coli descriptor: string experiment ids, packages with unknown versions, a scaler not shipped
        _upstream_descriptor(
            ecoli_id,
            f"{ecoli_id}.joblib",
            **{
                "training_information.experiments_ID": "BR01, BR02, BR03",
                "inputs.scaler": "scaler_X_Biomass.joblib",
                "model_description.packages": [
                    {"package": "sklearn.tree", "version": "1.5.2"},
                    {"package": "sklearn.preprocessing", "version": "unknown"},
                    {"package": "joblib", "version": "unknown"},
                ],
            },
        ),
        _upstream_descriptor(
            cubist_id,
            f"{cubist_id}.rds",
            **{
                "model_description.language": [{"name": "R", "version": "4.3.3"}],
                "model_description.packages": [{"package": "Cubist", "version": "0.4.4"}],
            },
        ),
        _upstream_descriptor(lstm_id, f"{lstm_id}.keras"),  # its artefact is missing upstream
    ]
    files = {
        f"{gbm_id}.pkl": (sklearn152 / "GBM.pkl").read_bytes(),
        f"{hgb_id}.pkl": (sklearn152 / "HGB.pkl").read_bytes(),
        f"{ecoli_id}.joblib": (sklearn152 / "GBM.pkl").read_bytes(),
        f"{cubist_id}.rds": _rds(tmp_path),
    }
    root = _write(tmp_path / "IndPenSim", documents, files)
    out = io.StringIO()
    call_command(
        "registry_import_project", str(root), "--user", "test-modeler", "--approve-pickles-as", "test-admin", stdout=out
    )
    output = out.getvalue()

    versions = {v.soft_sensor.model_id: v for v in ModelVersion.objects.select_related("soft_sensor", "environment")}
    assert set(versions) == {gbm_id, hgb_id, ecoli_id, cubist_id, lstm_id}
    for model_id in (gbm_id, hgb_id):  # served from the built 1.5.2 environment
        assert versions[model_id].status == VersionStatus.ONLINE, versions[model_id].status_description
        assert versions[model_id].environment.state == EnvironmentState.READY
        assert "scikit-learn==1.5.2" in versions[model_id].environment.requirements
    assert versions[gbm_id].environment_id == versions[hgb_id].environment_id  # one build for both
    ecoli = versions[ecoli_id]
    assert ecoli.status == VersionStatus.OFFLINE
    assert ecoli.status_description == "missing scaler: models/scaler_X_Biomass.joblib not found (input scaler)"
    assert ecoli.descriptor["training_information"]["experiments_ID"] == "BR01, BR02, BR03"
    assert versions[cubist_id].status == VersionStatus.OFFLINE
    assert versions[cubist_id].status_description.startswith("missing R package(s): Cubist")
    assert versions[lstm_id].status_description == f"missing artefact: models/{lstm_id}.keras not found"
    table = output.split("\n\n", 1)[1]
    assert "missing R package(s): Cubist" in table and "3 offline, 2 online" in table

    # STAMM's GBM and HGB predict exactly what scikit-learn 1.5.2 predicts, through every caller's path
    X = np.load(sklearn152 / "X.npy")
    operator = api_client_for("operator")
    for model_id, name in ((gbm_id, "GBM"), (hgb_id, "HGB")):
        response = operator.post(
            f"/api/v1/registry/projects/P0001/soft-sensors/{quote(model_id)}/versions/1/predict/",
            {"inputs": {f: X[:, i].tolist() for i, f in enumerate(UPSTREAM_FEATURES)}},
            format="json",
        )
        assert response.status_code == 200, response.content
        np.testing.assert_allclose(response.json()["predictions"], np.load(sklearn152 / f"{name}.npy"), rtol=1e-12)
    # what cannot be served answers 409 with its reason, in STAMM's own endpoints too
    answer = operator.post(
        f"/stamm/P0001/predict/{quote(cubist_id)}",
        {"req": {"input_data": dict.fromkeys(UPSTREAM_FEATURES, 1.0)}},
        format="json",
    )
    assert answer.status_code == 409 and "Cubist" in answer.json()["error"]["message"]
    listed = {m["model_ID"]: m["metadata"] for m in operator.get("/stamm/P0001/list_models/").json()}
    assert listed[ecoli_id]["status"] == "offline" and "scaler_X_Biomass" in listed[ecoli_id]["status_description"]
    # the environment's state is in the API
    detail = operator.get(f"/api/v1/registry/projects/P0001/soft-sensors/{quote(gbm_id)}/versions/1/").json()
    assert detail["environment"]["state"] == "ready" and "scikit-learn==1.5.2" in detail["environment"]["resolved"]
    listed_envs = operator.get("/api/v1/registry/environments/").json()
    assert [e["key"] for e in listed_envs] == [versions[gbm_id].environment.key]


def test_the_platform_itself_cannot_read_those_pickles(sklearn152):
    """Why the environment is needed: the platform's scikit-learn refuses 1.5.2's gradient-boosting pickles."""
    with pytest.raises((ModuleNotFoundError, AttributeError, ImportError, TypeError, ValueError)):
        pickle.loads((sklearn152 / "HGB.pkl").read_bytes()).predict(np.load(sklearn152 / "X.npy"))


def test_an_upload_waits_for_its_environment_then_goes_online(
    sklearn152, project, role_users, api_client_for, tmp_path
):
    """Through the API the build is queued for a Celery worker: building → (the task) → ready and online."""
    from apps.registry import services

    environment = RuntimeEnvironment.objects.create(
        key=environments.environment_spec(
            flavor="sklearn-pickle", packages=STAMM_PACKAGES, language_version="3.12.7"
        ).key,
        python_request="3.12",
        requirements=["numpy", "scikit-learn==1.5.2"],
    )
    model_id = "0011_[Python]_penicillin_GBM"
    document = _upstream_descriptor(model_id, f"{model_id}.pkl")
    upload = io.BytesIO((sklearn152 / "GBM.pkl").read_bytes())
    upload.name = f"{model_id}.pkl"
    response = api_client_for("modeler").post(
        "/api/v1/registry/projects/P0001/versions/upload/",
        {
            "descriptor": yaml.safe_dump(document),
            "model_file": upload,
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "offline" and body["pickle"]["state"] == "awaiting_approval"
    assert body["environment"]["state"] == "building"
    # the administrator approves the file while its environment is still being built: the request stands
    approve = f"/api/v1/registry/projects/P0001/soft-sensors/{quote(model_id)}/versions/1/approve-pickle/"
    approved = api_client_for("admin").post(approve, {"sha256": body["pickle"]["sha256"]}, format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "offline" and approved.json()["requested_status"] == "online"
    services.environment_build(environment_id=environment.pk)  # what the queued Celery task runs
    version = ModelVersion.objects.get(soft_sensor__model_id=model_id)
    assert version.status == VersionStatus.ONLINE, version.status_description
    assert version.requested_status == ""


def test_an_environment_that_cannot_be_built_keeps_its_versions_offline_with_the_installer_message(
    project, role_users, client
):
    from apps.registry.descriptors import parse_descriptor
    from apps.registry.services import ArtifactInput, model_version_register

    document = _upstream_descriptor(
        "0012_[Python]_penicillin_X",
        "0012_[Python]_penicillin_X.pkl",
        **{"model_description.packages": [{"package": "scikit-learn", "version": "0.0.1"}]},
    )
    version = model_version_register(
        project=project,
        descriptor=parse_descriptor(document),
        files={"model": ArtifactInput(b"\x80\x04N.", "0012_[Python]_penicillin_X.pkl")},
        user=role_users["modeler"],
        build="inline",
        pickle_approved_by=pickle_approver(),
    )
    assert version.status == VersionStatus.OFFLINE
    assert version.status_description.startswith("environment build failed:")
    assert "scikit-learn" in version.status_description and version.environment.state == EnvironmentState.FAILED
    # the model page shows the environment's state and the installer's message, and offers a new build
    client.force_login(role_users["modeler"])
    page = client.get(f"/registry/P0001/models/{quote(version.soft_sensor.model_id)}/").content.decode()
    assert 'data-testid="environment-state">Failed<' in page and "Build again" in page
    assert "scikit-learn==0.0.1" in page


def test_requirements_are_refused_with_the_line_that_is_wrong():
    with pytest.raises(environments.RequirementsError, match="line 2"):
        environments.parse_requirements_text("numpy\n--index-url http://evil.example/simple\n")
    with pytest.raises(environments.RequirementsError, match="packages\\[0\\].version"):
        environments.requirements_from_packages([{"package": "sklearn", "version": "one point five"}])
    assert environments.requirements_from_packages(
        [{"package": "sklearn.tree", "version": "1.5.2"}, {"package": "joblib", "version": "unknown"}]
    ) == ["joblib", "scikit-learn==1.5.2"]
    import sklearn

    same = [{"package": "sklearn.ensemble", "version": sklearn.__version__}]
    assert environments.environment_spec(flavor="sklearn-pickle", packages=same) is None  # the default runtime


def test_import_command_exits_non_zero_only_for_invalid_descriptors(tmp_path):
    broken = _upstream_descriptor("0013_[Python]_x", "x.pkl")
    broken["ml_model_configuration"]["inputs"]["features"][0]["expected_range"] = {"min": "low"}
    root = _write(tmp_path / "P", [broken], {})
    with pytest.raises(CommandError, match="1 failed"):
        call_command("registry_import_project", str(root), stdout=io.StringIO())

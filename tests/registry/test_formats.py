"""Formats besides scikit-learn pickles: ONNX (code-free), scikit-learn converted to ONNX on upload with the
agreement check, MLflow model directories (upload and STAMM folder import), Keras through a declared environment."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import yaml
from django.core.management import call_command

from apps.registry.descriptors import parse_descriptor
from apps.registry.models import ModelVersion, VersionStatus
from apps.registry.runtimes import environments
from apps.registry.services import ArtifactInput, model_version_register
from apps.registry.services.environments import build_options
from apps.registry.services.onnx_conversion import onnx_agreement
from tests.predicting import predict_body
from tests.services import IN_CI, require

from .conftest import FEATURES, PROJECT_INFO, TARGET, descriptor, train, zip_folder

pytestmark = pytest.mark.django_db


def columnar(frame):
    return {"inputs": {name: frame[name].tolist() for name in FEATURES}}


def test_onnx_model_is_served_code_free(project, role_users, training_frame, test_frame):
    from skl2onnx import to_onnx

    fitted = train("pipeline", training_frame)
    X = training_frame[FEATURES].to_numpy(dtype=np.float32)
    data = to_onnx(fitted["model"], X[:1]).SerializeToString()
    name = "0020_[python]_penicillin_ridge.onnx"
    document = descriptor("0020_[python]_penicillin_ridge", model_file=name, frame=training_frame)
    document["ml_model_configuration"]["model_description"]["packages"] = [
        {"package": "sklearn", "version": "1.5.2"}  # how it was made: irrelevant to serving ONNX
    ]
    version = model_version_register(
        project=project,
        descriptor=parse_descriptor(document),
        files={"model": ArtifactInput(data, name)},
        user=role_users["modeler"],
    )
    assert version.flavor == "onnx" and version.environment is None
    assert version.status == VersionStatus.ONLINE, version.status_description
    result = predict_body(version, columnar(test_frame))
    expected = fitted["model"].predict(test_frame[FEATURES].to_numpy(dtype=float))
    np.testing.assert_allclose(result.predictions, expected, rtol=1e-4)


def _upload_converted(client, fitted, model_id: str, extension: str, training_frame):
    import pickle

    import skops.io as sio

    upload = io.BytesIO(sio.dumps(fitted["model"]) if extension == ".skops" else pickle.dumps(fitted["model"]))
    upload.name = f"{model_id}{extension}"
    document = descriptor(model_id, model_file=upload.name, frame=training_frame)
    return client.post(
        "/api/v1/registry/projects/P0001/versions/upload/",
        {"descriptor": yaml.safe_dump(document), "model_file": upload, "convert_to_onnx": "true"},
        format="multipart",
    )


def test_upload_converted_to_onnx_agrees_with_the_original(
    project, role_users, training_frame, test_frame, api_client_for
):
    fitted = train("rf", training_frame)
    model_id = "0021_[python]_penicillin_RF"
    response = _upload_converted(api_client_for("modeler"), fitted, model_id, ".skops", training_frame)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["flavor"] == "onnx" and body["status"] == "online"
    assert sorted(a["role"] for a in body["artifacts"]) == ["model", "original_model"]
    files = body["descriptor"]["model_description"]["config_files"]
    assert files == {"model_file": f"{model_id}.onnx", "converted_from": f"{model_id}.skops"}
    version = ModelVersion.objects.get(soft_sensor__model_id=model_id)
    result = predict_body(version, columnar(test_frame))
    expected = fitted["model"].predict(test_frame[FEATURES].to_numpy(dtype=float))
    np.testing.assert_allclose(result.predictions, expected, rtol=1e-4)


def test_a_pickle_awaiting_approval_is_not_converted_and_nothing_is_written(
    project, role_users, training_frame, api_client_for
):
    fitted = train("rf", training_frame)
    response = _upload_converted(api_client_for("modeler"), fitted, "0023_[python]_rf", ".pkl", training_frame)
    assert response.status_code == 400, response.content
    message = response.json()["error"]["message"]
    assert message.startswith("convert_to_onnx:") and "awaiting an administrator" in message and ".skops" in message
    assert not ModelVersion.objects.exists()


def test_conversion_refuses_what_it_cannot_convert_and_writes_nothing(project, role_users, training_frame):
    from apps.common.errors import ValidationFailed

    fitted = train("svr", training_frame)  # scaler files: not convertible
    names = {"model": "m.pkl", "input_scaler": "sx.pkl", "output_scaler": "sy.pkl"}
    document = descriptor("0022_[python]_svr", model_file="m.pkl", input_scaler="sx.pkl", output_scaler="sy.pkl")
    files = {
        role: ArtifactInput(pickle_bytes(fitted[key]), names[role])
        for role, key in (("model", "model"), ("input_scaler", "input_scaler"), ("output_scaler", "output_scaler"))
    }
    with pytest.raises(ValidationFailed, match="convert_to_onnx: models with scaler files"):
        model_version_register(
            project=project, descriptor=parse_descriptor(document), files=files, user=role_users["modeler"],
            convert_to_onnx=True,
        )  # fmt: skip
    assert not ModelVersion.objects.exists()


def pickle_bytes(obj) -> bytes:
    import pickle

    return pickle.dumps(obj)


def test_onnx_agreement_rule():
    original = np.array([10.0, 20.0, 0.5])
    assert onnx_agreement(original, original + 1e-6)[0]
    agrees, difference, row = onnx_agreement(original, np.array([10.0, 20.1, 0.5]))
    assert not agrees and row == 1 and difference == pytest.approx(0.1)


#: What MLflow's requirement inference writes to requirements.txt for these models (beside mlflow itself), given
#: explicitly: the inference loads the model in a subprocess of its own, about 4 s per directory.
MLFLOW_INFERRED_REQUIREMENTS = ("cloudpickle", "pandas", "psutil", "rich", "scikit-learn")


def _mlflow_dir(fitted_model, frame, path: Path) -> Path:
    from importlib.metadata import version

    import mlflow.sklearn
    from mlflow.models import infer_signature

    X = frame[FEATURES]
    y = pd.Series(fitted_model.predict(X.to_numpy(dtype=float)), name=TARGET)
    mlflow.sklearn.save_model(
        fitted_model,
        str(path),
        serialization_format="cloudpickle",
        signature=infer_signature(X, y),
        pip_requirements=[f"{name}=={version(name)}" for name in MLFLOW_INFERRED_REQUIREMENTS],
    )
    return path


def test_mlflow_model_directory_uploads_as_a_version(
    project, role_users, training_frame, test_frame, tmp_path, api_client_for
):
    fitted = train("rf", training_frame)
    folder = _mlflow_dir(fitted["model"], training_frame, tmp_path / "model")
    upload = zip_folder(folder, "model.zip")
    response = api_client_for("modeler").post(
        "/api/v1/registry/projects/P0001/versions/upload/",
        {"mlflow_model": upload, "model_id": "0030_[python]_penicillin_mlflow"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["flavor"] == "mlflow" and body["status"] == "online", body["status_description"]
    features = [f["name"] for f in body["descriptor"]["inputs"]["features"]]
    assert features == FEATURES  # the signature's columns, in order
    assert body["environment"] is None  # its requirements match the platform once MLflow itself is left out
    version = ModelVersion.objects.get(soft_sensor__model_id="0030_[python]_penicillin_mlflow")
    expected = fitted["model"].predict(test_frame[FEATURES].to_numpy(dtype=float))
    np.testing.assert_allclose(predict_body(version, columnar(test_frame)).predictions, expected, rtol=1e-12)
    invocation = api_client_for("operator").post(
        f"/mlflow/P0001/{quote('0030_[python]_penicillin_mlflow')}/invocations",
        {"dataframe_records": test_frame[FEATURES].head(3).to_dict("records")},
        format="json",
    )
    assert invocation.status_code == 200
    np.testing.assert_allclose(invocation.json()["predictions"], expected[:3], rtol=1e-12)

    broken = io.BytesIO(b"PK\x05\x06" + b"\x00" * 18)
    broken.name = "x.zip"
    refused = api_client_for("modeler").post(
        "/api/v1/registry/projects/P0001/versions/upload/",
        {"mlflow_model": broken, "model_id": "0031_[python]_x"},
        format="multipart",
    )
    assert refused.status_code == 400 and "no MLmodel file" in refused.json()["error"]["message"]


def test_mlflow_directory_in_a_stamm_folder_imports(db, role_users, training_frame, test_frame, tmp_path):
    fitted = train("dt", training_frame)
    root = tmp_path / "P0001"
    (root / "configs").mkdir(parents=True)
    (root / "project_info.yaml").write_text(yaml.safe_dump(PROJECT_INFO, sort_keys=False))
    model_id = "0032_[python]_penicillin_DT"
    _mlflow_dir(fitted["model"], training_frame, root / "models" / f"{model_id}.mlflow")
    document = descriptor(model_id, model_file=f"{model_id}.mlflow", frame=training_frame)
    (root / "configs" / f"{model_id}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    call_command("registry_import_project", str(root), stdout=io.StringIO())
    version = ModelVersion.objects.get(soft_sensor__model_id=model_id)
    assert version.flavor == "mlflow" and version.status == VersionStatus.ONLINE, version.status_description
    expected = fitted["model"].predict(test_frame[FEATURES].to_numpy(dtype=float))
    np.testing.assert_allclose(predict_body(version, columnar(test_frame)).predictions, expected, rtol=1e-12)


KERAS_PACKAGES = [{"package": "keras", "version": "3.15.1"}, {"package": "jax", "version": "0.10.2"}]
TRAIN_LSTM = """
import sys, numpy as np, keras
data = np.load(sys.argv[1])
X, y = data["X"], data["y"]
mean, std = X.mean(axis=0), X.std(axis=0) + 1e-9
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((1, X.shape[1])), keras.layers.Normalization(mean=mean, variance=std**2),
                          keras.layers.LSTM(8), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(X.reshape(len(X), 1, -1), y, epochs=3, batch_size=64, verbose=0)
model.save(sys.argv[2])
np.save(sys.argv[3], model.predict(data["T"].reshape(len(data["T"]), 1, -1), verbose=0)[:, 0])
"""


@pytest.mark.skipif(not IN_CI and not os.environ.get("STAMM_TEST_KERAS"), reason="builds a keras+jax environment")
def test_keras_lstm_is_served_through_its_declared_environment(
    project, role_users, training_frame, test_frame, tmp_path
):
    spec = environments.environment_spec(flavor="keras", packages=KERAS_PACKAGES, language_version="3.11")
    result = environments.build(spec, build_options())
    require(result.ok, f"a keras+jax environment from the package index ({result.message[-300:]})")
    python = environments.python_for(result.location, build_options().root)
    np.savez(
        tmp_path / "data.npz",
        X=training_frame[FEATURES].to_numpy(dtype=np.float32),
        y=training_frame[TARGET].to_numpy(dtype=np.float32),
        T=test_frame[FEATURES].to_numpy(dtype=np.float32),
    )
    model_path = tmp_path / "0040_[Python]_penicillin_LSTM.keras"
    subprocess.run(
        [str(python), "-c", TRAIN_LSTM, str(tmp_path / "data.npz"), str(model_path), str(tmp_path / "expected.npy")],
        check=True, capture_output=True, timeout=900, env={**os.environ, "KERAS_BACKEND": "jax"},
    )  # fmt: skip
    document = descriptor("0040_[Python]_penicillin_LSTM", model_file=model_path.name, frame=training_frame,
                          packages=KERAS_PACKAGES)  # fmt: skip
    version = model_version_register(
        project=project,
        descriptor=parse_descriptor(document),
        files={"model": ArtifactInput(model_path, model_path.name)},
        user=role_users["modeler"],
        build="inline",
    )
    assert version.flavor == "keras" and version.status == VersionStatus.ONLINE, version.status_description
    assert dict(version.environment.variables) == {"KERAS_BACKEND": "jax"}
    result = predict_body(version, columnar(test_frame))
    np.testing.assert_allclose(result.predictions, np.load(tmp_path / "expected.npy"), rtol=1e-4, atol=1e-4)

"""Soft sensors called through the standard inference protocols with the real client libraries: Triton's V2
client (``tritonclient.http``, the Open Inference Protocol KServe and MLServer speak too) and MLflow's scoring
client, over HTTP against a live server."""

from __future__ import annotations

from urllib.parse import quote, urlparse

import numpy as np
import pytest

from tests.conftest import issue_token

from .conftest import FEATURES, TARGET

pytestmark = pytest.mark.django_db(transaction=True)

MID = "0001_[python]_penicillin_RF"
NAME = f"P0001:{MID}"


@pytest.fixture
def served(register, role_users):
    version, fitted = register("rf", model_id=MID)
    return version, fitted, issue_token(role_users["operator"])


def _client(live_server):
    import tritonclient.http as httpclient

    return httpclient.InferenceServerClient(
        url=urlparse(live_server.url).netloc, connection_timeout=30, network_timeout=60
    )


def test_triton_client_infers_with_one_tensor_per_feature_binary_and_json(live_server, served, test_frame):
    import tritonclient.http as httpclient

    version, fitted, token = served
    headers = {"Authorization": f"Token {token}"}
    client = _client(live_server)
    assert client.is_server_live(headers=headers) and client.is_server_ready(headers=headers)
    assert client.is_model_ready(NAME, headers=headers)
    metadata = client.get_model_metadata(NAME, headers=headers)
    assert [i["name"] for i in metadata["inputs"]] == FEATURES
    assert [o["name"] for o in metadata["outputs"]] == [TARGET] and metadata["versions"] == ["1"]

    rows = test_frame.head(40)
    expected = fitted["model"].predict(rows[FEATURES].to_numpy(dtype=float))
    for binary in (True, False):
        inputs = []
        for name in reversed(FEATURES):  # order does not matter: tensors are taken by name
            tensor = httpclient.InferInput(name, [len(rows)], "FP64")
            tensor.set_data_from_numpy(rows[name].to_numpy(dtype=np.float64), binary_data=binary)
            inputs.append(tensor)
        outputs = [httpclient.InferRequestedOutput(TARGET, binary_data=binary)]
        result = client.infer(  # tritonclient writes its own headers into the dict it is given: a fresh one
            NAME, inputs, model_version="1", outputs=outputs, headers=dict(headers), request_id="r1"
        )
        np.testing.assert_allclose(result.as_numpy(TARGET), expected, rtol=1e-12)
        assert result.get_response()["model_version"] == "1" and result.get_response()["id"] == "r1"


def test_triton_client_one_matrix_tensor_by_alias_and_errors(live_server, served, test_frame):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    version, fitted, token = served
    headers = {"Authorization": f"Token {token}"}
    client = _client(live_server)
    X = test_frame[FEATURES].head(7).to_numpy(dtype=np.float32)
    tensor = httpclient.InferInput("input-0", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    result = client.infer(NAME, [tensor], headers=dict(headers))  # no version: the production/newest version
    np.testing.assert_allclose(result.as_numpy(TARGET), fitted["model"].predict(X.astype(float)), rtol=1e-6)

    wrong = httpclient.InferInput("input-0", [7, 3], "FP32")
    wrong.set_data_from_numpy(X[:, :3].copy())
    with pytest.raises(InferenceServerException, match=r"shape \[n, 6\]"):
        client.infer(NAME, [wrong], headers=dict(headers))
    with pytest.raises(InferenceServerException):
        client.infer(NAME, [tensor])  # no token
    with pytest.raises(InferenceServerException, match="does not exist|has no"):
        client.infer("P0001:0999_[python]_nothing", [tensor], headers=dict(headers))


def test_v2_answers_409_with_the_reason_for_an_offline_version(api_client_for, served, role_users):
    from apps.registry import services

    version, _, _ = served
    services.model_version_set_status(
        version=version, status="offline", description="lab recalibration", user=role_users["modeler"]
    )
    client = api_client_for("operator")
    body = {"inputs": [{"name": f, "shape": [1], "datatype": "FP64", "data": [1.0]} for f in FEATURES]}
    response = client.post(f"/v2/models/{quote(NAME)}/infer", body, format="json")
    assert response.status_code == 409 and "lab recalibration" in response.json()["error"]
    assert client.get(f"/v2/models/{quote(NAME)}/ready").status_code == 409
    assert api_client_for("outsider").post(f"/v2/models/{quote(NAME)}/infer", body, format="json").status_code == 403


def test_mlflow_scoring_client_calls_a_soft_sensor_unchanged(live_server, served, test_frame, tmp_path, monkeypatch):
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    version, fitted, token = served
    host = urlparse(live_server.url)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {host.hostname} login operator password {token}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    # MLflow's client builds http://{host}:{port}/invocations; the soft sensor's path is its "port" suffix.
    client = ScoringServerClient(host.hostname, f"{host.port}/mlflow/P0001/{quote(MID)}/versions/1")
    rows = test_frame[FEATURES].head(12)
    expected = fitted["model"].predict(rows.to_numpy(dtype=float))
    response = client.invoke(rows)  # a DataFrame: MLflow sends dataframe_split
    np.testing.assert_allclose(np.asarray(response.get_predictions()).ravel(), expected, rtol=1e-12)
    response = client.invoke(rows.to_numpy())  # an array: MLflow sends {"inputs": [[...]]}
    np.testing.assert_allclose(np.asarray(response.get_predictions()).ravel(), expected, rtol=1e-12)
    netrc.write_text(f"machine {host.hostname} login operator password not-a-token\n")
    with pytest.raises(Exception, match="401|403"):
        client.invoke(rows)

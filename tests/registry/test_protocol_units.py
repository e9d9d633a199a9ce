"""Pure code of the inference protocols and model formats: V2 requests and responses, MLflow's MLmodel."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from apps.registry.mlflow_models import MlflowModelError, mlflow_descriptor, read_mlflow_zip
from apps.registry.v2_protocol import V2Error, infer_response, parse_infer

FEATURES = ["a", "b", "c"]


def request(inputs, **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def test_one_tensor_per_feature_in_any_order_and_extras_ignored():
    body = request(
        [
            {"name": "c", "shape": [2, 1], "datatype": "FP32", "data": [5, 6]},
            {"name": "a", "shape": [2], "datatype": "INT64", "data": [1, 2]},
            {"name": "b", "shape": [2], "datatype": "FP64", "data": [3.5, 4.5]},
            {"name": "batch", "shape": [2], "datatype": "FP64", "data": [9, 9]},
        ],
        id="x",
    )
    parsed = parse_infer(body, None, FEATURES, 100)
    np.testing.assert_array_equal(parsed.X, [[1, 3.5, 5], [2, 4.5, 6]])
    assert parsed.ignored == ["batch"] and parsed.request_id == "x" and not parsed.binary_outputs


def test_one_matrix_tensor_and_binary_data():
    matrix = np.arange(6, dtype="<f4").reshape(2, 3)
    head = request(
        [{"name": "input-0", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}],
        parameters={"binary_data_output": True},
    )
    parsed = parse_infer(head + matrix.tobytes(), len(head), FEATURES, 100)
    np.testing.assert_array_equal(parsed.X, matrix.astype(float))
    assert parsed.binary_outputs


@pytest.mark.parametrize(
    "inputs, message",
    [
        ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}], r"missing tensor\(s\) for feature\(s\) b, c"),
        ([{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}], r"shape \[n, 3\]"),
        ([{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}], "not a numeric V2 datatype"),
        ([{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2]}], "2 values for shape"),
        ([{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, None, 2]}], "must hold finite numbers"),
        ([{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, "a", 2]}], "must hold numbers"),
        ([{"name": "x", "shape": "3", "datatype": "FP64", "data": [1, 2, 3]}], "shape: must be a list"),
        ([], "non-empty list of tensors"),
    ],
)
def test_bad_requests_say_what_is_wrong(inputs, message):
    with pytest.raises(V2Error, match=message):
        parse_infer(request(inputs), None, FEATURES, 100)


def test_binary_sizes_and_row_limit_are_checked():
    head = request([{"name": "x", "shape": [1, 3], "datatype": "FP64", "parameters": {"binary_data_size": 24}}])
    with pytest.raises(V2Error, match="binary_data_size"):
        parse_infer(head + b"\x00" * 8, len(head), FEATURES, 100)
    with pytest.raises(V2Error, match="not within"):
        parse_infer(head, len(head) + 10, FEATURES, 100)
    big = request([{"name": "x", "shape": [3, 3], "datatype": "FP64", "data": list(range(9))}])
    with pytest.raises(V2Error, match="more than the 2 allowed"):
        parse_infer(big, None, FEATURES, 2)


def test_response_json_and_binary():
    predictions = np.array([1.5, np.nan])
    body, head = infer_response(
        model_name="P0001:m", model_version="3", request_id="r", outputs=["y"], predictions=predictions,
        binary=False, parameters={},
    )  # fmt: skip
    assert head is None
    document = json.loads(body)
    assert document["outputs"] == [{"name": "y", "datatype": "FP64", "shape": [2], "data": [1.5, None]}]
    body, head = infer_response(
        model_name="P0001:m", model_version="3", request_id=None, outputs=["y"], predictions=predictions,
        binary=True, parameters={},
    )  # fmt: skip
    assert json.loads(body[:head])["outputs"][0]["parameters"] == {"binary_data_size": 16}
    np.testing.assert_array_equal(np.frombuffer(body[head:], "<f8"), predictions)


def mlflow_zip(mlmodel: str, requirements: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("MLmodel", mlmodel)
        archive.writestr("requirements.txt", requirements)
        archive.writestr("python_env.yaml", "python: 3.11.7\n")
    return buffer.getvalue()


MLMODEL = """
flavors:
  python_function: {loader_module: mlflow.sklearn, model_path: model.pkl}
  sklearn: {pickled_model: model.pkl, serialization_format: cloudpickle}
signature:
  inputs: '[{"type": "double", "name": "temperature"}, {"type": "double", "name": "pH"}]'
  outputs: '[{"type": "double", "name": "penicillin_concentration"}]'
"""


def test_mlmodel_becomes_a_descriptor_and_mlflow_itself_is_not_required():
    model = read_mlflow_zip(mlflow_zip(MLMODEL, "mlflow==3.17.2\nscikit-learn==1.9.1\ncloudpickle==3.1.3"))
    assert model.flavour == "sklearn" and model.inputs == ("temperature", "pH")
    assert model.requirements.splitlines() == ["scikit-learn==1.9.1", "cloudpickle==3.1.3"]
    assert model.python_version == "3.11.7"
    from apps.registry.descriptors import parse_descriptor_yaml

    descriptor = parse_descriptor_yaml(mlflow_descriptor(model, model_id="0030_[python]_x", output=None))
    assert descriptor.feature_names == ["temperature", "pH"]
    assert descriptor.output_names == ["penicillin_concentration"]
    assert descriptor.model_file == "0030_[python]_x.mlflow"


@pytest.mark.parametrize(
    "mlmodel, message",
    [
        ("flavors: {tensorflow: {}}", "served are sklearn and python_function"),
        ("flavors: {sklearn: {pickled_model: m.pkl}}", "names no input columns"),
        ("nothing: here", "no flavors"),
    ],
)
def test_unusable_mlflow_models_say_why(mlmodel, message):
    with pytest.raises(MlflowModelError, match=message):
        read_mlflow_zip(mlflow_zip(mlmodel))
    with pytest.raises(MlflowModelError, match="not a zip"):
        read_mlflow_zip(b"not a zip")

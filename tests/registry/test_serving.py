"""Registration, loading and prediction with real scikit-learn models trained on IndPenSim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from apps.common.errors import Conflict, ValidationFailed
from apps.registry import services, serving
from apps.registry.descriptors import parse_descriptor
from apps.registry.models import ModelVersion, VersionStatus
from apps.registry.runtimes import runtime_for
from apps.registry.selectors import version_spec
from apps.registry.services import ArtifactInput, model_version_register
from tests.conftest import pickle_approver
from tests.predicting import predict_body

from .conftest import FEATURES, descriptor, incompatible_pickle, reference_predict, train

pytestmark = pytest.mark.django_db


def columnar(frame, features=FEATURES):
    return {"inputs": {name: frame[name].tolist() for name in features}}


@pytest.mark.parametrize(
    "kind, fmt",
    [
        ("rf", ".pkl"),
        ("dt", ".joblib"),
        ("gb", ".skops"),
        ("svr", ".pkl"),
        ("pipeline", ".skops"),
        ("rf-named", ".joblib"),
    ],
)
def test_registered_models_predict_like_the_model_itself(register, test_frame, kind, fmt):
    version, fitted = register(kind, fmt=fmt)
    assert version.status == VersionStatus.ONLINE, version.status_description
    assert version.flavor == ("sklearn-skops" if fmt == ".skops" else "sklearn-pickle")
    result = predict_body(version, columnar(test_frame))
    expected = reference_predict(fitted, test_frame[FEATURES].to_numpy(dtype=float))
    np.testing.assert_allclose(result.predictions, expected, rtol=1e-6, atol=1e-9)
    assert len(result.validity) == len(test_frame)
    assert result.outputs == ["penicillin_concentration"]


def test_scalers_are_applied_as_the_descriptor_says(register, test_frame):
    version, fitted = register("svr")
    roles = sorted(a.role for a in version.artifacts.all())
    assert roles == ["input_scaler", "model", "output_scaler"]
    result = predict_body(version, columnar(test_frame.head(20)))
    raw = fitted["model"].predict(fitted["input_scaler"].transform(test_frame[FEATURES].head(20).to_numpy()))
    # without the output scaler, predictions would be standardised values near 0
    assert not np.allclose(result.predictions, raw)
    assert result.predictions.mean() > 1.0


def test_key_order_never_changes_the_prediction(register, test_frame):
    version, _ = register("rf")
    rows = test_frame.head(5)
    forward = predict_body(version, columnar(rows))
    backward = predict_body(version, {"inputs": {name: rows[name].tolist() for name in reversed(FEATURES)}})
    shuffled_records = [dict(reversed(list(r.items()))) for r in rows[FEATURES].to_dict("records")]
    records = predict_body(version, {"instances": shuffled_records})
    split_cols = list(reversed(FEATURES)) + ["time"]
    split = predict_body(
        version, {"dataframe_split": {"columns": split_cols, "data": rows[split_cols].to_numpy().tolist()}}
    )
    np.testing.assert_array_equal(forward.predictions, backward.predictions)
    np.testing.assert_array_equal(forward.predictions, records.predictions)
    np.testing.assert_array_equal(forward.predictions, split.predictions)
    assert split.ignored == ["time"]


def test_forest_fast_path_equals_scikit_learn(register, test_frame):
    version, fitted = register("rf")
    X = test_frame[FEATURES].to_numpy(dtype=float)
    runtime = runtime_for(version.flavor)
    bundle = serving.bundle_for(version_spec(version), version.artifacts.all())
    for rows in (X[:1], X[:300], X):  # the fast path below 512 rows, scikit-learn above
        np.testing.assert_allclose(runtime.predict(bundle, rows, FEATURES), fitted["model"].predict(rows), rtol=1e-12)


def test_missing_input_names_it_and_extras_are_listed(register, test_frame):
    version, _ = register("rf")
    body = columnar(test_frame.head(3))
    del body["inputs"]["pH"]
    with pytest.raises(ValidationFailed) as err:
        predict_body(version, body)
    assert "pH" in err.value.message and err.value.details == {"missing_inputs": ["pH"]}
    body = columnar(test_frame.head(3))
    body["inputs"]["agitator"] = [100, 100, 100]
    body["inputs"]["batch"] = [1, 1, 1]
    assert predict_body(version, body).ignored == ["agitator", "batch"]


def test_record_missing_a_feature_names_row_and_feature(register, test_frame):
    version, _ = register("rf")
    records = test_frame[FEATURES].head(4).to_dict("records")
    del records[2]["temperature"]
    with pytest.raises(ValidationFailed, match=r"instances\[2\]: missing input\(s\) temperature"):
        predict_body(version, {"instances": records})


def test_validity_flags_inputs_outside_expected_range(register, test_frame):
    version, _ = register("rf")
    rows = test_frame[FEATURES].head(4).copy()
    rows.iloc[1, FEATURES.index("temperature")] = 500.0
    rows.iloc[3, FEATURES.index("temperature")] = 1.0
    rows.iloc[3, FEATURES.index("pH")] = 14.0
    result = predict_body(version, {"instances": rows.to_dict("records")})
    assert result.validity[0] == {"verdict": "ok"}
    assert result.validity[1] == {"verdict": "out_of_range", "inputs": ["temperature"]}
    assert result.validity[3] == {"verdict": "out_of_range", "inputs": ["temperature", "pH"]}
    assert np.isfinite(result.predictions).all()  # reported, not refused


def test_training_envelope_is_used_when_no_range_is_declared(register, test_frame):
    envelope = {"temperature": {"min": 297.0, "max": 299.0}}
    version, _ = register("rf", ranges=False, training_data={"envelope": envelope, "batches": [92, 93]})
    rows = test_frame[FEATURES].head(2).copy()
    rows.iloc[0, 0] = 298.0
    rows.iloc[1, 0] = 305.0
    result = predict_body(version, {"instances": rows.to_dict("records")})
    assert [v["verdict"] for v in result.validity] == ["ok", "out_of_range"]
    assert result.validity[1]["inputs"] == ["temperature"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({}, "expected exactly one of inputs, instances"),
        ({"inputs": [1, 2]}, "inputs[0]: must be a list of 6 values (the features in order)"),
        ({"inputs": "x"}, "inputs: must be an object"),
        ({"inputs": {**{f: [1.0] for f in FEATURES}, "pH": ["acid"]}}, "inputs.pH[0]: must be a number"),
        ({"inputs": {**{f: [1.0, 2.0] for f in FEATURES}, "pH": [1.0]}}, "every input needs the same number of values"),
        ({"inputs": {**{f: [1.0] for f in FEATURES}, "pH": [None]}}, "inputs.pH[0]: must be a finite number"),
        ({"instances": [1, 2]}, "instances[0]: must be an object"),
        ({"instances": []}, "no rows"),
        (
            {"dataframe_split": {"columns": FEATURES, "data": [[1.0] * 5]}},
            "dataframe_split.data[0]: must be a list of 6 values",
        ),
        ({"dataframe_records": "x"}, "dataframe_records: must be a list"),
        ({"inputs": {}, "instances": []}, "found inputs, instances"),
    ],
)
def test_bad_bodies_name_the_problem(register, body, fragment):
    version, _ = register("dt")
    with pytest.raises(ValidationFailed) as err:
        predict_body(version, body)
    assert fragment in err.value.message


def register_bytes(project, user, data: bytes, name: str, model_id: str, **options) -> ModelVersion:
    document = descriptor(model_id, model_file=name, **options)
    return model_version_register(
        project=project,
        descriptor=parse_descriptor(document),
        files={"model": ArtifactInput(data, name)},
        user=user,
        pickle_approved_by=pickle_approver() if name.endswith(".pkl") else None,
    )


@pytest.mark.parametrize(
    "data, name, fragment",
    [
        (b"this is not a pickle at all", "0002_[python]_garbage.pkl", "not a readable .pkl file"),
        (incompatible_pickle(), "0003_[python]_old.pkl", "incompatible library version"),
        (b"PK\x03\x04 broken", "0004_[python]_broken.skops", "not a valid skops file"),
    ],
)
def test_unloadable_artefact_gets_load_error_and_cannot_go_online(project, role_users, data, name, fragment):
    model_id = name.rsplit(".", 1)[0]
    if name.endswith(".skops"):
        with pytest.raises(ValidationFailed, match=fragment):
            register_bytes(project, role_users["modeler"], data, name, model_id)
        return
    version = register_bytes(project, role_users["modeler"], data, name, model_id)
    assert version.status == VersionStatus.LOAD_ERROR
    assert fragment in version.status_description
    with pytest.raises(Conflict, match="cannot go online"):
        services.model_version_set_status(version=version, status="online", user=role_users["modeler"])
    version.refresh_from_db()
    assert version.status == VersionStatus.LOAD_ERROR


def test_feature_count_mismatch_is_a_load_error(project, role_users, training_frame, tmp_path):
    from .conftest import dump

    fitted = train("rf", training_frame)
    name = "0005_[python]_short.pkl"
    path = dump(fitted["model"], tmp_path / name)
    document = descriptor("0005_[python]_short", model_file=name, features=FEATURES[:4])
    version = model_version_register(
        project=project,
        descriptor=parse_descriptor(document),
        files={"model": ArtifactInput(path, name)},
        user=role_users["modeler"],
        pickle_approved_by=pickle_approver(),
    )
    assert version.status == VersionStatus.LOAD_ERROR
    assert "expects 6 inputs but the descriptor lists 4" in version.status_description


def test_tampered_file_is_refused_before_loading(register, role_users):
    version, _ = register("dt", model_id="0006_[python]_tamper")
    artifact = version.artifacts.get(role="model")
    path = Path(settings.MEDIA_ROOT) / artifact.path
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(Conflict):
        services.model_version_set_status(version=version, status="online", user=role_users["modeler"])
    version.refresh_from_db()
    assert (
        version.status == VersionStatus.LOAD_ERROR
        and "does not match its recorded sha256" in version.status_description
    )


def test_artefacts_are_stored_under_project_soft_sensor_version_with_sanitised_names(register):
    version, _ = register("dt")
    artifact = version.artifacts.get(role="model")
    assert artifact.path.startswith("registry/P0001/0001_python_penicillin_RF/v1-")
    assert artifact.path.endswith("/0001_python_penicillin_RF.pkl")
    assert artifact.original_name == "0001_[python]_penicillin_RF.pkl"
    assert len(artifact.sha256) == 64 and artifact.size > 0
    assert artifact.trusted_by.username == "test-modeler"


def test_size_limit(project, role_users, settings):
    settings.REGISTRY_MAX_ARTIFACT_BYTES = 10
    with pytest.raises(ValidationFailed, match="larger than"):
        register_bytes(project, role_users["modeler"], b"x" * 11, "0007_[python]_big.pkl", "0007_[python]_big")
    assert not ModelVersion.objects.exists()


def test_missing_scaler_file_is_refused(project, role_users):
    document = descriptor("0008_[python]_svr", model_file="m.pkl", input_scaler="sx.pkl")
    with pytest.raises(ValidationFailed, match="missing scaler: inputs.scaler names sx.pkl"):
        model_version_register(
            project=project,
            descriptor=parse_descriptor(document),
            files={"model": ArtifactInput(b"x", "m.pkl")},
            user=role_users["modeler"],
        )


def test_versions_are_numbered_and_carry_lineage(register, project):
    first, _ = register("dt")
    second, _ = register("rf")
    assert (first.number, second.number) == (1, 2)
    assert first.soft_sensor_id == second.soft_sensor_id
    assert second.soft_sensor.predicted_variables == ["penicillin_concentration"]


def test_r_version_without_r_runtime_stays_offline(project, role_users, monkeypatch):
    from apps.registry import runtimes

    monkeypatch.setattr(runtimes.RRuntime, "_module", lambda self: None)
    document = descriptor(
        "0009_[R]_penicillin_rpart",
        model_file="0009_[R]_penicillin_rpart.rds",
        language=[{"name": "R", "version": "4.3.3"}],
    )
    version = model_version_register(
        project=project,
        descriptor=parse_descriptor(document),
        files={"model": ArtifactInput(b"X\n\x00\x00\x00\x03", "0009_[R]_penicillin_rpart.rds")},
        user=role_users["modeler"],
    )
    assert version.flavor == "r-rds"
    assert version.status == VersionStatus.OFFLINE and version.status_description == "R runtime not available"
    with pytest.raises(Conflict, match="R runtime not available"):
        services.model_version_set_status(version=version, status="online", user=role_users["modeler"])


def test_nan_declared_range_falls_back_to_the_envelope():
    from apps.registry.spec import spec_build

    config = {
        "inputs": {
            "features": [
                {"name": "a", "expected_range": {"min": "NaN", "max": "NaN"}},
                {"name": "b", "expected_range": {"min": 1, "max": 2}},
                {"name": "c"},
            ]
        }
    }
    spec = spec_build(
        descriptor=config,
        training_data={"envelope": {"a": {"min": -1, "max": 1}, "b": {"min": 0, "max": 9}}},
        version_id=1,
        soft_sensor_id=1,
        project_id="P0001",
        project_name="penicillin",
        model_id="m",
        number=1,
    )
    low, high = spec.bounds()
    assert low.tolist()[:2] == [-1, 1] and high.tolist()[:2] == [1, 2]
    assert np.isnan(low[2]) and np.isnan(high[2])

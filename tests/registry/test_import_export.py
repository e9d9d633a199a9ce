"""registry_import_project / registry_export_project on a STAMM project folder built in the test."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import CommandError, call_command

from apps.registry.models import Alias, ModelVersion, Project, SoftSensor, Variable, VersionStatus
from apps.registry.selectors import variable_mapping

from .conftest import LANGUAGE_SHAPES, descriptor, incompatible_pickle, train, write_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def folder(tmp_path, training_frame):
    rf, dt, svr = train("rf", training_frame), train("dt", training_frame), train("svr", training_frame)
    ok_rf = descriptor(
        "0001_[python]_penicillin_RF",
        model_file="0001_[python]_penicillin_RF.pkl",
        language=LANGUAGE_SHAPES["split-list"],
        frame=training_frame,
    )
    ok_dt = descriptor(
        "0002_[Python]_penicillin_DT",
        model_file="0002_[Python]_penicillin_DT.joblib",
        language=LANGUAGE_SHAPES["one-item-list"],
        frame=training_frame,
    )
    ok_dt["ml_model_configuration"]["training_information"]["experiments_ID"] = "92, 93"
    ok_dt["ml_model_configuration"]["model_identification"]["creation_date"] = "2024/03/05"
    ok_svr = descriptor(
        "0003_[python]_penicillin_SVR",
        model_file="0003_[python]_penicillin_SVR.pkl",
        language=LANGUAGE_SHAPES["mapping"],
        input_scaler="scaler_X.pkl",
        output_scaler="scaler_y.pkl",
    )
    missing = descriptor("0004_[python]_missing", model_file="0004_[python]_missing.pkl")
    no_scaler = descriptor(
        "0005_[python]_noscaler", model_file="0005_[python]_noscaler.pkl", input_scaler="scaler_gone.pkl"
    )
    old = descriptor("0006_[python]_old", model_file="0006_[python]_old.pkl")
    invalid = descriptor("0007_[python]_invalid", model_file="0007_[python]_invalid.pkl")
    invalid["ml_model_configuration"]["inputs"]["features"][2]["expected_range"] = {"min": "zero", "max": 1}
    return write_project(
        tmp_path / "PenicillinProject",
        [
            (ok_rf, {"0001_[python]_penicillin_RF.pkl": rf["model"]}),
            (ok_dt, {"0002_[Python]_penicillin_DT.joblib": dt["model"]}),
            (
                ok_svr,
                {
                    "0003_[python]_penicillin_SVR.pkl": svr["model"],
                    "scaler_X.pkl": svr["input_scaler"],
                    "scaler_y.pkl": svr["output_scaler"],
                },
            ),
            (missing, {}),
            (no_scaler, {"0005_[python]_noscaler.pkl": rf["model"]}),
            (old, {"0006_[python]_old.pkl": incompatible_pickle()}),
            (invalid, {"0007_[python]_invalid.pkl": rf["model"]}),
        ],
    )


def run(*args) -> tuple[str, str | None]:
    out = io.StringIO()
    try:
        call_command(*args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def test_import_reports_every_model_and_never_stops(folder):
    output, error = run("registry_import_project", str(folder))
    lines = dict(line.split(": ", 1) for line in output.strip().splitlines())
    assert lines["0001_[python]_penicillin_RF"] == "imported"
    assert lines["0002_[Python]_penicillin_DT"] == "imported"
    assert lines["0003_[python]_penicillin_SVR"] == "imported"
    assert lines["0004_[python]_missing"] == "failed: missing artefact: models/0004_[python]_missing.pkl not found"
    assert lines["0005_[python]_noscaler"] == "failed: missing scaler: models/scaler_gone.pkl not found (input scaler)"
    assert lines["0006_[python]_old"].startswith(
        "failed: unloadable artefact: 0006_[python]_old.pkl: written by an incompatible library version"
    )
    assert (
        lines["0007_[python]_invalid"]
        == "failed: invalid descriptor: inputs.features[2].expected_range.min: must be a number"
    )
    assert error == "P0001: 3 of 7 model(s) imported or already present; 4 failed"

    assert Project.objects.get().name == "penicillin"
    assert Variable.objects.count() == 6
    assert sorted(SoftSensor.objects.values_list("model_id", flat=True)) == [
        "0001_[python]_penicillin_RF",
        "0002_[Python]_penicillin_DT",
        "0003_[python]_penicillin_SVR",
    ]
    assert set(ModelVersion.objects.values_list("number", "status", "source")) == {(1, VersionStatus.ONLINE, "import")}
    assert Alias.objects.filter(name="production").count() == 3
    svr = ModelVersion.objects.get(soft_sensor__model_id="0003_[python]_penicillin_SVR")
    assert sorted(svr.artifacts.values_list("role", flat=True)) == ["input_scaler", "model", "output_scaler"]


def test_reimport_skips_unchanged_models(folder):
    run("registry_import_project", str(folder))
    output, _ = run("registry_import_project", str(folder))
    assert "0001_[python]_penicillin_RF: skipped: already imported as version 1" in output
    assert ModelVersion.objects.count() == 3


def test_variable_mapping_for_the_csv_import(folder):
    run("registry_import_project", str(folder))
    mapping = variable_mapping(project=Project.objects.get(project_id="P0001"))
    assert mapping["Temperature(T:K)"] == ("temperature", "Sensor", "K")
    assert mapping["Batch ID"] == ("experiment_id", "Experiment", "")


def test_missing_project_info_is_an_error(tmp_path):
    (tmp_path / "configs").mkdir()
    _, error = run("registry_import_project", str(tmp_path))
    assert "project_info.yaml not found" in error


def test_export_writes_the_same_layout_back(folder, tmp_path):
    run("registry_import_project", str(folder))
    target = tmp_path / "exported"
    output, error = run("registry_export_project", "P0001", str(target))
    assert error is None and "3 model(s) written" in output
    assert sorted(p.name for p in (target / "configs").iterdir()) == [
        "0001_[python]_penicillin_RF.yaml",
        "0002_[Python]_penicillin_DT.yaml",
        "0003_[python]_penicillin_SVR.yaml",
    ]
    for name in (
        "0001_[python]_penicillin_RF.pkl",
        "0002_[Python]_penicillin_DT.joblib",
        "scaler_X.pkl",
        "scaler_y.pkl",
    ):
        assert (target / "models" / name).read_bytes() == (folder / "models" / name).read_bytes()
    for name in ("0001_[python]_penicillin_RF.yaml", "0002_[Python]_penicillin_DT.yaml"):
        assert yaml.safe_load((target / "configs" / name).read_text()) == yaml.safe_load(
            (folder / "configs" / name).read_text()
        )
    original_info = yaml.safe_load((folder / "project_info.yaml").read_text())
    exported_info = yaml.safe_load((target / "project_info.yaml").read_text())
    for variable in exported_info["variables"]:
        variable.pop("decimals")
    assert exported_info == original_info

"""registry_import_project / registry_export_project on a STAMM project folder built in the test."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import CommandError, call_command

from apps.registry.models import Alias, ModelVersion, Project, SoftSensor, Variable, VersionStatus
from apps.registry.selectors import variable_mapping
from tests.conftest import pickle_approver

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


def import_approved(folder) -> tuple[str, str | None]:
    """The import as an operator runs it for STAMM's own registry: its pickles approved by an administrator."""
    return run("registry_import_project", str(folder), "--approve-pickles-as", pickle_approver().username)


def test_import_registers_every_model_and_says_why_one_cannot_serve(folder):
    output, error = import_approved(folder)
    report, table = output.strip().split("\n\n", 1)
    lines = dict(line.split(": ", 1) for line in report.splitlines())
    assert lines["0001_[python]_penicillin_RF"] == "imported"
    assert lines["0002_[Python]_penicillin_DT"] == "imported"
    assert lines["0003_[python]_penicillin_SVR"] == "imported"
    assert lines["0004_[python]_missing"] == (
        "imported as version 1, offline: missing artefact: models/0004_[python]_missing.pkl not found"
    )
    assert lines["0005_[python]_noscaler"] == (
        "imported as version 1, offline: missing scaler: models/scaler_gone.pkl not found (input scaler)"
    )
    assert lines["0006_[python]_old"].startswith(
        "imported as version 1, load_error: Load error: 0006_[python]_old.pkl: "
        "written by an incompatible library version"
    )
    assert (
        lines["0007_[python]_invalid"]
        == "failed: invalid descriptor: inputs.features[2].expected_range.min: must be a number"
    )
    assert error == "P0001: 6 of 7 model(s) registered or already present; 1 failed"
    # the summary table ends the import: one row per model with its version, status and reason
    rows = table.splitlines()
    assert rows[0].split() == ["model", "version", "status", "reason"]
    assert any(r.startswith("0004_[python]_missing") and " offline " in r and "missing artefact" in r for r in rows)
    assert rows[-1] == "1 failed, 1 load error, 2 offline, 3 online"

    assert Project.objects.get().name == "penicillin"
    assert Variable.objects.count() == 6
    assert sorted(SoftSensor.objects.values_list("model_id", flat=True)) == [
        "0001_[python]_penicillin_RF",
        "0002_[Python]_penicillin_DT",
        "0003_[python]_penicillin_SVR",
        "0004_[python]_missing",
        "0005_[python]_noscaler",
        "0006_[python]_old",
    ]
    statuses = dict(ModelVersion.objects.values_list("soft_sensor__model_id", "status"))
    assert [statuses[m] for m in sorted(statuses)] == ["online"] * 3 + ["offline", "offline", "load_error"]
    assert {source for (source,) in ModelVersion.objects.values_list("source")} == {"import"}
    # production is a signed alias: an import never moves it (docs/governance.md).
    assert not Alias.objects.filter(name="production").exists()
    svr = ModelVersion.objects.get(soft_sensor__model_id="0003_[python]_penicillin_SVR")
    assert sorted(svr.artifacts.values_list("role", flat=True)) == ["input_scaler", "model", "output_scaler"]
    no_scaler = ModelVersion.objects.get(soft_sensor__model_id="0005_[python]_noscaler")
    assert list(no_scaler.artifacts.values_list("role", flat=True)) == ["model"]


def test_reimport_skips_unchanged_models(folder):
    import_approved(folder)
    output, _ = import_approved(folder)
    assert "0001_[python]_penicillin_RF: skipped: already imported as version 1" in output
    assert ModelVersion.objects.count() == 6


def test_variable_mapping_for_the_csv_import(folder):
    import_approved(folder)
    mapping = variable_mapping(project=Project.objects.get(project_id="P0001"))
    assert mapping["Temperature(T:K)"] == ("temperature", "Sensor", "K")
    assert mapping["Batch ID"] == ("experiment_id", "Experiment", "")


def test_without_an_approval_pickles_are_imported_offline_and_not_loaded(folder, role_users):
    output, error = run("registry_import_project", str(folder))
    report, _table = output.strip().split("\n\n", 1)
    lines = dict(line.split(": ", 1) for line in report.splitlines())
    # Nothing was unpickled: even the file written by another scikit-learn imports (it was not loaded).
    assert lines["0006_[python]_old"].startswith("imported as version 1, offline: awaiting an administrator")
    assert set(ModelVersion.objects.values_list("status", flat=True)) == {VersionStatus.OFFLINE}
    loadable = ModelVersion.objects.exclude(
        soft_sensor__model_id__in=["0004_[python]_missing", "0005_[python]_noscaler"]
    )
    assert all("awaiting an administrator's approval" in v.status_description for v in loadable)
    assert not Alias.objects.exists(), "no alias points at a version that cannot serve"
    _, refused = run("registry_import_project", str(folder), "--approve-pickles-as", role_users["modeler"].username)
    assert "is not an administrator" in refused


def test_missing_project_info_is_an_error(tmp_path):
    (tmp_path / "configs").mkdir()
    _, error = run("registry_import_project", str(tmp_path))
    assert "project_info.yaml not found" in error


def test_export_writes_the_same_layout_back(folder, tmp_path):
    import_approved(folder)
    target = tmp_path / "exported"
    output, error = run("registry_export_project", "P0001", str(target))
    assert error is None and "6 model(s) written" in output
    assert sorted(p.name for p in (target / "configs").iterdir()) == [
        "0001_[python]_penicillin_RF.yaml",
        "0002_[Python]_penicillin_DT.yaml",
        "0003_[python]_penicillin_SVR.yaml",
        "0004_[python]_missing.yaml",
        "0005_[python]_noscaler.yaml",
        "0006_[python]_old.yaml",
    ]
    assert not (target / "models" / "0004_[python]_missing.pkl").exists()  # still missing, as it came
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

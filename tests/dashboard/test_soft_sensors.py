"""The soft-sensor page's reading of a version's training facts and evaluation: readable rows, the estimator
as deployed against holding the last lab value, and tolerance of versions that have neither."""

from __future__ import annotations

import json

import pytest

from apps.dashboard.soft_sensors import evaluation_summary, readable_pairs, training_rows
from apps.registry.spec import spec_build

from .conftest import dash_update, response_json


def metrics(rmse: float, n: int = 40) -> dict:
    return {"n": n, "rmse": rmse, "mae": round(rmse * 0.8, 6), "r2": 0.9, "bias": -0.1}


#: What the training workflow records (``apps.training.evaluation.estimator_report`` plus its verdict).
EVALUATION = {
    "rows": {"holdout": 60, "scored": 58, "with_persistence": 40},
    "raw": {"overall": metrics(2.74, 58), "phases": {"log": metrics(3.1, 30), "stationary": metrics(2.2, 28)}},
    "as_deployed": {"overall": metrics(2.3, 58), "phases": {"log": metrics(2.5, 30), "stationary": metrics(2.0, 28)}},
    "training_mean": {"value": 12.5, "overall": metrics(9.8, 58), "phases": {}},
    "persistence": {"overall": metrics(1.84), "phases": {"log": metrics(1.9, 20), "stationary": metrics(1.7, 20)}},
    "on_persistence_rows": {"raw": metrics(2.74), "as_deployed": metrics(2.21), "persistence": metrics(1.84)},
    "beats_persistence": False,
    "verdict": "rejected: does not beat persistence",
    "bias": {"alpha": 0.8, "lab_delay_seconds": 7200, "max_lab_age_seconds": 14400, "lab_min": 0, "lab_max": 50},
}


def spec_with(training_data: dict | None, descriptor_training: dict | None = None):
    descriptor = {
        "training_information": descriptor_training or {},
        "inputs": {"features": [{"name": "temperature", "units": "K"}, {"name": "batch_age", "units": "h"}]},
        "outputs": {"information": [{"name": "penicillin_concentration", "units": "g/L"}]},
    }
    return spec_build(
        descriptor=descriptor,
        training_data=training_data,
        version_id=1,
        soft_sensor_id=1,
        project_id="P0001",
        project_name="penicillin",
        model_id="0001_[python]_penicillin_gbm",
        number=3,
    )


def test_an_estimator_that_loses_to_persistence_says_so_in_a_sentence():
    summary = evaluation_summary(spec_with({"evaluation": EVALUATION}))
    assert summary is not None and summary.beats_persistence is False
    assert summary.sentence == (
        "On its holdout, the estimator with its bias update does not beat holding the last lab value: "
        "RMSE 2.21 vs 1.84."
    )
    by_key = {row["key"]: row for row in summary.rows}
    assert list(by_key) == ["as_deployed", "raw", "persistence", "training_mean"]
    # The three estimators are compared on the same rows (where persistence has a value); the mean on all.
    assert (by_key["as_deployed"]["rmse"], by_key["as_deployed"]["rows"]) == (2.21, 40)
    assert by_key["as_deployed"]["covered"] == by_key["persistence"]["covered"] == "rows with a persistence value"
    assert by_key["training_mean"]["covered"] == "holdout rows scored" and by_key["training_mean"]["rmse"] == 9.8
    assert summary.phases == [
        {"phase": "log", "as_deployed": 2.5, "raw": 3.1, "persistence": 1.9},
        {"phase": "stationary", "as_deployed": 2.0, "raw": 2.2, "persistence": 1.7},
    ]
    details = dict(summary.details)
    assert details["Verdict"] == "rejected: does not beat persistence"
    assert details["Evaluated with bias update"] == (
        "α 0.8 · lab result known 2 h after sampling · used while at most 4 h old · lab values in [0, 50]"
    )
    assert details["Holdout rows"] == "holdout 60, scored 58, with persistence 40"


def test_a_winning_estimator_and_versions_without_an_evaluation():
    winning = {**EVALUATION, "beats_persistence": True, "on_persistence_rows": {"as_deployed": metrics(1.35)}}
    summary = evaluation_summary(spec_with({"evaluation": winning}))
    assert summary.sentence.startswith("On its holdout, the estimator with its bias update beats")
    assert "RMSE 1.35 vs 1.84" in summary.sentence  # persistence falls back to its own overall figure
    for training_data in (None, {}, {"evaluation": {}}, {"evaluation": "n/a"}, {"evaluation": [1, 2]}):
        assert evaluation_summary(spec_with(training_data)) is None
    odd = evaluation_summary(spec_with({"evaluation": {"raw": {"overall": {"rmse": "high"}}, "beats_persistence": 1}}))
    assert odd is not None and odd.beats_persistence is None and odd.rows[0]["rmse"] is None
    assert odd.sentence.startswith("Not compared")


def test_training_facts_are_rows_never_a_raw_mapping():
    spec = spec_with(
        {"rows": 2200, "metrics": {"holdout": {"rmse": 2.21, "r2": 0.948}}, "bias": EVALUATION["bias"]},
        {
            "number_of_instances": 2200,
            "experiments_ID": [92, 93],
            "hyperparameters": {"n_estimators": 200, "max_depth": None, "loss": "squared_error"},
            "validation": {"method": "chronological holdout", "holdout_fraction": 0.2},
        },
    )
    rows = dict(training_rows(spec))
    assert rows["Training instances"] == "2,200" and rows["Training batches"] == "batch_92, batch_93"
    assert rows["Hyperparameters › n_estimators"] == "200" and rows["Hyperparameters › max_depth"] == "—"
    assert rows["Validation › method"] == "chronological holdout"
    assert rows["Metrics › holdout › r2"] == "0.948"
    assert rows["Bias update"].startswith("α 0.8 · lab result known 2 h after sampling")
    assert not any("{" in text or "'" in text for text in rows.values())  # no mapping or list repr
    assert training_rows(spec_with(None)) == []
    assert readable_pairs({"a": [1, 2.5], "b": {"c": True}}) == [("a", "1, 2.5"), ("b › c", "yes")]


@pytest.mark.django_db
def test_the_page_shows_each_versions_evaluation(client, role_users):
    from apps.registry.descriptors import parse_descriptor
    from apps.registry.project_info import parse_project_info
    from apps.registry.services import ArtifactInput, model_version_register, project_upsert
    from tests.dashboard.seed import PROJECT_INFO, descriptor_document

    project = project_upsert(info=parse_project_info(PROJECT_INFO))
    model_id = "0003_[python]_penicillin_gbm"
    for training_data in ({"evaluation": EVALUATION, "bias": EVALUATION["bias"]}, None):  # v1 trained, v2 uploaded
        model_version_register(
            project=project,
            descriptor=parse_descriptor(
                descriptor_document(model_id=model_id, learner="gbm", experiments=[92], version="V.1.0")
            ),
            files={"model": ArtifactInput(b"not a pickle", f"{model_id}.pkl")},
            user=role_users["modeler"],
            status="offline",
            training_data=training_data,
        )
    client.force_login(role_users["modeler"])
    out = response_json(
        dash_update(
            client, "modeler_sensors", "sensors.children", [{"id": "project", "property": "value", "value": "P0001"}]
        )
    )
    text = json.dumps(out, ensure_ascii=False)
    assert "does not beat holding the last lab value: RMSE 2.21 vs 1.84." in text
    assert "Estimator as deployed (model + bias update)" in text and "Last lab value (delayed-lab persistence)" in text
    assert "v1 — training and evaluation (does not beat the last lab value)" in text
    assert "No training information recorded" not in text  # v2 has its descriptor's instances and batches
    assert "v2 — training" in text and "rejected: does not beat persistence" in text

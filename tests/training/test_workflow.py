"""The training workflow on real IndPenSim batches: train on 92, 93, 96, hold out 98 (Celery eager)."""

from __future__ import annotations

import numpy as np
import pytest

from apps.audit.services import SignatureRefused
from apps.common.errors import Conflict
from apps.registry.descriptors import parse_descriptor_yaml
from apps.registry.models import Alias, AliasMove, ModelVersion
from apps.training import services
from apps.training.dataset import BATCH_AGE
from apps.training.models import Candidate, RunStatus, StepStatus, TrainingRun, TrainingStep
from tests.signing import signature_for, signer

from .conftest import EIGHT, run_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def start(project, role_users, eager_celery, django_capture_on_commit_callbacks):
    """Start a run through the Celery canvas (eager) and return it once the workflow has finished."""

    def go(**overrides) -> TrainingRun:
        with django_capture_on_commit_callbacks(execute=True):
            run = services.training_run_start(user=role_users["modeler"], project=project, data=run_config(**overrides))
        run.refresh_from_db()
        return run

    return go


def test_random_forest_with_batch_age_on_batch_98_judged_as_deployed(start):
    run = start(gates={"r2_min": 0.95, "beats_persistence": True, "not_worse_than_production": True})
    candidate = Candidate.objects.get(run=run, learner="random_forest")
    metrics = candidate.metrics
    raw, deployed = metrics["raw"]["overall"], metrics["as_deployed"]["overall"]
    assert candidate.status == "trained" and candidate.version is not None
    # Scored through the pipeline's path: every row of batch 98 has fresh online inputs and a batch age.
    assert metrics["rows"]["holdout"] == metrics["rows"]["scored"] == raw["n"] == deployed["n"] == 1150
    assert raw["r2"] >= 0.95
    # The lab bias update (α 0.8, 4 h delay) pulls the forest's under-estimate back: what runs is better.
    assert deployed["rmse"] < raw["rmse"] and abs(deployed["bias"]) < abs(raw["bias"])
    assert set(metrics["as_deployed"]["phases"]) == {"lag", "log", "stationary", "death"}
    persistence = run.baselines["persistence"]
    assert persistence["lab_delay_hours"] == 4.0
    assert 0 < persistence["coverage"]["rows"] < persistence["coverage"]["of"] == 1150
    assert persistence["overall"]["r2"] > 0.95  # lab values every ~12 h track a smooth titre well
    assert run.baselines["training_mean"]["overall"]["rmse"] > 3 * deployed["rmse"]
    assert run.baselines["bias"]["alpha"] == 0.8 and run.baselines["bias"]["lab_delay_seconds"] == 4 * 3600
    # "Beats persistence" compares the estimator as deployed with persistence on the rows both have.
    same_rows = metrics["on_persistence_rows"]
    ours, theirs = same_rows["as_deployed"]["rmse"], same_rows["persistence"]["rmse"]
    assert same_rows["as_deployed"]["n"] == same_rows["persistence"]["n"] == persistence["coverage"]["rows"]
    verdict = {v["gate"]: v for v in candidate.gates}["beats_persistence"]
    assert verdict["passed"] is (ours < theirs) is metrics["beats_persistence"]
    assert verdict["margin"] == pytest.approx(theirs - ours, abs=1e-5)
    # The raw forest alone loses to persistence on this batch; with its bias update it wins.
    assert same_rows["raw"]["rmse"] > theirs > ours
    assert run.status == RunStatus.PROMOTED, run.error
    version = candidate.version
    version.refresh_from_db()
    assert version.status == "online" and "Passed the gates" in version.status_description
    assert version.training_data["bias"]["alpha"] == 0.8  # what was evaluated is what a deployment runs
    assert version.training_data["evaluation"]["beats_persistence"] is True
    # What the version depends on was measured on the same holdout and stored with it (the soft-sensor page).
    from apps.registry.selectors import version_explanation_get

    explanation = version_explanation_get(version_id=version.pk)
    assert explanation is not None and "batch_98" in explanation.source, metrics["explanation"]
    importance = explanation.data["importance"]
    assert metrics["explanation"]["top"] == [row["feature"] for row in importance[:3]]
    assert importance[0]["mean"] > 0
    assert {row["feature"] for row in importance} == set(explanation.data["feature_names"])
    assert [c["feature"] for c in explanation.data["partial_dependence"]] == metrics["explanation"]["top"]
    steps = {s.name: s for s in TrainingStep.objects.filter(run=run)}
    assert [s.name for s in TrainingStep.objects.filter(run=run).order_by("position")] == [
        "load",
        "preprocess",
        "split",
        "train:random_forest",
        "register",
        "evaluate",
        "gate",
        "promote",
    ]
    assert all(s.duration_ms is not None and s.attempts == 1 for s in steps.values())


def test_a_rejected_run_registers_nothing_online_and_offers_no_promotion(start, role_users):
    run = start(gates={"r2_min": 0.995, "beats_persistence": False, "not_worse_than_production": False})
    assert run.status == RunStatus.REJECTED
    candidate = Candidate.objects.get(run=run)
    r2 = candidate.metrics["as_deployed"]["overall"]["r2"]
    (verdict,) = candidate.gates
    assert verdict["gate"] == "r2_min" and verdict["passed"] is False
    assert verdict["margin"] == pytest.approx(r2 - 0.995, abs=1e-6) and verdict["margin"] < 0
    assert f"short by {0.995 - r2:.4f}" in verdict["message"]
    assert "r2_min" in run.error and "short by" in run.error
    assert candidate.passed is False and candidate.version is not None  # registered, offline
    version = ModelVersion.objects.get(pk=candidate.version_id)
    assert version.status == "offline" and version.status_description.startswith(f"Rejected by training run {run.pk}")
    assert "r2_min" in version.status_description and "short by" in version.status_description
    assert not ModelVersion.objects.filter(soft_sensor__model_id=run.model_id, status="online").exists()
    assert not Alias.objects.filter(soft_sensor__model_id=run.model_id).exists()
    assert TrainingStep.objects.get(run=run, name="promote").status == StepStatus.SKIPPED
    with pytest.raises(Conflict, match="did not pass the gates"):
        services.training_run_promote(run=run, user=role_users["modeler"], alias="production", learner="random_forest")
    assert not Alias.objects.filter(soft_sensor__model_id=run.model_id).exists()


def test_passing_run_promotes_staging_with_reason_and_rerunning_steps_creates_nothing(start, role_users):
    run = start(gates={"r2_min": 0.95, "beats_persistence": False, "not_worse_than_production": True})
    assert run.status == RunStatus.PROMOTED, run.error
    candidate = Candidate.objects.select_related("version__soft_sensor").get(run=run)
    version = candidate.version
    assert run.promoted_version_id == version.pk
    alias = Alias.objects.get(soft_sensor=version.soft_sensor, name="staging")
    assert alias.version_id == version.pk
    move = AliasMove.objects.get(soft_sensor=version.soft_sensor, alias_name="staging")
    assert move.to_version_id == version.pk and move.from_version_id is None
    assert f"training run {run.pk}" in move.reason and "random_forest" in move.reason and "R²" in move.reason
    assert move.moved_by == role_users["modeler"]
    # Lineage on the version.
    assert version.training_run_id == str(run.uid) and version.source == "training"
    assert version.training_data["batches"] == ["batch_92", "batch_93", "batch_96"]
    assert version.status == "online"

    def counts():
        return (
            ModelVersion.objects.count(),
            AliasMove.objects.count(),
            Candidate.objects.count(),
            TrainingStep.objects.count(),
            Alias.objects.count(),
        )

    before = counts()
    # A step the first pass retried (a transient error on a busy machine) ran more than once already.
    attempts_before = dict(TrainingStep.objects.filter(run=run).values_list("name", "attempts"))
    for step in (
        services.step_load,
        services.step_preprocess,
        services.step_split,
        services.step_register,
        services.step_evaluate,
        services.step_gate,
        services.step_promote,
    ):
        step(run_id=run.pk)
    services.step_train(run_id=run.pk, learner="random_forest")
    assert counts() == before
    run.refresh_from_db()
    assert run.status == RunStatus.PROMOTED
    candidate.refresh_from_db()
    assert candidate.version_id == version.pk  # the registered version was reused, not re-registered
    attempts = dict(TrainingStep.objects.filter(run=run).values_list("name", "attempts"))
    assert min(attempts_before.values()) >= 1
    assert attempts == {name: n + 1 for name, n in attempts_before.items()}  # each step ran again, in its own row

    # The generated descriptor validates, names the features in training order with real ranges, and re-imports.
    from apps.registry.services import export_descriptor
    from tests.predicting import predict_matrix

    text = export_descriptor(version)
    parsed = parse_descriptor_yaml(text)
    assert parsed.feature_names == [*EIGHT, BATCH_AGE]
    assert parsed.experiments_ids == (92, 93, 96)
    config = parsed.config
    assert config["training_information"]["hyperparameters"]["n_estimators"] == 30
    validation = config["training_information"]["validation"]
    assert validation["holdout_metrics"]["r2"] == candidate.metrics["as_deployed"]["overall"]["r2"]
    assert validation["raw_model_metrics"]["r2"] == candidate.metrics["raw"]["overall"]["r2"]
    assert validation["bias_update"]["alpha"] == 0.8
    assert config["training_information"]["training_run"]["uid"] == str(run.uid)
    ranges = {f["name"]: f["expected_range"] for f in config["inputs"]["features"]}
    assert ranges[BATCH_AGE]["min"] == 0 and ranges[BATCH_AGE]["max"] > 200  # hours since the first raw point
    import pandas as pd

    from tests.conftest import INDPENSIM_DIR

    csv = pd.concat([pd.read_csv(INDPENSIM_DIR / f"batch_{n}.csv") for n in (92, 93, 96)])
    for name, column in (("temperature", "temperature"), ("ph", "pH"), ("sugar_feed_rate", "sugar_feed_rate")):
        assert ranges[name] == {"min": pytest.approx(csv[column].min()), "max": pytest.approx(csv[column].max())}
    assert {p["package"] for p in config["model_description"]["packages"]} == {"sklearn.ensemble"}
    assert config["model_description"]["config_files"]["model_file"].endswith(".skops")

    from apps.registry.services import ArtifactInput, model_version_register

    data = version.artifacts.get(role="model")
    from apps.registry.artifacts import read_verified

    again = model_version_register(
        project=version.soft_sensor.project,
        descriptor=parsed,
        files={"model": ArtifactInput(read_verified(data.path, data.sha256), data.original_name)},
        user=None,
        source="import",
    )
    probe = np.array([[ranges[f]["min"] + 0.3 * (ranges[f]["max"] - ranges[f]["min"]) for f in parsed.feature_names]])
    assert predict_matrix(again, probe).predictions[0] == pytest.approx(predict_matrix(version, probe).predictions[0])


def test_production_gate_compares_on_the_same_holdout_and_approval_holds_the_alias(start, role_users):
    first = start(gates={"r2_min": 0.95, "beats_persistence": False}, alias="production")
    # production is signed: the run waits for a signature, never moves it by itself.
    assert first.status == RunStatus.AWAITING_APPROVAL, first.error
    assert TrainingStep.objects.get(run=first, name="promote").output["waiting_for"] == "signature"
    with pytest.raises(SignatureRefused):
        services.training_run_approve(run=first, user=signer())
    first_version = Candidate.objects.get(run=first).version
    first = services.training_run_approve(run=first, user=signer(), signature=signature_for(first_version))
    assert first.status == RunStatus.PROMOTED, first.error
    production = first.promoted_version
    # A much weaker learner must not replace it: the production gate fails and says by how much.
    weak = start(
        learners=[{"key": "decision_tree", "hyperparameters": {"max_depth": 2}}],
        gates={"r2_min": None, "beats_persistence": False, "not_worse_than_production": True},
        alias="production",
    )
    assert weak.status == RunStatus.REJECTED
    verdict = Candidate.objects.get(run=weak).gates[0]
    assert verdict["gate"] == "not_worse_than_production" and verdict["passed"] is False
    assert f"production v{production.number}" in verdict["message"] and "worse by" in verdict["message"]
    assert weak.baselines["production"]["version"] == production.number
    assert Alias.objects.get(soft_sensor=production.soft_sensor, name="production").version_id == production.pk
    # With approval required, an equally good run waits; approving moves the alias.
    held = start(
        gates={"r2_min": 0.95, "beats_persistence": False, "production_tolerance": 0.05},
        alias="production",
        require_approval=True,
        learners=[
            {"key": "random_forest", "hyperparameters": {"n_estimators": 30, "max_depth": 12, "random_state": 1}}
        ],
    )
    assert held.status == RunStatus.AWAITING_APPROVAL, held.error
    assert TrainingStep.objects.get(run=held, name="promote").status == StepStatus.WAITING
    assert Alias.objects.get(soft_sensor=production.soft_sensor, name="production").version_id == production.pk
    new = Candidate.objects.get(run=held).version
    approved = services.training_run_approve(
        run=held, user=role_users["admin"], note="Approved by the admin", signature=signature_for(new)
    )
    assert approved.status == RunStatus.PROMOTED
    assert Alias.objects.get(soft_sensor=production.soft_sensor, name="production").version_id == new.pk
    move = AliasMove.objects.filter(alias_name="production").first()
    assert (
        move.from_version_id == production.pk and move.moved_by == role_users["admin"] and "Approved by" in move.reason
    )
    assert move.signature.signer_username == "test-admin" and move.signature.meaning == "approved"


def test_several_learners_compete_and_one_failing_does_not_sink_the_run(start):
    run = start(
        learners=[
            {"key": "linear"},
            {"key": "pls", "hyperparameters": {"n_components": 4}},
            {"key": "hist_gradient_boosting", "hyperparameters": {"max_iter": 100}},
            {"key": "svr", "hyperparameters": {"C": "not-a-number"}},
        ],
        gates={"r2_min": 0.5, "beats_persistence": False},
        alias="",
    )
    by = {c.learner: c for c in Candidate.objects.filter(run=run)}
    assert by["svr"].status == "failed" and "could not convert" in by["svr"].error
    assert TrainingStep.objects.get(run=run, name="train:svr").status == StepStatus.FAILED
    trained = [c for c in by.values() if c.status == "trained"]
    assert len(trained) == 3 and all(c.version is not None for c in trained)
    assert run.status == RunStatus.REGISTERED  # no alias asked: registered only
    best = min((c for c in trained if c.passed), key=lambda c: c.metrics["as_deployed"]["overall"]["rmse"])
    assert run.best_candidate_id == best.pk
    assert ModelVersion.objects.filter(training_run_id=str(run.uid)).count() == 3


def test_a_transient_store_error_is_retried_by_celery_and_the_run_completes(start, monkeypatch):
    from apps.common.errors import ServiceUnavailable
    from apps.training import dataset

    real = dataset.batches_load
    calls = []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ServiceUnavailable("The time-series store is unavailable: connection reset")
        return real(**kwargs)

    monkeypatch.setattr(dataset, "batches_load", flaky)
    run = start(gates={"r2_min": 0.9, "beats_persistence": False})
    assert len(calls) == 2
    assert run.status == RunStatus.PROMOTED, run.error
    load = TrainingStep.objects.get(run=run, name="load")
    assert load.attempts == 2 and load.status == StepStatus.SUCCEEDED and load.error == ""


def test_a_non_transient_error_fails_the_run_naming_the_step(start, monkeypatch):
    from apps.training import dataset

    def broken(*args, **kwargs):
        raise ValueError("corrupt alignment")

    monkeypatch.setattr(dataset, "dataset_align", broken)
    with pytest.raises(ValueError, match="corrupt alignment"):
        start()
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.FAILED and run.error == "preprocess: ValueError: corrupt alignment"
    step = TrainingStep.objects.get(run=run, name="preprocess")
    assert step.status == StepStatus.FAILED and step.attempts == 1
    assert TrainingStep.objects.get(run=run, name="split").status == StepStatus.PENDING
    assert not ModelVersion.objects.exists()
    with pytest.raises(Exception, match="has failed"):
        services.step_split(run_id=run.pk)

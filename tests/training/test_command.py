"""``registry_train`` on IndPenSim, and the R learner (rpart through the registry's R runtime)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.registry.models import Alias, ModelVersion
from apps.training.models import Candidate, RunStatus, TrainingRun
from tests.services import r_available, require

from .conftest import EIGHT, PROJECT_ID

pytestmark = pytest.mark.django_db
BASE = [
    "--project",
    PROJECT_ID,
    "--target",
    "penicillin_concentration",
    "--device",
    "R1",
    "--batches",
    "batch_92",
    "batch_93",
    "batch_96",
    "batch_98",
    "--holdout",
    "batch_98",
    "--features",
    *EIGHT,
]


def run(*args: str) -> str:
    out = StringIO()
    call_command("registry_train", *args, stdout=out, no_progress=True)
    return out.getvalue()


def test_command_trains_reports_gates_and_promotes(project):
    text = run(
        *BASE,
        "--learner",
        "random_forest:n_estimators=30,max_depth=12",
        "--learner",
        "decision_tree:max_depth=6",
        "--r2-min",
        "0.9",
        "--no-persistence-gate",
        "--alias",
        "staging",
    )
    run_ = TrainingRun.objects.get()
    assert run_.status == RunStatus.PROMOTED
    assert "baseline persistence: R²" in text and "random_forest v" in text and "decision_tree v" in text
    assert "ok r2_min" in text and f"status: {RunStatus.PROMOTED}" in text
    best = Candidate.objects.get(pk=run_.best_candidate_id)
    assert Alias.objects.get(name="staging").version_id == best.version_id
    assert best.metrics["as_deployed"]["overall"]["rmse"] == min(
        c.metrics["as_deployed"]["overall"]["rmse"] for c in Candidate.objects.all()
    )


def test_command_refuses_bad_input_without_writing(project):
    with pytest.raises(CommandError, match="split.holdout: name at least one batch"):
        run("--project", PROJECT_ID, "--target", "penicillin_concentration", "--batches", "batch_92", "batch_98")
    with pytest.raises(CommandError, match="unknown learner 'gbm'"):
        run(*BASE, "--learner", "gbm")
    assert TrainingRun.objects.count() == 0 and ModelVersion.objects.count() == 0


@pytest.mark.r_runtime
def test_r_rpart_learner_trains_in_r_and_is_served_by_the_registry(project):
    require(r_available(), "R (Rscript with rpart)")
    from tests.predicting import predict_matrix

    text = run(*BASE, "--learner", "r_rpart", "--r2-min", "0.8", "--no-persistence-gate", "--alias", "")
    candidate = Candidate.objects.select_related("version").get(learner="r_rpart")
    assert candidate.status == "trained", candidate.error
    assert candidate.metrics["as_deployed"]["overall"]["r2"] >= 0.8, text
    version = candidate.version
    assert version.flavor == "r-rds" and version.status == "online"
    assert version.descriptor["model_description"]["language"][0]["name"] == "R"
    envelope = version.training_data["envelope"]
    row = [[(envelope[f]["min"] + envelope[f]["max"]) / 2 for f in [*EIGHT, "batch_age"]]]
    import numpy as np

    value = predict_matrix(version, np.array(row)).predictions[0]
    assert np.isfinite(value)

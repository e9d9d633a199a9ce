"""The training workflow on real IndPenSim batches: train on 92, 93, 96, hold out 98."""
from __future__ import annotations

import pytest

from apps.training import services
from apps.training.models import Candidate, RunStatus, TrainingStep

from .conftest import run_config

pytestmark = pytest.mark.django_db


def test_random_forest_with_batch_age_on_held_out_batch_98(project, role_users, eager_celery, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.training_run_start(user=role_users["modeler"], project=project, data=run_config())
    run.refresh_from_db()
    candidate = Candidate.objects.get(run=run, learner="random_forest")
    r2 = candidate.metrics["overall"]["r2"]
    print(run.status, run.error, candidate.metrics["overall"], run.baselines["persistence"])
    print(candidate.gates)
    assert r2 >= 0.95

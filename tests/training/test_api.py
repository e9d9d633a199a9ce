"""Training API and pages: permissions, validation with clear 400s, progress JSON, approve/promote."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.training.models import Candidate, RunStatus, TrainingRun, TrainingStep
from tests.conftest import CALLERS

from .conftest import PROJECT_ID, run_config

pytestmark = pytest.mark.django_db
START = "api:training-run-start"


def body(**overrides):
    return {"project_id": PROJECT_ID, **run_config(**overrides)}


@pytest.mark.parametrize("caller", CALLERS)
def test_only_modelers_and_admins_may_start_runs(caller, project, api_client_for, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = api_client_for(caller).post(reverse(START), body(), format="json")
    expected = {"anonymous": 401, "outsider": 403, "operator": 403, "manager": 403, "modeler": 202, "admin": 202}[
        caller
    ]
    assert response.status_code == expected, response.content
    if expected == 202:
        data = response.json()
        assert data["status"] == "queued" and data["project_id"] == PROJECT_ID
        assert [s["name"] for s in data["steps"]][:3] == ["load", "preprocess", "split"]
        assert data["config"]["features"][-1] == "batch_age"
        assert data["config"]["lab_delay_seconds"] == 4 * 3600 and len(data["config"]["phases"]) == 4
    else:
        assert TrainingRun.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "message", "field"),
    [
        ({"split": {"kind": "random", "test_size": 0.2}}, "Random row splits are refused", "split.kind"),
        (
            {"batches": ["batch_92", "batch_404"], "split": {"kind": "batches", "holdout": ["batch_404"]}},
            "batch_404 not found in the store",
            "batches",
        ),
        ({"learners": ["random_forest", "xgboost"]}, "unknown learner 'xgboost'", "learners"),
        (
            {"learners": [{"key": "random_forest", "hyperparameters": {"trees": 5}}]},
            "unknown trees",
            "learners.random_forest.hyperparameters",
        ),
        ({"features": ["temperature", "penicillin_concentration"]}, "cannot be an input", "features"),
        ({"gates": {"r2_min": "high"}}, "gates.r2_min: must be a number", "gates.r2_min"),
        ({"model_id": "my model"}, "model_id: must look like", "model_id"),
    ],
)
def test_bad_requests_are_400_naming_the_field_and_write_nothing(project, api_client_for, overrides, message, field):
    response = api_client_for("modeler").post(reverse(START), body(**overrides), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert message in error["message"]
    assert field in error["details"]
    assert TrainingRun.objects.count() == TrainingStep.objects.count() == Candidate.objects.count() == 0


def test_progress_json_and_promote_on_request(
    project, api_client_for, role_users, eager_celery, django_capture_on_commit_callbacks
):
    client = api_client_for("modeler")
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(
            reverse(START),
            body(gates={"r2_min": 0.95, "beats_persistence": False}, alias="staging", require_approval=True),
            format="json",
        )
    assert started.status_code == 202
    run_id = started.json()["id"]
    detail = client.get(reverse("api:training-run-detail", args=[run_id])).json()
    assert detail["status"] == RunStatus.AWAITING_APPROVAL
    assert {s["name"]: s["status"] for s in detail["steps"]}["promote"] == "waiting"
    (candidate,) = detail["candidates"]
    assert candidate["passed"] is True and candidate["version"] == 1
    assert candidate["metrics"]["as_deployed"]["overall"]["r2"] >= 0.95
    assert {g["gate"] for g in candidate["gates"]} == {"r2_min", "not_worse_than_production"}
    listing = client.get(reverse("api:training-run-list")).json()["results"]
    assert [r["id"] for r in listing] == [run_id]
    # Operators cannot approve; a modeler moves production directly, with a reason recorded.
    assert (
        api_client_for("operator")
        .post(reverse("api:training-run-approve", args=[run_id]), {}, format="json")
        .status_code
        == 403
    )
    # production needs the mover's electronic signature, bound to the candidate version's sha256.
    unsigned = client.post(
        reverse("api:training-run-promote", args=[run_id]),
        {"alias": "production", "reason": "validated by the lab on batch 98"},
        format="json",
    )
    assert unsigned.status_code == 403 and unsigned.json()["error"]["code"] == "signature_refused"
    signature = {"password": "correct-horse-battery", "meaning": "approved", "sha256": candidate["version_sha256"]}
    promoted = client.post(
        reverse("api:training-run-promote", args=[run_id]),
        {"alias": "production", "reason": "validated by the lab on batch 98", "signature": signature},
        format="json",
    )
    assert promoted.status_code == 200, promoted.content
    assert promoted.json()["status"] == RunStatus.PROMOTED
    from apps.registry.models import AliasMove

    move = AliasMove.objects.get(alias_name="production")
    assert move.reason.startswith("validated by the lab on batch 98") and move.moved_by == role_users["modeler"]
    # Approving now is a conflict (nothing waits any more), with the common error body.
    again = client.post(reverse("api:training-run-approve", args=[run_id]), {}, format="json")
    assert again.status_code == 409 and "not awaiting approval" in again.json()["error"]["message"]


def test_options_list_batches_variables_and_learners(project, api_client_for):
    data = api_client_for("modeler").get(reverse("api:training-options"), {"project_id": PROJECT_ID}).json()
    assert [b["batch_id"] for b in data["batches"]] == ["batch_92", "batch_93", "batch_96", "batch_98"]
    assert "penicillin_concentration" in data["variables"] and "temperature" in data["variables"]
    assert "paa_concentration" not in data["variables"]  # lab-only variables are neither inputs nor targets
    assert "penicillin_concentration" in data["with_lab"]
    assert {"random_forest", "svr", "pls", "r_rpart"} <= {item["key"] for item in data["learners"]}


def test_train_pages(project, client, role_users, django_capture_on_commit_callbacks):
    page = reverse("training:page")
    assert client.get(page).status_code == 302  # anonymous → login
    client.force_login(role_users["operator"])
    assert client.get(page).status_code == 403
    client.force_login(role_users["modeler"])
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Train a soft sensor" in html and 'value="P0001"' in html and "Random forest" in html
    from apps.training.services import training_run_create

    run = training_run_create(user=role_users["modeler"], project=project, data=run_config())
    response = client.get(reverse("training:run", args=[run.pk]))
    assert response.status_code == 200
    assert reverse("api:training-run-detail", args=[run.pk]) in response.content.decode()
    home = client.get(reverse("dashboard:home", kwargs={"role": "modeler"})).content.decode()
    assert 'data-testid="link-training"' in home and page in home


def test_a_broker_outage_fails_the_run_with_the_reason_instead_of_a_500(
    project, api_client_for, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from apps.training.services import runs

    class Down:
        def apply_async(self, *args, **kwargs):
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(runs, "workflow_signature", lambda run: Down())
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for("modeler").post(reverse(START), body(), format="json")
    assert response.status_code == 202
    run = TrainingRun.objects.get()
    assert (
        run.status == RunStatus.FAILED
        and "task broker is unavailable" in run.error
        and "Connection refused" in run.error
    )

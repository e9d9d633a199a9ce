"""Training plans: the batches a trigger chooses, one run per trigger occurrence, none while a run of the plan
works, drift alerts and the lab-error rule as triggers, the schedule as a beat entry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.common.errors import ValidationFailed
from apps.training import services
from apps.training.models import RunStatus, RunTrigger, TrainingPlan, TrainingRun

from .conftest import DEVICE, EIGHT, TARGET

CONFIG = {
    "target": TARGET,
    "features": EIGHT,
    "learners": [{"key": "random_forest", "hyperparameters": {"n_estimators": 10, "max_depth": 6}}],
    "gates": {"r2_min": 0.5, "beats_persistence": False},
    "alias": "challenger",
}


@pytest.fixture
def deployment(project, role_users):
    from apps.orchestrator.services import deployment_create
    from tests.orchestrator.helpers import register_rf

    version, _ = register_rf(user=role_users["modeler"])
    return deployment_create(name="live", soft_sensor=version.soft_sensor, alias="production")


def plan(project, user, **fields):
    data = {
        "name": "weekly",
        "project": project,
        "config": CONFIG,
        "device_id": DEVICE,
        "window_days": 3650,
        "holdout_newest": 1,
        "quiet_seconds": 0,
        **fields,
    }
    return services.training_plan_create(user=user, **data)


def test_the_batch_rule_chooses_completed_batches_newest_held_out(project, role_users):
    weekly = plan(project, role_users["modeler"])
    assert services.plan_batches(weekly) == (["batch_92", "batch_93", "batch_96", "batch_98"], ["batch_98"])
    weekly.batch_pattern, weekly.holdout_newest = "batch_9[23]", 1
    assert services.plan_batches(weekly) == (["batch_92", "batch_93"], ["batch_93"])
    weekly.window_days = 1  # every batch ended months ago
    assert services.plan_batches(weekly) == ([], [])
    weekly.window_days, weekly.quiet_seconds = 3650, 10 * 365 * 86400  # nothing is "complete" yet
    assert services.plan_batches(weekly)[0] == []


def test_one_run_per_trigger_and_none_while_one_works(project, role_users):
    weekly = plan(project, role_users["modeler"])
    run = services.training_plan_trigger(plan_id=weekly.pk, trigger=RunTrigger.SCHEDULE, key="schedule:tick-1")
    assert run.status == RunStatus.QUEUED and run.plan_id == weekly.pk and run.trigger == RunTrigger.SCHEDULE
    assert run.created_by == role_users["modeler"]  # the plan's owner
    assert run.trigger_detail["batches"] == ["batch_92", "batch_93", "batch_96", "batch_98"]
    assert run.trigger_detail["split"] == {"kind": "batches", "holdout": ["batch_98"]}
    assert run.config["alias"] == "challenger" and run.config["gates"]["r2_min"] == 0.5
    # The same occurrence delivered again: the same run.
    again = services.training_plan_trigger(plan_id=weekly.pk, trigger=RunTrigger.SCHEDULE, key="schedule:tick-1")
    assert again.pk == run.pk
    # Another occurrence while the run is still queued: skipped, and the plan says why.
    assert services.training_plan_trigger(plan_id=weekly.pk, trigger=RunTrigger.SCHEDULE, key="schedule:2") is None
    weekly.refresh_from_db()
    assert weekly.trigger_state["last_skipped"]["reason"] == f"run {run.pk} of the plan is still queued"
    assert TrainingRun.objects.count() == 1
    # Once it has finished, the next occurrence starts a run.
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.REJECTED)
    second = services.training_plan_trigger(plan_id=weekly.pk, trigger=RunTrigger.SCHEDULE, key="schedule:3")
    assert second is not None and second.pk != run.pk and TrainingRun.objects.count() == 2
    # A disabled plan starts nothing.
    services.training_plan_update(plan=weekly, data={"enabled": False})
    TrainingRun.objects.update(status=RunStatus.FAILED)
    assert services.training_plan_trigger(plan_id=weekly.pk, trigger=RunTrigger.SCHEDULE, key="schedule:4") is None


def test_a_trigger_without_enough_data_is_skipped_with_the_reason(project, role_users):
    narrow = plan(project, role_users["modeler"], batch_pattern="batch_98")
    assert services.training_plan_trigger(plan_id=narrow.pk, trigger=RunTrigger.SCHEDULE, key="s:1") is None
    narrow.refresh_from_db()
    assert "leaves none to train on" in narrow.trigger_state["last_skipped"]["reason"]


def test_a_drift_alert_on_the_deployment_triggers_once(
    project, role_users, deployment, eager_celery, django_capture_on_commit_callbacks
):
    from apps.drift.models import DriftJob, DriftResult
    from apps.drift.services import alert_raise

    watching = plan(project, role_users["modeler"], deployment=deployment, on_drift_alert=True)
    job = DriftJob.objects.create(
        name="psi", deployment=deployment, detector="psi", reference={"kind": "training"}, test={"kind": "recent"}
    )
    result = DriftResult.objects.create(
        job=job, deployment=deployment, trigger="manual", detector="psi", drift=True, score=2.0, threshold=1.0
    )
    with django_capture_on_commit_callbacks(execute=True):
        alert = alert_raise(job=job, result=result)
    with django_capture_on_commit_callbacks(execute=True):
        alert_raise(job=job, result=result)  # a repeated verdict updates the open alert: no new trigger
    (run,) = TrainingRun.objects.filter(plan=watching)
    assert run.trigger == RunTrigger.DRIFT_ALERT and run.trigger_key == f"drift_alert:{alert.pk}"
    assert run.trigger_detail["alert"] == alert.pk
    # The signal delivered twice (e.g. a retried receiver) still makes one run.
    services.plans_on_alert_opened(alert_id=alert.pk, deployment_id=deployment.pk)
    assert TrainingRun.objects.filter(plan=watching).count() == 1


def test_the_lab_error_rule_fires_once_per_crossing(project, role_users, deployment):
    from apps.drift.models import LabResidual

    watching = plan(project, role_users["modeler"], deployment=deployment, lab_error_threshold=1.0, lab_error_samples=3)
    start = timezone.now() - timedelta(days=1)

    def residuals(*values):
        first = LabResidual.objects.count()
        for i, value in enumerate(values):
            LabResidual.objects.create(
                deployment=deployment,
                project_name="penicillin",
                device_id=DEVICE,
                batch_id="batch_98",
                target=TARGET,
                lab_time=start + timedelta(hours=first + i),
                prediction_time=start,
                lab_value=10.0,
                predicted_value=10.0 - value,
                residual=value,
                model_id="m",
                version="1",
            )

    residuals(0.5, 0.4)
    assert services.plans_check_lab_error()["weekly"] == {"samples": 2, "fired": False}  # not enough samples
    residuals(0.3)
    assert services.plans_check_lab_error()["weekly"]["fired"] is False  # RMSE 0.41 ≤ 1
    residuals(2.0, 2.5)  # RMSE of (0.3, 2.0, 2.5) = 1.86 > 1: crosses
    outcome = services.plans_check_lab_error()["weekly"]
    assert outcome["above"] and outcome["fired"]
    run = TrainingRun.objects.get(plan=watching)
    assert run.trigger == RunTrigger.LAB_ERROR and run.trigger_detail["rmse"] == pytest.approx(
        ((0.3**2 + 2.0**2 + 2.5**2) / 3) ** 0.5
    )
    TrainingRun.objects.update(status=RunStatus.REJECTED)
    residuals(3.0)
    assert services.plans_check_lab_error()["weekly"]["fired"] is False  # still above: no new run
    residuals(0.1, 0.1, 0.1)
    assert services.plans_check_lab_error()["weekly"]["above"] is False
    residuals(4.0, 4.0)
    assert services.plans_check_lab_error()["weekly"]["fired"]  # crossed again
    assert TrainingRun.objects.filter(plan=watching).count() == 2


def test_the_schedule_is_a_beat_entry(project, role_users):
    import json

    from django_celery_beat.models import PeriodicTask

    weekly = plan(project, role_users["modeler"], schedule="0 3 * * 1")
    task = PeriodicTask.objects.get(pk=weekly.periodic_task_id)
    assert task.task == "training.plan_trigger" and json.loads(task.kwargs) == {
        "plan_id": weekly.pk,
        "trigger": "schedule",
    }
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "3", "1")
    services.training_plan_update(plan=weekly, data={"schedule": "30 2 * * *", "enabled": False})
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.enabled) == ("30", "2", False)
    services.training_plan_update(plan=weekly, data={"schedule": ""})
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()
    with pytest.raises(ValidationFailed, match="crontab"):
        services.training_plan_update(plan=weekly, data={"schedule": "weekly"})
    services.training_plan_delete(plan=TrainingPlan.objects.get(pk=weekly.pk))


def test_a_plan_is_validated_like_a_run(project, role_users):
    with pytest.raises(ValidationFailed) as batches:
        plan(project, role_users["modeler"], config={**CONFIG, "batches": ["batch_92"]})
    assert "chosen by the plan's batch rule" in batches.value.details["config"]
    with pytest.raises(ValidationFailed) as no_deployment:
        plan(project, role_users["modeler"], on_drift_alert=True)
    assert "deployment" in no_deployment.value.details
    with pytest.raises(ValidationFailed, match="learner"):
        plan(project, role_users["modeler"], config={**CONFIG, "learners": ["no_such_learner"]})
    assert not TrainingPlan.objects.exists()


def test_plans_over_the_api(project, api_client_for):
    client = api_client_for("modeler")
    body = {
        "name": "api-plan",
        "project_id": "P0001",
        "config": CONFIG,
        "device_id": DEVICE,
        "window_days": 3650,
        "holdout_newest": 1,
        "quiet_seconds": 0,
    }
    created = client.post("/api/v1/training/plans/create/", body, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    detail = client.get(f"/api/v1/training/plans/{pk}/").json()
    assert detail["batches_now"] == {
        "batches": ["batch_92", "batch_93", "batch_96", "batch_98"],
        "holdout": ["batch_98"],
    }
    started = client.post(f"/api/v1/training/plans/{pk}/trigger/")
    assert started.status_code == 202 and started.json()["trigger"] == "manual"
    busy = client.post(f"/api/v1/training/plans/{pk}/trigger/")
    assert busy.status_code == 409 and "still queued" in busy.json()["error"]["message"]
    bad = client.post("/api/v1/training/plans/create/", {**body, "name": "bad", "schedule": "often"}, format="json")
    assert bad.status_code == 400 and "schedule" in bad.json()["error"]["details"]
    assert api_client_for("operator").get("/api/v1/training/plans/").status_code == 403

"""Drift jobs on real IndPenSim batches read from the time-series store: results, alerts, acknowledgement."""
from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from apps.common.errors import Conflict, ValidationFailed
from apps.drift import services
from apps.drift.models import Alert, DriftJob, DriftResult, ResultStatus, Severity

from .conftest import INPUTS

LOG_PHASE = {"kind": "phase", "phase": "log"}


def psi_job(deployment, user, name: str, batch: str, **extra):
    return services.drift_job_create(
        user=user, name=name, deployment=deployment, detector="psi", params={},
        reference={"kind": "training"}, test={**LOG_PHASE, "batch_id": batch}, **extra,
    )


@pytest.mark.django_db
def test_psi_job_flags_faulty_batch_91_and_not_98(deployment, store_batches, role_users):
    modeler = role_users["modeler"]
    faulty = psi_job(deployment, modeler, "psi-log-91", "batch_91")
    quiet = psi_job(deployment, modeler, "psi-log-98", "batch_98")

    result = services.drift_job_run(job=faulty, user=modeler)
    assert result.pk is not None and result.status == ResultStatus.SUCCEEDED, result.error
    assert result.drift is True
    assert result.verdict_rule == "calibrated" and result.threshold == 1.0 and result.score > 1.0
    # the calibration rule and its data are stored with the result; only reference batches were used
    calibration = result.details["calibration"]
    assert calibration["rule"]["margin"] == 0.5
    assert set(calibration["held_out_quantiles"]) == {"penicillin/R1/batch_92", "penicillin/R1/batch_93"}
    assert "sugar_feed_rate" in result.details["flagged_components"]
    assert "sugar_feed_rate" in result.explanation
    # the windows used: the training batches and the test batch, each cut to the log phase (30–120 h)
    assert [s["batch_id"] for s in result.reference_window["segments"]] == ["batch_92", "batch_93"]
    assert result.test_window["segments"][0]["batch_id"] == "batch_91"
    assert result.test_window["phase"] == "log:30-120"
    assert result.reference_window["columns"] == list(INPUTS)
    assert 440 <= result.test_window["rows"] <= 452  # 90 h at one row per 12 min
    assert result.runtime_ms > 0

    alert = Alert.objects.get(job=faulty)
    assert alert.is_open and alert.result == result and alert.severity in Severity.values
    assert "psi-log-91" in alert.message

    calm = services.drift_job_run(job=quiet, user=modeler)
    assert calm.status == ResultStatus.SUCCEEDED and calm.drift is False, calm.explanation
    assert calm.score < 1.0
    assert not Alert.objects.filter(job=quiet).exists()


@pytest.mark.django_db
def test_repeated_drift_updates_the_active_alert_until_it_is_resolved(deployment, store_batches, role_users):
    job = psi_job(deployment, role_users["modeler"], "psi-log-91", "batch_91")
    first = services.drift_job_run(job=job)
    second = services.drift_job_run(job=job)
    assert first.drift and second.drift
    alert = Alert.objects.get(job=job)  # one open alert, not two
    assert alert.occurrences == 2 and alert.result == first and alert.last_result == second

    services.alert_acknowledge(alert=alert, user=role_users["operator"], note="seen, feed pump checked")
    alert.refresh_from_db()
    assert not alert.is_open and alert.acknowledged_by == role_users["operator"]
    assert alert.acknowledge_note == "seen, feed pump checked"
    with pytest.raises(Conflict):
        services.alert_acknowledge(alert=alert, user=role_users["operator"])

    third = services.drift_job_run(job=job)  # drift again: the acknowledged alert is updated, not reopened
    assert third.drift
    alert.refresh_from_db()
    assert Alert.objects.filter(job=job).count() == 1
    assert alert.state == "acknowledged" and alert.occurrences == 3 and alert.last_result == third

    services.alert_resolve(alert=alert, user=role_users["modeler"], reason="feed pump replaced")
    fourth = services.drift_job_run(job=job)  # drift after a resolution opens a new alert
    assert Alert.objects.filter(job=job).count() == 2
    assert Alert.objects.get(job=job, state="open").result == fourth


@pytest.mark.django_db
def test_multivariate_and_univariate_variables(deployment, store_batches, role_users):
    """MMD gets the model's inputs by default; a univariate job may name its own variables."""
    mmd = services.drift_job_create(
        user=role_users["modeler"], name="mmd-91", deployment=deployment, detector="mmd",
        params={"permutations": 50}, reference={"kind": "batches", "batches": [92, 93]},
        test={**LOG_PHASE, "batch_id": "batch_91"}, calibration={"bootstrap": 5})
    result = services.drift_job_run(job=mmd)
    assert result.status == ResultStatus.SUCCEEDED, result.error
    assert result.variables == list(INPUTS) and result.p_value is not None
    assert result.details["calibration"]["rule"]["bootstrap"] == 5

    ks = services.drift_job_create(
        user=role_users["modeler"], name="ks-temp", deployment=deployment, detector="ks",
        variables=["temperature"], reference={"kind": "batches", "batches": ["batch_92"]},
        test={"kind": "last_points", "n": 100, "batch_id": "batch_98"})
    result = services.drift_job_run(job=ks)
    assert result.status == ResultStatus.SUCCEEDED, result.error
    assert result.variables == ["temperature"] and result.test_window["rows"] == 100
    # one reference batch cannot be calibrated: the nominal rule decides, and says why
    assert result.verdict_rule == "nominal"
    assert "two reference batches" in result.details["nominal_reason"]


@pytest.mark.django_db
def test_run_without_data_is_a_stored_failure(deployment, store_batches, role_users):
    job = services.drift_job_create(user=role_users["modeler"], name="psi-missing", deployment=deployment,
                                    detector="psi", reference={"kind": "batches", "batches": [92, 95]},
                                    test={**LOG_PHASE, "batch_id": "batch_91"})
    result = services.drift_job_run(job=job)
    assert result.status == ResultStatus.FAILED and not result.drift
    assert "batch_95" in result.error
    assert DriftResult.objects.filter(job=job, status=ResultStatus.FAILED).count() == 1
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_job_validation_names_the_field(deployment, role_users):
    def create(**changes):
        data = dict(name="j", deployment=deployment, detector="psi", reference={"kind": "training"},
                    test=LOG_PHASE)
        data.update(changes)
        return services.drift_job_create(user=role_users["modeler"], **data)

    cases = {
        "params.bins": dict(params={"bins": 1}),
        "params.nope": dict(params={"nope": 3}),
        "detector": dict(detector="cusum"),
        "test.phase": dict(test={"kind": "phase", "phase": "exponential"}),
        "test.kind": dict(test={"kind": "yesterday"}),
        "reference.batches": dict(reference={"kind": "batches", "batches": []}),
        "reference.end": dict(reference={"kind": "time_range", "start": "2026-01-02T00:00:00Z",
                                         "end": "2026-01-01T00:00:00Z"}),
        "calibration.margin": dict(calibration={"margin": -1}),
        "schedule_seconds": dict(schedule_seconds=1),
        "name": dict(name="not a slug"),
    }
    for field, changes in cases.items():
        with pytest.raises(ValidationFailed) as caught:
            create(**changes)
        assert caught.value.message.startswith(field), (field, caught.value.message)
    assert not DriftJob.objects.exists()


@pytest.mark.django_db
def test_schedule_creates_updates_and_removes_the_beat_entry(deployment, role_users):
    job = services.drift_job_create(user=role_users["modeler"], name="psi-beat", deployment=deployment,
                                    detector="psi", reference={"kind": "training"}, test=LOG_PHASE,
                                    schedule_seconds=600)
    task = PeriodicTask.objects.get(pk=job.periodic_task_id)
    assert task.task == "drift.run_job" and task.interval.every == 600 and task.enabled
    assert f'"job_id": {job.pk}' in task.kwargs

    job = services.drift_job_update(job=job, data={"schedule_seconds": 60, "enabled": False})
    task.refresh_from_db()
    assert task.interval.every == 60 and not task.enabled

    services.drift_job_update(job=job, data={"schedule_seconds": None})
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()

    job = services.drift_job_update(job=job, data={"schedule_seconds": 120})
    task_id = job.periodic_task_id
    services.drift_job_delete(job=job)
    assert not PeriodicTask.objects.filter(pk=task_id).exists()


@pytest.mark.django_db
def test_beat_task_runs_the_job(deployment, store_batches, role_users):
    from apps.drift.tasks import run_job

    job = psi_job(deployment, role_users["modeler"], "psi-task", "batch_98")
    result_id = run_job(job.pk)
    result = DriftResult.objects.get(pk=result_id)
    assert result.trigger == "beat" and result.job == job and result.status == "succeeded"
    services.drift_job_update(job=job, data={"enabled": False})
    assert run_job(job.pk) is None


@pytest.mark.django_db
def test_lab_scoring_beat_entry_exists_after_migrate():
    task = PeriodicTask.objects.get(name=services.LAB_SCORING_TASK_NAME)
    assert task.task == "drift.lab_scoring_refresh" and task.enabled

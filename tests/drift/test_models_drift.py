"""Database rules of the drift models: one open alert per job, deployment xor soft sensor, phase settings."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.drift.models import Alert, DriftJob, DriftResult, ProjectDriftSettings

SPEC = {"reference": {"kind": "training"}, "test": {"kind": "phase", "phase": "log"}}


@pytest.mark.django_db
def test_one_active_alert_per_job_is_enforced_by_the_database(deployment):
    job = DriftJob.objects.create(name="j", deployment=deployment, detector="psi", **SPEC)
    result = DriftResult.objects.create(job=job, trigger="manual", detector="psi", drift=True, score=2.0,
                                        threshold=1.0)
    first = Alert.objects.create(job=job, result=result, last_result=result, severity="warning", message="m")
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(job=job, result=result, last_result=result, severity="warning", message="m")
    first.state = "acknowledged"
    first.save()
    with pytest.raises(IntegrityError), transaction.atomic():  # acknowledged is still active
        Alert.objects.create(job=job, result=result, last_result=result, severity="warning", message="m")
    first.state = "resolved"
    first.save()
    second = Alert.objects.create(job=job, result=result, last_result=result, severity="critical", message="m")
    assert second.is_open and not first.is_active


@pytest.mark.django_db
def test_a_job_watches_a_deployment_or_a_soft_sensor_not_both(deployment):
    with pytest.raises(IntegrityError), transaction.atomic():
        DriftJob.objects.create(name="both", deployment=deployment, soft_sensor=deployment.soft_sensor,
                                detector="psi", **SPEC)
    with pytest.raises(IntegrityError), transaction.atomic():
        DriftJob.objects.create(name="neither", detector="psi", **SPEC)
    assert DriftJob.objects.create(name="ss", soft_sensor=deployment.soft_sensor, detector="psi", **SPEC).pk


@pytest.mark.django_db
def test_project_phases_are_checked():
    ProjectDriftSettings(project_name="p", phases="early:0-10,late:10-").full_clean()
    with pytest.raises(ValidationError, match="overlap"):
        ProjectDriftSettings(project_name="p", phases="a:0-20,b:10-30").full_clean()
    with pytest.raises(ValidationError, match="phases"):
        ProjectDriftSettings(project_name="p", phases="nonsense").full_clean()


@pytest.mark.django_db
def test_lists_do_not_query_per_row(deployment, api_client_for, django_assert_max_num_queries):
    client = api_client_for("manager")
    for i in range(6):
        job = DriftJob.objects.create(name=f"j{i}", deployment=deployment, detector="psi", **SPEC)
        result = DriftResult.objects.create(job=job, deployment=deployment, soft_sensor=deployment.soft_sensor,
                                            trigger="manual", detector="psi", drift=True, score=2.0, threshold=1.0)
        Alert.objects.create(job=job, result=result, last_result=result, severity="warning", message="m")
    for path in ("/api/v1/drift/jobs", "/api/v1/drift/results", "/api/v1/drift/alerts"):
        with django_assert_max_num_queries(8):
            response = client.get(path)
        assert response.status_code == 200 and response.json()["count"] == 6


@pytest.mark.django_db
def test_admin_pages(deployment, role_users, client):
    client.force_login(role_users["admin"])
    job = DriftJob.objects.create(name="j", deployment=deployment, detector="psi", **SPEC)
    for model in ("driftjob", "driftresult", "alert", "labresidual", "labscoringsettings", "projectdriftsettings"):
        assert client.get(f"/admin/drift/{model}/").status_code == 200, model
    assert client.get(f"/admin/drift/driftjob/{job.pk}/change/").status_code == 200
    response = client.post("/admin/drift/driftjob/add/", {
        "name": "bad", "deployment": deployment.pk, "detector": "psi", "params": '{"bins": 1}', "variables": "[]",
        "reference": '{"kind": "training"}', "test": '{"kind": "phase", "phase": "log"}',
        "verdict_rule": "calibrated", "calibration": "{}", "enabled": "on",
    })
    assert response.status_code == 200 and "params.bins" in response.content.decode()
    response = client.post("/admin/drift/driftjob/add/", {
        "name": "good", "deployment": deployment.pk, "detector": "psi", "params": "{}", "variables": "[]",
        "reference": '{"kind": "training"}', "test": '{"kind": "phase", "phase": "log"}',
        "verdict_rule": "calibrated", "calibration": "{}", "schedule_seconds": "300", "enabled": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    created = DriftJob.objects.get(name="good")
    assert created.params == {"threshold": 0.1, "bins": 10, "epsilon": 1e-4} and created.periodic_task is not None

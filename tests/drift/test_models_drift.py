"""Database rules of the drift models: one open alert per job, deployment xor soft sensor, phase settings."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.drift.models import Alert, DriftJob, DriftResult, ProjectDriftSettings

SPEC = {"reference": {"kind": "training"}, "test": {"kind": "phase", "phase": "log"}}


@pytest.mark.django_db
def test_one_open_alert_per_job_is_enforced_by_the_database(deployment):
    job = DriftJob.objects.create(name="j", deployment=deployment, detector="psi", **SPEC)
    result = DriftResult.objects.create(job=job, trigger="manual", detector="psi", drift=True, score=2.0,
                                        threshold=1.0)
    first = Alert.objects.create(job=job, result=result, last_result=result, severity="warning", message="m")
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(job=job, result=result, last_result=result, severity="warning", message="m")
    first.acknowledged_at = first.created_at
    first.save()
    second = Alert.objects.create(job=job, result=result, last_result=result, severity="critical", message="m")
    assert second.is_open and not first.is_open


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

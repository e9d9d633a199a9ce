"""Drift jobs: validation, beat schedules, create / update / delete, and a job's run (its live check)."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone
from stamm_drift import DataError

from apps.common.beat import periodic_task_delete, periodic_task_sync
from apps.common.errors import ApplicationError, ValidationFailed, reject_unknown_fields

from ..models import (
    DriftJob,
    DriftResult,
    ResultStatus,
    ResultTrigger,
    VerdictRule,
)
from .alerts import alert_raise, alerts_clear
from .evaluation import evaluate, result_row
from .validation import (
    calibration_rule_validate,
    detector_params_validate,
    target_resolve,
    variables_validate,
    window_specs_validate,
)

logger = logging.getLogger(__name__)


#: Shortest beat interval of a job.
MIN_SCHEDULE_SECONDS = 10
JOB_TASK = "drift.run_job"


# -- jobs -------------------------------------------------------------------------------------------

JOB_FIELDS = ("name", "description", "deployment", "soft_sensor", "detector", "params", "variables", "reference",
              "test", "verdict_rule", "calibration", "schedule_seconds", "enabled")


def _job_clean(job: DriftJob) -> None:
    """Validate every field of ``job`` in place (params and specs normalised); 400 naming the field."""
    import re

    if not job.name or not re.fullmatch(r"[-a-zA-Z0-9_]+", job.name):
        raise ValidationFailed("name: must be a non-empty slug (letters, digits, - and _)", details={"name": job.name})
    if DriftJob.objects.filter(name=job.name).exclude(pk=job.pk).exists():
        raise ValidationFailed(f"name: a drift job named {job.name!r} already exists", details={"name": job.name})
    if bool(job.deployment_id) == bool(job.soft_sensor_id):
        raise ValidationFailed("deployment: give either a deployment or a soft sensor, not both and not neither",
                               details={"deployment": "exactly one of deployment and soft_sensor"})
    cls, job.params = detector_params_validate(detector=job.detector, params=job.params)
    job.variables = variables_validate(job.variables)
    job.calibration = dataclasses.asdict(calibration_rule_validate(job.calibration)) if job.calibration else {}
    if job.verdict_rule not in VerdictRule.values:
        raise ValidationFailed(f"verdict_rule: expected one of {', '.join(VerdictRule.values)}",
                               details={"verdict_rule": job.verdict_rule})
    target = target_resolve(deployment=job.deployment, soft_sensor=job.soft_sensor)
    ref, tst = window_specs_validate(job.reference, job.test, detector=cls, target=target, allow_values=False)
    job.reference, job.test = ref.to_dict(), tst.to_dict()
    if job.schedule_seconds is not None and (
        isinstance(job.schedule_seconds, bool) or not isinstance(job.schedule_seconds, int)
        or job.schedule_seconds < MIN_SCHEDULE_SECONDS
    ):
        raise ValidationFailed(f"schedule_seconds: an integer ≥ {MIN_SCHEDULE_SECONDS}, or empty for none",
                               details={"schedule_seconds": job.schedule_seconds})


def _schedule_sync(job: DriftJob) -> None:
    """Create, update or remove the job's beat entry (django-celery-beat ``PeriodicTask``)."""

    def unlink() -> None:
        job.periodic_task = None
        job.save(update_fields=["periodic_task"])

    task = periodic_task_sync(
        current_id=job.periodic_task_id,
        name=job.periodic_task_name,
        task=JOB_TASK,
        kwargs={"job_id": job.pk, "trigger": ResultTrigger.BEAT},
        enabled=job.enabled,
        description=f"Drift job {job.name} ({job.detector})",
        unlink=unlink,
        every_seconds=job.schedule_seconds,
    )
    if task is not None and job.periodic_task_id != task.pk:
        job.periodic_task = task
        job.save(update_fields=["periodic_task"])


def drift_job_validate(*, job: DriftJob) -> None:
    """Validate (and normalise) an unsaved or edited job in place; the admin form calls this."""
    _job_clean(job)


def drift_job_schedule_sync(*, job: DriftJob) -> None:
    """Make the job's beat entry follow its schedule and enabled flag (after a save outside the services)."""
    _schedule_sync(job)


@transaction.atomic
def drift_job_create(*, user: Any = None, **data: Any) -> DriftJob:
    """Create a job (fields: ``JOB_FIELDS``), validated as a whole; its beat entry when scheduled."""
    reject_unknown_fields(data, JOB_FIELDS, what="drift job")
    job = DriftJob(created_by=user if getattr(user, "is_authenticated", False) else None, **data)
    _job_clean(job)
    job.save()
    _schedule_sync(job)
    return job


@transaction.atomic
def drift_job_update(*, job: DriftJob, data: Mapping[str, Any]) -> DriftJob:
    """Change some fields; the whole job is validated again and its beat entry follows."""
    reject_unknown_fields(data, JOB_FIELDS, what="drift job")
    job = DriftJob.objects.select_for_update().get(pk=job.pk)
    for name, value in data.items():
        setattr(job, name, value)
    if "deployment" in data and data["deployment"] is not None and "soft_sensor" not in data:
        job.soft_sensor = None
    if "soft_sensor" in data and data["soft_sensor"] is not None and "deployment" not in data:
        job.deployment = None
    if "detector" in data and "params" not in data:
        job.params = {}  # another detector's parameters do not carry over
    _job_clean(job)
    job.save()
    _schedule_sync(job)
    return job


@transaction.atomic
def drift_job_delete(*, job: DriftJob) -> None:
    """Delete the job with its results and alerts, and its beat entry."""
    task_id = job.periodic_task_id
    job.delete()
    periodic_task_delete(task_id)


def drift_job_run(*, job: DriftJob, trigger: str = ResultTrigger.MANUAL, user: Any = None) -> DriftResult:
    """Run the job now (its live check): store its result (``failed`` with the error when it cannot score),
    raise or update its alert on drift, resolve its active alert when it finds none."""
    started = time.perf_counter()
    base = {"job": job, "deployment": job.deployment, "soft_sensor": job.soft_sensor or (
        job.deployment.soft_sensor if job.deployment_id else None), "trigger": trigger, "params": job.params,
        "created_by": user if getattr(user, "is_authenticated", False) else None}
    try:
        target = target_resolve(deployment=job.deployment, soft_sensor=job.soft_sensor)
        cls, clean = detector_params_validate(detector=job.detector, params=job.params)
        ref, tst = window_specs_validate(job.reference, job.test, detector=cls, target=target, allow_values=False)
        rule = calibration_rule_validate(job.calibration)
        evaluation = evaluate(detector=cls(**clean), variables=job.variables, target=target, reference=ref,
                              test=tst, verdict_rule=job.verdict_rule, rule=rule)
        row = result_row(evaluation, **base, version=target.spec.version_tag if target.deployment else "")
    except (DataError, ApplicationError) as exc:
        message = exc.message if isinstance(exc, ApplicationError) else str(exc)
        logger.warning("drift job %s could not score: %s", job.name, message)
        row = DriftResult(**base, detector=job.detector, variables=list(job.variables), status=ResultStatus.FAILED,
                          error=message, verdict_rule=job.verdict_rule, reference_window=job.reference,
                          test_window=job.test, runtime_ms=(time.perf_counter() - started) * 1000)
    with transaction.atomic():
        row.save()
        DriftJob.objects.filter(pk=job.pk).update(last_run_at=timezone.now())
        if row.drift:
            alert_raise(job=job, result=row)
        else:
            alerts_clear(job=job, result=row)
    return row



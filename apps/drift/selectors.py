"""Reads of the drift app: the catalogue, jobs, results, alerts and the residual ledger with its metrics."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Q, QuerySet

from apps.common.errors import NotFound

from . import lab_scoring
from .detectors import catalogue, detector_class
from .detectors.base import UnknownDetector
from .models import Alert, DriftJob, DriftResult, LabResidual, LabScoringSettings


def detector_catalogue() -> list[dict[str, Any]]:
    """Every registered detector with metadata, parameters (for forms) and a JSON Schema, by key."""
    return sorted(catalogue(), key=lambda entry: entry["key"])


def detector_get(*, key: str) -> dict[str, Any]:
    try:
        return detector_class(key).catalogue_entry()
    except UnknownDetector as exc:
        raise NotFound(str(exc), details={"detector": key}, code="unknown_detector") from None


def _job_queryset() -> QuerySet[DriftJob]:
    return DriftJob.objects.select_related("deployment", "soft_sensor__project", "deployment__soft_sensor__project")


def job_list(*, deployment: str | None = None, soft_sensor: str | None = None, detector: str | None = None,
             enabled: bool | None = None) -> QuerySet[DriftJob]:
    """Jobs by name; ``deployment`` is an id or a name, ``soft_sensor`` a model ID."""
    jobs = _job_queryset()
    if deployment:
        jobs = (jobs.filter(deployment_id=int(deployment)) if deployment.isdigit()
                else jobs.filter(deployment__name=deployment))
    if soft_sensor:
        jobs = jobs.filter(Q(soft_sensor__model_id=soft_sensor) | Q(deployment__soft_sensor__model_id=soft_sensor))
    if detector:
        jobs = jobs.filter(detector=detector)
    if enabled is not None:
        jobs = jobs.filter(enabled=enabled)
    return jobs.order_by("name")


def job_get(*, job_id: int) -> DriftJob:
    try:
        return _job_queryset().get(pk=job_id)
    except DriftJob.DoesNotExist:
        raise NotFound(f"Drift job {job_id} does not exist.", details={"job": job_id}) from None


def result_list(*, job: int | None = None, deployment: str | None = None, detector: str | None = None,
                drift: bool | None = None, status: str | None = None, trigger: str | None = None,
                since: datetime | None = None, until: datetime | None = None) -> QuerySet[DriftResult]:
    """Results, newest first; filters combine (``deployment`` is an id or a name)."""
    results = DriftResult.objects.select_related("job", "deployment", "soft_sensor")
    if job is not None:
        results = results.filter(job_id=job)
    if deployment:
        results = (results.filter(deployment_id=int(deployment)) if deployment.isdigit()
                   else results.filter(deployment__name=deployment))
    if detector:
        results = results.filter(detector=detector)
    if drift is not None:
        results = results.filter(drift=drift)
    if status:
        results = results.filter(status=status)
    if trigger:
        results = results.filter(trigger=trigger)
    if since is not None:
        results = results.filter(created_at__gte=since)
    if until is not None:
        results = results.filter(created_at__lte=until)
    return results.order_by("-created_at", "-id")


def result_get(*, result_id: int) -> DriftResult:
    try:
        return DriftResult.objects.select_related("job", "deployment", "soft_sensor").get(pk=result_id)
    except DriftResult.DoesNotExist:
        raise NotFound(f"Drift result {result_id} does not exist.", details={"result": result_id}) from None


def alert_list(*, state: str | None = None, job: int | None = None, deployment: str | None = None,
               severity: str | None = None) -> QuerySet[Alert]:
    """Alerts, newest first; ``state`` is ``open`` or ``acknowledged``."""
    alerts = Alert.objects.select_related("job__deployment", "job__soft_sensor", "acknowledged_by", "result",
                                          "last_result")
    if state == "open":
        alerts = alerts.filter(acknowledged_at__isnull=True)
    elif state == "acknowledged":
        alerts = alerts.filter(acknowledged_at__isnull=False)
    if job is not None:
        alerts = alerts.filter(job_id=job)
    if deployment:
        alerts = (alerts.filter(job__deployment_id=int(deployment)) if deployment.isdigit()
                  else alerts.filter(job__deployment__name=deployment))
    if severity:
        alerts = alerts.filter(severity=severity)
    return alerts.order_by("-created_at", "-id")


def alert_get(*, alert_id: int) -> Alert:
    try:
        return alert_list().get(pk=alert_id)
    except Alert.DoesNotExist:
        raise NotFound(f"Alert {alert_id} does not exist.", details={"alert": alert_id}) from None


def open_alert_count() -> int:
    return Alert.objects.filter(acknowledged_at__isnull=True).count()


def lab_settings_get(*, deployment: Any) -> LabScoringSettings:
    """The deployment's lab-scoring settings, or the defaults (unsaved)."""
    return LabScoringSettings.objects.filter(deployment=deployment).first() or LabScoringSettings(deployment=deployment)


def lab_residual_list(*, deployment: Any, batch_id: str | None = None, device_id: str | None = None,
                      since: datetime | None = None, until: datetime | None = None) -> QuerySet[LabResidual]:
    rows = LabResidual.objects.filter(deployment=deployment)
    if batch_id:
        rows = rows.filter(batch_id=batch_id)
    if device_id:
        rows = rows.filter(device_id=device_id)
    if since is not None:
        rows = rows.filter(lab_time__gte=since)
    if until is not None:
        rows = rows.filter(lab_time__lte=until)
    return rows.order_by("project_name", "device_id", "batch_id", "lab_time")


def lab_metrics(*, deployment: Any, batch_id: str | None = None, device_id: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                window: int | None = None) -> dict[str, Any]:
    """Overall and per-group MAE / RMSE / bias, and the rolling ones at every lab sample (per group).

    One query; the rolling window defaults to the deployment's ``rolling_samples``.
    """
    window = window or lab_settings_get(deployment=deployment).rolling_samples
    rows = list(lab_residual_list(deployment=deployment, batch_id=batch_id, device_id=device_id, since=since,
                                  until=until).values_list("project_name", "device_id", "batch_id", "lab_time",
                                                           "residual", "lab_value", "predicted_value"))
    groups: dict[str, list[tuple]] = {}
    for row in rows:
        groups.setdefault(f"{row[0]}/{row[1]}/{row[2]}", []).append(row)
    per_group = []
    for label, items in groups.items():
        residuals = np.array([r[4] for r in items], dtype=float)
        rolling = lab_scoring.rolling_metrics(residuals, window)
        per_group.append({
            "group": label, "project_name": items[0][0], "device_id": items[0][1], "batch_id": items[0][2],
            **lab_scoring.summary(residuals),
            "rolling": [
                {"lab_time": r[3], "lab_value": r[5], "predicted_value": r[6], "residual": r[4],
                 "mae": float(rolling["mae"][i]), "rmse": float(rolling["rmse"][i]),
                 "bias": float(rolling["bias"][i]), "n": int(rolling["n"][i])}
                for i, r in enumerate(items)
            ],
        })
    overall = lab_scoring.summary(np.array([r[4] for r in rows], dtype=float))
    return {"deployment": deployment.name, "window": window, "overall": overall, "groups": per_group}

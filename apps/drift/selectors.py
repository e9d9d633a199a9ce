"""Reads of the drift app: the catalogue, jobs, results, alerts (with the status-light rule), silences and
the residual ledger with its metrics."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Q, QuerySet
from django.utils import timezone
from stamm_drift import UnknownDetector, catalogue, detector_class

from apps.common.errors import NotFound

from . import lab_scoring
from .models import (
    ACTIVE_STATES,
    Alert,
    AlertEvent,
    AlertSilence,
    AlertState,
    DriftJob,
    DriftResult,
    LabResidual,
    LabScoringSettings,
    ResultTrigger,
)


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


def _by_deployment(queryset: QuerySet, deployment: str | int | None, field_name: str) -> QuerySet:
    if deployment in (None, ""):
        return queryset
    deployment = str(deployment)
    if deployment.isdigit():
        return queryset.filter(**{f"{field_name}_id": int(deployment)})
    return queryset.filter(**{f"{field_name}__name": deployment})


def alert_list(*, state: str | None = None, job: int | None = None, deployment: str | None = None,
               severity: str | None = None) -> QuerySet[Alert]:
    """Alerts, newest first; ``state`` is ``open``, ``acknowledged``, ``resolved`` or ``active`` (not resolved)."""
    alerts = Alert.objects.select_related("job__deployment", "job__soft_sensor", "acknowledged_by", "resolved_by",
                                          "result", "last_result")
    if state == "active":
        alerts = alerts.filter(state__in=ACTIVE_STATES)
    elif state:
        alerts = alerts.filter(state=state)
    if job is not None:
        alerts = alerts.filter(job_id=job)
    alerts = _by_deployment(alerts, deployment, "job__deployment")
    if severity:
        alerts = alerts.filter(severity=severity)
    return alerts.order_by("-created_at", "-id")


def alert_get(*, alert_id: int) -> Alert:
    try:
        return alert_list().get(pk=alert_id)
    except Alert.DoesNotExist:
        raise NotFound(f"Alert {alert_id} does not exist.", details={"alert": alert_id}) from None


def alert_history(*, alert: Alert) -> QuerySet[AlertEvent]:
    """Every transition of the alert, oldest first (who, when, why, the drift result behind it)."""
    return AlertEvent.objects.filter(alert=alert).select_related("by", "result").order_by("at", "id")


def silence_list(*, deployment: str | None = None, active: bool | None = None,
                 now: datetime | None = None) -> QuerySet[AlertSilence]:
    """Silences, newest first; ``active`` keeps those in force now (or only those no longer in force)."""
    silences = _by_deployment(AlertSilence.objects.select_related("deployment", "created_by", "ended_by"),
                              deployment, "deployment")
    if active is not None:
        now = now or timezone.now()
        in_force = Q(ended_at__isnull=True, until__gt=now)
        silences = silences.filter(in_force) if active else silences.exclude(in_force)
    return silences.order_by("-created_at", "-id")


def silence_get(*, silence_id: int) -> AlertSilence:
    try:
        return silence_list().get(pk=silence_id)
    except AlertSilence.DoesNotExist:
        raise NotFound(f"Silence {silence_id} does not exist.", details={"silence": silence_id}) from None


# -- the status-light rule (docs/dashboard.md, "Status lights") ---------------------------------------

@dataclass
class AlertStatus:
    """What drift says about a deployment NOW: the one answer every page and API shows.

    ``counted``: open, unsilenced alerts on what it scores now (its current version, its live batches) —
    these alone light the status; ``listed``: the other active alerts with why they do not count;
    ``last_check``: its newest live check (a job run; ad hoc runs are never one).
    """

    deployment: Any
    version: str | None
    live_batches: tuple[str, ...]
    counted: list[Alert] = field(default_factory=list)
    listed: list[tuple[Alert, str]] = field(default_factory=list)
    last_check: DriftResult | None = None
    silences: list[AlertSilence] = field(default_factory=list)

    @property
    def worst_severity(self) -> str | None:
        severities = {a.severity for a in self.counted}
        return "critical" if "critical" in severities else ("warning" if severities else None)

    @property
    def severities(self) -> tuple[str, ...]:
        return tuple(a.severity for a in self.counted)

    @property
    def light_name(self) -> str:
        return self.worst_severity or "ok"

    @property
    def listed_rows(self) -> list[dict[str, Any]]:
        return [{"alert": alert, "why_not_counted": why} for alert, why in self.listed]


def alert_batches(alert: Alert) -> tuple[str, ...]:
    """``device/batch`` the alert's latest drift verdict tested (what raised it)."""
    return alert.last_result.tested_batches


def live_batches(*, deployment: Any, now: datetime | None = None) -> tuple[str, ...]:
    """The batches a deployment scores now: per device in its scope, the batch with the newest raw data, if
    that data is live — within ``STAMM_PIPELINE_LIVE_WINDOW`` of ``now`` (the orchestrator's "live batch").
    A reactor between batches has none."""
    from datetime import timedelta

    from django.conf import settings

    from apps.tsdb.selectors import latest_points
    from apps.tsdb.types import SeriesFilter

    now = now or timezone.now()
    live_after = now - timedelta(seconds=settings.STAMM_PIPELINE_LIVE_WINDOW)
    newest: dict[str, tuple[datetime, str]] = {}
    project_name = deployment.soft_sensor.project.name.lower()
    for point in latest_points(where=SeriesFilter(project_name=project_name)):
        group = point.series.group
        if not deployment.in_scope(device_id=group.device_id, batch_id=group.batch_id):
            continue
        if group.device_id not in newest or point.time > newest[group.device_id][0]:
            newest[group.device_id] = (point.time, group.batch_id)
    return tuple(sorted(f"{device}/{batch}" for device, (time, batch) in newest.items() if time >= live_after))


def why_not_counted(alert: Alert, *, version: str | None, batches: tuple[str, ...],
                    silences: list[AlertSilence], now: datetime) -> str | None:
    """None when the alert lights the status; otherwise why it does not (the rule, written once)."""
    if alert.state != AlertState.OPEN:
        who = alert.acknowledged_by.get_username() if alert.acknowledged_by_id else "the platform"
        return f"acknowledged by {who}" if alert.state == AlertState.ACKNOWLEDGED else alert.state
    silence = next((s for s in silences if s.active_at(now) and s.covers(alert.job.detector)), None)
    if silence is not None:
        return f"silenced until {silence.until:%Y-%m-%d %H:%M} UTC: {silence.reason}"
    tested_version = alert.last_result.version
    if tested_version and version and tested_version != version:
        return f"raised on version {tested_version}; the deployment runs {version} now"
    tested = alert_batches(alert)
    if not set(tested) & set(batches):
        return f"on {', '.join(b.split('/')[-1] for b in tested) or 'no batch'}, not a batch it scores now"
    return None


def deployment_alert_status(*, deployment: Any, version: str | None = None, batches: tuple[str, ...] | None = None,
                            now: datetime | None = None) -> AlertStatus:
    """The status-light rule for one deployment (``docs/dashboard.md``): see ``AlertStatus``.

    ``version`` (its version tag now) and ``batches`` (``device/batch`` it scores now) are computed when not
    given; callers that already know them (the overview knows the version, a publication knows its group)
    pass them.
    """
    now = now or timezone.now()
    if version is None:
        from apps.orchestrator.selectors import deployment_estimator

        estimator = deployment_estimator(deployment)
        version = estimator.spec.version_tag if estimator is not None else None
    batches = live_batches(deployment=deployment, now=now) if batches is None else tuple(batches)
    silences = list(silence_list(deployment=str(deployment.pk), active=True, now=now))
    status = AlertStatus(deployment=deployment, version=version, live_batches=batches, silences=silences)
    for alert in alert_list(state="active", deployment=str(deployment.pk)):
        reason = why_not_counted(alert, version=version, batches=batches, silences=silences, now=now)
        if reason is None:
            status.counted.append(alert)
        else:
            status.listed.append((alert, reason))
    status.last_check = (
        DriftResult.objects.filter(deployment=deployment, job__isnull=False)
        .exclude(trigger=ResultTrigger.AD_HOC).select_related("job").order_by("-created_at", "-id").first()
    )
    return status


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


def lab_residuals_latest(*, deployment: Any, samples: int) -> list[tuple[datetime, float]]:
    """The deployment's newest ``samples`` ledger rows (any group), newest first: (lab time, residual)."""
    rows = LabResidual.objects.filter(deployment=deployment).order_by("-lab_time", "-id")
    return list(rows.values_list("lab_time", "residual")[: max(0, int(samples))])

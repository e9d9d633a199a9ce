"""The alert lifecycle: raise, acknowledge, resolve (by hand or when the condition clears), silences.

Every transition writes the alert (audited: ``apps.drift.apps`` registers ``Alert`` and ``AlertSilence``)
and one ``AlertEvent`` row (the history the pages show), in the same transaction, and then announces it
through ``apps.drift.signals`` once committed (``_announce``: the one place drift sends its signals).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.errors import ApplicationError, Conflict, ValidationFailed

from ..models import (
    ACTIVE_STATES,
    Alert,
    AlertAction,
    AlertEvent,
    AlertSilence,
    AlertState,
    DriftJob,
    DriftResult,
    Severity,
)
from .evaluation import severity_of

logger = logging.getLogger(__name__)

#: Longest a silence may last: a silence is a pause, not a way to switch a check off (disable the job).
MAX_SILENCE_DAYS = 90


def _person(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def _event(alert: Alert, action: str, *, user: Any = None, note: str = "", result: DriftResult | None = None,
           at: datetime | None = None) -> AlertEvent:
    return AlertEvent.objects.create(alert=alert, action=action, by=_person(user), at=at or timezone.now(),
                                     note=note, automatic=_person(user) is None, result=result)


@transaction.atomic
def alert_raise(*, job: DriftJob, result: DriftResult) -> Alert:
    """Open an alert for the job, or update its active one (one active alert per job, enforced by the database).

    An acknowledged alert stays acknowledged when the drift repeats: someone is on it; only its counters,
    its latest result and (when worse) its severity change.
    """
    severity = severity_of(result.score, result.threshold)
    message = f"Drift on {job.target_label} (job {job.name}): {result.explanation}"
    for _ in range(2):
        alert = Alert.objects.select_for_update().filter(job=job, state__in=ACTIVE_STATES).first()
        if alert is not None:
            alert.last_result = result
            alert.occurrences += 1
            if severity == Severity.CRITICAL:
                alert.severity = Severity.CRITICAL
            alert.message = message
            alert.save(update_fields=["last_result", "occurrences", "severity", "message", "updated_at"])
            return alert
        try:
            with transaction.atomic():
                alert = Alert.objects.create(job=job, result=result, last_result=result, severity=severity,
                                             message=message)
                _event(alert, AlertAction.OPENED, note=result.explanation[:2000], result=result)
        except IntegrityError:  # another run opened it meanwhile: update that one
            continue
        _announce("alert_opened", alert)
        return alert
    raise ApplicationError("could not raise the drift alert (concurrent updates)")


@transaction.atomic
def alerts_clear(*, job: DriftJob, result: DriftResult) -> list[Alert]:
    """A live check of ``job`` found no drift: resolve the job's active alert (the condition cleared).

    Only a successful job run may clear (a failed run knows nothing; an ad hoc run is not a live check).
    """
    if not result.is_live_check or result.drift or result.status != "succeeded":
        return []
    cleared = []
    for alert in Alert.objects.select_for_update().filter(job=job, state__in=ACTIVE_STATES):
        _resolve(alert, user=None, reason=f"condition cleared: {result.detector} found no drift "
                                          f"(result {result.pk})", result=result)
        cleared.append(alert)
    return cleared


def _locked(alert: Alert) -> Alert:
    return Alert.objects.select_for_update().select_related("job").get(pk=alert.pk)


@transaction.atomic
def alert_acknowledge(*, alert: Alert, user: Any, note: str = "") -> Alert:
    """Acknowledge an open alert (who, when, a note): someone is on it. 409 when it is not open."""
    alert = _locked(alert)
    if alert.state != AlertState.OPEN:
        when = alert.acknowledged_at if alert.state == AlertState.ACKNOWLEDGED else alert.resolved_at
        raise Conflict(f"Alert {alert.pk} is already {alert.state}"
                       + (f" (since {when.isoformat()})." if when else "."),
                       details={"alert": alert.pk, "state": alert.state})
    alert.state = AlertState.ACKNOWLEDGED
    alert.acknowledged_at = timezone.now()
    alert.acknowledged_by = _person(user)
    alert.acknowledge_note = note
    alert.save(update_fields=["state", "acknowledged_at", "acknowledged_by", "acknowledge_note", "updated_at"])
    _event(alert, AlertAction.ACKNOWLEDGED, user=user, note=note, at=alert.acknowledged_at)
    _announce("alert_acknowledged", alert, user=user)
    return alert


@transaction.atomic
def alert_resolve(*, alert: Alert, user: Any, reason: str) -> Alert:
    """Resolve an open or acknowledged alert by hand; the reason is required. 409 when already resolved."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("reason: say why the alert is resolved", details={"reason": "required"})
    alert = _locked(alert)
    if alert.state == AlertState.RESOLVED:
        raise Conflict(f"Alert {alert.pk} was already resolved at {alert.resolved_at.isoformat()}.",
                       details={"alert": alert.pk, "state": alert.state})
    return _resolve(alert, user=user, reason=reason, result=None)


def _resolve(alert: Alert, *, user: Any, reason: str, result: DriftResult | None) -> Alert:
    alert.state = AlertState.RESOLVED
    alert.resolved_at = timezone.now()
    alert.resolved_by = _person(user)
    alert.resolve_reason = reason
    alert.resolved_by_result = result
    alert.save(update_fields=["state", "resolved_at", "resolved_by", "resolve_reason", "resolved_by_result",
                              "updated_at"])
    _event(alert, AlertAction.RESOLVED, user=user, note=reason, result=result, at=alert.resolved_at)
    _announce("alert_resolved", alert, user=user)
    return alert


@transaction.atomic
def alert_silence_create(*, deployment: Any, detector: str = "", until: datetime, reason: str, user: Any,
                         now: datetime | None = None) -> AlertSilence:
    """Silence a deployment's alerts of ``detector`` (empty: every detector) until ``until``, with a reason."""
    from stamm_drift import UnknownDetector, detector_class

    now = now or timezone.now()
    reason = (reason or "").strip()
    problems = {}
    if not reason:
        problems["reason"] = "required: say why the alerts are silenced"
    if until is None or until <= now:
        problems["until"] = "must be in the future"
    elif (until - now).days > MAX_SILENCE_DAYS:
        problems["until"] = f"at most {MAX_SILENCE_DAYS} days ahead (disable the job to stop a check)"
    if detector:
        try:
            detector_class(detector)
        except UnknownDetector as exc:
            problems["detector"] = str(exc)
    if problems:
        raise ValidationFailed("; ".join(f"{k}: {v}" for k, v in problems.items()), details=problems)
    return AlertSilence.objects.create(deployment=deployment, detector=detector or "", until=until, reason=reason,
                                       created_by=_person(user))


@transaction.atomic
def alert_silence_end(*, silence: AlertSilence, user: Any) -> AlertSilence:
    """End a silence now (the row stays, with who ended it); 409 when it has already ended or expired."""
    silence = AlertSilence.objects.select_for_update().get(pk=silence.pk)
    now = timezone.now()
    if not silence.active_at(now):
        raise Conflict(f"Silence {silence.pk} is no longer in force.", details={"silence": silence.pk})
    silence.ended_at, silence.ended_by = now, _person(user)
    silence.save(update_fields=["ended_at", "ended_by"])
    return silence


def _announce(name: str, alert: Alert, *, user: Any = None) -> None:
    """Send ``signals.<name>`` once the transaction commits (the one place drift announces alerts)."""
    from .. import signals

    signal = getattr(signals, name)
    person = _person(user)
    payload = {"alert_id": alert.pk, "deployment_id": alert.job.deployment_id, "job_id": alert.job_id,
               "severity": alert.severity, "state": alert.state,
               "by": person.get_username() if person is not None else ""}

    def send() -> None:
        for receiver, outcome in signal.send_robust(sender=Alert, **payload):
            if isinstance(outcome, Exception):
                logger.error("%s receiver %s failed: %s", name, receiver, outcome)

    transaction.on_commit(send)

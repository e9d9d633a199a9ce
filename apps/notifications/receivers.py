"""Receivers of the lower apps' signals: each words its event and hands it to ``services.event_raise`` (the
one entry point). The lower apps never import this app; ``NotificationsConfig.ready`` connects these.

Receivers run after the sender's transaction commits and only write rows and queue tasks.
"""

from __future__ import annotations

from typing import Any

from .models import EventKind
from .services import event_raise

ALERT_VERBS = {
    EventKind.ALERT_OPENED: "opened",
    EventKind.ALERT_ACKNOWLEDGED: "acknowledged",
    EventKind.ALERT_RESOLVED: "resolved",
}


def _alert_event(kind: str, *, alert_id: int, deployment_id: int | None, **facts: Any) -> None:
    from apps.drift.selectors import alert_batches, alert_get

    alert = alert_get(alert_id=alert_id)
    where = alert.job.deployment.name if alert.job.deployment_id else alert.job.target_label
    batches = ", ".join(b.split("/", 1)[-1] for b in alert_batches(alert)) or "no batch"
    verb = ALERT_VERBS[kind]
    by = facts.get("by") or "the platform"
    subject = f"Drift alert #{alert.pk} {verb} on {where} ({alert.severity})"
    lines = [
        f"Drift alert #{alert.pk} on {where} was {verb}" + (f" by {by}." if kind != EventKind.ALERT_OPENED else "."),
        f"Check: {alert.job.detector} (job {alert.job.name}) on {batches}; severity {alert.severity}.",
        alert.message,
    ]
    if kind == EventKind.ALERT_ACKNOWLEDGED and alert.acknowledge_note:
        lines.append(f"Note: {alert.acknowledge_note}")
    if kind == EventKind.ALERT_RESOLVED:
        lines.append(f"Reason: {alert.resolve_reason}")
    event_raise(kind=kind, subject=subject, body="\n".join(lines), deployment_id=deployment_id,
                facts={"alert_id": alert.pk, "job": alert.job.name, "detector": alert.job.detector,
                       "severity": alert.severity, "state": alert.state, "batches": list(alert_batches(alert)),
                       "by": facts.get("by", "")})


def alert_opened(sender: Any, **facts: Any) -> None:
    _alert_event(EventKind.ALERT_OPENED, **facts)


def alert_acknowledged(sender: Any, **facts: Any) -> None:
    _alert_event(EventKind.ALERT_ACKNOWLEDGED, **facts)


def alert_resolved(sender: Any, **facts: Any) -> None:
    _alert_event(EventKind.ALERT_RESOLVED, **facts)


def _deployment_name(deployment_id: int) -> str:
    from apps.orchestrator.selectors import deployment_get

    return deployment_get(deployment_id=deployment_id).name


def pipeline_failing(sender: Any, *, deployment_id: int, run_id: int, batch_id: str, device_id: str, error: str,
                     **facts: Any) -> None:
    name = _deployment_name(deployment_id)
    event_raise(
        kind=EventKind.PIPELINE_FAILING, deployment_id=deployment_id,
        subject=f"Pipeline failing: {name} on {device_id}/{batch_id}",
        body=f"Run {run_id} of {name} on {device_id}/{batch_id} failed; it is retried with backoff.\nError: {error}",
        facts={"run_id": run_id, "device_id": device_id, "batch_id": batch_id, "error": error},
    )


def estimates_invalid(sender: Any, *, deployment_id: int, run_id: int, batch_id: str, device_id: str, rows: int,
                      invalid: int, verdicts: dict[str, int], **facts: Any) -> None:
    name = _deployment_name(deployment_id)
    event_raise(
        kind=EventKind.VALIDITY_BAD, deployment_id=deployment_id,
        subject=f"Estimate validity Bad: {name} on {device_id}/{batch_id}",
        body=(f"Run {run_id} of {name} stored {invalid} of {rows} estimates of {device_id}/{batch_id} from inputs "
              f"outside the training envelope ({', '.join(f'{k}: {v}' for k, v in sorted(verdicts.items()))})."),
        facts={"run_id": run_id, "device_id": device_id, "batch_id": batch_id, "rows": rows, "invalid": invalid},
        key=f"validity_bad:{deployment_id}:{device_id}/{batch_id}",
    )

"""Reads behind the drift cards and the alert panels of the operator, manager and drift pages.

The status rule itself is the drift app's (``apps.drift.selectors.deployment_alert_status``, written out in
``docs/dashboard.md``): this module only words it, once, for every page — which batch and which check
raised an alert, why an active alert does not count, what the last live check said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .selectors import ago


def drift_status(*, deployment: Any, version: str | None = None) -> Any:
    """The drift app's status of one deployment (a row or its id / name): ``apps.drift.selectors.AlertStatus``."""
    from apps.drift.selectors import deployment_alert_status
    from apps.orchestrator.selectors import deployment_get

    if not hasattr(deployment, "pk"):
        deployment = deployment_get(deployment_id=deployment)
    return deployment_alert_status(deployment=deployment, version=version)


def batch_names(batches: tuple[str, ...] | list[str]) -> str:
    return ", ".join(b.split("/", 1)[-1] for b in batches) or "no batch"


def alert_origin(alert: Any) -> str:
    """Which check raised the alert and on what: "psi (job psi-log-phase-batch-100) on batch_100"."""
    from apps.drift.selectors import alert_batches

    return f"{alert.job.detector} (job {alert.job.name}) on {batch_names(alert_batches(alert))}"


def last_check_text(status: Any) -> str:
    """The status's last live check, worded; ad hoc runs are never one (the rule)."""
    check = status.last_check
    if check is None:
        return "no live drift check has run yet"
    verdict = "drift" if check.drift else ("failed" if check.status == "failed" else "no drift")
    return f"last check {check.detector} on {batch_names(check.tested_batches)}: {verdict} · {ago(check.created_at)}"


@dataclass(frozen=True)
class DriftCard:
    """What a drift card says: the headline, a tone and the detail lines (operator and manager alike)."""

    value: str
    tone: str
    lines: tuple[str, ...]


def drift_card(status: Any) -> DriftCard:
    counted = status.counted
    tone = {"critical": "bad", "warning": "warning"}.get(status.worst_severity or "", "ok")
    value = f"{len(counted)} open alert{'s' if len(counted) != 1 else ''}" if counted else "No open alert"
    lines = [f"{status.deployment.name} · scores {batch_names(status.live_batches)} now"]
    lines += [f"{a.severity}: {alert_origin(a)}" for a in counted[:3]]
    if status.listed:
        lines.append(f"{len(status.listed)} other active alert{'s' if len(status.listed) != 1 else ''} not counted "
                     f"({status.listed[0][1]})")
    lines.append(last_check_text(status))
    return DriftCard(value, tone, tuple(lines))


@dataclass(frozen=True)
class AlertChoice:
    alert: Any
    label: str


def alert_choices(*, deployments: list[Any] | None = None, resolved: int = 20) -> list[AlertChoice]:
    """Active alerts (of ``deployments``, or of every deployment) labelled with whether they count and why
    not, then the ``resolved`` most recently resolved ones (their history stays readable)."""
    from apps.drift.selectors import alert_list
    from apps.orchestrator.selectors import deployment_list

    chosen = deployments if deployments is not None else list(deployment_list().filter(shadow_of__isnull=True))
    choices: list[AlertChoice] = []
    for deployment in chosen:
        status = drift_status(deployment=deployment)
        for alert in status.counted:
            choices.append(AlertChoice(alert, f"#{alert.pk} {alert.severity} · {deployment.name} · "
                                              f"{alert_origin(alert)} · open, counts in the status light"))
        for alert, why in status.listed:
            choices.append(AlertChoice(alert, f"#{alert.pk} {alert.severity} · {deployment.name} · "
                                              f"{alert_origin(alert)} · {alert.state}, not counted: {why}"))
    ids = [d.pk for d in chosen]
    recent = alert_list(state="resolved").filter(job__deployment_id__in=ids)[:resolved]
    for alert in recent:
        label = f"#{alert.pk} resolved · {alert.job.deployment.name} · {alert_origin(alert)}"
        choices.append(AlertChoice(alert, label))
    return choices


def alert_history_rows(*, alert_id: int) -> tuple[Any, list[dict[str, Any]]]:
    """The alert and its history as table rows (oldest first)."""
    from apps.drift.selectors import alert_get, alert_history

    alert = alert_get(alert_id=alert_id)
    rows = [
        {
            "at": f"{event.at:%Y-%m-%d %H:%M:%S}",
            "action": event.action,
            "by": event.by.get_username() if event.by_id else "the platform",
            "note": event.note,
        }
        for event in alert_history(alert=alert)
    ]
    return alert, rows


def silence_until_parse(text: str | None, *, now: datetime | None = None) -> datetime:
    """"YYYY-MM-DD HH:MM" (UTC) or a duration such as "8h" / "2d" from now."""
    from datetime import UTC, timedelta

    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    from apps.common.errors import ValidationFailed

    value = str(text or "").strip()
    now = now or timezone.now()
    if value[:-1].isdigit() and value[-1:] in ("h", "d"):
        amount = int(value[:-1])
        return now + (timedelta(hours=amount) if value.endswith("h") else timedelta(days=amount))
    moment = parse_datetime(value.replace("T", " ")) if value else None
    if moment is None:
        raise ValidationFailed('until: give "YYYY-MM-DD HH:MM" (UTC) or a duration such as 8h or 2d',
                               details={"until": value})
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

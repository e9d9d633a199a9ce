"""Reads of the connectors app: sources with their rules and status, errors, publications, deliveries,
and the facts the quality rules need (stale inputs, open drift alerts, a failed run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from apps.common.errors import NotFound
from apps.tsdb.types import GroupKey, from_ns

from .models import (
    DataSource,
    Delivery,
    MappingRule,
    Publication,
    PublicationCursor,
    QualitySample,
    SourceError,
    SourceStatus,
)


def data_source_list() -> QuerySet[DataSource]:
    """Sources with rules and status (three queries whatever the count)."""
    return (
        DataSource.objects.select_related("status")
        .prefetch_related(Prefetch("rules", queryset=MappingRule.objects.order_by("position", "id")))
        .order_by("name")
    )


def data_source_get(*, data_source_id: int | str) -> DataSource:
    """By id, or by name."""
    queryset = data_source_list()
    try:
        if str(data_source_id).isdigit():
            return queryset.get(pk=int(data_source_id))
        return queryset.get(name=str(data_source_id))
    except DataSource.DoesNotExist:
        raise NotFound(
            f"Data source {data_source_id} does not exist.", details={"data_source": str(data_source_id)}
        ) from None


def runner_config() -> dict[int, tuple[int, bool]]:
    """``{source id: (config_version, enabled)}``: what the connectors process polls to apply changes."""
    return {row[0]: (row[1], row[2]) for row in DataSource.objects.values_list("id", "config_version", "enabled")}


def source_errors(*, data_source: DataSource, limit: int = 50) -> list[SourceError]:
    return list(SourceError.objects.filter(data_source=data_source).order_by("-at", "-id")[:limit])


def recent_errors(*, limit: int = 50) -> list[SourceError]:
    return list(SourceError.objects.select_related("data_source").order_by("-at", "-id")[:limit])


@dataclass(frozen=True)
class SourceHealth:
    name: str
    kind: str
    enabled: bool
    reporting: bool
    connected: bool
    state: str
    last_message_at: datetime | None
    messages_per_second: float
    messages_total: int
    points_total: int
    errors_total: int
    last_error: str
    reported_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "enabled": self.enabled,
            "reporting": self.reporting,
            "connected": self.connected,
            "state": self.state,
            "last_message_at": self.last_message_at.isoformat() if self.last_message_at else None,
            "messages_per_second": round(self.messages_per_second, 2),
            "messages_total": self.messages_total,
            "points_total": self.points_total,
            "errors_total": self.errors_total,
            "last_error": self.last_error,
            "reported_at": self.reported_at.isoformat() if self.reported_at else None,
        }


def source_health(*, now: datetime | None = None) -> list[SourceHealth]:
    """Per source, from the connectors process's last report; ``reporting`` is False when that report is
    older than ``STAMM_CONNECTORS_MAX_SILENCE`` (the process is not running, or not reading this source)."""
    now = now or timezone.now()
    limit = timedelta(seconds=settings.STAMM_CONNECTORS_MAX_SILENCE)
    result = []
    for source in DataSource.objects.select_related("status").order_by("name"):
        status: SourceStatus | None = getattr(source, "status", None)
        reporting = status is not None and now - status.reported_at <= limit
        result.append(
            SourceHealth(
                name=source.name,
                kind=source.kind,
                enabled=source.enabled,
                reporting=reporting,
                connected=bool(reporting and status.connected),
                state=(status.state if status else "never reported by a connectors process"),
                last_message_at=status.last_message_at if status else None,
                messages_per_second=status.messages_per_second if reporting else 0.0,
                messages_total=status.messages_total if status else 0,
                points_total=status.points_total if status else 0,
                errors_total=status.errors_total if status else 0,
                last_error=status.last_error if status else "",
                reported_at=status.reported_at if status else None,
            )
        )
    return result


# ------------------------------------------------------------------------------------------ publications


def publication_list(*, deployment: int | None = None) -> QuerySet[Publication]:
    queryset = Publication.objects.select_related("deployment", "connection").order_by("deployment__name", "id")
    if deployment is not None:
        queryset = queryset.filter(deployment_id=deployment)
    return queryset


def publication_get(*, publication_id: int) -> Publication:
    try:
        return publication_list().get(pk=publication_id)
    except Publication.DoesNotExist:
        raise NotFound(
            f"Publication {publication_id} does not exist.", details={"publication": publication_id}
        ) from None


def publications_of(*, deployment_ids: Sequence[int]) -> list[Publication]:
    """The enabled publications of these deployments (never a shadow's), with ``id`` and ``deployment_id``
    only: what a batch of finished runs needs to find its cursors, in one indexed query."""
    if not deployment_ids:
        return []
    return list(
        Publication.objects.filter(
            deployment_id__in=sorted(set(deployment_ids)), enabled=True, deployment__shadow_of__isnull=True
        )
        .only("id", "deployment_id")
        .order_by("id")
    )


def delivery_list(
    *, publication: int | None = None, status: str | None = None, since: datetime | None = None
) -> QuerySet[Delivery]:
    queryset = Delivery.objects.select_related("publication__deployment", "publication__connection")
    if publication is not None:
        queryset = queryset.filter(publication_id=publication)
    if status:
        queryset = queryset.filter(status=status)
    if since is not None:
        queryset = queryset.filter(at__gte=since)
    return queryset.order_by("-at", "-id")


# --------------------------------------------------------------------------------- facts for the quality rules


@dataclass(frozen=True)
class AlertCase:
    """One question for ``drift_alerts_open``: the deployment, the group it publishes, the version it runs."""

    deployment: Any
    group: GroupKey
    version: str


def drift_alerts_open(*, cases: Sequence[AlertCase], now: datetime | None = None) -> list[int]:
    """Per case, the drift alerts that count for the deployment's status — the drift app's status-light rule
    (``why_not_counted``, as ``deployment_alert_status`` applies it), the group taken as the batch it scores now.

    One query for the active alerts of every deployment in ``cases``, one more for their silences only when
    there is an alert: a delivery batch of many deployments costs the same as one.
    """
    if not cases:
        return []
    from apps.drift.selectors import alert_list, silence_list, why_not_counted

    now = now or timezone.now()
    deployment_ids = sorted({case.deployment.pk for case in cases})
    alerts_of: dict[int, list[Any]] = {}
    for alert in alert_list(state="active").filter(job__deployment_id__in=deployment_ids):
        alerts_of.setdefault(alert.job.deployment_id, []).append(alert)
    if not alerts_of:
        return [0] * len(cases)
    silences_of: dict[int, list[Any]] = {}
    for silence in silence_list(active=True, now=now).filter(deployment_id__in=list(alerts_of)):
        silences_of.setdefault(silence.deployment_id, []).append(silence)
    counts = []
    for case in cases:
        batches = (f"{case.group.device_id}/{case.group.batch_id}",)
        silences = silences_of.get(case.deployment.pk, [])
        counts.append(
            sum(
                1
                for alert in alerts_of.get(case.deployment.pk, [])
                if why_not_counted(alert, version=case.version, batches=batches, silences=silences, now=now) is None
            )
        )
    return counts


def run_failures(*, cursor_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Per cursor whose deployment's latest finished run on its group failed: (run id, error).

    The latest run per cursor is a correlated subquery (served by the runs' (deployment, started_at) index),
    so a batch of cursors is one query; the errors are read only when a latest run failed.
    """
    if not cursor_ids:
        return {}
    from django.db.models import OuterRef, Subquery

    from apps.orchestrator.selectors import run_list

    latest = (
        run_list()
        .filter(
            deployment_id=OuterRef("publication__deployment_id"),
            project_name=OuterRef("project_name"),
            device_id=OuterRef("device_id"),
            batch_id=OuterRef("batch_id"),
        )
        .exclude(status__in=("running", "stale"))
        .exclude(trigger="backfill")
    )
    rows = PublicationCursor.objects.filter(pk__in=list(cursor_ids)).annotate(
        latest_run_id=Subquery(latest.values("id")[:1]), latest_run_status=Subquery(latest.values("status")[:1])
    )
    failed = {
        cursor_id: run_id
        for cursor_id, run_id, status in rows.values_list("id", "latest_run_id", "latest_run_status")
        if run_id is not None and status == "failed"
    }
    if not failed:
        return {}
    errors = dict(run_list().filter(id__in=set(failed.values())).values_list("id", "error"))
    return {cursor_id: (int(run_id), str(errors.get(run_id, ""))) for cursor_id, run_id in failed.items()}


@dataclass(frozen=True)
class InputCheck:
    """The estimate times of one group whose inputs ``held_inputs`` checks, looking back ``lookback``."""

    group: GroupKey
    variables: tuple[str, ...]
    times_ns: np.ndarray
    lookback: timedelta


def held_inputs(*, checks: Sequence[InputCheck]) -> list[list[set[str]]]:
    """Per check and estimate time, the inputs whose newest report at or before it was Bad or Uncertain: the
    stored value used is the last good one, held. One indexed query for every check's window
    [first estimate − lookback, last estimate]; the store is read only for an input a source reported so
    there (rare: a sensor failing), which is where the cost per check lies.
    """
    held: list[list[set[str]]] = [[set() for _ in range(len(c.times_ns))] for c in checks]
    windows: dict[GroupKey, tuple[set[str], int, int]] = {}
    for check in checks:
        if not len(check.times_ns) or not check.variables:
            continue
        low, high = _window(check)
        variables, first, last = windows.get(check.group, (set(), low, high))
        windows[check.group] = (variables | set(check.variables), min(first, low), max(last, high))
    if not windows:
        return held
    where = Q()
    for group, (variables, low, high) in windows.items():
        where |= Q(
            project_name=group.project_name,
            device_id=group.device_id,
            batch_id=group.batch_id,
            observed_property__in=sorted(variables),
            time_ns__gte=low,
            time_ns__lte=high,
        )
    bad_of: dict[GroupKey, dict[tuple[str, str], list[int]]] = {}
    rows = QualitySample.objects.filter(where).values_list(
        "project_name", "device_id", "batch_id", "source", "observed_property", "time_ns"
    )
    for project_name, device_id, batch_id, source, variable, time_ns in rows:
        group = GroupKey(project_name, device_id, batch_id)
        bad_of.setdefault(group, {}).setdefault((source, variable), []).append(int(time_ns))
    for check, result in zip(checks, held, strict=True):
        if check.group in bad_of and len(check.times_ns) and check.variables:
            _held_in(check, bad_of[check.group], result)
    return held


def _window(check: InputCheck) -> tuple[int, int]:
    return int(check.times_ns.min()) - int(check.lookback.total_seconds() * 1e9), int(check.times_ns.max())


def _held_in(check: InputCheck, bad: dict[tuple[str, str], list[int]], held: list[set[str]]) -> None:
    """Mark in ``held`` the inputs of ``check`` whose last report before each time was one of ``bad``."""
    from apps.tsdb.selectors import series_read
    from apps.tsdb.types import Collection, SeriesKey

    low, last = _window(check)
    group = check.group
    for (source, variable), bad_times in bad.items():
        bad_ns = np.sort(np.asarray([t for t in bad_times if low <= t <= last], dtype=np.int64))
        if variable not in check.variables or not len(bad_ns):
            continue
        good = series_read(
            collection=Collection.RAW,
            series=SeriesKey(group.project_name, group.device_id, group.batch_id, source, variable),
            start=from_ns(low),
            end=from_ns(last),
        ).times_ns
        for i, t in enumerate(check.times_ns):
            b = np.searchsorted(bad_ns, int(t), side="right")
            if not b:
                continue
            g = np.searchsorted(good, int(t), side="right")
            if not g or good[g - 1] < bad_ns[b - 1]:
                held[i].add(variable)


def aged_inputs(
    *, group: GroupKey, variables: Sequence[str], times_ns: np.ndarray, stale_after: timedelta
) -> list[set[str]]:
    """Per estimate time, the inputs older than ``stale_after`` there (the time-series store's as-of rule,
    with the publication's tighter age instead of the deployment's)."""
    aged: list[set[str]] = [set() for _ in range(len(times_ns))]
    if not len(times_ns) or not variables:
        return aged
    from apps.tsdb.selectors import snapshots_get

    snapshots = snapshots_get(
        group=group,
        variables=tuple(variables),
        after=from_ns(int(times_ns.min()) - 1000),
        until=from_ns(int(times_ns.max())),
        max_age=stale_after,
    )
    row_of = {int(t): i for i, t in enumerate(snapshots.times_ns)}
    for i, t in enumerate(times_ns):
        row = row_of.get(int(t))
        if row is not None and not snapshots.complete[row]:
            missing = np.isnan(snapshots.matrix[row])
            aged[i] = {snapshots.variables[j] for j in np.flatnonzero(missing)}
    return aged

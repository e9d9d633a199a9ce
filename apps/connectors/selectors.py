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
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from apps.common.errors import NotFound
from apps.tsdb.types import GroupKey, from_ns

from .models import DataSource, Delivery, MappingRule, Publication, QualitySample, SourceError, SourceStatus


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


def publications_of(*, deployment_id: int) -> list[Publication]:
    """The enabled publications of a deployment (the run-completion receiver asks this inside the run's
    transaction, so it is one indexed query)."""
    return list(
        Publication.objects.filter(deployment_id=deployment_id, enabled=True, deployment__shadow_of__isnull=True).only(
            "id"
        )
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


def drift_alerts_open(*, deployment: Any, group: GroupKey, version: str) -> int:
    """Drift alerts that count for the deployment's status (the drift app's status-light rule), the group
    being published taken as the batch it scores now and ``version`` as the version it runs."""
    from apps.drift.selectors import deployment_alert_status

    status = deployment_alert_status(deployment=deployment, version=version,
                                     batches=(f"{group.device_id}/{group.batch_id}",))
    return len(status.counted)


def run_failure(*, deployment_id: int, group: GroupKey) -> tuple[int, str] | None:
    """(run id, error) when the deployment's latest finished run on ``group`` failed, else None."""
    from apps.orchestrator.selectors import run_list

    latest = (
        run_list(deployment=str(deployment_id), batch_id=group.batch_id)
        .filter(project_name=group.project_name, device_id=group.device_id)
        .exclude(status__in=("running", "stale"))
        .exclude(trigger="backfill")
        .values_list("id", "status", "error")
        .first()
    )
    if latest is None or latest[1] != "failed":
        return None
    return int(latest[0]), str(latest[2])


def held_inputs(
    *, group: GroupKey, variables: Sequence[str], times_ns: np.ndarray, lookback: timedelta
) -> list[set[str]]:
    """Per estimate time, the inputs whose newest report at or before it was Bad or Uncertain: the stored
    value used is the last good one, held. Nothing is read from the store unless a source reported such a
    sample for these inputs in [first estimate − lookback, last estimate] (one indexed query).
    """
    held: list[set[str]] = [set() for _ in range(len(times_ns))]
    if not len(times_ns) or not variables:
        return held
    first, last = int(times_ns.min()), int(times_ns.max())
    low = first - int(lookback.total_seconds() * 1e9)
    rows = QualitySample.objects.filter(
        project_name=group.project_name,
        device_id=group.device_id,
        batch_id=group.batch_id,
        observed_property__in=list(variables),
        time_ns__gte=low,
        time_ns__lte=last,
    ).values_list("source", "observed_property", "time_ns")
    bad: dict[tuple[str, str], list[int]] = {}
    for source, variable, time_ns in rows:
        bad.setdefault((source, variable), []).append(int(time_ns))
    if not bad:
        return held
    from apps.tsdb.selectors import series_read
    from apps.tsdb.types import Collection, SeriesKey

    for (source, variable), bad_times in bad.items():
        bad_ns = np.sort(np.asarray(bad_times, dtype=np.int64))
        good = series_read(
            collection=Collection.RAW,
            series=SeriesKey(group.project_name, group.device_id, group.batch_id, source, variable),
            start=from_ns(low),
            end=from_ns(last),
        ).times_ns
        for i, t in enumerate(times_ns):
            b = np.searchsorted(bad_ns, int(t), side="right")
            if not b:
                continue
            g = np.searchsorted(good, int(t), side="right")
            if not g or good[g - 1] < bad_ns[b - 1]:
                held[i].add(variable)
    return held


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

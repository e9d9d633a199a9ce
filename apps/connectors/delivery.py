"""Publishing estimates back to the plant, at least once, with a quality code and a delivery log.

How it is kept
--------------
* **Trigger.** A pipeline run that stored predictions, or failed, is saved in its transaction; the
  receiver (``signals.py``) registers ``publication_notify`` to run *after that commit*, so an estimate is
  only ever published once it is durable. ``publication_notify`` flips the ``pending`` flag of each
  publication's cursor for the group False→True with one conditional UPDATE and queues a task only for the
  rows it flipped: a burst of runs leaves at most one queued delivery per publication and group.
* **Deliver.** The task clears ``pending``, reads the deployment's estimates newer than the cursor (and not
  older than the publication's ``max_age_seconds``: history is not control), computes each one's quality
  (``quality.py``), sends them all, and only then logs them ``delivered`` and moves the cursor, in one
  transaction. A send that fails is logged ``failed`` and retried by Celery with exponential backoff; the
  cursor has not moved, so the retry sends the same estimates again: **at least once** (a receiver may see
  an estimate twice, never miss one inside ``max_age_seconds``).
* **Overlaps.** A notification arriving while a delivery is sending queues another; both may send the
  newest estimates (at least once allows it) and the cursor only ever moves forward.
* **Runtime failure.** When the deployment's latest run on the group failed, the last estimate is sent
  once more as Bad (``BadInternalError``), so the control system holds its last good value.
* **Safety net.** Beat's ``connectors.sweep`` re-queues cursors left pending (a lost task, a broker outage)
  or failing, and prunes the logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from apps.tsdb.types import (
    PREDICTION_SOURCE,
    Collection,
    GroupKey,
    SeriesKey,
    estimate_values,
    from_ns,
    point_estimate,
    to_ns,
)

from . import selectors
from .models import Delivery, DeliveryStatus, Publication, PublicationCursor
from .publishers import Outgoing, PublishFailed, publish
from .quality import EstimateQuality, estimate_quality

if TYPE_CHECKING:
    from apps.orchestrator.scoring import Estimator

logger = logging.getLogger(__name__)

#: Estimates read per delivery task (a longer backlog continues in a follow-up task).
MAX_ESTIMATES = 2000
#: A pending flag older than this without progress is re-queued by the sweep.
PENDING_GRACE_SECONDS = 60


# ------------------------------------------------------------------------------------------------ notify


def _cursors_ensure(publication_ids: Sequence[int], group: GroupKey) -> list[int]:
    """The cursor ids of these publications for ``group``, creating missing ones (concurrency-safe)."""

    def existing() -> dict[int, int]:
        return dict(
            PublicationCursor.objects.filter(
                publication_id__in=publication_ids,
                project_name=group.project_name,
                device_id=group.device_id,
                batch_id=group.batch_id,
            ).values_list("publication_id", "id")
        )

    found = existing()
    missing = [p for p in publication_ids if p not in found]
    if missing:
        PublicationCursor.objects.bulk_create(
            [
                PublicationCursor(
                    publication_id=p,
                    project_name=group.project_name,
                    device_id=group.device_id,
                    batch_id=group.batch_id,
                )
                for p in missing
            ],
            ignore_conflicts=True,
        )
        found = existing()
    return sorted(found.values())


def _pending_flip(cursor_ids: Sequence[int], *, now: datetime) -> list[int]:
    """Set ``pending`` where it was False (one UPDATE … RETURNING); the ids returned need a task."""
    if not cursor_ids:
        return []
    table = PublicationCursor._meta.db_table
    placeholders = ", ".join(["%s"] * len(cursor_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET pending = %s, pending_since = %s WHERE id IN ({placeholders}) AND pending = %s"
            " RETURNING id",
            [True, connection.ops.adapt_datetimefield_value(now), *cursor_ids, False],
        )
        return sorted(int(row[0]) for row in cursor.fetchall())


def _enqueue(cursor_ids: Sequence[int], countdown: float | None = None) -> None:
    if not cursor_ids:
        return
    from .tasks import deliver

    def send() -> None:
        for cursor_id in cursor_ids:
            deliver.apply_async(args=[cursor_id], countdown=countdown)

    transaction.on_commit(send, robust=True)


def publication_notify(*, deployment_id: int, group: GroupKey) -> list[int]:
    """A run of the deployment on ``group`` committed (estimates or a failure): queue its deliveries."""
    publication_ids = [p.pk for p in selectors.publications_of(deployment_id=deployment_id)]
    if not publication_ids:
        return []
    with transaction.atomic():
        flipped = _pending_flip(_cursors_ensure(publication_ids, group), now=timezone.now())
        _enqueue(flipped)
    return flipped


# ----------------------------------------------------------------------------------------------- deliver


@dataclass
class Estimate:
    observed_property: str
    time_ns: int
    value: float
    raw_value: float
    bias: float
    validity: str
    quality: EstimateQuality


def _field(data: Any, name: str, index: int, default: Any) -> Any:
    values = data.fields.get(name)
    if values is None:
        return default
    value = values[index]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    return value


def _oldest_points(series: SeriesKey, start: datetime, end: datetime) -> Any:
    """Raw prediction points from ``start`` on: the range is halved until the store need not downsample it
    (a long ``max_age_seconds`` at a fast rate holds more points than one read returns)."""
    from apps.tsdb.selectors import series_read

    while True:
        data = series_read(collection=Collection.PREDICTIONS, series=series, start=start, end=end)
        if data.downsampled is None or end - start <= timedelta(seconds=1):
            return data
        end = start + (end - start) / 2


def _estimates(
    publication: Publication, estimator: Estimator, group: GroupKey, after_ns: int, now: datetime
) -> list[Estimate]:
    """The deployment's new estimates for the group, oldest first, with their quality."""

    end = now + timedelta(days=1)  # snapshots are stamped by the plant's clock, which may run ahead
    rows: list[tuple[str, int, float, float, float, str]] = []
    for output in estimator.spec.output_names:
        series = estimator.output_series(group, output)
        data = _oldest_points(series, from_ns(after_ns), end)
        estimates = estimate_values(data)  # as deployed: raw plus the bias update in force
        for i in range(len(data)):
            t = int(data.times_ns[i])
            if t <= after_ns:
                continue
            rows.append(
                (
                    output,
                    t,
                    float(estimates[i]),
                    float(data.values[i]),
                    float(estimates[i] - data.values[i]),  # the bias update in force
                    str(_field(data, "validity", i, "")),
                )
            )
    rows.sort(key=lambda r: (r[1], r[0]))
    rows = rows[:MAX_ESTIMATES]
    if not rows:
        return []
    times = np.array(sorted({r[1] for r in rows}), dtype=np.int64)
    variables = estimator.snapshot_variables
    deployment = publication.deployment
    held = selectors.held_inputs(
        group=group, variables=variables, times_ns=times, lookback=timedelta(seconds=deployment.max_input_age_seconds)
    )
    aged = (
        selectors.aged_inputs(
            group=group,
            variables=variables,
            times_ns=times,
            stale_after=timedelta(seconds=publication.stale_after_seconds),
        )
        if publication.stale_after_seconds
        else [set() for _ in times]
    )
    stale_at = {int(t): sorted(held[i] | aged[i]) for i, t in enumerate(times)}
    alerts = selectors.drift_alerts_open(deployment=deployment, group=group, version=estimator.spec.version_tag)
    return [
        Estimate(
            observed_property=r[0],
            time_ns=r[1],
            value=r[2],
            raw_value=r[3],
            bias=r[4],
            validity=r[5],
            quality=estimate_quality(validity=r[5], stale_inputs=stale_at[r[1]], drift_alerts=alerts),
        )
        for r in rows
    ]


def _destination(publication: Publication, group: GroupKey, observed_property: str) -> str:
    from .mapping import render

    return render(
        publication.target,
        {
            "project_name": group.project_name,
            "device_id": group.device_id,
            "batch_id": group.batch_id,
            "observed_property": observed_property,
        },
    )


def _outgoing(
    publication: Publication, estimator: Estimator, group: GroupKey, estimate: Estimate, unit: str
) -> Outgoing:
    moment = from_ns(estimate.time_ns)
    value = None if np.isnan(estimate.value) else estimate.value  # a Bad status before any estimate existed
    body = {
        "value": value,
        "unit": unit,
        "time": moment.isoformat(),
        "quality": estimate.quality.quality.value,
        "status": estimate.quality.status_name,
        "status_code": estimate.quality.status_code,
        "reasons": list(estimate.quality.reasons),
        "model_id": estimator.spec.model_id,
        "version": estimator.spec.number,
        "bias": estimate.bias,
        "raw_value": None if np.isnan(estimate.raw_value) else estimate.raw_value,
        "validity": estimate.validity,
        "deployment": publication.deployment.name,
        "project_name": group.project_name,
        "device_id": group.device_id,
        "batch_id": group.batch_id,
        "observed_property": estimate.observed_property,
    }
    return Outgoing(
        destination=_destination(publication, group, estimate.observed_property),
        body=json.dumps(body, separators=(",", ":")).encode(),
        value=value,
        status_code=estimate.quality.status_code,
        source_time=moment,
    )


def _units(estimator: Estimator, group: GroupKey) -> dict[str, str]:
    """Each output's unit: the group's variable metadata, else what the version declares."""
    from apps.tsdb.selectors import variable_metadata_list

    units = {o.name: o.units for o in estimator.spec.outputs}
    for m in variable_metadata_list(project_name=group.project_name, device_id=group.device_id):
        if m.observed_property in units and m.unit:
            units[m.observed_property] = m.unit
    return units


def _last_estimate(estimator: Estimator, group: GroupKey, now: datetime) -> Estimate | None:
    """The newest estimate of the group (any age): what a Bad status message carries."""
    from apps.tsdb.selectors import latest_points
    from apps.tsdb.types import SeriesFilter

    points = [
        p
        for p in latest_points(
            collection=Collection.PREDICTIONS,
            where=SeriesFilter(
                project_name=group.project_name,
                device_id=group.device_id,
                batch_id=group.batch_id,
                source=PREDICTION_SOURCE,
                model_id=estimator.spec.model_tag,
                version=estimator.spec.version_tag,
            ),
        )
        if p.series.observed_property in estimator.spec.output_names
    ]
    if not points:
        return None
    newest = max(points, key=lambda p: p.time)
    return Estimate(
        newest.series.observed_property,
        to_ns(newest.time),
        point_estimate(newest),
        float(newest.value),
        point_estimate(newest) - float(newest.value),
        str(newest.fields.get("validity") or ""),
        estimate_quality(validity=""),
    )


def _log(
    publication: Publication,
    group: GroupKey,
    items: list[tuple[Estimate, Outgoing]],
    *,
    status: str,
    attempt: int,
    error: str = "",
) -> None:
    now = timezone.now()
    Delivery.objects.bulk_create(
        [
            Delivery(
                publication=publication,
                project_name=group.project_name,
                device_id=group.device_id,
                batch_id=group.batch_id,
                observed_property=e.observed_property,
                snapshot_ns=e.time_ns,
                destination=o.destination[:500],
                value=o.value,
                quality=e.quality.quality.value,
                status_code=e.quality.status_code,
                reasons="; ".join(e.quality.reasons),
                status=status,
                attempt=attempt,
                error=error[:2000],
                at=now,
            )
            for e, o in items
        ]
    )


def publication_deliver(*, cursor_id: int, attempt: int = 1, now: datetime | None = None) -> int:
    """Send the group's new estimates of one publication (see the module docstring); returns how many.

    Raises ``PublishFailed`` (after logging it) so the task retries.
    """
    now = now or timezone.now()
    PublicationCursor.objects.filter(pk=cursor_id).update(pending=False)
    cursor = (
        PublicationCursor.objects.select_related(
            "publication__deployment__soft_sensor__project",
            "publication__deployment__pinned_version",
            "publication__connection",
        )
        .filter(pk=cursor_id)
        .first()
    )
    if cursor is None or not cursor.publication.enabled:
        return 0
    publication = cursor.publication
    group = GroupKey(cursor.project_name, cursor.device_id, cursor.batch_id)
    from apps.orchestrator.selectors import deployment_estimator

    estimator = deployment_estimator(publication.deployment)
    if estimator is None:
        return 0
    oldest = to_ns(now - timedelta(seconds=publication.max_age_seconds)) - 1
    after = max(cursor.delivered_through_ns if cursor.delivered_through_ns is not None else oldest, oldest)
    estimates = _estimates(publication, estimator, group, after, now)
    failure = selectors.run_failure(deployment_id=publication.deployment_id, group=group)
    announce = failure is not None and failure[0] != cursor.failure_run_id and not estimates
    if announce:
        last = _last_estimate(estimator, group, now)
        bad = estimate_quality(validity="", runtime_error=failure[1] or "the pipeline run failed")
        if last is not None:
            last.quality = bad
            estimates = [last]
        else:
            output = estimator.spec.output_names[0] if estimator.spec.output_names else "estimate"
            estimates = [Estimate(output, to_ns(now), float("nan"), float("nan"), 0.0, "", bad)]
    if not estimates:
        return 0
    units = _units(estimator, group)
    items = [(e, _outgoing(publication, estimator, group, e, units.get(e.observed_property, ""))) for e in estimates]
    try:
        publish(
            connection=publication.connection,
            messages=[o for _, o in items],
            retain=publication.retain,
            timeout=settings.STAMM_CONNECTORS_PUBLISH_TIMEOUT,
        )
    except PublishFailed as exc:
        with transaction.atomic():
            _log(publication, group, items, status=DeliveryStatus.FAILED, attempt=attempt, error=str(exc))
            PublicationCursor.objects.filter(pk=cursor_id).update(failures=cursor.failures + 1)
        raise
    with transaction.atomic():
        _log(publication, group, items, status=DeliveryStatus.DELIVERED, attempt=attempt)
        changes: dict[str, Any] = {"failures": 0}
        if announce:
            changes["failure_run_id"] = failure[0]
        else:
            newest = max(e.time_ns for e in estimates)
            # never backwards: a delivery that overlapped a later one must not move the cursor back
            changes["delivered_through_ns"] = Case(
                When(delivered_through_ns__gt=newest, then=F("delivered_through_ns")), default=Value(newest)
            )
        PublicationCursor.objects.filter(pk=cursor_id).update(**changes)
        if len(estimates) >= MAX_ESTIMATES:
            flipped = _pending_flip([cursor_id], now=timezone.now())
            _enqueue(flipped)
    return len(items)


def publication_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Beat's safety net: re-queue cursors pending too long (a lost task) or left failing; prune the logs."""
    from .services import connectors_log_prune

    now = now or timezone.now()
    stuck = list(
        PublicationCursor.objects.filter(
            Q(pending=True, pending_since__lt=now - timedelta(seconds=PENDING_GRACE_SECONDS))
            | Q(pending=False, failures__gt=0),
            publication__enabled=True,
        ).values_list("id", flat=True)
    )
    with transaction.atomic():
        PublicationCursor.objects.filter(id__in=stuck).update(pending=False)
        flipped = _pending_flip(stuck, now=now)
        _enqueue(flipped)
    pruned = connectors_log_prune(now=now)
    return {"requeued": len(flipped), **pruned}

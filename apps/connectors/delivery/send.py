"""Delivering a batch of cursors: read, publish once per connection, log and move the cursors in one
transaction (see the package docstring)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.db import models, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from apps.tsdb.types import GroupKey, from_ns, to_ns

from .. import selectors
from ..models import Delivery, DeliveryStatus, Publication, PublicationCursor
from ..publishers import Outgoing, PublishFailed, publish
from .estimates import (
    MAX_ESTIMATES,
    Estimate,
    NewEstimates,
    estimate_rows,
    estimates_qualify,
    failure_estimate,
    output_units,
)
from .notify import deliveries_enqueue, pending_flip

if TYPE_CHECKING:
    from apps.orchestrator.scoring import Estimator

#: Connections one delivery task sends to at once (threads: a send waits on the network, not the CPU).
PUBLISH_THREADS = 8
#: Messages per ``publish`` call at most: what one send held when each cursor had a task of its own
#: (``MAX_ESTIMATES``), so ``STAMM_CONNECTORS_PUBLISH_TIMEOUT`` still covers the same work.
SEND_MAX = MAX_ESTIMATES
#: Delivery log rows per INSERT (a batch's backlog can be many cursors × ``MAX_ESTIMATES``).
LOG_ROWS_PER_INSERT = 1000


@dataclass
class CursorDelivery:
    """One cursor's share of a batch: what it sends, and how the cursor moves once that is delivered."""

    cursor: PublicationCursor
    estimator: Estimator
    estimates: list[Estimate] = field(default_factory=list)
    #: The failed run announced by this delivery (a Bad status); None when it sends new estimates.
    announced_run_id: int | None = None
    messages: list[Outgoing] = field(default_factory=list)

    @property
    def publication(self) -> Publication:
        return self.cursor.publication

    @property
    def group(self) -> GroupKey:
        return GroupKey(self.cursor.project_name, self.cursor.device_id, self.cursor.batch_id)


@dataclass
class DeliveryOutcome:
    """What ``publications_deliver`` did: how many estimates were delivered, and the cursors whose send
    failed (cursor id → the peer's error), which the task retries alone."""

    delivered: int = 0
    failed: dict[int, str] = field(default_factory=dict)


def _destination(publication: Publication, group: GroupKey, observed_property: str) -> str:
    from ..mapping import render

    return render(
        publication.target,
        {
            "project_name": group.project_name,
            "device_id": group.device_id,
            "batch_id": group.batch_id,
            "observed_property": observed_property,
        },
    )


def _outgoing(item: CursorDelivery, estimate: Estimate, unit: str) -> Outgoing:
    publication, group, spec = item.publication, item.group, item.estimator.spec
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
        "model_id": spec.model_id,
        "version": spec.number,
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
        retain=publication.retain,
    )


def _log_rows(item: CursorDelivery, *, status: str, attempt: int, error: str, at: datetime) -> list[Delivery]:
    group = item.group
    return [
        Delivery(
            publication=item.publication,
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
            at=at,
        )
        for e, o in zip(item.estimates, item.messages, strict=True)
    ]


def _cursors_load(cursor_ids: Sequence[int]) -> list[CursorDelivery]:
    """The cursors of enabled publications with their publication, deployment and connection (one query) and
    the estimators their deployments run now (``deployment_estimators``: a few queries for all of them).
    A cursor whose deployment runs nothing (its alias is gone) sends nothing."""
    from apps.orchestrator.selectors import deployment_estimators

    cursors = list(
        PublicationCursor.objects.select_related(
            "publication__deployment__soft_sensor__project",
            "publication__deployment__pinned_version",
            "publication__connection",
        )
        .filter(pk__in=list(cursor_ids), publication__enabled=True)
        .order_by("id")
    )
    deployments = list({c.publication.deployment_id: c.publication.deployment for c in cursors}.values())
    estimator_of = {d.pk: estimator for d, estimator in deployment_estimators(deployments)}
    return [
        CursorDelivery(cursor=c, estimator=estimator)
        for c in cursors
        if (estimator := estimator_of.get(c.publication.deployment_id)) is not None
    ]


def _estimates_gather(items: list[CursorDelivery], now: datetime) -> None:
    """Fill each item's estimates: the new ones with their quality, else a failed run's Bad status once."""
    reads = []
    for item in items:
        cursor, publication = item.cursor, item.publication
        oldest = to_ns(now - timedelta(seconds=publication.max_age_seconds)) - 1
        after = max(cursor.delivered_through_ns if cursor.delivered_through_ns is not None else oldest, oldest)
        reads.append(
            NewEstimates(publication, item.estimator, item.group, estimate_rows(item.estimator, item.group, after, now))
        )
    for item, estimates in zip(items, estimates_qualify(reads), strict=True):
        item.estimates = estimates
    failures = selectors.run_failures(cursor_ids=[item.cursor.pk for item in items])
    for item in items:
        failure = failures.get(item.cursor.pk)
        if failure is not None and failure[0] != item.cursor.failure_run_id and not item.estimates:
            item.announced_run_id = failure[0]
            item.estimates = [failure_estimate(item.estimator, item.group, failure[1], now)]


def _sends(members: list[CursorDelivery]) -> list[list[CursorDelivery]]:
    """A connection's cursors in sends of at most ``SEND_MAX`` messages (a cursor is never split)."""
    sends: list[list[CursorDelivery]] = []
    size = 0
    for item in members:
        if not sends or size + len(item.messages) > SEND_MAX:
            sends.append([])
            size = 0
        sends[-1].append(item)
        size += len(item.messages)
    return sends


def _publish(items: list[CursorDelivery]) -> dict[int, str]:
    """Send each connection's messages in one ``publish`` call (more only past ``SEND_MAX``); returns the
    cursors whose send failed, with the peer's error. After a failed send the connection's remaining cursors
    are failed without waiting again. Several connections are sent to side by side, so a peer that is down
    or slow delays the others only until the batch commits (their messages are already out)."""
    by_connection: dict[int, list[CursorDelivery]] = {}
    for item in items:
        by_connection.setdefault(item.publication.connection_id, []).append(item)

    def send(members: list[CursorDelivery]) -> dict[int, str]:
        failed: dict[int, str] = {}
        error = ""
        for part in _sends(members):
            if not error:
                try:
                    publish(
                        connection=part[0].publication.connection,
                        messages=[m for item in part for m in item.messages],
                        timeout=settings.STAMM_CONNECTORS_PUBLISH_TIMEOUT,
                    )
                except PublishFailed as exc:
                    error = str(exc)
            if error:
                failed.update((item.cursor.pk, error) for item in part)
        return failed

    if len(by_connection) <= 1:
        return {pk: error for members in by_connection.values() for pk, error in send(members).items()}
    with ThreadPoolExecutor(max_workers=min(PUBLISH_THREADS, len(by_connection))) as pool:
        futures = [pool.submit(send, members) for members in by_connection.values()]
        return {pk: error for future in futures for pk, error in future.result().items()}


def _cursors_advance(delivered: list[CursorDelivery]) -> None:
    """One UPDATE: each delivered cursor moves to its newest estimate (never backwards: a delivery that
    overlapped a later one must not move it back) or records the failed run it announced; failures reset."""
    if not delivered:
        return
    through: list[When] = []
    announced: list[When] = []
    for item in delivered:
        pk = item.cursor.pk
        if item.announced_run_id is not None:
            announced.append(When(pk=pk, then=Value(item.announced_run_id)))
        else:
            newest = max(e.time_ns for e in item.estimates)
            through += [
                When(pk=pk, delivered_through_ns__gt=newest, then=F("delivered_through_ns")),
                When(pk=pk, then=Value(newest)),
            ]
    changes: dict[str, Any] = {"failures": 0}
    if through:
        changes["delivered_through_ns"] = Case(
            *through, default=F("delivered_through_ns"), output_field=models.BigIntegerField()
        )
    if announced:
        changes["failure_run_id"] = Case(*announced, default=F("failure_run_id"), output_field=models.BigIntegerField())
    PublicationCursor.objects.filter(pk__in=[item.cursor.pk for item in delivered]).update(**changes)


def publications_deliver(
    *, cursor_ids: Sequence[int], attempt: int = 1, now: datetime | None = None
) -> DeliveryOutcome:
    """Send the new estimates of these cursors (see the package docstring).

    A connection whose send fails does not stop the others: its cursors are logged ``failed``, keep their
    position and are returned in ``failed`` for the task to retry; the others are logged ``delivered`` and
    move, in the same transaction.
    """
    now = now or timezone.now()
    ids = sorted(set(cursor_ids))
    if not ids:
        return DeliveryOutcome()
    PublicationCursor.objects.filter(pk__in=ids).update(pending=False)
    items = _cursors_load(ids)
    _estimates_gather(items, now)
    items = [item for item in items if item.estimates]
    for item, units in zip(items, output_units([(item.estimator, item.group) for item in items]), strict=True):
        item.messages = [_outgoing(item, e, units.get(e.observed_property, "")) for e in item.estimates]
    errors = _publish(items)
    delivered = [item for item in items if item.cursor.pk not in errors]
    failed = [item for item in items if item.cursor.pk in errors]
    at = timezone.now()
    logs: list[Delivery] = []
    for item in delivered:
        logs += _log_rows(item, status=DeliveryStatus.DELIVERED, attempt=attempt, error="", at=at)
    for item in failed:
        logs += _log_rows(item, status=DeliveryStatus.FAILED, attempt=attempt, error=errors[item.cursor.pk], at=at)
    with transaction.atomic():
        Delivery.objects.bulk_create(logs, batch_size=LOG_ROWS_PER_INSERT)
        _cursors_advance(delivered)
        if failed:
            PublicationCursor.objects.filter(pk__in=[item.cursor.pk for item in failed]).update(
                failures=F("failures") + 1
            )
        backlog = [item.cursor.pk for item in delivered if len(item.estimates) >= MAX_ESTIMATES]
        deliveries_enqueue(pending_flip(backlog, now=timezone.now()))
    return DeliveryOutcome(delivered=sum(len(item.messages) for item in delivered), failed=errors)

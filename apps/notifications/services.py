"""Writes of the notifications app: subscriptions, events (the one entry point), deliveries and digests.

The rules in one place
----------------------
* **One entry.** Every event — drift alert opened / acknowledged / resolved, pipeline failing, estimate
  validity Bad — goes through ``event_raise``, called by the receivers in ``receivers.py`` (the lower apps
  send Django signals and never import this app). It writes an ``Event`` and one ``Delivery`` per matching
  subscription, then queues one Celery task per delivery once committed.
* **Who hears.** Enabled subscriptions of active users who may read process data (``view_process``), for
  this event kind, on this deployment or on every deployment.
* **Repeats.** An event with a ``key`` (validity Bad: deployment + batch) is dropped when the same key was
  raised within ``STAMM_NOTIFY_REPEAT_SECONDS``.
* **Digest, not a flood.** When a subscription has already had ``STAMM_NOTIFY_DIGEST_AFTER`` messages within
  ``STAMM_NOTIFY_DIGEST_WINDOW`` seconds, further deliveries are *held*; the first held one opens a digest
  delivery, sent once at the end of the window, listing every held event.
* **Retries.** A failed attempt (SMTP error, webhook answering non-2xx or not at all) is logged as a
  ``DeliveryAttempt`` and retried by the task with exponential backoff (``retry_delay``) until
  ``STAMM_NOTIFY_MAX_ATTEMPTS``; then the delivery is ``failed`` with the last error.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.common.errors import ValidationFailed, reject_unknown_fields

from . import channels
from .models import Channel, Delivery, DeliveryAttempt, DeliveryStatus, Event, EventKind, Subscription

logger = logging.getLogger(__name__)

DELIVER_TASK = "notifications.deliver"
DIGEST_TASK = "notifications.send_digest"


# -- subscriptions ----------------------------------------------------------------------------------

def _subscription_clean(*, user: Any, events: Any, channel: Any, url: Any) -> tuple[list[str], str, str]:
    problems: dict[str, str] = {}
    if not isinstance(events, list | tuple) or not events or not all(isinstance(e, str) for e in events):
        problems["events"] = f"choose at least one of: {', '.join(EventKind.values)}"
    else:
        unknown = sorted(set(events) - set(EventKind.values))
        if unknown:
            problems["events"] = f"unknown: {', '.join(unknown)}; known: {', '.join(EventKind.values)}"
    if channel not in Channel.values:
        problems["channel"] = f"expected one of {', '.join(Channel.values)}"
    url = str(url or "").strip()
    if channel == Channel.WEBHOOK:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems["url"] = "a webhook needs an http:// or https:// address"
    elif channel == Channel.EMAIL:
        url = ""
        if not getattr(user, "email", ""):
            problems["channel"] = "your account has no e-mail address: ask an administrator to set it"
    if problems:
        raise ValidationFailed("; ".join(f"{k}: {v}" for k, v in problems.items()), details=problems)
    return list(dict.fromkeys(events)), channel, url


@transaction.atomic
def subscription_create(*, user: Any, events: Any, channel: Any = Channel.EMAIL, url: Any = "",
                        deployment: Any = None, enabled: bool = True) -> Subscription:
    """Subscribe ``user`` to ``events`` of ``deployment`` (None: every one); a webhook gets a new secret."""
    events, channel, url = _subscription_clean(user=user, events=events, channel=channel, url=url)
    return Subscription.objects.create(
        user=user, deployment=deployment, events=events, channel=channel, url=url, enabled=enabled,
        secret=secrets.token_hex(32) if channel == Channel.WEBHOOK else "",
    )


@transaction.atomic
def subscription_update(*, subscription: Subscription, data: Mapping[str, Any]) -> Subscription:
    """Change events, channel, url, deployment or enabled; validated as a whole."""
    allowed = {"events", "channel", "url", "deployment", "enabled"}
    reject_unknown_fields(data, allowed, what="subscription")
    current = Subscription.objects.select_for_update().get(pk=subscription.pk)
    events, channel, url = _subscription_clean(
        user=current.user, events=data.get("events", current.events), channel=data.get("channel", current.channel),
        url=data.get("url", current.url))
    current.events, current.url = events, url
    if channel == Channel.WEBHOOK and not current.secret:
        current.secret = secrets.token_hex(32)
    if channel == Channel.EMAIL:
        current.secret = ""
    current.channel = channel
    if "deployment" in data:
        current.deployment = data["deployment"]
    if "enabled" in data:
        current.enabled = bool(data["enabled"])
    current.save()
    return current


def subscription_secret_rotate(*, subscription: Subscription) -> Subscription:
    """A new webhook secret (the old one stops verifying at once)."""
    if subscription.channel != Channel.WEBHOOK:
        raise ValidationFailed("channel: only webhook subscriptions have a secret", details={"channel": "email"})
    subscription.secret = secrets.token_hex(32)
    subscription.save(update_fields=["secret", "updated_at"])
    return subscription


def subscription_delete(*, subscription: Subscription) -> None:
    subscription.delete()


# -- events -----------------------------------------------------------------------------------------

def _may_hear(user: Any) -> bool:
    return bool(user.is_active and user.has_perm("accounts.view_process"))


def event_raise(*, kind: str, subject: str, body: str, deployment_id: int | None = None,
                facts: Mapping[str, Any] | None = None, key: str = "", now: datetime | None = None) -> Event | None:
    """The one entry point: record the event, fan it out to the subscriptions that want it, queue the sends.

    Returns None when a keyed event repeats within ``STAMM_NOTIFY_REPEAT_SECONDS`` (nothing is written).
    """
    if kind not in EventKind.values:
        raise ValueError(f"unknown notification event {kind!r}")
    now = now or timezone.now()
    with transaction.atomic():
        if key and Event.objects.filter(
            key=key, created_at__gte=now - timedelta(seconds=settings.STAMM_NOTIFY_REPEAT_SECONDS)
        ).exists():
            return None
        event = Event.objects.create(kind=kind, deployment_id=deployment_id, subject=subject[:300], body=body,
                                     facts=dict(facts or {}), key=key)
        scope = Q(deployment__isnull=True) | (Q(deployment_id=deployment_id) if deployment_id else Q(pk__in=[]))
        deliveries = []
        for subscription in Subscription.objects.filter(scope, enabled=True).select_related("user"):
            if kind in subscription.events and _may_hear(subscription.user):
                deliveries.append(Delivery.objects.create(subscription=subscription, event=event))
        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: _queue(DELIVER_TASK, ids), robust=True)
    return event


def _queue(task: str, ids: Iterable[int], countdown: float | None = None) -> None:
    from celery import signature

    for delivery_id in ids:
        signature(task, args=[delivery_id]).apply_async(countdown=countdown)


# -- deliveries -------------------------------------------------------------------------------------

def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base, 2·base, 4·base … capped at 1 h."""
    return float(min(3600, settings.STAMM_NOTIFY_BACKOFF_SECONDS * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class SendResult:
    """What the task does next: nothing (sent, held, gave up) or retry in ``retry_in`` seconds."""

    status: str
    retry_in: float | None = None


def _payload(delivery: Delivery, held: list[Delivery]) -> tuple[str, str, str, dict[str, Any]]:
    """(kind, subject, text body, JSON payload) of a delivery or a digest of ``held`` ones."""
    if not delivery.is_digest:
        event = delivery.event
        payload = {"kind": event.kind, "subject": event.subject, "body": event.body, "facts": event.facts,
                   "deployment_id": event.deployment_id, "event_id": event.pk,
                   "created_at": event.created_at.isoformat()}
        return event.kind, f"[STAMM] {event.subject}", event.body, payload
    events = [d.event for d in held]
    subject = f"[STAMM] digest: {len(events)} notifications"
    lines = [f"{len(events)} notifications arrived within {settings.STAMM_NOTIFY_DIGEST_WINDOW} s; "
             "they are listed here in one message instead of one each:", ""]
    lines += [f"- {e.created_at:%Y-%m-%d %H:%M:%S} UTC · {e.get_kind_display()} · {e.subject}" for e in events]
    payload = {"kind": "digest", "subject": subject, "events": [
        {"kind": e.kind, "subject": e.subject, "facts": e.facts, "deployment_id": e.deployment_id,
         "event_id": e.pk, "created_at": e.created_at.isoformat()} for e in events]}
    return "digest", subject, "\n".join(lines), payload


def _hold_for_digest(delivery: Delivery, now: datetime) -> bool:
    """Hold ``delivery`` when its subscription already had its share of messages in the window (see above)."""
    window = timedelta(seconds=settings.STAMM_NOTIFY_DIGEST_WINDOW)
    Subscription.objects.select_for_update().filter(pk=delivery.subscription_id).first()  # serialise per subscription
    recent = Delivery.objects.filter(subscription_id=delivery.subscription_id, created_at__gte=now - window,
                                     event__isnull=False).exclude(pk=delivery.pk)
    sent_or_held = recent.filter(Q(status=DeliveryStatus.HELD) | Q(attempts__gt=0))
    if sent_or_held.count() < settings.STAMM_NOTIFY_DIGEST_AFTER:
        return False
    digest = Delivery.objects.filter(subscription_id=delivery.subscription_id, event__isnull=True,
                                     status=DeliveryStatus.PENDING, attempts=0).first()
    if digest is None:
        digest = Delivery.objects.create(subscription_id=delivery.subscription_id, event=None)
        digest_id = digest.pk
        transaction.on_commit(lambda: _queue(DIGEST_TASK, [digest_id], countdown=window.total_seconds()),
                              robust=True)
    delivery.status, delivery.digest = DeliveryStatus.HELD, digest
    delivery.save(update_fields=["status", "digest"])
    return True


def delivery_send(*, delivery_id: int, now: datetime | None = None) -> SendResult:
    """One attempt at a delivery (the task calls this, and again on each retry).

    A first attempt may instead hold the delivery for a digest. A digest waits until it is due.
    """
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(of=("self",)).select_related("subscription__user", "event")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.HELD):
            return SendResult(delivery.status if delivery else "gone")
        if not delivery.is_digest and delivery.attempts == 0 and _hold_for_digest(delivery, now):
            return SendResult(DeliveryStatus.HELD)
        held = list(delivery.held.select_related("event").order_by("created_at", "id")) if delivery.is_digest else []
        if delivery.is_digest and not held:
            delivery.delete()
            return SendResult("empty digest")
        subscription = delivery.subscription
        kind, subject, body, payload = _payload(delivery, held)
        started = time.perf_counter()
        if subscription.channel == Channel.WEBHOOK:
            outcome = channels.webhook_post(url=subscription.url, secret=subscription.secret, kind=kind,
                                            payload=payload)
        else:
            outcome = channels.email_send(to=subscription.user.email, subject=subject, body=body)
        delivery.attempts += 1
        DeliveryAttempt.objects.create(delivery=delivery, number=delivery.attempts, at=timezone.now(), ok=outcome.ok,
                                       status_code=outcome.status_code, error=outcome.error[:2000],
                                       duration_ms=(time.perf_counter() - started) * 1000)
        if outcome.ok:
            delivery.status, delivery.sent_at, delivery.last_error = DeliveryStatus.SENT, timezone.now(), ""
            delivery.save(update_fields=["status", "sent_at", "last_error", "attempts"])
            if held:
                Delivery.objects.filter(pk__in=[d.pk for d in held]).update(sent_at=delivery.sent_at)
            return SendResult(DeliveryStatus.SENT)
        delivery.last_error = outcome.error[:2000]
        if delivery.attempts >= settings.STAMM_NOTIFY_MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            delivery.save(update_fields=["status", "last_error", "attempts"])
            logger.warning("notification %s gave up after %s attempts: %s", delivery.pk, delivery.attempts,
                           outcome.error)
            return SendResult(DeliveryStatus.FAILED)
        delivery.status = DeliveryStatus.RETRYING
        delivery.save(update_fields=["status", "last_error", "attempts"])
        return SendResult(DeliveryStatus.RETRYING, retry_in=retry_delay(delivery.attempts))

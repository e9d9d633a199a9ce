"""Reads of the notifications app: a user's subscriptions, deliveries with their attempts, events."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from apps.common.errors import NotFound

from .models import Delivery, DeliveryAttempt, Event, Subscription


def subscription_list(*, user: Any) -> QuerySet[Subscription]:
    return Subscription.objects.filter(user=user).select_related("deployment").order_by("id")


def subscription_get(*, user: Any, subscription_id: int) -> Subscription:
    """The user's own subscription (another user's is a 404: it does not exist for them)."""
    try:
        return subscription_list(user=user).get(pk=subscription_id)
    except Subscription.DoesNotExist:
        raise NotFound(f"Subscription {subscription_id} does not exist.",
                       details={"subscription": subscription_id}) from None


def delivery_list(*, user: Any, status: str | None = None, subscription: int | None = None) -> QuerySet[Delivery]:
    """The user's deliveries, newest first, with their attempts (two queries, whatever the page size)."""
    deliveries = (
        Delivery.objects.filter(subscription__user=user)
        .select_related("subscription", "event")
        .prefetch_related(Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("number")))
    )
    if status:
        deliveries = deliveries.filter(status=status)
    if subscription is not None:
        deliveries = deliveries.filter(subscription_id=subscription)
    return deliveries.order_by("-created_at", "-id")


def event_list(*, kind: str | None = None, deployment: int | None = None) -> QuerySet[Event]:
    events = Event.objects.select_related("deployment")
    if kind:
        events = events.filter(kind=kind)
    if deployment is not None:
        events = events.filter(deployment_id=deployment)
    return events.order_by("-created_at", "-id")

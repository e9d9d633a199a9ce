"""Celery tasks of the notifications app: thin wrappers that take ids and call one service each."""

from __future__ import annotations

from celery import shared_task


@shared_task(bind=True, name="notifications.deliver", ignore_result=True, max_retries=None)
def deliver(self, delivery_id: int) -> str:  # noqa: ANN001 - Celery's bound task
    """Send one delivery; a failed attempt is retried with exponential backoff (``services.retry_delay``)
    until ``STAMM_NOTIFY_MAX_ATTEMPTS`` — the service logs each attempt and decides when to give up."""
    from .services import delivery_send

    result = delivery_send(delivery_id=delivery_id)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return result.status


@shared_task(bind=True, name="notifications.send_digest", ignore_result=True, max_retries=None)
def send_digest(self, delivery_id: int) -> str:  # noqa: ANN001 - Celery's bound task
    """Send a digest at the end of its window (queued with that countdown by the first held delivery)."""
    from .services import delivery_send

    result = delivery_send(delivery_id=delivery_id)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return result.status

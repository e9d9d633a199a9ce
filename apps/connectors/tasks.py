"""Celery tasks of the connectors app: thin wrappers that take ids and call one service each."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="connectors.deliver", bind=True, ignore_result=True, acks_late=True, max_retries=None)
def deliver(self, cursor_ids: list[int]) -> int:
    """Send the new estimates of these cursors (publication × group), one send per connection; returns how
    many were delivered. The cursors of a connection whose send failed are retried alone, with backoff."""
    from .delivery import publications_deliver
    from .publishers import PublishFailed

    if isinstance(cursor_ids, int):  # a message queued before deliveries were batched (one cursor id)
        cursor_ids = [cursor_ids]
    outcome = publications_deliver(cursor_ids=cursor_ids, attempt=self.request.retries + 1)
    if outcome.failed and self.request.retries < settings.STAMM_CONNECTORS_PUBLISH_RETRIES:
        error = PublishFailed("; ".join(sorted(set(outcome.failed.values()))))
        raise self.retry(args=[sorted(outcome.failed)], exc=error, countdown=min(60, 2 ** (self.request.retries + 1)))
    # Retries spent: the failures are logged and the cursors have not moved; beat's sweep tries again later.
    return outcome.delivered


@shared_task(name="connectors.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Beat: re-queue lost or failing deliveries, prune the delivery log and quality samples."""
    from .delivery import publication_sweep

    return publication_sweep()

"""Celery tasks of the connectors app: thin wrappers that take ids and call one service each."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="connectors.deliver", bind=True, ignore_result=True, acks_late=True, max_retries=None)
def deliver(self, cursor_id: int) -> int:
    """Send one publication's new estimates for one group; a failed send is retried with backoff."""
    from .delivery import publication_deliver
    from .publishers import PublishFailed

    try:
        return publication_deliver(cursor_id=cursor_id, attempt=self.request.retries + 1)
    except PublishFailed as exc:
        if self.request.retries >= settings.STAMM_CONNECTORS_PUBLISH_RETRIES:
            return 0  # logged as failed; beat's sweep tries again later (the cursor has not moved)
        raise self.retry(exc=exc, countdown=min(60, 2 ** (self.request.retries + 1))) from exc


@shared_task(name="connectors.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Beat: re-queue lost or failing deliveries, prune the delivery log and quality samples."""
    from .delivery import publication_sweep

    return publication_sweep()

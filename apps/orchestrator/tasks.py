"""Celery tasks of the orchestrator: thin wrappers that call services."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="orchestrator.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Scheduled by beat; the health endpoint reports its age."""
    from .services import heartbeat_record

    heartbeat_record(name="beat")


@shared_task(name="orchestrator.ping")
def ping(value: str) -> str:
    """Round-trip probe: echoes its argument from a worker (used by tests and diagnostics)."""
    return f"pong:{value}"

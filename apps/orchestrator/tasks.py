"""Celery tasks of the orchestrator: thin wrappers that take ids and call one service each."""

from __future__ import annotations

from celery import shared_task

from . import task_names


@shared_task(name=task_names.HEARTBEAT, ignore_result=True)
def heartbeat() -> None:
    """Scheduled by beat; the health endpoint reports its age."""
    from .services import heartbeat_record

    heartbeat_record(name="beat")


@shared_task(name=task_names.PING)
def ping(value: str) -> str:
    """Round-trip probe: echoes its argument from a worker (used by tests and diagnostics)."""
    return f"pong:{value}"


@shared_task(name=task_names.RUN_GROUPS, bind=True, ignore_result=True, acks_late=True)
def run_groups(self, watermark_ids: list[int], trigger: str) -> None:
    """One pipeline run for each deployment and group, scored together (groups another run holds are left)."""
    from .services import pipeline_groups_run

    pipeline_groups_run(watermark_ids=watermark_ids, trigger=trigger, task_id=self.request.id or "")


@shared_task(name=task_names.DETECT, ignore_result=True)
def detect(deployment_id: int | None = None, trigger: str = "beat") -> dict[str, int]:
    """Beat's safety net: queue runs for data events missed, lost messages and stale leases."""
    from .services import pipeline_detect

    return pipeline_detect(deployment_id=deployment_id, trigger=trigger)


@shared_task(name=task_names.HEALTH, ignore_result=True)
def health() -> bool:
    """Every minute: database, time-series collections, broker and registry; the verdict is kept."""
    from .services import pipeline_health_record

    return pipeline_health_record().ok


@shared_task(name=task_names.BACKFILL, ignore_result=True)
def backfill(deployment_id: int, start: str, end: str) -> int:
    """Rescore a historical window (the API's backfill action); progress is in the runs it records."""
    from .selectors import deployment_get
    from .services import pipeline_backfill

    runs = pipeline_backfill(deployment=deployment_get(deployment_id=deployment_id), start=start, end=end)
    return sum(run.predictions for run in runs)

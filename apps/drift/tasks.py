"""Celery tasks of the drift app: thin wrappers that take ids and call one service each."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="drift.run_job", ignore_result=True)
def run_job(job_id: int, trigger: str = "beat") -> int | None:
    """Beat entry of a scheduled job (created by ``services._schedule_sync``); returns the result id.

    A disabled or deleted job does nothing (its beat entry is disabled or removed by the service, but a
    message already queued may still arrive).
    """
    from .models import DriftJob
    from .services import drift_job_run

    job = DriftJob.objects.select_related("deployment__soft_sensor__project", "soft_sensor__project").filter(
        pk=job_id, enabled=True).first()
    if job is None:
        return None
    return drift_job_run(job=job, trigger=trigger).pk


@shared_task(name="drift.lab_scoring_refresh", ignore_result=True)
def lab_scoring_refresh() -> dict[str, dict[str, int]]:
    """Periodic: refresh the residual ledgers of enabled deployments for groups with recent data."""
    from .services import lab_ledgers_refresh_all

    return lab_ledgers_refresh_all()


@shared_task(name="drift.lab_ledger_refresh", ignore_result=True)
def lab_ledger_refresh(deployment_id: int) -> dict[str, int]:
    """Recompute one deployment's whole ledger (queued by the API for large histories)."""
    from apps.orchestrator.selectors import deployment_get

    from .services import lab_ledger_refresh as refresh

    return refresh(deployment=deployment_get(deployment_id=deployment_id)).as_dict()

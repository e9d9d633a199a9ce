"""Receivers of the connectors app (connected in ``ConnectorsConfig.ready``).

A pipeline run row is saved in the transaction that stores its predictions (or records its failure); the
receiver only registers ``publication_notify`` for after that commit, so nothing unpublished-yet-durable is
missed and nothing is published that could still roll back. Backfill runs never publish (history is not
control); neither do runs still running, skipped or stale.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig
from django.db import transaction

logger = logging.getLogger(__name__)
PUBLISHING_STATUSES = ("succeeded", "failed")


def pipeline_run_saved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    if instance.status not in PUBLISHING_STATUSES or instance.trigger == "backfill":
        return
    if instance.status == "succeeded" and not instance.predictions:
        return
    from apps.tsdb.types import GroupKey

    from .delivery import publication_notify

    deployment_id = instance.deployment_id
    group = GroupKey(instance.project_name, instance.device_id, instance.batch_id)

    def notify() -> None:
        try:
            publication_notify(deployment_id=deployment_id, group=group)
        except Exception:  # the run is committed; beat's sweep is the safety net for a lost notification
            logger.exception(
                "connectors: could not queue the publications of deployment %s on %s", deployment_id, group
            )

    transaction.on_commit(notify)


def ensure_schedule_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    if sender.label != "connectors":
        return
    from django.conf import settings

    from apps.common.beat import periodic_task_ensure

    periodic_task_ensure(
        name="Connectors sweep",
        task="connectors.sweep",
        every=settings.STAMM_CONNECTORS_SWEEP_INTERVAL,
        description="Re-queue lost or failing estimate deliveries; prune the delivery log",
        using=kwargs.get("using", "default"),
    )

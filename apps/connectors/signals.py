"""Receivers of the connectors app (connected in ``ConnectorsConfig.ready``).

The orchestrator sends ``runs_finished`` once per committed transaction with every run it finished there
(``apps.orchestrator.signals``; a batched pipeline task finishes many). The receiver keeps the runs whose
estimates or failure the plant must hear of — succeeded with predictions, or failed; never a backfill run
(history is not control), nor a skipped one — and queues their deliveries with ONE ``publications_notify``
for all of them, after the commit, so nothing durable is missed and nothing is published that could still
roll back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.db import transaction

logger = logging.getLogger(__name__)
PUBLISHING_STATUSES = ("succeeded", "failed")


def _publishes(run: Any) -> bool:
    """The one rule: which finished runs the plant hears of."""
    if run.status not in PUBLISHING_STATUSES or run.trigger == "backfill":
        return False
    return run.status == "failed" or run.predictions > 0


def runs_finished_received(sender: Any, runs: Sequence[Any] = (), **kwargs: Any) -> None:
    """``runs`` are ``apps.orchestrator.signals.FinishedRun``: plain values, no orchestrator model."""
    from apps.tsdb.types import GroupKey

    pairs = list(
        dict.fromkeys(
            (run.deployment_id, GroupKey(run.project_name, run.device_id, run.batch_id))
            for run in runs
            if _publishes(run)
        )
    )
    if not pairs:
        return

    def notify() -> None:
        from .delivery import publications_notify

        try:
            publications_notify(pairs)
        except Exception:  # the runs are committed and no cursor moved: the groups' next runs notify again,
            # and beat's sweep re-queues a cursor left pending
            logger.exception("connectors: could not queue the publications of %d finished runs", len(pairs))

    # The signal is sent after the commit already; on_commit then runs at once, and keeps the rule true for
    # a sender inside a transaction.
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

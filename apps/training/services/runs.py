"""A training run: creation, the Celery canvas it runs as, the step runner every step uses, failure."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from celery import chain, chord, group, signature
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.tracking import audited_update
from apps.common.errors import Conflict, NotFound, ValidationFailed
from apps.orchestrator.services import TRANSIENT_ERRORS

from ..models import (
    Candidate,
    RunStatus,
    RunTrigger,
    StepStatus,
    TrainingRun,
    TrainingStep,
)
from .config import training_config_validate

logger = logging.getLogger(__name__)

#: Celery task names of the workflow's steps (``tasks.py`` defines them; the canvas below names them, so
#: services never import the task module that imports them).
STEP_TASKS = {
    "load": "training.load",
    "preprocess": "training.preprocess",
    "split": "training.split",
    "train": "training.train",
    "register": "training.register",
    "evaluate": "training.evaluate",
    "gate": "training.gate",
    "promote": "training.promote",
}


def run_dir(run: TrainingRun) -> Path:
    return Path(settings.MEDIA_ROOT) / "training" / str(run.uid)


def step_names(config: Mapping[str, Any]) -> list[str]:
    return [
        "load",
        "preprocess",
        "split",
        *(f"train:{item['key']}" for item in config["learners"]),
        "register",
        "evaluate",
        "gate",
        "promote",
    ]


@dataclass(frozen=True)
class RunOrigin:
    """What started a run: a person (manual), or a plan's trigger with its key (one run per key) and facts."""

    trigger: str = RunTrigger.MANUAL
    plan: Any = None
    key: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@transaction.atomic
def training_run_create(
    *, user: Any, project: Any, data: Mapping[str, Any], origin: RunOrigin | None = None
) -> TrainingRun:
    """Validate the request and write the run with its pending steps and candidates (nothing queued)."""
    config = training_config_validate(project=project, data=data)
    origin = origin or RunOrigin()
    run = TrainingRun.objects.create(
        project=project,
        model_id=config["model_id"],
        target=config["target"],
        config=config,
        created_by=user if getattr(user, "pk", None) else None,
        plan=origin.plan,
        trigger=origin.trigger,
        trigger_key=origin.key,
        trigger_detail=json_safe({**dict(origin.detail), "batches": config["batches"], "split": config["split"]}),
    )
    TrainingStep.objects.bulk_create(
        [TrainingStep(run=run, name=name, position=i) for i, name in enumerate(step_names(config))]
    )
    Candidate.objects.bulk_create(
        [
            Candidate(run=run, learner=item["key"], hyperparameters=item["hyperparameters"])
            for item in config["learners"]
        ]
    )
    return run


def training_run_start(
    *, user: Any, project: Any, data: Mapping[str, Any], origin: RunOrigin | None = None
) -> TrainingRun:
    """Create the run and queue its Celery workflow once the creating transaction commits."""
    with transaction.atomic():
        run = training_run_create(user=user, project=project, data=data, origin=origin)
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _step_task(step: str, *args: Any) -> Any:
    return signature(STEP_TASKS[step], args=args, immutable=True)


def workflow_signature(run: TrainingRun) -> Any:
    """The run's canvas: learners are fitted in parallel by a chord whose callback registers them, then
    the candidates are evaluated as deployed, gated and (maybe) promoted."""
    learners = [item["key"] for item in run.config["learners"]]
    return chain(
        _step_task("load", run.pk),
        _step_task("preprocess", run.pk),
        _step_task("split", run.pk),
        chord(group(_step_task("train", run.pk, key) for key in learners), _step_task("register", run.pk)),
        _step_task("evaluate", run.pk),
        _step_task("gate", run.pk),
        _step_task("promote", run.pk),
    )


def _enqueue(run_id: int) -> None:
    try:
        result = workflow_signature(run_get(run_id)).apply_async()
    except Exception as exc:  # noqa: BLE001 - broker down: the committed run says so instead of a 500
        from kombu.exceptions import OperationalError as BrokerError  # noqa: PLC0415

        if not isinstance(exc, (BrokerError, ConnectionError, TimeoutError)):
            raise
        logger.warning("training run %s could not be queued: %s", run_id, exc)
        training_run_fail(run_id=run_id, step="queue", error=f"the task broker is unavailable: {exc}")
        return
    audited_update(TrainingRun.objects.filter(pk=run_id), task_id=str(getattr(result, "id", "") or ""))


def run_get(run_id: int) -> TrainingRun:
    try:
        return TrainingRun.objects.select_related("project", "created_by").get(pk=run_id)
    except TrainingRun.DoesNotExist:
        raise NotFound(f"training run {run_id} does not exist") from None


def failure_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, (ValidationFailed, Conflict, NotFound)) else f"{type(exc).__name__}: {exc}"


@contextmanager
def run_step(run: TrainingRun, name: str) -> Iterator[dict[str, Any]]:
    """Mark a step running, time it, store its output; a failure marks the step (and the run) failed."""
    now = timezone.now()
    TrainingStep.objects.filter(run=run, name=name).update(
        status=StepStatus.RUNNING, attempts=F("attempts") + 1, started_at=now, finished_at=None, error=""
    )
    updates: dict[str, Any] = {"current_step": name}
    if run.status == RunStatus.QUEUED:
        updates.update(status=RunStatus.RUNNING, started_at=now)
    audited_update(TrainingRun.objects.filter(pk=run.pk), **updates)
    output: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        yield output
    except TRANSIENT_ERRORS as exc:
        TrainingStep.objects.filter(run=run, name=name).update(
            status=StepStatus.FAILED,
            error=f"transient, will be retried: {failure_text(exc)}",
            finished_at=timezone.now(),
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        raise
    except BaseException as exc:
        TrainingStep.objects.filter(run=run, name=name).update(
            status=StepStatus.FAILED,
            error=failure_text(exc),
            finished_at=timezone.now(),
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        training_run_fail(run_id=run.pk, step=name, error=failure_text(exc))
        raise
    status = output.pop("_status", StepStatus.SUCCEEDED)
    TrainingStep.objects.filter(run=run, name=name).update(
        status=status,
        output=json_safe(output),
        finished_at=timezone.now(),
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def json_safe(value: Any) -> Any:
    """JSON-safe copy (NumPy scalars → Python numbers, NaN → None)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def training_run_fail(*, run_id: int, step: str, error: str) -> None:
    """Mark a run failed at ``step`` (called by a failing step, or by a task that ran out of retries)."""
    audited_update(
        TrainingRun.objects.filter(pk=run_id).exclude(status=RunStatus.FAILED),
        status=RunStatus.FAILED,
        error=f"{step}: {error}",
        finished_at=timezone.now(),
        current_step=step,
    )
    TrainingStep.objects.filter(run_id=run_id, name=step).exclude(status=StepStatus.FAILED).update(
        status=StepStatus.FAILED, error=error, finished_at=timezone.now()
    )


def run_check_active(run: TrainingRun) -> None:
    if run.status == RunStatus.FAILED:
        raise Conflict(f"training run {run.pk} has failed ({run.error}); start a new run")

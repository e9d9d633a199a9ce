"""Celery tasks of the training workflow: thin wrappers around the step services.

The workflow is one Celery canvas (``services.runs.workflow_signature``): a chain load → preprocess →
split → chord(train each learner in parallel) → register → evaluate → gate → promote. Tasks take the run id
(and the learner), call one service and return the run id. Transient errors (store or database unavailable)
are retried with exponential backoff and jitter; a task that runs out of retries marks its step and the run
failed. Every step is idempotent (see ``services``), so a redelivered or retried task never duplicates anything.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from .services import TRANSIENT_ERRORS

RETRY_OPTIONS: dict[str, Any] = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": getattr(settings, "STAMM_TRAINING_RETRIES", 4),
    "acks_late": True,
}


class TrainingTask(Task):
    """Marks the step and its run failed once the retries are spent (or on any error that escapes)."""

    step_name = ""

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # noqa: ANN001 - Celery's signature
        from .services import failure_text, training_run_fail  # noqa: PLC0415

        run_id = kwargs.get("run_id", args[0] if args else None)
        if run_id is not None:
            step = self.step_name or self.name.rsplit(".", 1)[-1]
            if step == "train" and (kwargs.get("learner") or (len(args) > 1 and args[1])):
                step = f"train:{kwargs.get('learner') or args[1]}"
            training_run_fail(run_id=run_id, step=step, error=failure_text(exc))


@shared_task(name="training.load", base=TrainingTask, step_name="load", **RETRY_OPTIONS)
def load(run_id: int) -> int:
    from .services import step_load  # noqa: PLC0415

    step_load(run_id=run_id)
    return run_id


@shared_task(name="training.preprocess", base=TrainingTask, step_name="preprocess", **RETRY_OPTIONS)
def preprocess(run_id: int) -> int:
    from .services import step_preprocess  # noqa: PLC0415

    step_preprocess(run_id=run_id)
    return run_id


@shared_task(name="training.split", base=TrainingTask, step_name="split", **RETRY_OPTIONS)
def split(run_id: int) -> int:
    from .services import step_split  # noqa: PLC0415

    step_split(run_id=run_id)
    return run_id


@shared_task(name="training.train", base=TrainingTask, step_name="train", **RETRY_OPTIONS)
def train(run_id: int, learner: str) -> int:
    from .services import step_train  # noqa: PLC0415

    step_train(run_id=run_id, learner=learner)
    return run_id


@shared_task(name="training.evaluate", base=TrainingTask, step_name="evaluate", **RETRY_OPTIONS)
def evaluate(run_id: int) -> int:
    from .services import step_evaluate  # noqa: PLC0415

    step_evaluate(run_id=run_id)
    return run_id


@shared_task(name="training.register", base=TrainingTask, step_name="register", **RETRY_OPTIONS)
def register(run_id: int) -> int:
    from .services import step_register  # noqa: PLC0415

    step_register(run_id=run_id)
    return run_id


@shared_task(name="training.gate", base=TrainingTask, step_name="gate", **RETRY_OPTIONS)
def gate(run_id: int) -> int:
    from .services import step_gate  # noqa: PLC0415

    step_gate(run_id=run_id)
    return run_id


@shared_task(name="training.promote", base=TrainingTask, step_name="promote", **RETRY_OPTIONS)
def promote(run_id: int) -> int:
    from .services import step_promote  # noqa: PLC0415

    step_promote(run_id=run_id)
    return run_id


@shared_task(name="training.version_explain", **RETRY_OPTIONS)
def version_explain(version_id: int) -> dict:
    """An uploaded or imported version's explanation, measured on its declared training experiments."""
    from .services import version_explain_on_experiments  # noqa: PLC0415

    return version_explain_on_experiments(version_id=version_id)


@shared_task(name="training.bias_apply", **RETRY_OPTIONS)
def bias_apply(deployment_id: int) -> dict:
    from apps.orchestrator.selectors import deployment_get  # noqa: PLC0415
    from apps.orchestrator.services import bias_correction_apply  # noqa: PLC0415

    return bias_correction_apply(deployment=deployment_get(deployment_id=deployment_id))


@shared_task(name="training.bias_apply_recent", **RETRY_OPTIONS)
def bias_apply_recent(window_seconds: int = 6 * 3600) -> dict:
    from apps.orchestrator.services import bias_corrections_apply_recent  # noqa: PLC0415

    return bias_corrections_apply_recent(window_seconds=window_seconds)


@shared_task(name="training.plan_trigger", bind=True, acks_late=True)
def plan_trigger(self: Task, plan_id: int, trigger: str = "schedule", key: str = "", detail: dict | None = None) -> Any:
    """A plan's trigger (beat sends ``trigger="schedule"``): one run per occurrence, keyed by this message."""
    from .services import training_plan_trigger  # noqa: PLC0415

    run = training_plan_trigger(
        plan_id=plan_id, trigger=trigger, key=key or f"{trigger}:{self.request.id}", detail=detail or {}
    )
    return run.pk if run is not None else None


@shared_task(name="training.plans_check_lab_error", **RETRY_OPTIONS)
def plans_check_lab_error() -> dict:
    from .services import plans_check_lab_error as check  # noqa: PLC0415

    return check()


@shared_task(name="training.challengers_review", **RETRY_OPTIONS)
def challengers_review() -> dict:
    from .services import challengers_review_all  # noqa: PLC0415

    return challengers_review_all()

"""All steps of a run in this process, in order: the command line's synchronous mode (no worker needed)."""

from __future__ import annotations

from collections.abc import Callable

from ..models import TrainingRun
from .data_steps import step_load, step_preprocess, step_split, step_train
from .evaluate import step_evaluate
from .promotion import step_gate, step_promote
from .registration import step_register
from .runs import TRANSIENT_ERRORS, failure_text, run_get, training_run_fail


def training_run_execute_inline(*, run_id: int, progress: Callable[[str], None] | None = None) -> TrainingRun:
    """Run every step in this process, in order (the command line's synchronous mode)."""
    run = run_get(run_id)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("load", lambda: step_load(run_id=run_id)),
        ("preprocess", lambda: step_preprocess(run_id=run_id)),
        ("split", lambda: step_split(run_id=run_id)),
        *(
            (f"train:{item['key']}", (lambda key=item["key"]: step_train(run_id=run_id, learner=key)))
            for item in run.config["learners"]
        ),
        ("register", lambda: step_register(run_id=run_id)),
        ("evaluate", lambda: step_evaluate(run_id=run_id)),
        ("gate", lambda: step_gate(run_id=run_id)),
        ("promote", lambda: step_promote(run_id=run_id)),
    ]
    for name, call in steps:
        if progress:
            progress(name)
        try:
            call()
        except TRANSIENT_ERRORS as exc:  # no worker to retry here: the run fails with the reason
            training_run_fail(run_id=run_id, step=name, error=failure_text(exc))
            raise
    return run_get(run_id)

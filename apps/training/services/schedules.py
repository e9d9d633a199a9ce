"""Beat entries the training app creates once after ``migrate``; after that they belong to the admin (edited or
disabled there like every schedule, never reset)."""

from __future__ import annotations

from django.conf import settings

from apps.common.beat import periodic_task_ensure


def governance_schedules_ensure(*, using: str = "default") -> list[str]:
    """The lab-error rule of training plans and the champion/challenger review; returns the entries created."""
    created = []
    for name, task, every in (
        ("training-plans-lab-error", "training.plans_check_lab_error", settings.STAMM_PLAN_CHECK_INTERVAL),
        ("training-challengers-review", "training.challengers_review", settings.STAMM_CHALLENGER_REVIEW_INTERVAL),
    ):
        if periodic_task_ensure(name=name, task=task, every=every, using=using):
            created.append(name)
    return created

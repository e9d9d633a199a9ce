"""Training plans: a saved configuration whose triggers start runs of the one workflow.

Exactly once, the rules in one place
------------------------------------
* **One entry.** Every trigger (beat's schedule, a drift alert, the lab-error rule, "run now") calls
  ``training_plan_trigger`` with a *key* naming the occurrence: the beat message's task id, the alert's id,
  the newest lab sample's time. A run records its plan and key, and the database refuses a second run with
  the same (plan, key): a message delivered twice starts one run.
* **Not while one works.** The trigger first writes the plan row (SQLite takes its write lock, PostgreSQL the
  row lock), then looks for a run of the plan that is queued or running: if there is one, the trigger is
  skipped and recorded on the plan (``trigger_state["last_skipped"]``), never queued for later.
* **The same workflow.** The run is started by ``training_run_start`` with the plan's configuration and the
  batches chosen now, so it is validated by ``training_config_validate``, gated and promoted like any run.
  A plan's alias may be a challenger alias (moved automatically when the gates pass); a signed alias
  (``production``) only ever waits for a signature.
* **Lab error crosses, once.** The lab-error rule fires when the RMSE of the deployment's last N lab
  residuals goes above the threshold, not again until it has come back under it.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.tracking import audited_update
from apps.common.beat import periodic_task_delete, periodic_task_sync
from apps.common.errors import ValidationFailed, reject_unknown_fields
from apps.tsdb.selectors import groups_list

from ..models import ACTIVE_STATUSES, RunTrigger, TrainingPlan, TrainingRun
from .config import training_config_validate
from .runs import RunOrigin, json_safe, training_run_start

logger = logging.getLogger(__name__)

#: The Celery task a plan's beat entry sends (``tasks.plan_trigger``).
PLAN_TASK = "training.plan_trigger"
PLAN_FIELDS = (
    "name",
    "description",
    "project",
    "config",
    "device_id",
    "batch_pattern",
    "window_days",
    "holdout_newest",
    "quiet_seconds",
    "max_batches",
    "schedule",
    "deployment",
    "on_drift_alert",
    "lab_error_threshold",
    "lab_error_samples",
    "enabled",
)
#: Keys of a run request a plan does not hold: its trigger chooses them.
CHOSEN_BY_TRIGGER = ("batches", "split", "device_id")


# ------------------------------------------------------------------------------------------- batches


def plan_batches(plan: TrainingPlan, *, now: Any = None) -> tuple[list[str], list[str]]:
    """(batches, held out) the plan would train on now: completed batches of its device and pattern whose data
    ended within the window, newest last, at most ``max_batches``; the newest ``holdout_newest`` held out."""
    now = now or timezone.now()
    since = now - timedelta(days=plan.window_days)
    quiet_until = now - timedelta(seconds=plan.quiet_seconds)
    infos = [
        info
        for info in groups_list(project_name=plan.project.name.lower(), device_id=plan.device_id or None, since=since)
        if info.last_time <= quiet_until
        and (not plan.batch_pattern or fnmatch.fnmatchcase(info.group.batch_id, plan.batch_pattern))
    ]
    infos.sort(key=lambda i: (i.last_time, i.group.batch_id))
    chosen = [i.group.batch_id for i in infos][-plan.max_batches :]
    holdout = chosen[-plan.holdout_newest :] if plan.holdout_newest else []
    return chosen, holdout


def plan_request(plan: TrainingPlan, *, now: Any = None) -> dict[str, Any]:
    """The run request of a plan now: its configuration with the batches and the split chosen by its rule."""
    batches, holdout = plan_batches(plan, now=now)
    if len(batches) - len(holdout) < 1 or not holdout:
        raise ValidationFailed(
            f"plan {plan.name}: {len(batches)} completed batch(es) in the last {plan.window_days} days; "
            f"{plan.holdout_newest} held out leaves none to train on",
            details={"batches": batches, "holdout_newest": plan.holdout_newest},
        )
    return {
        **dict(plan.config or {}),
        "batches": batches,
        "split": {"kind": "batches", "holdout": holdout},
        "device_id": plan.device_id or None,
    }


# -------------------------------------------------------------------------------------------- writes


def _schedule_validate(text: str) -> list[str] | None:
    parts = (text or "").split()
    if not parts:
        return None
    if len(parts) != 5:
        raise ValidationFailed(
            f'schedule: a crontab "minute hour day month weekday", got {text!r}', details={"schedule": text}
        )
    from celery.schedules import crontab  # noqa: PLC0415

    try:
        crontab(*parts).remaining_estimate(timezone.now())
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(f"schedule: {exc}", details={"schedule": text}) from None
    return parts


def training_plan_validate(plan: TrainingPlan) -> None:
    """Every rule at once, each problem naming its field; with two or more batches available now, the whole
    run request is validated too (as a trigger would send it)."""
    problems: dict[str, Any] = {}
    if not isinstance(plan.config, Mapping):
        problems["config"] = "must be an object (a training request without batches and split)"
    else:
        given = sorted(set(plan.config) & set(CHOSEN_BY_TRIGGER))
        if given:
            problems["config"] = f"{', '.join(given)} are chosen by the plan's batch rule, not the configuration"
    try:
        _schedule_validate(plan.schedule)
    except ValidationFailed as exc:
        problems["schedule"] = exc.message
    if (plan.on_drift_alert or plan.lab_error_threshold is not None) and plan.deployment_id is None:
        problems["deployment"] = "name the deployment whose drift alerts or lab error trigger the plan"
    if plan.deployment_id and plan.deployment.soft_sensor.project_id != plan.project_id:
        problems["deployment"] = f"{plan.deployment.name} scores another project's data"
    if plan.lab_error_threshold is not None and plan.lab_error_threshold <= 0:
        problems["lab_error_threshold"] = "must be positive"
    if plan.lab_error_samples < 1:
        problems["lab_error_samples"] = "at least 1"
    if plan.max_batches < 2:
        problems["max_batches"] = "at least 2 (one to train on, one to hold out)"
    if problems:
        raise ValidationFailed(f"The training plan is not valid: {next(iter(problems.values()))}", details=problems)
    try:
        data = plan_request(plan)
    except ValidationFailed:
        return  # not enough data yet: the configuration is checked when a trigger fires
    training_config_validate(project=plan.project, data=data)


def _schedule_sync(plan: TrainingPlan) -> None:
    """The plan's beat entry (django-celery-beat ``PeriodicTask`` on a crontab) follows its schedule and switch;
    once created it is edited in the admin like every schedule."""

    def unlink() -> None:
        audited_update(TrainingPlan.objects.filter(pk=plan.pk), periodic_task=None)
        plan.periodic_task = None

    parts = _schedule_validate(plan.schedule)
    crontab = (
        dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), parts, strict=True))
        if parts is not None
        else None
    )
    task = periodic_task_sync(
        current_id=plan.periodic_task_id,
        name=plan.periodic_task_name,
        task=PLAN_TASK,
        kwargs={"plan_id": plan.pk, "trigger": RunTrigger.SCHEDULE},
        enabled=plan.enabled,
        description=f"Training plan {plan.name}",
        unlink=unlink,
        crontab=crontab,
    )
    if task is not None and plan.periodic_task_id != task.pk:
        audited_update(TrainingPlan.objects.filter(pk=plan.pk), periodic_task=task)
        plan.periodic_task = task


@transaction.atomic
def training_plan_create(*, user: Any, **data: Any) -> TrainingPlan:
    """Create a plan (fields: ``PLAN_FIELDS``), validated as a whole; its beat entry when scheduled. The
    creator owns it: its runs are created in their name."""
    reject_unknown_fields(data, PLAN_FIELDS, what="plan")
    plan = TrainingPlan(created_by=user if getattr(user, "pk", None) else None, **data)
    training_plan_validate(plan)
    plan.save()
    _schedule_sync(plan)
    return plan


@transaction.atomic
def training_plan_update(*, plan: TrainingPlan, data: Mapping[str, Any]) -> TrainingPlan:
    reject_unknown_fields(data, PLAN_FIELDS, what="plan")
    for name, value in data.items():
        setattr(plan, name, value)
    training_plan_validate(plan)
    plan.save()
    _schedule_sync(plan)
    return plan


@transaction.atomic
def training_plan_delete(*, plan: TrainingPlan) -> None:
    """Remove a plan and its beat entry; its runs stay (they no longer name a plan)."""
    task_id = plan.periodic_task_id
    plan.delete()
    periodic_task_delete(task_id)


# ------------------------------------------------------------------------------------------ triggers


def _note(plan_id: int, entry: str, **facts: Any) -> None:
    """Remember the last trigger and the last skipped one on the plan (what the plan page shows)."""
    plan = TrainingPlan.objects.get(pk=plan_id)
    state = {**(plan.trigger_state or {}), entry: json_safe({**facts, "at": timezone.now().isoformat()})}
    audited_update(TrainingPlan.objects.filter(pk=plan_id), trigger_state=state)


def training_plan_trigger(
    *, plan_id: int, trigger: str, key: str, detail: Mapping[str, Any] | None = None
) -> TrainingRun | None:
    """Start one run of the plan for this trigger occurrence, or None when it is skipped (disabled, a run of
    the plan still working, not enough data, an invalid request): the reason is kept on the plan."""
    if trigger not in RunTrigger.values:
        raise ValidationFailed(f"trigger: one of {', '.join(RunTrigger.values)}", details={"trigger": trigger})
    if not key:
        raise ValidationFailed("key: name the trigger occurrence", details={"key": "required"})
    detail = dict(detail or {})
    existing = TrainingRun.objects.filter(plan_id=plan_id, trigger_key=key).first()
    if existing is not None:  # the same occurrence delivered again
        return existing
    try:
        with transaction.atomic():
            # Writing the plan row first serialises concurrent triggers of one plan (write lock / row lock).
            if not audited_update(TrainingPlan.objects.filter(pk=plan_id), updated_at=timezone.now()):
                return None
            plan = TrainingPlan.objects.select_related("project", "created_by").get(pk=plan_id)
            if not plan.enabled:
                _skip(plan, trigger, key, "the plan is disabled")
                return None
            busy = plan.runs.filter(status__in=ACTIVE_STATUSES).first()
            if busy is not None:
                _skip(plan, trigger, key, f"run {busy.pk} of the plan is still {busy.status}")
                return None
            try:
                data = plan_request(plan)
                run = training_run_start(
                    user=plan.created_by,
                    project=plan.project,
                    data=data,
                    origin=RunOrigin(trigger=trigger, plan=plan, key=key, detail=detail),
                )
            except ValidationFailed as exc:
                _skip(plan, trigger, key, exc.message)
                return None
            _note(plan.pk, "last_trigger", trigger=trigger, key=key, run=run.pk, batches=data["batches"])
            return run
    except IntegrityError:  # the same occurrence, concurrently: the other one started the run
        return TrainingRun.objects.filter(plan_id=plan_id, trigger_key=key).first()


def _touched(plan_id: int) -> dict[str, Any]:
    state = TrainingPlan.objects.filter(pk=plan_id).values_list("trigger_state", flat=True).first()
    return dict(state or {})


def _skip(plan: TrainingPlan, trigger: str, key: str, why: str) -> None:
    logger.info("training plan %s: %s trigger %s skipped: %s", plan.name, trigger, key, why)
    _note(plan.pk, "last_skipped", trigger=trigger, key=key, reason=why)


def plans_on_alert_opened(*, alert_id: int, deployment_id: int | None, **facts: Any) -> list[int]:
    """A drift alert opened on a deployment: queue one trigger per plan that follows its alerts (the key is
    the alert, so a signal sent twice starts one run). Returns the plans queued."""
    if deployment_id is None:
        return []
    from celery import signature  # noqa: PLC0415

    plans = list(
        TrainingPlan.objects.filter(deployment_id=deployment_id, on_drift_alert=True, enabled=True).values_list(
            "pk", flat=True
        )
    )
    for plan_id in plans:
        signature(
            PLAN_TASK,
            kwargs={
                "plan_id": plan_id,
                "trigger": RunTrigger.DRIFT_ALERT,
                "key": f"drift_alert:{alert_id}",
                "detail": {"alert": alert_id, **{k: v for k, v in facts.items() if k in ("job_id", "severity")}},
            },
        ).apply_async()
    return plans


def plans_check_lab_error(*, now: Any = None) -> dict[str, Any]:
    """The lab-error rule of every enabled plan that has one: RMSE of the deployment's last N residuals above
    the threshold starts a run when it crosses (once, until it comes back under)."""
    from apps.drift.selectors import lab_residuals_latest  # noqa: PLC0415

    outcome: dict[str, Any] = {}
    plans = TrainingPlan.objects.filter(enabled=True, lab_error_threshold__isnull=False, deployment__isnull=False)
    for plan in plans.select_related("deployment"):
        rows = lab_residuals_latest(deployment=plan.deployment, samples=plan.lab_error_samples)
        if len(rows) < plan.lab_error_samples:
            outcome[plan.name] = {"samples": len(rows), "fired": False}
            continue
        rmse = float(np.sqrt(np.mean(np.square([r for _, r in rows]))))
        above = rmse > plan.lab_error_threshold
        was_above = bool((plan.trigger_state or {}).get("lab_error_above"))
        fired = None
        if above and not was_above:
            fired = training_plan_trigger(
                plan_id=plan.pk,
                trigger=RunTrigger.LAB_ERROR,
                key=f"lab_error:{rows[0][0].isoformat()}",
                detail={
                    "rmse": rmse,
                    "threshold": plan.lab_error_threshold,
                    "samples": len(rows),
                    "newest_lab_time": rows[0][0].isoformat(),
                },
            )
        if above != was_above:
            state = {**_touched(plan.pk), "lab_error_above": above, "lab_error_rmse": round(rmse, 6)}
            audited_update(TrainingPlan.objects.filter(pk=plan.pk), trigger_state=state)
        outcome[plan.name] = {"rmse": rmse, "above": above, "fired": fired.pk if fired else False}
    return outcome

"""Reads of the training app: runs with their steps and candidates, options for the Train page."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from apps.common.errors import NotFound

from .learners import LEARNERS, r_learners_available
from .models import Candidate, PromotionRequest, RequestStatus, TrainingPlan, TrainingRun, TrainingStep


def run_list(*, project: Any = None) -> QuerySet[TrainingRun]:
    queryset = TrainingRun.objects.select_related("project", "created_by", "best_candidate", "promoted_version", "plan")
    if project is not None:
        queryset = queryset.filter(project=project)
    return queryset.order_by("-created_at", "-id")


def run_get(*, run_id: int) -> TrainingRun:
    """A run with its steps and candidates (and their versions) in three queries."""
    run = (
        run_list()
        .prefetch_related(
            Prefetch("steps", queryset=TrainingStep.objects.order_by("position", "id")),
            Prefetch("candidates", queryset=Candidate.objects.select_related("version").order_by("id")),
        )
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise NotFound(f"training run {run_id} does not exist")
    return run


def learner_options() -> list[dict[str, Any]]:
    r_ok = r_learners_available()
    return [
        {
            "key": learner.key,
            "label": learner.label,
            "language": learner.language,
            "defaults": dict(learner.defaults),
            "hyperparameters": list(learner.allowed),
            "available": learner.language != "r" or r_ok,
        }
        for learner in LEARNERS.values()
    ]


def project_options(*, project: Any) -> dict[str, Any]:
    """Batches in the store, their online variables (inputs or targets) and those with lab samples."""
    from apps.tsdb import selectors as tsdb  # noqa: PLC0415
    from apps.tsdb.types import SeriesFilter  # noqa: PLC0415

    from .dataset import INPUT_SOURCES  # noqa: PLC0415
    from .services import project_profile  # noqa: PLC0415

    groups = tsdb.groups_list(project_name=project.name)
    sources: dict[str, set[str]] = {}
    for info in tsdb.series_list(where=SeriesFilter(project_name=project.name)):
        sources.setdefault(info.series.observed_property, set()).add(info.series.source)
    variables = sorted(name for name, kinds in sources.items() if kinds & set(INPUT_SOURCES))
    profile = project_profile(project)
    return {
        "project_id": project.project_id,
        "project_name": project.name,
        "batches": [
            {
                "batch_id": g.group.batch_id,
                "device_id": g.group.device_id,
                "first_time": g.first_time,
                "last_time": g.last_time,
                "points": g.point_count,
            }
            for g in sorted(groups, key=lambda g: (g.group.device_id, g.group.batch_id))
        ],
        "variables": variables,
        "with_lab": sorted(name for name, kinds in sources.items() if "lab" in kinds and kinds & set(INPUT_SOURCES)),
        "lab_delay_seconds": profile.lab_delay_seconds,
        "phases": profile.phases,
    }


# ---------------------------------------------------------------------------------------------- plans


def plan_list() -> QuerySet[TrainingPlan]:
    return TrainingPlan.objects.select_related("project", "deployment", "created_by", "periodic_task").order_by("name")


def plan_get(*, plan_id: int | str) -> TrainingPlan:
    """By id or by name."""
    queryset = plan_list()
    plan = queryset.filter(pk=int(plan_id)).first() if str(plan_id).isdigit() else queryset.filter(name=plan_id).first()
    if plan is None:
        raise NotFound(f"training plan {plan_id} does not exist", details={"plan": str(plan_id)})
    return plan


def plan_runs(*, plan: TrainingPlan, limit: int = 25) -> list[TrainingRun]:
    return list(run_list().filter(plan=plan)[:limit])


# ----------------------------------------------------------------------------------- promotion requests


def promotion_request_list(*, status: str | None = None) -> QuerySet[PromotionRequest]:
    queryset = PromotionRequest.objects.select_related(
        "champion", "challenger", "soft_sensor__project", "version", "decided_by", "proposed_by"
    )
    if status:
        if status not in RequestStatus.values:
            from apps.common.errors import ValidationFailed  # noqa: PLC0415

            raise ValidationFailed(f"status: one of {', '.join(RequestStatus.values)}", details={"status": status})
        queryset = queryset.filter(status=status)
    return queryset.order_by("-created_at", "-id")


def promotion_request_get(*, request_id: int) -> PromotionRequest:
    found = promotion_request_list().filter(pk=request_id).first()
    if found is None:
        raise NotFound(f"promotion request {request_id} does not exist", details={"request": request_id})
    return found

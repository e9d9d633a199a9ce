"""Reads of the orchestrator: deployments and what they score, runs, watermarks, pipeline lag."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.common.errors import NotFound, ValidationFailed
from apps.tsdb.backends import get_backend
from apps.tsdb.types import LAB_SOURCE, PREDICTION_SOURCE, Collection, GroupKey, SeriesFilter, from_ns, to_ns

from .models import Deployment, Heartbeat, PipelineRun, RunStatus, Trigger, Watermark


def heartbeat_last_seen(*, name: str = "beat") -> datetime | None:
    return Heartbeat.objects.filter(name=name).values_list("last_seen", flat=True).first()


def heartbeat_get(*, name: str) -> Heartbeat | None:
    return Heartbeat.objects.filter(name=name).first()


# ------------------------------------------------------------------------------------------- scoring plan


@dataclass(frozen=True)
class ScoringPlan:
    """What one run of a deployment needs from the registry, resolved once from the version's descriptor.

    ``features`` is the descriptor's order; ``snapshot_variables`` the distinct project variables feeding
    them (two features may read the same variable) and ``column_of`` each feature's column in a snapshot.
    """

    version_id: int
    version_number: int
    status: str
    online: bool
    project_id: str
    model_id: str
    features: tuple[str, ...]
    variables: tuple[str, ...]
    outputs: tuple[str, ...]
    snapshot_variables: tuple[str, ...] = field(default=())
    column_of: Mapping[str, int] = field(default_factory=dict)

    @property
    def model_tag(self) -> str:
        """The ``model_id`` tag of prediction points: the STAMM model ID in lower case."""
        return self.model_id.lower()

    @property
    def version_tag(self) -> str:
        """The ``version`` tag of prediction points: the registry's version number."""
        return str(self.version_number)


def plan_for_version(deployment: Deployment, version: Any) -> ScoringPlan:
    config = version.descriptor or {}
    features = tuple(str(f["name"]) for f in (config.get("inputs") or {}).get("features") or [])
    outputs = tuple(str(o["name"]) for o in (config.get("outputs") or {}).get("information") or [])
    variables = tuple(deployment.feature_variable(f) for f in features)
    distinct = tuple(dict.fromkeys(variables))
    soft_sensor = deployment.soft_sensor
    return ScoringPlan(
        version_id=version.pk,
        version_number=version.number,
        status=version.status,
        online=bool(version.is_online),
        project_id=soft_sensor.project.project_id,
        model_id=soft_sensor.model_id,
        features=features,
        variables=variables,
        outputs=outputs,
        snapshot_variables=distinct,
        column_of={f: distinct.index(v) for f, v in zip(features, variables, strict=True)},
    )


def deployment_plan(deployment: Deployment) -> ScoringPlan | None:
    """The version a deployment calls now (its pin, or its alias's target); None when the alias is gone."""
    if deployment.pinned_version_id:
        return plan_for_version(deployment, deployment.pinned_version)
    from apps.registry.models import Alias

    alias = (
        Alias.objects.filter(soft_sensor_id=deployment.soft_sensor_id, name=deployment.alias)
        .select_related("version")
        .first()
    )
    return plan_for_version(deployment, alias.version) if alias else None


def deployments_for_project(*, project_name: str) -> list[tuple[Deployment, ScoringPlan | None]]:
    """Enabled deployments whose soft sensor belongs to the project with this tsdb tag, with their plans.

    Two queries: the deployments (with soft sensor, project and pinned version) and their aliases' versions.
    """
    from apps.registry.models import Alias

    deployments = list(
        Deployment.objects.filter(enabled=True, soft_sensor__project__name__iexact=project_name).select_related(
            "soft_sensor__project", "pinned_version"
        )
    )
    aliased = [d for d in deployments if not d.pinned_version_id]
    versions: dict[tuple[int, str], Any] = {}
    if aliased:
        for alias in Alias.objects.filter(
            soft_sensor_id__in={d.soft_sensor_id for d in aliased}, name__in={d.alias for d in aliased}
        ).select_related("version"):
            versions[(alias.soft_sensor_id, alias.name)] = alias.version
    result = []
    for deployment in deployments:
        if deployment.pinned_version_id:
            result.append((deployment, plan_for_version(deployment, deployment.pinned_version)))
        else:
            version = versions.get((deployment.soft_sensor_id, deployment.alias))
            result.append((deployment, plan_for_version(deployment, version) if version else None))
    return result


# -------------------------------------------------------------------------------------------- deployments


def deployment_list() -> QuerySet[Deployment]:
    return Deployment.objects.select_related("soft_sensor__project", "pinned_version").order_by("name")


def deployment_get(*, deployment_id: int | str) -> Deployment:
    """By id, or by name (the command line uses names)."""
    queryset = deployment_list()
    try:
        if str(deployment_id).isdigit():
            return queryset.get(pk=int(deployment_id))
        return queryset.get(name=str(deployment_id))
    except Deployment.DoesNotExist:
        raise NotFound(
            f"Deployment {deployment_id} does not exist.", details={"deployment": str(deployment_id)}
        ) from None


def watermark_list(*, deployment: Deployment) -> QuerySet[Watermark]:
    return Watermark.objects.filter(deployment=deployment).order_by("project_name", "device_id", "batch_id")


# --------------------------------------------------------------------------------------------------- runs


def run_list(
    *,
    status: str | None = None,
    deployment: str | None = None,
    trigger: str | None = None,
    batch_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[PipelineRun]:
    """Runs, newest first, filtered; bad filter values are a 400 naming the filter."""
    queryset = PipelineRun.objects.select_related("deployment")
    if status:
        if status not in RunStatus.values:
            raise ValidationFailed(f"status must be one of {', '.join(RunStatus.values)}.", details={"status": status})
        queryset = queryset.filter(status=status)
    if trigger:
        if trigger not in Trigger.values:
            raise ValidationFailed(f"trigger must be one of {', '.join(Trigger.values)}.", details={"trigger": trigger})
        queryset = queryset.filter(trigger=trigger)
    if deployment:
        queryset = (
            queryset.filter(deployment_id=int(deployment))
            if str(deployment).isdigit()
            else queryset.filter(deployment__name=deployment)
        )
    if batch_id:
        queryset = queryset.filter(batch_id=batch_id)
    if since is not None:
        queryset = queryset.filter(started_at__gte=since)
    if until is not None:
        queryset = queryset.filter(started_at__lte=until)
    return queryset.order_by("-started_at", "-id")


def run_get(*, run_id: int) -> PipelineRun:
    try:
        return PipelineRun.objects.select_related("deployment").get(pk=run_id)
    except PipelineRun.DoesNotExist:
        raise NotFound(f"Pipeline run {run_id} does not exist.", details={"run": run_id}) from None


# ---------------------------------------------------------------------------------------------------- lag


def is_plan_input(plan: ScoringPlan, key: Any) -> bool:
    """A raw series feeding the plan's snapshots (lab samples are targets, never inputs)."""
    return key.source != LAB_SOURCE and key.observed_property in plan.snapshot_variables


def is_plan_output(plan: ScoringPlan, key: Any) -> bool:
    """A prediction series written by the plan's version."""
    return key.model_id == plan.model_tag and key.version == plan.version_tag and key.observed_property in plan.outputs


def waiting_seconds(
    *,
    deployment: Deployment,
    plan: ScoringPlan,
    group: GroupKey,
    newest_raw_ns: int,
    newest_prediction_ns: int | None,
    now_ns: int,
) -> float:
    """The lag rule: age of the oldest as-of snapshot newer than the newest prediction (0 when caught up)."""
    if newest_prediction_ns is not None and newest_raw_ns <= newest_prediction_ns:
        return 0.0
    probe = get_backend().snapshots(
        group=group,
        variables=plan.snapshot_variables,
        after=from_ns(newest_prediction_ns) if newest_prediction_ns is not None else None,
        max_age=timedelta(seconds=deployment.max_input_age_seconds),
        limit=1,
    )
    return max(0.0, (now_ns - int(probe.times_ns[0])) / 1e9) if len(probe) else 0.0


def pipeline_lag(*, now: datetime | None = None, groups_per_deployment: int = 20) -> list[dict[str, Any]]:
    """Per enabled deployment: how far scoring trails the raw data of its most recently active groups.

    For each group: the newest raw input time, the newest prediction time of the deployment's version,
    ``unscored_age_seconds`` (age of the newest raw point without a prediction; 0 when caught up) and
    ``waiting_seconds`` (age of the oldest raw snapshot still without a prediction: how long data waits).
    Two ``latest`` lookups per project and one snapshot probe per lagging group.
    """
    now = now or timezone.now()
    now_ns = to_ns(now)
    backend = get_backend()
    report = []
    raw_cache: dict[str, list] = {}
    pred_cache: dict[str, list] = {}
    for deployment in Deployment.objects.filter(enabled=True).select_related("soft_sensor__project", "pinned_version"):
        plan = deployment_plan(deployment)
        entry: dict[str, Any] = {"deployment": deployment.name, "id": deployment.pk, "groups": []}
        if plan is None or not plan.online:
            entry.update(online=False, lag_seconds=None)
            report.append(entry)
            continue
        project_name = deployment.soft_sensor.project.name.lower()
        if project_name not in raw_cache:
            raw_cache[project_name] = backend.latest(
                collection=Collection.RAW, where=SeriesFilter(project_name=project_name)
            )
            pred_cache[project_name] = backend.latest(
                collection=Collection.PREDICTIONS,
                where=SeriesFilter(project_name=project_name, source=PREDICTION_SOURCE),
            )
        newest_raw: dict[GroupKey, int] = {}
        for point in raw_cache[project_name]:
            key = point.series
            if is_plan_input(plan, key):
                newest_raw[key.group] = max(newest_raw.get(key.group, -1), to_ns(point.time))
        newest_pred: dict[GroupKey, int] = {}
        for point in pred_cache[project_name]:
            key = point.series
            if is_plan_output(plan, key):
                newest_pred[key.group] = max(newest_pred.get(key.group, -1), to_ns(point.time))
        groups = sorted(
            (g for g in newest_raw if deployment.in_scope(device_id=g.device_id, batch_id=g.batch_id)),
            key=lambda g: newest_raw[g],
            reverse=True,
        )[:groups_per_deployment]
        worst = 0.0
        for group in groups:
            raw_ns, pred_ns = newest_raw[group], newest_pred.get(group)
            unscored = 0.0 if pred_ns is not None and raw_ns <= pred_ns else max(0.0, (now_ns - raw_ns) / 1e9)
            waiting = waiting_seconds(
                deployment=deployment,
                plan=plan,
                group=group,
                newest_raw_ns=raw_ns,
                newest_prediction_ns=pred_ns,
                now_ns=now_ns,
            )
            worst = max(worst, waiting)
            entry["groups"].append(
                {
                    "group": f"{group.project_name}/{group.device_id}/{group.batch_id}",
                    "newest_raw": from_ns(raw_ns).isoformat(),
                    "newest_prediction": from_ns(pred_ns).isoformat() if pred_ns is not None else None,
                    "unscored_age_seconds": round(unscored, 1),
                    "waiting_seconds": round(waiting, 1),
                }
            )
        entry.update(online=True, lag_seconds=round(worst, 1))
        report.append(entry)
    return report

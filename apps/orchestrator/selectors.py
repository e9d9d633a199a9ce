"""Reads of the orchestrator: deployments and what they score, runs, watermarks, pipeline lag."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.common.errors import NotFound, ValidationFailed
from apps.registry.selectors import specs_for_aliases, specs_for_versions
from apps.registry.spec import ModelSpec
from apps.tsdb.backends import get_backend
from apps.tsdb.types import PREDICTION_SOURCE, Collection, GroupKey, SeriesFilter, from_ns, to_ns

from .models import BiasCorrection, Deployment, Heartbeat, PipelineRun, RunStatus, Trigger, Watermark
from .scoring import BiasSettings, Estimator, ScoringConfig, estimator_for_spec, snapshots_read


def heartbeat_last_seen(*, name: str = "beat") -> datetime | None:
    return Heartbeat.objects.filter(name=name).values_list("last_seen", flat=True).first()


def heartbeat_get(*, name: str) -> Heartbeat | None:
    return Heartbeat.objects.filter(name=name).first()


# ------------------------------------------------------------------------------------------- estimators


def bias_correction_current(*, deployment: Deployment) -> BiasCorrection | None:
    """The newest version of a deployment's bias update configuration, or None."""
    return BiasCorrection.objects.filter(deployment=deployment).order_by("-number").first()


def bias_corrections(*, deployment: Deployment) -> QuerySet[BiasCorrection]:
    """Every version of a deployment's bias update configuration, newest first."""
    return BiasCorrection.objects.filter(deployment=deployment).select_related("created_by").order_by("-number")


def _bias_settings(correction: BiasCorrection | None, spec: ModelSpec) -> BiasSettings | None:
    """A deployment's own bias update when it has one (disabled: none), else the version's trained one."""
    if correction is not None:
        if not correction.enabled:
            return None
        return BiasSettings.of(
            correction,
            reset_each_batch=correction.reset_each_batch,
            source=f"deployment bias update v{correction.number}",
        )
    return BiasSettings.from_spec(spec.bias) if spec.bias is not None else None


def _estimator(
    deployment: Deployment, spec: ModelSpec, correction: BiasCorrection | None, champion_version_id: int | None
) -> Estimator:
    return Estimator(
        spec=spec,
        config=ScoringConfig(
            input_mapping=dict(deployment.input_mapping or {}),
            max_input_age_seconds=deployment.max_input_age_seconds,
            bias=_bias_settings(correction, spec),
            champion_version_id=champion_version_id,
        ),
    )


def deployment_estimators(deployments: list[Deployment]) -> list[tuple[Deployment, Estimator | None]]:
    """Each deployment with the estimator it runs now (its pin, or its alias's target; None when the alias
    is gone). Three queries whatever the number of deployments (pinned specs, aliased specs, bias updates),
    one more when shadows are among them and their champions are not (what their champions run)."""
    known = {d.pk for d in deployments}
    champions = {d.shadow_of_id for d in deployments if d.shadow_of_id and d.shadow_of_id not in known}
    everything = deployments + (list(Deployment.objects.filter(pk__in=champions)) if champions else [])
    pinned = specs_for_versions(version_ids=[d.pinned_version_id for d in everything if d.pinned_version_id])
    aliased = specs_for_aliases(pairs=[(d.soft_sensor_id, d.alias) for d in everything if not d.pinned_version_id])
    corrections: dict[int, BiasCorrection] = {}
    if deployments:
        newest_first = BiasCorrection.objects.filter(deployment__in=deployments).order_by("deployment_id", "-number")
        for correction in newest_first:
            corrections.setdefault(correction.deployment_id, correction)

    def spec_of(deployment: Deployment) -> ModelSpec | None:
        if deployment.pinned_version_id:
            return pinned.get(deployment.pinned_version_id)
        return aliased.get((deployment.soft_sensor_id, deployment.alias))

    versions = {d.pk: (spec.version_id if (spec := spec_of(d)) else None) for d in everything}
    result: list[tuple[Deployment, Estimator | None]] = []
    for deployment in deployments:
        spec = spec_of(deployment)
        champion = versions.get(deployment.shadow_of_id) if deployment.shadow_of_id else None
        result.append(
            (deployment, _estimator(deployment, spec, corrections.get(deployment.pk), champion) if spec else None)
        )
    return result


def deployment_estimator(deployment: Deployment) -> Estimator | None:
    """The estimator a deployment runs now (its pin, or its alias's target); None when the alias is gone."""
    return deployment_estimators([deployment])[0][1]


def deployment_for_spec(*, spec: ModelSpec) -> Deployment | None:
    """The deployment whose configuration a simulation of ``spec`` borrows: one that runs this very version
    (enabled ones first), else the soft sensor's first enabled deployment, else its first one; None when the
    soft sensor has none."""
    deployments = list(
        Deployment.objects.filter(soft_sensor_id=spec.soft_sensor_id)
        .select_related("soft_sensor__project")
        .order_by("-enabled", "pk")
    )
    for deployment, estimator in deployment_estimators(deployments):
        if estimator is not None and estimator.spec.version_id == spec.version_id:
            return deployment
    return deployments[0] if deployments else None


def estimator_under(*, spec: ModelSpec, deployment: Deployment | None, bias: bool = True) -> Estimator:
    """``spec`` run the way ``deployment`` would run it were it its version: the deployment's input mapping,
    maximum input age and bias update (its own configuration, else the version's trained one), exactly as
    ``deployment_estimator`` builds it. Without a deployment: the feature names, the default maximum age and
    the version's trained bias update. ``bias=False`` scores the raw model only."""
    if deployment is None:
        return estimator_for_spec(spec, bias=bias)
    # A simulation scores the version it is given, so a shadow's "same version as its champion" rule is moot.
    estimator = _estimator(deployment, spec, bias_correction_current(deployment=deployment), None)
    return estimator if bias else Estimator(spec=spec, config=replace(estimator.config, bias=None))


def shadow_series_versions(
    *, pairs: list[tuple[Deployment, Estimator | None]], device_id: str, batch_id: str
) -> set[tuple[str, str]]:
    """(model tag, version tag) of the prediction series in a group that only shadows write: what the pages
    must not show as the estimate (a series a live deployment also writes is the estimate)."""
    live: set[tuple[str, str]] = set()
    shadow: set[tuple[str, str]] = set()
    for deployment, estimator in pairs:
        if estimator is None or not deployment.in_scope(device_id=device_id, batch_id=batch_id):
            continue
        tag = (estimator.spec.model_tag, estimator.spec.version_tag)
        (shadow if deployment.is_shadow else live).add(tag)
    return shadow - live


def deployments_for_project(*, project_name: str) -> list[tuple[Deployment, Estimator | None]]:
    """Enabled deployments whose soft sensor belongs to the project with this tsdb tag, with their estimators."""
    deployments = list(
        Deployment.objects.filter(enabled=True, soft_sensor__project__name__iexact=project_name).select_related(
            "soft_sensor__project", "shadow_of"
        )
    )
    return deployment_estimators(deployments)


# -------------------------------------------------------------------------------------------- deployments


def deployment_list() -> QuerySet[Deployment]:
    return Deployment.objects.select_related("soft_sensor__project", "pinned_version", "shadow_of").order_by("name")


def deployment_version_tags(*, deployment: Deployment) -> set[str] | None:
    """The version tags of the prediction series that are this deployment's own, when it shares its model's
    series with a shadow or a champion (the versions its runs scored, and the one it runs now); None when it
    shares them with nobody, and every version of its model is its own (the lab ledger reads them all)."""
    related = deployment.shadow_of_id is not None or Deployment.objects.filter(shadow_of=deployment).exists()
    if not related:
        return None
    tags = set(
        PipelineRun.objects.filter(deployment=deployment)
        .exclude(version_label="")
        .values_list("version_label", flat=True)
        .distinct()
    )
    estimator = deployment_estimator(deployment)
    if estimator is not None:
        tags.add(estimator.spec.version_tag)
    return tags


def deployment_publishes(deployment: Deployment) -> bool:
    """Whether a deployment's estimates may leave the platform (MQTT, OPC UA): never a shadow's. The one rule
    the connectors read when a publication is configured and when a run's estimates are sent."""
    return not deployment.is_shadow


def deployment_following(*, soft_sensor_id: int, alias: str) -> Deployment | None:
    """The first enabled deployment that follows ``alias`` of a soft sensor (what that alias runs as)."""
    return deployment_list().filter(soft_sensor_id=soft_sensor_id, alias=alias, enabled=True).first()


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


def waiting_seconds(
    *,
    estimator: Estimator,
    group: GroupKey,
    newest_raw_ns: int,
    newest_prediction_ns: int | None,
    now_ns: int,
) -> float:
    """The lag rule: age of the oldest as-of snapshot newer than the newest prediction (0 when caught up)."""
    if newest_prediction_ns is not None and newest_raw_ns <= newest_prediction_ns:
        return 0.0
    probe = snapshots_read(estimator, group, after_ns=newest_prediction_ns, until_ns=None, limit=1)
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
    deployments = list(Deployment.objects.filter(enabled=True).select_related("soft_sensor__project"))
    for deployment, estimator in deployment_estimators(deployments):
        entry: dict[str, Any] = {"deployment": deployment.name, "id": deployment.pk, "groups": []}
        if estimator is None or not estimator.spec.online:
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
            if estimator.is_input(key):
                newest_raw[key.group] = max(newest_raw.get(key.group, -1), to_ns(point.time))
        newest_pred: dict[GroupKey, int] = {}
        for point in pred_cache[project_name]:
            key = point.series
            if estimator.is_output(key):
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
                estimator=estimator,
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

"""Deployments: which soft sensor runs where, validated field by field before anything is written."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from apps.common.errors import Conflict, ValidationFailed, reject_unknown_fields

from ..models import Deployment, Watermark

DEPLOYMENT_FIELDS = (
    "name",
    "description",
    "soft_sensor",
    "alias",
    "pinned_version",
    "device_ids",
    "batch_pattern",
    "live_only",
    "input_mapping",
    "max_input_age_seconds",
    "score_from",
    "enabled",
    "shadow_of",
)
#: What a shadow takes from its champion: it scores the same groups from the same time.
SCOPE_FIELDS = ("device_ids", "batch_pattern", "live_only", "score_from")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


def deployment_validate(deployment: Deployment) -> None:
    """Every rule at once, each problem naming its field."""
    problems: dict[str, str] = {}
    if not deployment.name or not _SLUG.match(deployment.name):
        problems["name"] = "must be a non-empty slug (letters, digits, - and _)"
    elif Deployment.objects.filter(name=deployment.name).exclude(pk=deployment.pk).exists():
        problems["name"] = f"a deployment named {deployment.name!r} already exists"
    if bool(deployment.alias) == bool(deployment.pinned_version_id):
        problems["alias"] = "give either an alias or a pinned version, not both and not neither"
    soft_sensor = deployment.soft_sensor
    if deployment.pinned_version_id and deployment.pinned_version.soft_sensor_id != soft_sensor.pk:
        problems["pinned_version"] = f"version {deployment.pinned_version_id} does not belong to {soft_sensor.model_id}"
    if deployment.alias and not soft_sensor.aliases.filter(name=deployment.alias).exists():
        problems["alias"] = f"{soft_sensor.model_id} has no alias {deployment.alias!r}"
    if not isinstance(deployment.device_ids, list) or not all(isinstance(d, str) and d for d in deployment.device_ids):
        problems["device_ids"] = "must be a list of non-empty strings"
    if not isinstance(deployment.input_mapping, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in deployment.input_mapping.items()
    ):
        problems["input_mapping"] = "must map feature names to variable names (non-empty strings)"
    elif "alias" not in problems and "pinned_version" not in problems:
        plan_version = (
            deployment.pinned_version
            if deployment.pinned_version_id
            else (soft_sensor.aliases.select_related("version").get(name=deployment.alias).version)
        )
        features = [f.get("name") for f in (plan_version.descriptor.get("inputs") or {}).get("features") or []]
        unknown = sorted(set(deployment.input_mapping) - set(features))
        if unknown:
            problems["input_mapping"] = (
                f"not features of the model: {', '.join(unknown)} (features: {', '.join(features)})"
            )
    champion = deployment.shadow_of
    if champion is not None:
        if champion.pk is not None and champion.pk == deployment.pk:
            problems["shadow_of"] = "a deployment cannot be its own shadow"
        elif champion.shadow_of_id is not None:
            problems["shadow_of"] = f"{champion.name} is itself a shadow; shadow its champion instead"
        elif champion.soft_sensor.project_id != soft_sensor.project_id:
            problems["shadow_of"] = f"{champion.name} scores another project's data"
        elif deployment.pk is not None and deployment.shadows.exists():
            problems["shadow_of"] = f"{deployment.name} has shadows of its own; it cannot become one"
    if deployment.max_input_age_seconds is None or int(deployment.max_input_age_seconds) < 1:
        problems["max_input_age_seconds"] = "must be at least 1"
    if len(deployment.batch_pattern or "") > 128:
        problems["batch_pattern"] = "is longer than 128 characters"
    if problems:
        raise ValidationFailed("The deployment is not valid.", details=problems)


def _follow_champion(deployment: Deployment) -> None:
    """A shadow's scope is its champion's (the same groups, from the same time)."""
    if deployment.shadow_of is not None:
        for name in SCOPE_FIELDS:
            setattr(deployment, name, getattr(deployment.shadow_of, name))


def _scope_to_shadows(deployment: Deployment) -> None:
    """A champion's scope change reaches its shadows (saved, so the change is audited on each)."""
    for shadow in deployment.shadows.all():
        if any(getattr(shadow, name) != getattr(deployment, name) for name in SCOPE_FIELDS):
            for name in SCOPE_FIELDS:
                setattr(shadow, name, getattr(deployment, name))
            shadow.save()


@transaction.atomic
def deployment_create(*, user: Any = None, **data: Any) -> Deployment:
    """Create a deployment (fields: ``DEPLOYMENT_FIELDS``); validated as a whole, nothing saved on error.
    A shadow (``shadow_of``) takes its champion's scope."""
    reject_unknown_fields(data, DEPLOYMENT_FIELDS, what="deployment")
    deployment = Deployment(created_by=user if getattr(user, "is_authenticated", False) else None, **data)
    _follow_champion(deployment)
    deployment_validate(deployment)
    deployment.save()
    return deployment


@transaction.atomic
def deployment_ensure(*, name: str, user: Any = None, **data: Any) -> tuple[Deployment, bool]:
    """The deployment called ``name``, created with ``data`` if absent (left as is otherwise): for seed scripts
    such as the demo's, which must be safe to run again. Returns (deployment, created)."""
    existing = Deployment.objects.filter(name=name).first()
    if existing is not None:
        return existing, False
    return deployment_create(user=user, name=name, **data), True


@transaction.atomic
def deployment_update(*, deployment: Deployment, data: Mapping[str, Any]) -> Deployment:
    """Change some fields; a scope or model change resets nothing (watermarks keep their progress)."""
    reject_unknown_fields(data, DEPLOYMENT_FIELDS, what="deployment")
    for name, value in data.items():
        setattr(deployment, name, value)
    if "alias" in data and data["alias"] and "pinned_version" not in data:
        deployment.pinned_version = None
    if "pinned_version" in data and data["pinned_version"] is not None and "alias" not in data:
        deployment.alias = ""
    _follow_champion(deployment)
    deployment_validate(deployment)
    deployment.save()
    _scope_to_shadows(deployment)
    return deployment


@transaction.atomic
def deployment_delete(*, deployment: Deployment) -> None:
    shadows = list(deployment.shadows.values_list("name", flat=True))
    if shadows:
        raise Conflict(
            f"{deployment.name} has shadow deployment(s) {', '.join(shadows)}; delete or detach them first.",
            details={"shadows": shadows},
        )
    if Watermark.objects.filter(deployment=deployment, lease_token__isnull=False).exists():
        raise Conflict("A run of this deployment is in progress; disable it first and retry when it ends.")
    deployment.delete()

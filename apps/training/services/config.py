"""A run's configuration, validated and normalised (defaults resolved), and the project's training profile."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from apps.common.errors import ValidationFailed, reject_unknown_fields
from apps.orchestrator.services import BIAS_PARAMETERS, bias_parameters_validate

from .. import dataset, gates, learners, splits
from ..models import (
    ProjectProfile,
)

DEFAULT_ALIAS = "staging"
DEFAULT_MAX_INPUT_AGE_SECONDS = 3600
MODEL_ID_RE = re.compile(r"^[0-9]{4}_\[[A-Za-z0-9.+-]+\]_[A-Za-z0-9_.\-]+$")


def project_profile(project: Any) -> ProjectProfile:
    """The project's training profile (lab delay, phases); defaults when none was saved."""
    return ProjectProfile.objects.filter(project=project).first() or ProjectProfile(project=project)


@transaction.atomic
def project_profile_set(
    *, project: Any, lab_delay_seconds: int | None = None, phases: list | None = None
) -> ProjectProfile:
    """Declare how late lab results arrive and which phases a batch goes through (on batch age, hours)."""
    profile, _ = ProjectProfile.objects.get_or_create(project=project)
    if lab_delay_seconds is not None:
        if int(lab_delay_seconds) < 0:
            raise ValidationFailed(
                "lab_delay_seconds: must not be negative", details={"lab_delay_seconds": lab_delay_seconds}
            )
        profile.lab_delay_seconds = int(lab_delay_seconds)
    if phases is not None:
        profile.phases = _phases_validate(phases)
    profile.save()
    return profile


def _phases_validate(phases: Any) -> list[dict[str, Any]]:
    if not isinstance(phases, list):
        raise ValidationFailed("phases: must be a list of {name, start_h, end_h}", details={"phases": "not a list"})
    result = []
    for index, phase in enumerate(phases):
        if not isinstance(phase, Mapping) or not str(phase.get("name") or "").strip():
            raise ValidationFailed(f"phases[{index}]: needs a name", details={f"phases[{index}]": phase})
        try:
            start = float(phase.get("start_h") or 0.0)
            end = None if phase.get("end_h") is None else float(phase["end_h"])
        except (TypeError, ValueError):
            raise ValidationFailed(
                f"phases[{index}]: start_h and end_h must be numbers", details={f"phases[{index}]": phase}
            )
        if end is not None and end <= start:
            raise ValidationFailed(f"phases[{index}]: end_h must be after start_h", details={f"phases[{index}]": phase})
        result.append({"name": str(phase["name"]).strip(), "start_h": start, "end_h": end})
    return result


def _learners_validate(value: Any) -> list[dict[str, Any]]:
    if not value:
        raise ValidationFailed("learners: choose at least one learner", details={"learners": "required"})
    if not isinstance(value, list):
        raise ValidationFailed("learners: must be a list", details={"learners": "not a list"})
    result, seen = [], set()
    for item in value:
        key, given = (item, None) if isinstance(item, str) else (item.get("key"), item.get("hyperparameters"))
        learner = learners.learner_get(str(key))
        if learner.key in seen:
            raise ValidationFailed(f"learners: {learner.key} listed twice", details={"learners": learner.key})
        seen.add(learner.key)
        if learner.language == "r" and shutil.which("Rscript") is None:
            raise ValidationFailed(
                f"learners: {learner.key} needs R, which is not installed on this server",
                details={"learners": learner.key},
            )
        result.append({"key": learner.key, "hyperparameters": learner.hyperparameters(given)})
    return result


def default_model_id(project: Any, target: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", f"{project.name}_{target}").strip("_") or "soft_sensor"
    return f"0100_[python]_{name}"


def training_config_validate(*, project: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised, explicit configuration of a run (defaults resolved), or ValidationFailed."""
    data = dict(data or {})
    allowed = {
        "target",
        "device_id",
        "batches",
        "features",
        "add_batch_age",
        "preprocessing",
        "split",
        "learners",
        "gates",
        "alias",
        "require_approval",
        "model_id",
        "lab_delay_seconds",
        "phases",
        "author",
        "bias",
    }
    reject_unknown_fields(data, allowed, what="training run")
    target = str(data.get("target") or "").strip()
    if not target:
        raise ValidationFailed(
            "target: name the variable to predict, e.g. penicillin_concentration", details={"target": "required"}
        )
    batches = [str(b).strip() for b in data.get("batches") or [] if str(b).strip()]
    if len(batches) < 2:
        raise ValidationFailed(
            "batches: choose at least two batches (one to train on, one to test on)", details={"batches": batches}
        )
    if len(set(batches)) != len(batches):
        raise ValidationFailed("batches: a batch is listed twice", details={"batches": batches})
    device_id = str(data.get("device_id") or "").strip() or None
    groups = dataset.groups_resolve(project_name=project.name, batches=batches, device_id=device_id)
    split = splits.split_validate(data.get("split"), batches=batches)
    add_age = bool(data.get("add_batch_age", True))
    features = data.get("features")
    if features in (None, "", []):
        features = dataset.default_features(groups=groups, target=target)
        if not features:
            raise ValidationFailed(
                "features: the chosen batches share no sensor or actuator variable", details={"features": []}
            )
    if not isinstance(features, list) or not all(isinstance(f, str) and f.strip() for f in features):
        raise ValidationFailed("features: must be a list of variable names", details={"features": features})
    features = [f.strip() for f in features if f.strip() != dataset.BATCH_AGE]
    if target in features:
        raise ValidationFailed(f"features: the target {target} cannot be an input", details={"features": target})
    if len(set(features)) != len(features):
        raise ValidationFailed("features: a variable is listed twice", details={"features": features})
    if add_age:
        features.append(dataset.BATCH_AGE)
    preprocessing = dict(data.get("preprocessing") or {})
    gaps_mode = str(preprocessing.get("gaps") or "drop")
    if gaps_mode not in ("drop", "ffill"):
        raise ValidationFailed("preprocessing.gaps: must be drop or ffill", details={"preprocessing.gaps": gaps_mode})
    try:
        max_age = int(preprocessing.get("max_input_age_seconds") or DEFAULT_MAX_INPUT_AGE_SECONDS)
    except (TypeError, ValueError):
        raise ValidationFailed(
            "preprocessing.max_input_age_seconds: must be an integer",
            details={"preprocessing.max_input_age_seconds": preprocessing.get("max_input_age_seconds")},
        )
    if max_age < 1:
        raise ValidationFailed(
            "preprocessing.max_input_age_seconds: must be at least 1",
            details={"preprocessing.max_input_age_seconds": max_age},
        )
    model_id = str(data.get("model_id") or "").strip() or default_model_id(project, target)
    if not MODEL_ID_RE.match(model_id):
        raise ValidationFailed(
            f"model_id: must look like NNNN_[language]_name, got {model_id!r}", details={"model_id": model_id}
        )
    alias = data.get("alias", DEFAULT_ALIAS)
    alias = "" if alias is None else str(alias).strip()
    if alias and not re.fullmatch(r"[-a-zA-Z0-9_]+", alias):
        raise ValidationFailed(f"alias: {alias!r} is not a valid alias name", details={"alias": alias})
    profile = project_profile(project)
    lab_delay = data.get("lab_delay_seconds", profile.lab_delay_seconds)
    try:
        lab_delay = int(lab_delay)
    except (TypeError, ValueError):
        raise ValidationFailed("lab_delay_seconds: must be an integer", details={"lab_delay_seconds": lab_delay})
    if lab_delay < 0:
        raise ValidationFailed("lab_delay_seconds: must not be negative", details={"lab_delay_seconds": lab_delay})
    phases = _phases_validate(data["phases"]) if data.get("phases") is not None else list(profile.phases or [])
    return {
        "target": target,
        "device_id": device_id,
        "batches": batches,
        "features": features,
        "preprocessing": {"gaps": gaps_mode, "max_input_age_seconds": max_age},
        "split": split,
        "learners": _learners_validate(data.get("learners") or ["random_forest"]),
        "gates": gates.gates_validate(data.get("gates")),
        "alias": alias,
        "require_approval": bool(data.get("require_approval", False)),
        "model_id": model_id,
        "lab_delay_seconds": lab_delay,
        "phases": phases,
        "author": str(data.get("author") or "").strip(),
        "bias": _bias_validate(data.get("bias", {}), lab_delay=lab_delay),
    }


#: The bias update a run evaluates its candidates with unless it says otherwise: α = 0.8 had the lowest mean
#: RMSE over seven IndPenSim batches in ``manage.py training_bias_study`` (docs/training.md); the lab delay is
#: the run's, and a result older than 8 h when it becomes known is not used.
DEFAULT_BIAS: dict[str, Any] = {"alpha": 0.8, "max_lab_age_seconds": 8 * 3600}


def _bias_validate(value: Any, *, lab_delay: int) -> dict[str, Any] | None:
    """The bias update the candidates are judged with and deployed with (``False``/None: raw estimates)."""
    if value is False or value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationFailed(
            "bias: an object of bias-update parameters, or false for none", details={"bias": "not an object"}
        )
    reject_unknown_fields(value, BIAS_PARAMETERS, what="bias", prefix="bias.")
    return bias_parameters_validate({**DEFAULT_BIAS, **value}, prefix="bias.", lab_delay_default=lab_delay)

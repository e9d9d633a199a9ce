"""Validation of what a drift run or job is given: detector parameters, calibration, variables, windows,
and the target (deployment or soft sensor) resolved to what the windows need."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from stamm_drift import Detector, ParameterError, UnknownDetector, detector_class
from stamm_drift.calibration import CalibrationRule

from apps.common.errors import ValidationFailed

from ..models import (
    ProjectDriftSettings,
)
from ..window_loading import (
    ReferenceSpec,
    Scope,
    TestSpec,
    phase_named,
    phases_for,
)
from ..windows import Phase

logger = logging.getLogger(__name__)


# -- validation -------------------------------------------------------------------------------------

def detector_params_validate(*, detector: Any, params: Any) -> tuple[type[Detector], dict[str, Any]]:
    """The detector class and its full validated parameters; 400 naming ``detector`` or ``params.<name>``."""
    if not isinstance(detector, str) or not detector:
        raise ValidationFailed("detector: a catalogue key is required", details={"detector": "required"})
    try:
        cls = detector_class(detector)
    except UnknownDetector as exc:
        raise ValidationFailed(f"detector: {exc}", details={"detector": str(exc)}, code="unknown_detector") from None
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValidationFailed("params: expected an object of parameter values", details={"params": "not an object"})
    try:
        return cls, cls.validate_params(params)
    except ParameterError as exc:
        raise ValidationFailed(
            f"params.{exc.parameter}: {exc.message}", details={"params": {exc.parameter: exc.message}}
        ) from None


def calibration_rule_validate(overrides: Any) -> CalibrationRule:
    """``CalibrationRule`` with the given overrides; 400 naming ``calibration.<field>``."""
    if overrides in (None, ""):
        return CalibrationRule()
    if not isinstance(overrides, Mapping):
        raise ValidationFailed("calibration: expected an object", details={"calibration": "not an object"})
    fields = {f.name: f.type for f in dataclasses.fields(CalibrationRule)}
    for name, value in overrides.items():
        if name not in fields:
            raise ValidationFailed(f"calibration.{name}: unknown; known: {', '.join(fields)}",
                                   details={f"calibration.{name}": "unknown field"})
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationFailed(f"calibration.{name}: expected a number", details={f"calibration.{name}": value})
        if name in ("bootstrap", "seed") and not float(value).is_integer():
            raise ValidationFailed(f"calibration.{name}: expected an integer", details={f"calibration.{name}": value})
    values = {k: (int(v) if k in ("bootstrap", "seed") else float(v)) for k, v in overrides.items()}
    if values.get("bootstrap", 0) > 200:
        raise ValidationFailed("calibration.bootstrap: at most 200",
                               details={"calibration.bootstrap": values["bootstrap"]})
    try:
        return CalibrationRule(**values)
    except ValueError as exc:
        name = str(exc).split(" ")[0]
        raise ValidationFailed(f"calibration.{name}: {exc}", details={f"calibration.{name}": str(exc)}) from None


def variables_validate(variables: Any) -> list[str]:
    if variables in (None, ""):
        return []
    if not isinstance(variables, list) or not all(isinstance(v, str) and v for v in variables):
        raise ValidationFailed("variables: expected a list of variable names",
                               details={"variables": "not a list of names"})
    if len(set(variables)) != len(variables):
        raise ValidationFailed("variables: names repeat", details={"variables": "names repeat"})
    return list(variables)


# -- what a job watches -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A deployment or soft sensor resolved to what windows need: scope, model inputs, training batches.

    Built from the estimator the deployment runs (``apps.orchestrator.selectors.deployment_estimator``) or
    from the soft sensor's current version's spec, so drift watches exactly the inputs the scoring path
    reads (derived inputs such as batch age are computed, not measured: nothing to drift).
    """

    deployment: Any
    soft_sensor: Any
    spec: Any  # apps.registry.spec.ModelSpec
    scope: Scope
    features: tuple[str, ...]
    outputs: tuple[str, ...]
    experiments: tuple[int | str, ...]
    model_tag: str
    phases: tuple[Phase, ...]


def target_resolve(*, deployment: Any = None, soft_sensor: Any = None) -> Target:
    """The deployment's current version (pin or alias) or the soft sensor's current version, resolved."""
    from apps.orchestrator.selectors import deployment_estimator
    from apps.registry.selectors import spec_current

    if deployment is not None:
        soft_sensor = deployment.soft_sensor
        estimator = deployment_estimator(deployment)
        if estimator is None:
            raise ValidationFailed(f"deployment: alias {deployment.alias!r} of {soft_sensor.model_id} points nowhere",
                                   details={"deployment": deployment.name})
        spec = estimator.spec
        features = tuple(dict.fromkeys(estimator.variable(name) for name in spec.measured_features))
        scope = Scope(soft_sensor.project.name.lower(), tuple(deployment.device_ids), deployment.batch_pattern,
                      timedelta(seconds=deployment.max_input_age_seconds))
    elif soft_sensor is not None:
        spec = spec_current(soft_sensor=soft_sensor)
        if spec is None:
            raise ValidationFailed(f"soft_sensor: {soft_sensor.model_id} has no version",
                                   details={"soft_sensor": soft_sensor.model_id})
        features = tuple(dict.fromkeys(spec.measured_features))
        scope = Scope(soft_sensor.project.name.lower())
    else:
        raise ValidationFailed("give a deployment or a soft sensor", details={"deployment": "required"})
    project_settings = ProjectDriftSettings.objects.filter(project_name__iexact=scope.project_name).first()
    return Target(deployment, soft_sensor, spec, scope, features, spec.output_names, spec.experiments,
                  spec.model_tag, phases_for(project_settings.phases if project_settings else ""))


def window_specs_validate(reference: Any, test: Any, *, detector: type[Detector], target: Target | None,
                    allow_values: bool) -> tuple[ReferenceSpec, TestSpec]:
    ref = ReferenceSpec.parse(reference, allow_values=allow_values)
    tst = TestSpec.parse(test, allow_values=allow_values)
    inline = (ref.kind == "values", tst.kind == "values")
    if any(inline) and not all(inline):
        raise ValidationFailed("reference.kind, test.kind: both inline values or both read from the store",
                               details={"reference.kind": ref.kind, "test.kind": tst.kind})
    if not all(inline):
        if target is None:
            raise ValidationFailed("deployment: windows read from the store need a deployment or a soft sensor",
                                   details={"deployment": "required"})
        if tst.kind == "phase":
            phase_named(target.phases, tst.phase or "")
        if ref.kind == "training" and not target.experiments:
            raise ValidationFailed(
                f"reference.kind: version {target.spec.number} of {target.soft_sensor.model_id} names no training "
                "batches (training_information.experiments_ID); give the batches or a time range",
                details={"reference.kind": "no experiments_ID in the descriptor"})
        if detector.input == "events" and target.deployment is None:
            raise ValidationFailed(f"detector: {detector.key} reads lab-residual events, which belong to a deployment",
                                   details={"detector": "needs a deployment"})
    return ref, tst



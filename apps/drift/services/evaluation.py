"""Running a detector on two windows (the verdict rule), the result row, severity, ad hoc runs."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stamm_drift import DataError, Detector
from stamm_drift import DriftResult as DetectorResult
from stamm_drift.calibration import CalibrationRule, apply_calibration, calibrate, result_component_scores

from apps.common.errors import ValidationFailed

from ..models import (
    DriftResult,
    LabScoringSettings,
    ResultStatus,
    ResultTrigger,
    Severity,
    VerdictRule,
)
from ..version_windows import load_predictions
from ..window_loading import (
    ReferenceSpec,
    TestSpec,
    Window,
    load_events,
    load_features,
    phase_named,
    reference_segments,
    test_segments,
    values_window,
)
from .validation import (
    Target,
    calibration_rule_validate,
    detector_params_validate,
    target_resolve,
    variables_validate,
    window_specs_validate,
)

logger = logging.getLogger(__name__)


#: A drift score at least this many times its threshold is critical.
CRITICAL_RATIO = 2.0


# -- running a detector -----------------------------------------------------------------------------

@dataclass
class Evaluation:
    result: DetectorResult
    reference: Window
    test: Window
    verdict_rule: str
    runtime_ms: float


def lab_settings_of(deployment: Any) -> LabScoringSettings:
    """The deployment's lab-scoring settings, or the defaults (unsaved) when it has none."""
    from ..selectors import lab_settings_get

    return lab_settings_get(deployment=deployment)


def _target_output(target: Target, lab: LabScoringSettings | None) -> str:
    if lab is not None and lab.target:
        return lab.target
    if not target.outputs:
        raise DataError(f"{target.soft_sensor.model_id}: the descriptor names no output")
    return target.outputs[0]


def evaluate(*, detector: Detector, variables: Sequence[str], target: Target | None, reference: ReferenceSpec,
             test: TestSpec, verdict_rule: str, rule: CalibrationRule) -> Evaluation:
    """Load both windows and run ``detector`` on them with the verdict rule (raises ``DataError``)."""
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    if reference.kind == "values":
        columns = tuple(variables) or tuple(f"x{i}" for i in range(reference.rows.shape[1]))
        ref_win = values_window(reference.rows, kind="reference", columns=columns)
        test_win = values_window(test.rows, kind="test", columns=columns)
    else:
        assert target is not None
        phase = phase_named(target.phases, test.phase) if test.kind == "phase" else None
        ref_segments = reference_segments(reference, scope=target.scope, experiments=target.experiments,
                                          phase=phase if reference.kind != "time_range" else None)
        tst_segments = test_segments(test, scope=target.scope, phase=phase)
        if detector.input == "features":
            columns = tuple(variables) or target.features
            if not columns:
                raise DataError("the model names no input features; give the variables")
            ref_win = load_features(ref_segments, columns, kind="reference", max_age=target.scope.max_age)
            test_win = load_features(tst_segments, columns, kind="test", max_age=target.scope.max_age)
        elif detector.input == "events":
            lab = lab_settings_of(target.deployment)
            output = _target_output(target, lab)
            ref_win, _ = load_events(ref_segments, deployment_id=target.deployment.pk, target=output,
                                     kind="reference", sigma=None, k=lab.event_k)
            test_win, _ = load_events(tst_segments, deployment_id=target.deployment.pk, target=output,
                                      kind="test", sigma=ref_win.extra["sigma"], k=lab.event_k)
        else:
            from apps.orchestrator.predictors import predictor_get

            output = _target_output(target, lab_settings_of(target.deployment) if target.deployment else None)
            scoring = {"project_id": target.spec.project_id, "deployment": target.deployment,
                       "predictor": predictor_get()}
            ref_win = load_predictions(ref_segments, target=output, models=variables, kind="reference", **scoring)
            test_win = load_predictions(tst_segments, target=output, models=ref_win.columns, kind="test", **scoring)
        if phase is not None:
            test_win.extra["phase"] = str(phase)
            ref_win.extra["phase"] = str(phase) if reference.kind != "time_range" else None
    names = ref_win.columns
    with threadpool_limits(limits=1):
        if verdict_rule == VerdictRule.CALIBRATED and len(ref_win.blocks) >= 2:
            components = names if detector.per_variable else (detector.key,)
            calibration = calibrate(detector, ref_win.blocks, rule=rule, components=components)
            raw = detector.detect(ref_win.matrix, test_win.matrix, variables=names)
            result = apply_calibration(raw, calibration, result_component_scores(detector, raw))
            used = VerdictRule.CALIBRATED
        else:
            result = detector.detect(ref_win.matrix, test_win.matrix, variables=names)
            reason = ("asked for" if verdict_rule == VerdictRule.NOMINAL
                      else "calibration needs at least two reference batches; the reference has "
                           f"{len(ref_win.blocks)} segment")
            result = dataclasses.replace(result, details={
                **result.details, "verdict_rule": "nominal", "nominal_reason": reason,
                "nominal": {"drift": result.drift, "score": result.score, "threshold": result.threshold,
                            "p_value": result.p_value}})
            used = VerdictRule.NOMINAL
    return Evaluation(result, ref_win, test_win, used, (time.perf_counter() - started) * 1000)


def severity_of(score: float | None, threshold: float | None) -> str:
    if score is None or threshold is None:
        return Severity.WARNING
    if threshold <= 0:
        return Severity.CRITICAL if score > 0 else Severity.WARNING
    return Severity.CRITICAL if score >= CRITICAL_RATIO * threshold else Severity.WARNING


def result_row(evaluation: Evaluation, **fields: Any) -> DriftResult:
    r = evaluation.result.to_dict()
    return DriftResult(
        detector=r["detector"], variables=list(r["variables"]), drift=bool(r["drift"]),
        score=float(evaluation.result.score), threshold=float(evaluation.result.threshold),
        p_value=r["p_value"], detection_index=r["detection_index"], explanation=r["explanation"],
        details=r["details"], verdict_rule=evaluation.verdict_rule,
        reference_window=evaluation.reference.describe(), test_window=evaluation.test.describe(),
        runtime_ms=evaluation.runtime_ms, status=ResultStatus.SUCCEEDED, **fields,
    )


# -- ad hoc runs ------------------------------------------------------------------------------------

def drift_run_ad_hoc(
    *, detector: Any, params: Any = None, variables: Any = None, deployment: Any = None, soft_sensor: Any = None,
    reference: Any, test: Any, verdict_rule: str = VerdictRule.CALIBRATED, calibration: Any = None,
    store: bool = True, user: Any = None,
) -> tuple[DriftResult, bool]:
    """Run a detector once. Returns the result row (saved when ``store``) and whether it was saved.

    Input errors are 400s naming the field; a window without data is a 400 with code ``no_data``.
    """
    cls, clean = detector_params_validate(detector=detector, params=params)
    names = variables_validate(variables)
    rule = calibration_rule_validate(calibration)
    if verdict_rule not in VerdictRule.values:
        raise ValidationFailed(f"verdict_rule: expected one of {', '.join(VerdictRule.values)}",
                               details={"verdict_rule": verdict_rule})
    target = target_resolve(deployment=deployment, soft_sensor=soft_sensor) if (deployment or soft_sensor) else None
    ref, tst = window_specs_validate(reference, test, detector=cls, target=target, allow_values=True)
    try:
        evaluation = evaluate(detector=cls(**clean), variables=names, target=target, reference=ref, test=tst,
                              verdict_rule=verdict_rule, rule=rule)
    except DataError as exc:
        raise ValidationFailed(str(exc), details={"data": str(exc)}, code="no_data") from None
    row = result_row(
        evaluation, trigger=ResultTrigger.AD_HOC, params=clean,
        deployment=target.deployment if target else None, soft_sensor=target.soft_sensor if target else None,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    if store:
        row.save()
    return row, store



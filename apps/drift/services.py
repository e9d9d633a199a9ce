"""Writes of the drift app: jobs and their beat schedules, runs and results, alerts, the residual ledger.

The rules in one place
----------------------
* **Parameters** are validated against the detector's signature (``Detector.validate_params``); a bad one
  is a 400 naming ``params.<name>``, an unknown detector a 400 naming ``detector``. Jobs store the full
  validated parameter set (defaults filled in), so a later change of a default never changes a job.
* **Windows** are resolved and read by ``window_loading``; a phase test window cuts batch references to
  the same phase.
* **Verdict.** By default reference-calibrated (``apps.drift.calibration``): needs at least two reference
  segments (batches); with one segment, or when the job asks for it, the detector's nominal threshold
  decides. Either way the rule and its data are stored in ``details``.
* **Results.** Every job run stores a ``DriftResult``; one that cannot score (no data, store down) is
  stored as ``failed`` with the error. Ad hoc API runs are stored too (``job`` empty, trigger ``ad_hoc``)
  unless the caller sends ``store: false``; they never raise alerts.
* **Alerts.** A drift verdict of a job opens an ``Alert``; while one is open, further drift verdicts
  update it (``last_result``, ``occurrences``, the worse severity) instead of opening another. Severity
  is ``critical`` when the score is at least twice its threshold, else ``warning``.
* **Ledger.** ``lab_ledger_refresh`` recomputes a deployment's residual rows per group and writes only the
  difference (create / update / delete), so re-running it changes nothing.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.errors import ApplicationError, ValidationFailed
from apps.tsdb.derived import DERIVED_VARIABLES
from apps.tsdb.types import Collection, GroupKey, from_ns, to_ns

from . import lab_scoring
from .calibration import CalibrationRule, apply_calibration, calibrate, result_component_scores
from .detectors import detector_class
from .detectors.base import DataError, Detector, ParameterError, UnknownDetector
from .detectors.base import DriftResult as DetectorResult
from .models import (
    Alert,
    DriftJob,
    DriftResult,
    LabResidual,
    LabScoringSettings,
    ProjectDriftSettings,
    ResultStatus,
    ResultTrigger,
    Severity,
    VerdictRule,
)
from .window_loading import (
    ReferenceSpec,
    Scope,
    TestSpec,
    Window,
    load_events,
    load_features,
    load_predictions,
    phase_named,
    phases_for,
    reference_segments,
    test_segments,
    values_window,
)
from .windows import Phase

logger = logging.getLogger(__name__)

#: Beat entry of the periodic lab-scoring refresh (created by the app's post_migrate receiver).
LAB_SCORING_TASK_NAME = "Drift lab scoring"
LAB_SCORING_TASK = "drift.lab_scoring_refresh"
#: Groups whose data moved within this many seconds are refreshed by the periodic task.
LAB_SCORING_LOOKBACK_SECONDS = 2 * 24 * 3600
#: Shortest beat interval of a job.
MIN_SCHEDULE_SECONDS = 10
JOB_TASK = "drift.run_job"
CRITICAL_RATIO = 2.0


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


def _variables_validate(variables: Any) -> list[str]:
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
    """A deployment or soft sensor resolved to what windows need: scope, model inputs, training batches."""

    deployment: Any
    soft_sensor: Any
    version: Any
    scope: Scope
    features: tuple[str, ...]
    outputs: tuple[str, ...]
    experiments: tuple[int, ...]
    model_tag: str
    phases: tuple[Phase, ...]


def target_resolve(*, deployment: Any = None, soft_sensor: Any = None) -> Target:
    """The deployment's current version (pin or alias) or the soft sensor's current version, resolved."""
    from apps.orchestrator.selectors import deployment_plan
    from apps.registry.descriptors import DescriptorError, parse_experiments
    from apps.registry.models import ModelVersion
    from apps.registry.selectors import current_version

    if deployment is not None:
        soft_sensor = deployment.soft_sensor
        plan = deployment_plan(deployment)
        if plan is None:
            raise ValidationFailed(f"deployment: alias {deployment.alias!r} of {soft_sensor.model_id} points nowhere",
                                   details={"deployment": deployment.name})
        version = ModelVersion.objects.get(pk=plan.version_id)
        # Derived inputs (batch age) are computed, not measured: nothing to drift.
        features = tuple(v for v in plan.snapshot_variables if v not in DERIVED_VARIABLES)
        scope = Scope(soft_sensor.project.name.lower(), tuple(deployment.device_ids), deployment.batch_pattern,
                      timedelta(seconds=deployment.max_input_age_seconds))
    elif soft_sensor is not None:
        version = current_version(soft_sensor)
        if version is None:
            raise ValidationFailed(f"soft_sensor: {soft_sensor.model_id} has no version",
                                   details={"soft_sensor": soft_sensor.model_id})
        features = tuple(dict.fromkeys(
            str(f["name"]) for f in (version.descriptor.get("inputs") or {}).get("features") or []
            if str(f["name"]) not in DERIVED_VARIABLES))
        scope = Scope(soft_sensor.project.name.lower())
    else:
        raise ValidationFailed("give a deployment or a soft sensor", details={"deployment": "required"})
    descriptor = version.descriptor or {}
    outputs = tuple(str(o["name"]) for o in (descriptor.get("outputs") or {}).get("information") or [])
    try:
        experiments = parse_experiments((descriptor.get("training_information") or {}).get("experiments_ID"))
    except DescriptorError:
        experiments = ()
    project_settings = ProjectDriftSettings.objects.filter(project_name__iexact=scope.project_name).first()
    return Target(deployment, soft_sensor, version, scope, tuple(features), outputs, tuple(experiments),
                  soft_sensor.model_id.lower(), phases_for(project_settings.phases if project_settings else ""))


def _specs_validate(reference: Any, test: Any, *, detector: type[Detector], target: Target | None,
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
                f"reference.kind: version {target.version.number} of {target.soft_sensor.model_id} names no training "
                "batches (training_information.experiments_ID); give the batches or a time range",
                details={"reference.kind": "no experiments_ID in the descriptor"})
        if detector.input == "events" and target.deployment is None:
            raise ValidationFailed(f"detector: {detector.key} reads lab-residual events, which belong to a deployment",
                                   details={"detector": "needs a deployment"})
    return ref, tst


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
    from .selectors import lab_settings_get

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
        collection = Collection.PREDICTIONS if detector.input == "predictions" else Collection.RAW
        ref_segments = reference_segments(reference, scope=target.scope, experiments=target.experiments,
                                          phase=phase if reference.kind != "time_range" else None,
                                          collection=collection)
        tst_segments = test_segments(test, scope=target.scope, phase=phase, collection=collection)
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
            output = _target_output(target, lab_settings_of(target.deployment) if target.deployment else None)
            ref_win = load_predictions(ref_segments, target=output, models=variables, kind="reference")
            test_win = load_predictions(tst_segments, target=output, models=ref_win.columns, kind="test")
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


def _result_row(evaluation: Evaluation, **fields: Any) -> DriftResult:
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
    names = _variables_validate(variables)
    rule = calibration_rule_validate(calibration)
    if verdict_rule not in VerdictRule.values:
        raise ValidationFailed(f"verdict_rule: expected one of {', '.join(VerdictRule.values)}",
                               details={"verdict_rule": verdict_rule})
    target = target_resolve(deployment=deployment, soft_sensor=soft_sensor) if (deployment or soft_sensor) else None
    ref, tst = _specs_validate(reference, test, detector=cls, target=target, allow_values=True)
    try:
        evaluation = evaluate(detector=cls(**clean), variables=names, target=target, reference=ref, test=tst,
                              verdict_rule=verdict_rule, rule=rule)
    except DataError as exc:
        raise ValidationFailed(str(exc), details={"data": str(exc)}, code="no_data") from None
    row = _result_row(
        evaluation, trigger=ResultTrigger.AD_HOC, params=clean,
        deployment=target.deployment if target else None, soft_sensor=target.soft_sensor if target else None,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    if store:
        row.save()
    return row, store


# -- jobs -------------------------------------------------------------------------------------------

JOB_FIELDS = ("name", "description", "deployment", "soft_sensor", "detector", "params", "variables", "reference",
              "test", "verdict_rule", "calibration", "schedule_seconds", "enabled")


def _job_clean(job: DriftJob) -> None:
    """Validate every field of ``job`` in place (params and specs normalised); 400 naming the field."""
    import re

    if not job.name or not re.fullmatch(r"[-a-zA-Z0-9_]+", job.name):
        raise ValidationFailed("name: must be a non-empty slug (letters, digits, - and _)", details={"name": job.name})
    if DriftJob.objects.filter(name=job.name).exclude(pk=job.pk).exists():
        raise ValidationFailed(f"name: a drift job named {job.name!r} already exists", details={"name": job.name})
    if bool(job.deployment_id) == bool(job.soft_sensor_id):
        raise ValidationFailed("deployment: give either a deployment or a soft sensor, not both and not neither",
                               details={"deployment": "exactly one of deployment and soft_sensor"})
    cls, job.params = detector_params_validate(detector=job.detector, params=job.params)
    job.variables = _variables_validate(job.variables)
    job.calibration = dataclasses.asdict(calibration_rule_validate(job.calibration)) if job.calibration else {}
    if job.verdict_rule not in VerdictRule.values:
        raise ValidationFailed(f"verdict_rule: expected one of {', '.join(VerdictRule.values)}",
                               details={"verdict_rule": job.verdict_rule})
    target = target_resolve(deployment=job.deployment, soft_sensor=job.soft_sensor)
    ref, tst = _specs_validate(job.reference, job.test, detector=cls, target=target, allow_values=False)
    job.reference, job.test = ref.to_dict(), tst.to_dict()
    if job.schedule_seconds is not None and (
        isinstance(job.schedule_seconds, bool) or not isinstance(job.schedule_seconds, int)
        or job.schedule_seconds < MIN_SCHEDULE_SECONDS
    ):
        raise ValidationFailed(f"schedule_seconds: an integer ≥ {MIN_SCHEDULE_SECONDS}, or empty for none",
                               details={"schedule_seconds": job.schedule_seconds})


def _schedule_sync(job: DriftJob) -> None:
    """Create, update or remove the job's beat entry (django-celery-beat ``PeriodicTask``)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    task = PeriodicTask.objects.filter(pk=job.periodic_task_id).first() if job.periodic_task_id else None
    if job.schedule_seconds is None:
        if task is not None:
            job.periodic_task = None
            job.save(update_fields=["periodic_task"])
            task.delete()
        return
    interval, _ = IntervalSchedule.objects.get_or_create(every=job.schedule_seconds, period=IntervalSchedule.SECONDS)
    if task is None:
        PeriodicTask.objects.filter(name=job.periodic_task_name).delete()  # an orphan left by hand
        task = PeriodicTask(name=job.periodic_task_name)
    task.task = JOB_TASK
    task.interval = interval
    task.kwargs = json.dumps({"job_id": job.pk, "trigger": ResultTrigger.BEAT})
    task.enabled = job.enabled
    task.description = f"Drift job {job.name} ({job.detector})"
    task.save()
    if job.periodic_task_id != task.pk:
        job.periodic_task = task
        job.save(update_fields=["periodic_task"])


def drift_job_validate(*, job: DriftJob) -> None:
    """Validate (and normalise) an unsaved or edited job in place; the admin form calls this."""
    _job_clean(job)


def drift_job_schedule_sync(*, job: DriftJob) -> None:
    """Make the job's beat entry follow its schedule and enabled flag (after a save outside the services)."""
    _schedule_sync(job)


@transaction.atomic
def drift_job_create(*, user: Any = None, **data: Any) -> DriftJob:
    """Create a job (fields: ``JOB_FIELDS``), validated as a whole; its beat entry when scheduled."""
    unknown = set(data) - set(JOB_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown drift job fields: {', '.join(sorted(unknown))}.",
                               details={name: "unknown field" for name in sorted(unknown)})
    job = DriftJob(created_by=user if getattr(user, "is_authenticated", False) else None, **data)
    _job_clean(job)
    job.save()
    _schedule_sync(job)
    return job


@transaction.atomic
def drift_job_update(*, job: DriftJob, data: Mapping[str, Any]) -> DriftJob:
    """Change some fields; the whole job is validated again and its beat entry follows."""
    unknown = set(data) - set(JOB_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown drift job fields: {', '.join(sorted(unknown))}.",
                               details={name: "unknown field" for name in sorted(unknown)})
    job = DriftJob.objects.select_for_update().get(pk=job.pk)
    for name, value in data.items():
        setattr(job, name, value)
    if "deployment" in data and data["deployment"] is not None and "soft_sensor" not in data:
        job.soft_sensor = None
    if "soft_sensor" in data and data["soft_sensor"] is not None and "deployment" not in data:
        job.deployment = None
    if "detector" in data and "params" not in data:
        job.params = {}  # another detector's parameters do not carry over
    _job_clean(job)
    job.save()
    _schedule_sync(job)
    return job


@transaction.atomic
def drift_job_delete(*, job: DriftJob) -> None:
    """Delete the job with its results and alerts, and its beat entry."""
    task_id = job.periodic_task_id
    job.delete()
    if task_id:
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(pk=task_id).delete()


def drift_job_run(*, job: DriftJob, trigger: str = ResultTrigger.MANUAL, user: Any = None) -> DriftResult:
    """Run the job now: store its result (``failed`` with the error when it cannot score), raise an alert on drift."""
    started = time.perf_counter()
    base = {"job": job, "deployment": job.deployment, "soft_sensor": job.soft_sensor or (
        job.deployment.soft_sensor if job.deployment_id else None), "trigger": trigger, "params": job.params,
        "created_by": user if getattr(user, "is_authenticated", False) else None}
    try:
        target = target_resolve(deployment=job.deployment, soft_sensor=job.soft_sensor)
        cls, clean = detector_params_validate(detector=job.detector, params=job.params)
        ref, tst = _specs_validate(job.reference, job.test, detector=cls, target=target, allow_values=False)
        rule = calibration_rule_validate(job.calibration)
        evaluation = evaluate(detector=cls(**clean), variables=job.variables, target=target, reference=ref,
                              test=tst, verdict_rule=job.verdict_rule, rule=rule)
        row = _result_row(evaluation, **base)
    except (DataError, ApplicationError) as exc:
        message = exc.message if isinstance(exc, ApplicationError) else str(exc)
        logger.warning("drift job %s could not score: %s", job.name, message)
        row = DriftResult(**base, detector=job.detector, variables=list(job.variables), status=ResultStatus.FAILED,
                          error=message, verdict_rule=job.verdict_rule, reference_window=job.reference,
                          test_window=job.test, runtime_ms=(time.perf_counter() - started) * 1000)
    with transaction.atomic():
        row.save()
        DriftJob.objects.filter(pk=job.pk).update(last_run_at=timezone.now())
        if row.drift:
            _alert_raise(job=job, result=row)
    return row


def _alert_raise(*, job: DriftJob, result: DriftResult) -> Alert:
    """Open an alert for the job, or update the open one (one open alert per job, enforced by the database)."""
    severity = severity_of(result.score, result.threshold)
    message = f"Drift on {job.target_label} (job {job.name}): {result.explanation}"
    for _ in range(2):
        alert = Alert.objects.select_for_update().filter(job=job, acknowledged_at__isnull=True).first()
        if alert is not None:
            alert.last_result = result
            alert.occurrences += 1
            if severity == Severity.CRITICAL:
                alert.severity = Severity.CRITICAL
            alert.message = message
            alert.save(update_fields=["last_result", "occurrences", "severity", "message", "updated_at"])
            return alert
        try:
            with transaction.atomic():
                return Alert.objects.create(job=job, result=result, last_result=result, severity=severity,
                                            message=message)
        except IntegrityError:  # another run opened it meanwhile: update that one
            continue
    raise ApplicationError("could not raise the drift alert (concurrent updates)")


@transaction.atomic
def alert_acknowledge(*, alert: Alert, user: Any, note: str = "") -> Alert:
    """Acknowledge an open alert (who, when, a note); acknowledging twice is refused with 409."""
    from apps.common.errors import Conflict

    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.acknowledged_at is not None:
        raise Conflict(f"Alert {alert.pk} was already acknowledged at {alert.acknowledged_at.isoformat()}.",
                       details={"alert": alert.pk})
    alert.acknowledged_at = timezone.now()
    alert.acknowledged_by = user if getattr(user, "is_authenticated", False) else None
    alert.acknowledge_note = note
    alert.save(update_fields=["acknowledged_at", "acknowledged_by", "acknowledge_note", "updated_at"])
    return alert


# -- lab scoring ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LedgerChange:
    """What one ledger refresh did."""

    groups: int
    created: int
    updated: int
    deleted: int
    unchanged: int
    lab_samples_unmatched: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


LEDGER_VALUE_FIELDS = ("prediction_time", "lab_value", "predicted_value", "residual", "model_id", "version")


@transaction.atomic
def lab_settings_update(*, deployment: Any, data: Mapping[str, Any]) -> LabScoringSettings:
    """Create or change a deployment's lab-scoring settings (validated; 400 naming the field)."""
    allowed = {"target", "lab_property", "tolerance_seconds", "rolling_samples", "event_k", "enabled"}
    unknown = set(data) - allowed
    if unknown:
        raise ValidationFailed(f"Unknown lab settings: {', '.join(sorted(unknown))}.",
                               details={n: "unknown field" for n in sorted(unknown)})
    current, _ = LabScoringSettings.objects.get_or_create(deployment=deployment)
    for name, value in data.items():
        setattr(current, name, value)
    if not isinstance(current.tolerance_seconds, int) or current.tolerance_seconds < 1:
        raise ValidationFailed("tolerance_seconds: at least 1",
                               details={"tolerance_seconds": current.tolerance_seconds})
    if not isinstance(current.rolling_samples, int) or current.rolling_samples < 1:
        raise ValidationFailed("rolling_samples: at least 1", details={"rolling_samples": current.rolling_samples})
    if isinstance(current.event_k, bool) or not isinstance(current.event_k, int | float) or current.event_k <= 0:
        raise ValidationFailed("event_k: a positive number", details={"event_k": current.event_k})
    current.full_clean()
    current.save()
    return current


def _ledger_groups(deployment: Any, project_name: str, since: datetime | None) -> list[GroupKey]:
    from apps.tsdb.selectors import groups_list
    from apps.tsdb.types import Collection

    return [
        g.group for g in groups_list(collection=Collection.RAW, project_name=project_name, since=since)
        if deployment.in_scope(device_id=g.group.device_id, batch_id=g.group.batch_id)
    ]


def lab_ledger_refresh(*, deployment: Any, groups: Iterable[GroupKey] | None = None,
                       since: datetime | None = None) -> LedgerChange:
    """(Re)compute the residual ledger of ``deployment`` for ``groups`` (default: every group in scope with
    data since ``since``) and write only the difference. Idempotent: a second run changes nothing."""
    from apps.orchestrator.selectors import deployment_plan

    lab = lab_settings_of(deployment)
    plan = deployment_plan(deployment)
    if plan is None:
        raise ValidationFailed(f"deployment: alias {deployment.alias!r} points nowhere",
                               details={"deployment": deployment.name})
    if not lab.target and not plan.outputs:
        raise ValidationFailed("the model names no output to score", details={"target": "unknown"})
    target = lab.target or plan.outputs[0]
    project_name = deployment.soft_sensor.project.name.lower()
    chosen = list(groups) if groups is not None else _ledger_groups(deployment, project_name, since)
    tolerance_ns = int(lab.tolerance_seconds) * 1_000_000_000
    totals = dict(created=0, updated=0, deleted=0, unchanged=0, unmatched=0)
    for group in chosen:
        matched, _ = lab_scoring.read_group(group=group, target=target, lab_property=lab.lab_property,
                                            model_tag=plan.model_tag, tolerance_ns=tolerance_ns)
        counts = _ledger_write(deployment=deployment, group=group, target=target, matched=matched)
        for key, value in counts.items():
            totals[key] += value
        lab_count = _lab_count(group, target, lab.lab_property)
        totals["unmatched"] += max(lab_count - len(matched), 0)
    return LedgerChange(len(chosen), totals["created"], totals["updated"], totals["deleted"], totals["unchanged"],
                        totals["unmatched"])


def _lab_count(group: GroupKey, target: str, configured: str) -> int:
    from apps.tsdb.selectors import series_list
    from apps.tsdb.types import LAB_SOURCE, Collection, SeriesFilter

    infos = series_list(collection=Collection.RAW, where=SeriesFilter(
        project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id, source=LAB_SOURCE))
    counts = {i.series.observed_property: i.point_count for i in infos}
    return next((counts[n] for n in lab_scoring.lab_property_candidates(target, configured) if n in counts), 0)


@transaction.atomic
def _ledger_write(*, deployment: Any, group: GroupKey, target: str, matched: lab_scoring.Matched) -> dict[str, int]:
    existing = {
        to_ns(row.lab_time): row
        for row in LabResidual.objects.select_for_update().filter(
            deployment=deployment, project_name=group.project_name, device_id=group.device_id,
            batch_id=group.batch_id, target=target)
    }
    model_tag = deployment_model_tag(deployment)
    fresh: dict[int, dict[str, Any]] = {}
    residuals = matched.residuals
    for i in range(len(matched)):
        lab_time = from_ns(int(matched.lab_times_ns[i]))
        fresh[to_ns(lab_time)] = {
            "lab_time": lab_time,
            "prediction_time": from_ns(int(matched.prediction_times_ns[i])),
            "lab_value": float(matched.lab_values[i]),
            "predicted_value": float(matched.predicted_values[i]),
            "residual": float(residuals[i]),
            "model_id": model_tag,
            "version": str(matched.versions[i]),
        }
    create, update, unchanged = [], [], 0
    for key, values in fresh.items():
        row = existing.get(key)
        if row is None:
            create.append(LabResidual(deployment=deployment, project_name=group.project_name,
                                      device_id=group.device_id, batch_id=group.batch_id, target=target, **values))
        elif any(getattr(row, f) != values[f] for f in LEDGER_VALUE_FIELDS):
            for f in LEDGER_VALUE_FIELDS:
                setattr(row, f, values[f])
            row.computed_at = timezone.now()
            update.append(row)
        else:
            unchanged += 1
    stale = [row.pk for key, row in existing.items() if key not in fresh]
    if stale:
        LabResidual.objects.filter(pk__in=stale).delete()
    if create:
        LabResidual.objects.bulk_create(create, batch_size=500)
    if update:
        LabResidual.objects.bulk_update(update, [*LEDGER_VALUE_FIELDS, "computed_at"], batch_size=500)
    return {"created": len(create), "updated": len(update), "deleted": len(stale), "unchanged": unchanged}


def deployment_model_tag(deployment: Any) -> str:
    return deployment.soft_sensor.model_id.lower()


def lab_ledgers_refresh_all(*, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """The periodic refresh: every enabled deployment with lab scoring enabled, groups with recent data."""
    from apps.orchestrator.models import Deployment

    now = now or timezone.now()
    since = now - timedelta(seconds=getattr(settings, "STAMM_LAB_SCORING_LOOKBACK", LAB_SCORING_LOOKBACK_SECONDS))
    disabled = set(LabScoringSettings.objects.filter(enabled=False).values_list("deployment_id", flat=True))
    out: dict[str, dict[str, int]] = {}
    for deployment in Deployment.objects.filter(enabled=True).select_related("soft_sensor__project", "pinned_version"):
        if deployment.pk in disabled:
            continue
        try:
            out[deployment.name] = lab_ledger_refresh(deployment=deployment, since=since).as_dict()
        except ApplicationError as exc:
            logger.warning("lab scoring of %s skipped: %s", deployment.name, exc.message)
    return out


def lab_scoring_schedule_ensure(*, using: str = "default") -> bool:
    """Create the periodic lab-scoring task if absent (an edited one is left alone); True when created."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if PeriodicTask.objects.using(using).filter(name=LAB_SCORING_TASK_NAME).exists():
        return False
    every = int(getattr(settings, "STAMM_LAB_SCORING_INTERVAL", 600))
    interval, _ = IntervalSchedule.objects.using(using).get_or_create(every=every, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.using(using).create(name=LAB_SCORING_TASK_NAME, task=LAB_SCORING_TASK, interval=interval,
                                             kwargs=json.dumps({}), enabled=True,
                                             description="Refresh the lab-sample residual ledgers")
    return True


"""Writes of the training app: start a run, execute each workflow step, approve and promote, bias updates.

The workflow is load → preprocess → split → train (one step per learner) → evaluate → register → gate →
promote. Each step is a function of the run id that can be called again at any time:

- its ``TrainingStep`` row is updated in place (attempts + 1), never duplicated;
- load, preprocess and split rewrite their ``.npz`` file under ``MEDIA_ROOT/training/<run uid>/``;
- train rewrites the candidate's artefact, unless the candidate is already registered (then reused);
- register reuses the version already registered for a candidate (looked up by lineage), so a re-run
  never adds a version; promote does nothing when the alias already points at the chosen version.

Transient failures (store or database unavailable) propagate so the Celery task retries with backoff;
any other failure marks the step and the run failed with the reason. Celery tasks (``tasks.py``) only
call these functions; ``training_run_execute_inline`` runs the same steps in-process (the command line).
"""

from __future__ import annotations

import logging
import platform
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from apps.common.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from apps.tsdb.backends import BackendError

from . import dataset as ds
from . import evaluation, gates, learners, splits
from .bias import BiasParams, bias_trace
from .models import (
    BiasCorrection,
    Candidate,
    CandidateStatus,
    ProjectProfile,
    RunStatus,
    StepStatus,
    TrainingRun,
    TrainingStep,
)

logger = logging.getLogger(__name__)

#: Errors a retry can fix: the store or the database was briefly unavailable.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ServiceUnavailable,
    BackendError,
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)
DEFAULT_ALIAS = "staging"
DEFAULT_MAX_INPUT_AGE_SECONDS = 3600
MODEL_ID_RE = re.compile(r"^[0-9]{4}_\[[A-Za-z0-9.+-]+\]_[A-Za-z0-9_.\-]+$")


def run_dir(run: TrainingRun) -> Path:
    return Path(settings.MEDIA_ROOT) / "training" / str(run.uid)


def step_names(config: Mapping[str, Any]) -> list[str]:
    return [
        "load",
        "preprocess",
        "split",
        *(f"train:{item['key']}" for item in config["learners"]),
        "evaluate",
        "register",
        "gate",
        "promote",
    ]


# ----------------------------------------------------------------------------------------- configuration


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
    }
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(unknown)}", details={"fields": unknown})
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
    groups = ds.groups_resolve(project_name=project.name, batches=batches, device_id=device_id)
    split = splits.split_validate(data.get("split"), batches=batches)
    add_age = bool(data.get("add_batch_age", True))
    features = data.get("features")
    if features in (None, "", []):
        features = ds.default_features(groups=groups, target=target)
        if not features:
            raise ValidationFailed(
                "features: the chosen batches share no sensor or actuator variable", details={"features": []}
            )
    if not isinstance(features, list) or not all(isinstance(f, str) and f.strip() for f in features):
        raise ValidationFailed("features: must be a list of variable names", details={"features": features})
    features = [f.strip() for f in features if f.strip() != ds.BATCH_AGE]
    if target in features:
        raise ValidationFailed(f"features: the target {target} cannot be an input", details={"features": target})
    if len(set(features)) != len(features):
        raise ValidationFailed("features: a variable is listed twice", details={"features": features})
    if add_age:
        features.append(ds.BATCH_AGE)
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
    # Inputs the current production version needs that the candidates do not: aligned too, for the comparison gate.
    extra_inputs: list[str] = []
    from apps.registry.models import Alias  # noqa: PLC0415

    production = (
        Alias.objects.filter(soft_sensor__project=project, soft_sensor__model_id=model_id, name="production")
        .select_related("version")
        .first()
    )
    if production is not None:
        wanted = [f["name"] for f in production.version.descriptor["inputs"]["features"]]
        extra_inputs = [f for f in wanted if f not in features and f != ds.BATCH_AGE]
    return {
        "target": target,
        "device_id": device_id,
        "batches": batches,
        "features": features,
        "extra_inputs": extra_inputs,
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
    }


@transaction.atomic
def training_run_create(*, user: Any, project: Any, data: Mapping[str, Any]) -> TrainingRun:
    """Validate the request and write the run with its pending steps and candidates (nothing queued)."""
    config = training_config_validate(project=project, data=data)
    run = TrainingRun.objects.create(
        project=project,
        model_id=config["model_id"],
        target=config["target"],
        config=config,
        created_by=user if getattr(user, "pk", None) else None,
    )
    TrainingStep.objects.bulk_create(
        [TrainingStep(run=run, name=name, position=i) for i, name in enumerate(step_names(config))]
    )
    Candidate.objects.bulk_create(
        [
            Candidate(run=run, learner=item["key"], hyperparameters=item["hyperparameters"])
            for item in config["learners"]
        ]
    )
    return run


def training_run_start(*, user: Any, project: Any, data: Mapping[str, Any]) -> TrainingRun:
    """Create the run and queue its Celery workflow once the creating transaction commits."""
    with transaction.atomic():
        run = training_run_create(user=user, project=project, data=data)
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _enqueue(run_id: int) -> None:
    from .tasks import workflow_signature  # noqa: PLC0415

    try:
        result = workflow_signature(run_id).apply_async()
    except Exception as exc:  # noqa: BLE001 - broker down: the committed run says so instead of a 500
        from kombu.exceptions import OperationalError  # noqa: PLC0415

        if not isinstance(exc, (OperationalError, ConnectionError, TimeoutError)):
            raise
        logger.warning("training run %s could not be queued: %s", run_id, exc)
        training_run_fail(run_id=run_id, step="queue", error=f"the task broker is unavailable: {exc}")
        return
    TrainingRun.objects.filter(pk=run_id).update(task_id=str(getattr(result, "id", "") or ""))


# ------------------------------------------------------------------------------------------- step runner


def _run(run_id: int) -> TrainingRun:
    try:
        return TrainingRun.objects.select_related("project", "created_by").get(pk=run_id)
    except TrainingRun.DoesNotExist:
        raise NotFound(f"training run {run_id} does not exist") from None


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, (ValidationFailed, Conflict, NotFound)) else f"{type(exc).__name__}: {exc}"


@contextmanager
def _step(run: TrainingRun, name: str) -> Iterator[dict[str, Any]]:
    """Mark a step running, time it, store its output; a failure marks the step (and the run) failed."""
    now = timezone.now()
    TrainingStep.objects.filter(run=run, name=name).update(
        status=StepStatus.RUNNING, attempts=F("attempts") + 1, started_at=now, finished_at=None, error=""
    )
    updates: dict[str, Any] = {"current_step": name}
    if run.status == RunStatus.QUEUED:
        updates.update(status=RunStatus.RUNNING, started_at=now)
    TrainingRun.objects.filter(pk=run.pk).update(**updates)
    output: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        yield output
    except TRANSIENT_ERRORS as exc:
        TrainingStep.objects.filter(run=run, name=name).update(
            status=StepStatus.FAILED,
            error=f"transient, will be retried: {_describe(exc)}",
            finished_at=timezone.now(),
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        raise
    except BaseException as exc:
        TrainingStep.objects.filter(run=run, name=name).update(
            status=StepStatus.FAILED,
            error=_describe(exc),
            finished_at=timezone.now(),
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        training_run_fail(run_id=run.pk, step=name, error=_describe(exc))
        raise
    status = output.pop("_status", StepStatus.SUCCEEDED)
    TrainingStep.objects.filter(run=run, name=name).update(
        status=status,
        output=_json(output),
        finished_at=timezone.now(),
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def _json(value: Any) -> Any:
    """JSON-safe copy (NumPy scalars → Python numbers, NaN → None)."""
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def training_run_fail(*, run_id: int, step: str, error: str) -> None:
    """Mark a run failed at ``step`` (called by a failing step, or by a task that ran out of retries)."""
    TrainingRun.objects.filter(pk=run_id).exclude(status=RunStatus.FAILED).update(
        status=RunStatus.FAILED, error=f"{step}: {error}", finished_at=timezone.now(), current_step=step
    )
    TrainingStep.objects.filter(run_id=run_id, name=step).exclude(status=StepStatus.FAILED).update(
        status=StepStatus.FAILED, error=error, finished_at=timezone.now()
    )


def _check_active(run: TrainingRun) -> None:
    if run.status == RunStatus.FAILED:
        raise Conflict(f"training run {run.pk} has failed ({run.error}); start a new run")


# ----------------------------------------------------------------------------------------------- steps


def step_load(*, run_id: int) -> None:
    """Read the chosen batches (target, inputs, lab samples of the target) from the time-series store."""
    run = _run(run_id)
    _check_active(run)
    config = run.config
    with _step(run, "load") as out:
        groups = ds.groups_resolve(
            project_name=run.project.name, batches=config["batches"], device_id=config["device_id"]
        )
        inputs = [*config["features"], *config.get("extra_inputs", [])]
        loaded, summary = ds.batches_load(groups=groups, target=config["target"], features=inputs)
        ds.save_groups(loaded, run_dir(run) / "raw.npz")
        out.update(summary)
        TrainingRun.objects.filter(pk=run.pk).update(
            dataset=_json({"load": summary["batches"], "sources": summary.get("sources", {})})
        )


def step_preprocess(*, run_id: int) -> None:
    """Align inputs to the target's timestamps (as-of, within the maximum age), add batch age, drop gaps."""
    run = _run(run_id)
    _check_active(run)
    config = run.config
    with _step(run, "preprocess") as out:
        loaded = ds.load_groups(run_dir(run) / "raw.npz")
        aligned = ds.dataset_align(
            loaded,
            target=config["target"],
            features=[*config["features"], *config.get("extra_inputs", [])],
            max_input_age_ns=int(config["preprocessing"]["max_input_age_seconds"]) * 1_000_000_000,
            gaps=config["preprocessing"]["gaps"],
        )
        aligned.save(run_dir(run) / "aligned.npz")
        out.update(aligned.summary)
        run.refresh_from_db(fields=["dataset"])
        TrainingRun.objects.filter(pk=run.pk).update(dataset={**run.dataset, "preprocess": _json(aligned.summary)})


def _aligned(run: TrainingRun) -> ds.Aligned:
    return ds.Aligned.load(run_dir(run) / "aligned.npz")


def _masks(run: TrainingRun) -> tuple[np.ndarray, np.ndarray]:
    with np.load(run_dir(run) / "split.npz", allow_pickle=False) as data:
        return data["train"], data["test"]


def step_split(*, run_id: int) -> None:
    """Held-out batches or a chronological cut (random row splits were refused at validation)."""
    run = _run(run_id)
    _check_active(run)
    with _step(run, "split") as out:
        aligned = _aligned(run)
        train, test, described = splits.split_masks(
            run.config["split"], times_ns=aligned.times_ns, batch_index=aligned.batch_index, batch_ids=aligned.batch_ids
        )
        with open(run_dir(run) / "split.npz", "wb") as handle:
            np.savez(handle, train=train, test=test)
        out.update(described)
        run.refresh_from_db(fields=["dataset"])
        TrainingRun.objects.filter(pk=run.pk).update(dataset={**run.dataset, "split": _json(described)})


def _model_columns(run: TrainingRun, aligned: ds.Aligned) -> np.ndarray:
    return np.array([aligned.features.index(f) for f in run.config["features"]], dtype=int)


def step_train(*, run_id: int, learner: str) -> None:
    """Fit one learner on the training rows; a learner that fails is a failed candidate, not a failed run."""
    run = _run(run_id)
    _check_active(run)
    candidate = Candidate.objects.get(run=run, learner=learner)
    name = f"train:{learner}"
    if candidate.version_id is not None:  # already registered: its artefact is the registered one
        with _step(run, name) as out:
            out.update(reused=True, version=candidate.version_id)
        return
    with _step(run, name) as out:
        aligned = _aligned(run)
        train, _ = _masks(run)
        columns = _model_columns(run, aligned)
        started = time.perf_counter()
        try:
            fitted = learners.fit(
                learner,
                candidate.hyperparameters,
                aligned.X[train][:, columns],
                aligned.y[train],
                run.config["features"],
            )
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - one learner failing leaves the others to compete
            Candidate.objects.filter(pk=candidate.pk).update(status=CandidateStatus.FAILED, error=_describe(exc))
            out.update(error=_describe(exc), _status=StepStatus.FAILED)
            return
        seconds = time.perf_counter() - started
        relative = Path("training") / str(run.uid) / f"candidate-{learner}{fitted.extension}"
        path = Path(settings.MEDIA_ROOT) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fitted.artifact)
        Candidate.objects.filter(pk=candidate.pk).update(
            status=CandidateStatus.TRAINED,
            error="",
            artifact_path=str(relative),
            artifact_sha256=fitted.sha256,
            fit_seconds=seconds,
            metrics={
                "packages": fitted.packages,
                "estimator": fitted.estimator_class,
                "language": fitted.language,
                "extension": fitted.extension,
            },
        )
        out.update(rows=int(train.sum()), fit_seconds=round(seconds, 3), artifact_bytes=len(fitted.artifact))


def _candidate_predict(candidate: Candidate, features: list[str]) -> Callable[[np.ndarray], np.ndarray]:
    data = (Path(settings.MEDIA_ROOT) / candidate.artifact_path).read_bytes()
    import hashlib  # noqa: PLC0415

    if hashlib.sha256(data).hexdigest() != candidate.artifact_sha256:
        raise Conflict(f"candidate {candidate.learner}: artefact changed on disk since training")
    return learners.load_fitted(candidate.learner, data, features)


def _production_comparison(run: TrainingRun, aligned: ds.Aligned, test: np.ndarray) -> dict[str, Any] | None:
    """Predictions of the current ``production`` version on the holdout, when there is one."""
    from apps.registry import serving  # noqa: PLC0415
    from apps.registry.models import Alias  # noqa: PLC0415

    alias = (
        Alias.objects.filter(soft_sensor__project=run.project, soft_sensor__model_id=run.model_id, name="production")
        .select_related("version")
        .prefetch_related("version__artifacts")
        .first()
    )
    if alias is None:
        return None
    version = alias.version
    wanted = [f["name"] for f in version.descriptor["inputs"]["features"]]
    columns = {name: aligned.X[test][:, aligned.features.index(name)] for name in wanted if name in aligned.features}
    if ds.BATCH_AGE in wanted and ds.BATCH_AGE not in columns:
        columns[ds.BATCH_AGE] = aligned.batch_age_h[test]
    missing = [name for name in wanted if name not in columns]
    if missing:
        return {"version": version.number, "error": f"inputs not in this run's data: {', '.join(missing)}"}
    X = np.column_stack([columns[name] for name in wanted])
    try:
        result = serving.predict_matrix(version, X)
    except Exception as exc:  # noqa: BLE001 - reported on the gate, never a crash of the run
        return {"version": version.number, "error": _describe(exc)}
    return {
        "version": version.number,
        "predictions": np.asarray(result.predictions, dtype=float).reshape(X.shape[0], -1)[:, 0],
    }


def step_evaluate(*, run_id: int) -> None:
    """Holdout metrics of every trained candidate, of both baselines and of the production version."""
    run = _run(run_id)
    _check_active(run)
    config = run.config
    with _step(run, "evaluate") as out:
        aligned = _aligned(run)
        train, test = _masks(run)
        candidates = list(run.candidates.filter(status=CandidateStatus.TRAINED))
        if not candidates:
            failures = "; ".join(f"{c.learner}: {c.error}" for c in run.candidates.all())
            raise ValidationFailed(f"no learner trained successfully ({failures})")
        y_test = aligned.y[test]
        age = aligned.batch_age_h[test]
        phases = config.get("phases") or []
        delay_ns = int(config["lab_delay_seconds"]) * 1_000_000_000
        persistence = evaluation.persistence_predictions(
            aligned.times_ns[test], aligned.batch_index[test], aligned.labs, lab_delay_ns=delay_ns
        )
        baselines = evaluation.baseline_report(
            y_true=y_test,
            train_mean=float(aligned.y[train].mean()),
            persistence=persistence,
            batch_age_h=age,
            phases=phases,
            lab_delay_ns=delay_ns,
        )
        production = _production_comparison(run, aligned, test)
        if production is not None and "predictions" in production:
            baselines["production"] = {
                "version": production["version"],
                "overall": evaluation.metrics(y_test, production["predictions"]),
            }
        elif production is not None:
            baselines["production"] = {"version": production["version"], "error": production["error"]}
        columns = _model_columns(run, aligned)
        X_test = aligned.X[test][:, columns]
        summary = {}
        for candidate in candidates:
            predicted = _candidate_predict(candidate, config["features"])(X_test)
            report = evaluation.candidate_report(
                y_true=y_test, y_pred=predicted, persistence=persistence, batch_age_h=age, phases=phases
            )
            if production is not None and "predictions" in production:
                prod = production["predictions"]
                ok = np.isfinite(prod)
                report["vs_production"] = {
                    "version": production["version"],
                    "rows": int(ok.sum()),
                    "rmse": evaluation.metrics(y_test[ok], prod[ok])["rmse"],
                    "candidate_rmse": evaluation.metrics(y_test[ok], predicted[ok])["rmse"],
                }
            keep = {
                k: v
                for k, v in (candidate.metrics or {}).items()
                if k in ("packages", "estimator", "language", "extension")
            }
            Candidate.objects.filter(pk=candidate.pk).update(metrics=_json({**keep, **report}))
            summary[candidate.learner] = report["overall"]
        TrainingRun.objects.filter(pk=run.pk).update(baselines=_json(baselines))
        out.update(candidates=summary, baselines={k: v.get("overall") for k, v in baselines.items()})


def _descriptor(
    run: TrainingRun, candidate: Candidate, aligned: ds.Aligned, train: np.ndarray
) -> tuple[dict[str, Any], str]:
    """The STAMM descriptor of a candidate and its model file name."""
    from apps.registry.models import Variable  # noqa: PLC0415

    config = run.config
    learner = learners.learner_get(candidate.learner)
    info = candidate.metrics or {}
    language = info.get("language", learner.language)
    model_file = f"{run.model_id}{info.get('extension', '.skops')}"
    columns = _model_columns(run, aligned)
    X_train = aligned.X[train][:, columns]
    envelope = ds.envelope(X_train, config["features"])
    y_train = aligned.y[train]
    dictionary = {
        v.canonical_name: v
        for v in Variable.objects.filter(
            project=run.project, canonical_name__in=[*config["features"], config["target"]]
        )
    }
    series_source = run.dataset.get("sources", {})

    def feature_entry(name: str) -> dict[str, Any]:
        if name == ds.BATCH_AGE:
            return {
                "name": name,
                "type": "computed_variable",
                "units": "h",
                "lag": 0,
                "feature_scaling": "none",
                "description": "Batch age: hours since the batch's first raw point (computed, not stored).",
                "expected_range": envelope[name],
            }
        variable = dictionary.get(name)
        kind = variable.column_type.lower() if variable else series_source.get(name, "sensor")
        if kind not in ("sensor", "actuator", "computed_variable"):
            kind = "sensor"
        return {
            "name": name,
            "type": kind,
            "units": variable.units if variable else "",
            "lag": 0,
            "feature_scaling": "none",
            "description": (variable.description if variable and variable.description else name.replace("_", " ")),
            "expected_range": envelope[name],
        }

    target_var = dictionary.get(config["target"])
    python_version = platform.python_version()
    languages = (
        [{"name": "python"}, {"version": python_version}]
        if language == "python"
        else [
            {
                "name": "R",
                "version": next((p["version"] for p in info.get("packages", []) if p.get("package") == "R"), ""),
            }
        ]
    )
    metrics = info.get("overall") or {}
    baselines = run.baselines or {}
    validation = {
        "method": "held-out batches" if config["split"]["kind"] == "batches" else "chronological cut",
        "split": run.dataset.get("split", {}),
        "holdout_metrics": metrics,
        "phase_metrics": info.get("phases") or {},
        "baselines": {
            "training_mean": (baselines.get("training_mean") or {}).get("overall"),
            "persistence": (baselines.get("persistence") or {}).get("overall"),
            "persistence_lab_delay_hours": (baselines.get("persistence") or {}).get("lab_delay_hours"),
        },
        "on_persistence_rows": info.get("on_persistence_rows"),
    }
    document = {
        "model_identification": {
            "name": f"{learner.label} for {config['target']}",
            "version": f"run-{run.pk}-{candidate.learner}",
            "ID": run.model_id,
            "UUID": "",
            "author": config.get("author")
            or (run.created_by.get_username() if run.created_by else "training workflow"),
            "doi": "",
            "creation_date": timezone.now().strftime("%d-%m-%Y"),
            "project": "../project_info.yaml",
            "status": "online",
            "status_description": "Trained by the platform's training workflow.",
        },
        "model_description": {
            "learner": learner.learner_name,
            "model_type": learner.model_type,
            "model_name": f"{learner.label} [{'Python' if language == 'python' else 'R'} implementation]",
            "description": (
                f"{learner.label} soft sensor for {config['target']}, trained on batches "
                f"{', '.join(b for b in config['batches'] if b not in config['split'].get('holdout', []))} "
                f"by training run {run.pk} ({run.uid})."
            ),
            "language": languages,
            "config_files": {"model_file": model_file},
            "packages": info.get("packages") or [],
            "input_time_interval": {
                "time_interval": {"value": 0, "unit": "seconds"},
                "aggregation": {"method": "as-of", "description": "latest value at or before the target time"},
                "description": "Inputs taken as-of the target's timestamps, at most "
                f"{config['preprocessing']['max_input_age_seconds']} s old.",
            },
        },
        "training_information": {
            "number_of_instances": int(train.sum()),
            "hyperparameters": candidate.hyperparameters,
            "validation": validation,
            "experiments_ID": ds.experiment_ids(
                [b for b in config["batches"] if b not in config["split"].get("holdout", [])]
            ),
            "train_test_split": run.dataset.get("split", {}),
            "preprocessing": {
                "alignment": "as-of to the target's timestamps",
                "gaps": config["preprocessing"]["gaps"],
                "max_input_age_seconds": config["preprocessing"]["max_input_age_seconds"],
                "dropped": (run.dataset.get("preprocess") or {}).get("dropped", {}),
            },
            "training_run": {"id": run.pk, "uid": str(run.uid)},
        },
        "inputs": {"features": [feature_entry(name) for name in config["features"]]},
        "outputs": {
            "information": [
                {
                    "name": config["target"],
                    "description": (
                        target_var.description
                        if target_var and target_var.description
                        else config["target"].replace("_", " ")
                    ),
                    "units": target_var.units if target_var else "",
                    "forecast_horizon": 0,
                    "feature_scaling": "none",
                    "expected_range": {"min": float(y_train.min()), "max": float(y_train.max())},
                }
            ]
        },
    }
    return _json(document), model_file


def step_register(*, run_id: int) -> None:
    """Register every trained candidate as a version of the run's soft sensor (reusing earlier ones)."""
    from apps.registry.descriptors import DescriptorError, validate_config  # noqa: PLC0415
    from apps.registry.models import ModelVersion  # noqa: PLC0415
    from apps.registry.services import ArtifactInput, model_version_register  # noqa: PLC0415

    run = _run(run_id)
    _check_active(run)
    with _step(run, "register") as out:
        aligned = _aligned(run)
        train, _ = _masks(run)
        registered = {}
        for candidate in run.candidates.filter(status=CandidateStatus.TRAINED):
            existing = (
                candidate.version
                or ModelVersion.objects.filter(
                    training_run_id=run.lineage_id, training_data__candidate_id=candidate.pk
                ).first()
            )
            if existing is not None:
                if candidate.version_id != existing.pk:
                    Candidate.objects.filter(pk=candidate.pk).update(version=existing)
                registered[candidate.learner] = {"version": existing.number, "reused": True}
                continue
            document, model_file = _descriptor(run, candidate, aligned, train)
            try:
                descriptor = validate_config(document)
            except DescriptorError as exc:
                raise ValidationFailed(f"generated descriptor of {candidate.learner} is invalid: {exc}") from exc
            data = (Path(settings.MEDIA_ROOT) / candidate.artifact_path).read_bytes()
            columns = _model_columns(run, aligned)
            training_data = {
                "candidate_id": candidate.pk,
                "training_run": run.pk,
                "batches": [b for b in run.config["batches"] if b not in run.config["split"].get("holdout", [])],
                "holdout": run.config["split"],
                "rows": int(train.sum()),
                "envelope": ds.envelope(aligned.X[train][:, columns], run.config["features"]),
                "metrics": (candidate.metrics or {}).get("overall"),
            }
            with transaction.atomic():
                version = model_version_register(
                    project=run.project,
                    descriptor=descriptor,
                    files={"model": ArtifactInput(data, model_file)},
                    user=run.created_by,
                    source="training",
                    training_run_id=run.lineage_id,
                    training_data=_json(training_data),
                )
                Candidate.objects.filter(pk=candidate.pk).update(version=version)
            registered[candidate.learner] = {"version": version.number, "status": version.status}
        out.update(versions=registered)


def step_gate(*, run_id: int) -> None:
    """Judge every candidate against the run's gates; the best passing one (lowest RMSE) is chosen."""
    run = _run(run_id)
    _check_active(run)
    with _step(run, "gate") as out:
        best, verdicts_by = None, {}
        for candidate in run.candidates.filter(status=CandidateStatus.TRAINED).select_related("version"):
            metrics = candidate.metrics or {}
            verdicts = gates.gate_verdicts(
                gates=run.config["gates"],
                candidate=metrics,
                baselines=run.baselines or {},
                production=metrics.get("vs_production")
                or (
                    {"version": run.baselines["production"]["version"], "error": run.baselines["production"]["error"]}
                    if (run.baselines or {}).get("production", {}).get("error")
                    else None
                ),
            )
            passed = gates.overall_pass(verdicts) and candidate.version_id is not None
            Candidate.objects.filter(pk=candidate.pk).update(gates=_json(verdicts), passed=passed)
            verdicts_by[candidate.learner] = {"passed": passed, "failed": gates.failure_summary(verdicts)}
            rmse = (metrics.get("overall") or {}).get("rmse")
            if passed and rmse is not None and (best is None or rmse < best[0]):
                best = (rmse, candidate)
        out.update(candidates=verdicts_by, best=best[1].learner if best else None)
        if best is None:
            reasons = "; ".join(f"{k}: {v['failed'] or 'not registered'}" for k, v in verdicts_by.items())
            TrainingRun.objects.filter(pk=run.pk).update(
                best_candidate=None,
                status=RunStatus.REJECTED,
                finished_at=timezone.now(),
                error=f"no candidate passed the gates — {reasons}",
            )
        else:
            TrainingRun.objects.filter(pk=run.pk).update(best_candidate=best[1])


def _promotion_reason(run: TrainingRun, candidate: Candidate, alias: str) -> str:
    overall = (candidate.metrics or {}).get("overall") or {}
    passed = "; ".join(v["message"] for v in candidate.gates or [])
    return (
        f"training run {run.pk}: {candidate.learner} moved to {alias} — holdout R² {overall.get('r2')}, "
        f"RMSE {overall.get('rmse')}. Gates: {passed}"
    )


def _move_alias(*, run: TrainingRun, candidate: Candidate, alias: str, user: Any, reason: str) -> bool:
    """Move ``alias`` to the candidate's version; False (and no new history row) when it already points there."""
    from apps.registry.models import Alias  # noqa: PLC0415
    from apps.registry.services import alias_move  # noqa: PLC0415

    version = candidate.version
    current = (
        Alias.objects.filter(soft_sensor=version.soft_sensor, name=alias).values_list("version_id", flat=True).first()
    )
    if current == version.pk:
        return False
    alias_move(soft_sensor=version.soft_sensor, name=alias, version=version, user=user, reason=reason)
    return True


def step_promote(*, run_id: int) -> None:
    """Move the configured alias to the best candidate, unless a modeler's approval is still required."""
    run = _run(run_id)
    _check_active(run)
    with _step(run, "promote") as out:
        run.refresh_from_db()
        candidate = run.best_candidate
        alias = run.config.get("alias") or ""
        if candidate is None:
            out.update(promoted=False, reason=run.error or "no candidate passed the gates", _status=StepStatus.SKIPPED)
            return
        candidate = Candidate.objects.select_related("version__soft_sensor").get(pk=candidate.pk)
        if not alias:
            TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.REGISTERED, finished_at=timezone.now())
            out.update(promoted=False, reason="no alias requested", version=candidate.version.number)
            return
        if run.config.get("require_approval") and run.approved_at is None:
            TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_APPROVAL)
            out.update(
                promoted=False,
                waiting_for="approval",
                alias=alias,
                version=candidate.version.number,
                _status=StepStatus.WAITING,
            )
            return
        with transaction.atomic():
            moved = _move_alias(
                run=run,
                candidate=candidate,
                alias=alias,
                user=run.approved_by or run.created_by,
                reason=_promotion_reason(run, candidate, alias)
                + (f" Approved by {run.approved_by}." if run.approved_by else ""),
            )
            TrainingRun.objects.filter(pk=run.pk).update(
                status=RunStatus.PROMOTED, promoted_version=candidate.version, finished_at=timezone.now(), error=""
            )
        out.update(promoted=True, alias=alias, version=candidate.version.number, moved=moved)


def training_run_execute_inline(*, run_id: int, progress: Callable[[str], None] | None = None) -> TrainingRun:
    """Run every step in this process, in order (the command line's synchronous mode)."""
    run = _run(run_id)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("load", lambda: step_load(run_id=run_id)),
        ("preprocess", lambda: step_preprocess(run_id=run_id)),
        ("split", lambda: step_split(run_id=run_id)),
        *(
            (f"train:{item['key']}", (lambda key=item["key"]: step_train(run_id=run_id, learner=key)))
            for item in run.config["learners"]
        ),
        ("evaluate", lambda: step_evaluate(run_id=run_id)),
        ("register", lambda: step_register(run_id=run_id)),
        ("gate", lambda: step_gate(run_id=run_id)),
        ("promote", lambda: step_promote(run_id=run_id)),
    ]
    for name, call in steps:
        if progress:
            progress(name)
        try:
            call()
        except TRANSIENT_ERRORS as exc:  # no worker to retry here: the run fails with the reason
            training_run_fail(run_id=run_id, step=name, error=_describe(exc))
            raise
    return _run(run_id)


# ------------------------------------------------------------------------------------ approval, promotion


def training_run_approve(*, run: TrainingRun, user: Any, note: str = "") -> TrainingRun:
    """A modeler's approval: the waiting promotion happens now."""
    if run.status != RunStatus.AWAITING_APPROVAL:
        raise Conflict(f"training run {run.pk} is {run.status}, not awaiting approval")
    TrainingRun.objects.filter(pk=run.pk).update(approved_by=user, approved_at=timezone.now())
    step_promote(run_id=run.pk)
    return _run(run.pk)


def training_run_promote(
    *, run: TrainingRun, user: Any, alias: str, learner: str | None = None, reason: str = ""
) -> Candidate:
    """Move another alias (e.g. ``production``) to a passing candidate of a run, on a modeler's request."""
    candidates = run.candidates.select_related("version__soft_sensor")
    if learner:
        candidate = candidates.filter(learner=learner).first()
        if candidate is None:
            raise NotFound(f"training run {run.pk} has no candidate {learner!r}")
    else:
        candidate = candidates.filter(pk=run.best_candidate_id).first()
        if candidate is None:
            raise Conflict(f"training run {run.pk} has no candidate that passed the gates")
    if not candidate.passed or candidate.version is None:
        failed = gates.failure_summary(candidate.gates or []) or "not registered"
        raise Conflict(f"{candidate.learner} did not pass the gates ({failed}); it cannot be promoted")
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", alias or ""):
        raise ValidationFailed(f"alias: {alias!r} is not a valid alias name", details={"alias": alias})
    text = (reason or "").strip() or _promotion_reason(run, candidate, alias)
    with transaction.atomic():
        _move_alias(run=run, candidate=candidate, alias=alias, user=user, reason=f"{text} (requested by {user})")
        if run.status in (RunStatus.AWAITING_APPROVAL, RunStatus.REGISTERED):
            TrainingRun.objects.filter(pk=run.pk).update(
                status=RunStatus.PROMOTED,
                promoted_version=candidate.version,
                approved_by=user,
                approved_at=timezone.now(),
                finished_at=timezone.now(),
            )
    return candidate


# ------------------------------------------------------------------------------------------ bias update


@transaction.atomic
def bias_correction_configure(*, deployment: Any, user: Any, data: Mapping[str, Any]) -> BiasCorrection:
    """A new version of the deployment's bias-update configuration (the bias carries over)."""
    allowed = {
        "enabled",
        "alpha",
        "max_lab_age_seconds",
        "lab_delay_seconds",
        "lab_min",
        "lab_max",
        "reset_each_batch",
        "reason",
    }
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(unknown)}", details={"fields": unknown})
    try:
        alpha = float(data["alpha"])
    except KeyError:
        raise ValidationFailed("alpha: required (trust in each lab residual, 0..1)", details={"alpha": "required"})
    except (TypeError, ValueError):
        raise ValidationFailed("alpha: must be a number", details={"alpha": data.get("alpha")})
    if not 0.0 <= alpha <= 1.0:
        raise ValidationFailed("alpha: must be between 0 and 1", details={"alpha": alpha})
    numbers = {}
    for key, default in (("max_lab_age_seconds", 8 * 3600), ("lab_delay_seconds", None)):
        value = data.get(key, default)
        if value is None:
            continue
        try:
            numbers[key] = int(value)
        except (TypeError, ValueError):
            raise ValidationFailed(f"{key}: must be an integer", details={key: value})
        if numbers[key] < 0:
            raise ValidationFailed(f"{key}: must not be negative", details={key: value})
    if "lab_delay_seconds" not in numbers:
        numbers["lab_delay_seconds"] = project_profile(deployment.soft_sensor.project).lab_delay_seconds
    bounds = {}
    for key in ("lab_min", "lab_max"):
        value = data.get(key)
        try:
            bounds[key] = None if value in (None, "") else float(value)
        except (TypeError, ValueError):
            raise ValidationFailed(f"{key}: must be a number or null", details={key: value})
    if bounds["lab_min"] is not None and bounds["lab_max"] is not None and bounds["lab_min"] >= bounds["lab_max"]:
        raise ValidationFailed("lab_min: must be below lab_max", details=bounds)
    last = BiasCorrection.objects.select_for_update().filter(deployment=deployment).order_by("-number").first()
    return BiasCorrection.objects.create(
        deployment=deployment,
        number=(last.number + 1) if last else 1,
        enabled=bool(data.get("enabled", True)),
        alpha=alpha,
        reset_each_batch=bool(data.get("reset_each_batch", True)),
        reason=str(data.get("reason") or ""),
        created_by=user if getattr(user, "pk", None) else None,
        state=dict(last.state) if last else {},
        **numbers,
        **bounds,
    )


def bias_correction_apply(*, deployment: Any, since: datetime | None = None) -> dict[str, Any]:
    """Recompute ``corrected_value`` of every stored prediction of the deployment from its lab samples.

    Per batch and per predicted series, the filtered bias is replayed from the batch's lab samples in the
    order their results became known, so the result is the same however often it runs (idempotent), and
    the raw prediction (``value``) and its validity verdict are written back unchanged. ``since`` limits
    the work to batches with predictions after that time (the periodic update replays live batches only).
    """
    from apps.tsdb import selectors as tsdb  # noqa: PLC0415
    from apps.tsdb.services import points_ingest  # noqa: PLC0415
    from apps.tsdb.types import LAB_SOURCE, PREDICTION_SOURCE, Collection, PointBatch, SeriesFilter  # noqa: PLC0415

    config = BiasCorrection.objects.filter(deployment=deployment).order_by("-number").first()
    if config is None:
        raise Conflict(f"deployment {deployment} has no bias correction configured")
    if not config.enabled:
        return {"applied": False, "reason": f"bias correction v{config.number} is disabled"}
    soft_sensor = deployment.soft_sensor
    project_name = soft_sensor.project.name
    infos = tsdb.series_list(
        collection=Collection.PREDICTIONS,
        where=SeriesFilter(project_name=project_name, source=PREDICTION_SOURCE, model_id=soft_sensor.model_id.lower()),
        start=since,
        end=timezone.now() if since is not None else None,
    )
    infos = [i for i in infos if deployment.in_scope(device_id=i.series.device_id, batch_id=i.series.batch_id)]
    state: dict[str, Any] = {}
    written = 0
    carried = 0.0
    for info in sorted(infos, key=lambda i: (i.first_time, i.series)):
        key = info.series
        times, values, stored_fields = ds.series_read_all(
            key, info.first_time, info.last_time, collection=Collection.PREDICTIONS
        )
        validity = stored_fields.get("validity")
        lab_key = key.__class__(key.project_name, key.device_id, key.batch_id, LAB_SOURCE, key.observed_property)
        lab_infos = tsdb.series_list(
            where=SeriesFilter(
                project_name=key.project_name,
                device_id=key.device_id,
                batch_id=key.batch_id,
                source=LAB_SOURCE,
                observed_property=key.observed_property,
            )
        )
        lab_t, lab_v = (
            ds.series_values(lab_key, lab_infos[0].first_time, lab_infos[0].last_time)
            if lab_infos
            else (np.empty(0, dtype=np.int64), np.empty(0))
        )
        params = BiasParams(
            alpha=config.alpha,
            lab_delay_ns=config.lab_delay_seconds * 1_000_000_000,
            max_age_ns=config.max_lab_age_seconds * 1_000_000_000,
            lab_min=config.lab_min,
            lab_max=config.lab_max,
            initial_bias=0.0 if config.reset_each_batch else carried,
        )
        trace = bias_trace(times, values, lab_t, lab_v, params)
        carried = trace.final_bias
        fields = {"corrected_value": trace.corrected.astype(np.float64)}
        if validity is not None and validity.shape[0] == times.shape[0]:
            fields["validity"] = validity
        batch = PointBatch(
            collection=Collection.PREDICTIONS,
            series=[key],
            series_index=np.zeros(times.shape[0], dtype=np.int32),
            times_ns=times,
            values=values,
            fields=fields,
        )
        if len(batch):
            written += points_ingest(batch=batch).points
        state[f"{key.device_id}/{key.batch_id}/{key.observed_property}@{key.version}"] = {
            "bias": round(trace.final_bias, 6),
            "used": trace.used,
            "rejected": trace.rejected,
            "predictions": int(times.shape[0]),
        }
    BiasCorrection.objects.filter(pk=config.pk).update(applied_at=timezone.now(), state=_json(state))
    return {"applied": True, "version": config.number, "points": written, "series": state}


def bias_corrections_apply_recent(*, window_seconds: int = 6 * 3600) -> dict[str, Any]:
    """The periodic update: every deployment whose newest bias configuration is enabled, for the batches
    that received predictions in the last ``window_seconds``. One failing deployment does not stop the others."""
    from apps.orchestrator.models import Deployment  # noqa: PLC0415

    since = timezone.now() - timedelta(seconds=int(window_seconds))
    newest = {}
    for config in BiasCorrection.objects.order_by("deployment_id", "-number"):
        newest.setdefault(config.deployment_id, config)
    enabled = [pk for pk, config in newest.items() if config.enabled]
    results: dict[str, Any] = {}
    for deployment in Deployment.objects.filter(pk__in=enabled, enabled=True).select_related("soft_sensor__project"):
        try:
            outcome = bias_correction_apply(deployment=deployment, since=since)
            results[deployment.name] = {"points": outcome.get("points", 0), "series": len(outcome.get("series", {}))}
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - reported per deployment, the others still run
            logger.warning("bias update of %s failed: %s", deployment.name, exc)
            results[deployment.name] = {"error": _describe(exc)}
    return results


#: Periodic task created on migrate (editable, or disabled, in the admin like every beat schedule).
BIAS_SCHEDULE = ("training-bias-update", "training.bias_apply_recent", 300)


@transaction.atomic
def bias_schedule_ensure(*, using: str = "default") -> bool:
    """Create the periodic bias update if absent (an existing one, maybe edited, is left alone)."""
    import json  # noqa: PLC0415

    from django_celery_beat.models import IntervalSchedule, PeriodicTask  # noqa: PLC0415

    name, task, every = BIAS_SCHEDULE
    if PeriodicTask.objects.using(using).filter(name=name).exists():
        return False
    interval, _ = IntervalSchedule.objects.using(using).get_or_create(every=every, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.using(using).create(
        name=name, task=task, interval=interval, kwargs=json.dumps({"window_seconds": 6 * 3600}), enabled=True
    )
    return True

"""The data steps: load the chosen batches, align them to the target, split them, fit each learner."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from django.conf import settings

from apps.audit.tracking import audited_update

from .. import dataset, learners, splits
from ..models import (
    Candidate,
    CandidateStatus,
    StepStatus,
    TrainingRun,
)
from .runs import TRANSIENT_ERRORS, failure_text, json_safe, run_check_active, run_dir, run_get, run_step


def step_load(*, run_id: int) -> None:
    """Read the chosen batches (target, inputs, lab samples of the target) from the time-series store."""
    run = run_get(run_id)
    run_check_active(run)
    config = run.config
    with run_step(run, "load") as out:
        groups = dataset.groups_resolve(
            project_name=run.project.name, batches=config["batches"], device_id=config["device_id"]
        )
        loaded, summary = dataset.batches_load(groups=groups, target=config["target"], features=config["features"])
        dataset.save_groups(loaded, run_dir(run) / "raw.npz")
        out.update(summary)
        audited_update(
            TrainingRun.objects.filter(pk=run.pk),
            dataset=json_safe({"load": summary["batches"], "sources": summary.get("sources", {})}),
        )


def step_preprocess(*, run_id: int) -> None:
    """Align inputs to the target's timestamps (as-of, within the maximum age), add batch age, drop gaps."""
    run = run_get(run_id)
    run_check_active(run)
    config = run.config
    with run_step(run, "preprocess") as out:
        loaded = dataset.load_groups(run_dir(run) / "raw.npz")
        aligned = dataset.dataset_align(
            loaded,
            target=config["target"],
            features=config["features"],
            max_input_age_ns=int(config["preprocessing"]["max_input_age_seconds"]) * 1_000_000_000,
            gaps=config["preprocessing"]["gaps"],
        )
        aligned.save(run_dir(run) / "aligned.npz")
        out.update(aligned.summary)
        run.refresh_from_db(fields=["dataset"])
        audited_update(
            TrainingRun.objects.filter(pk=run.pk), dataset={**run.dataset, "preprocess": json_safe(aligned.summary)}
        )


def aligned_load(run: TrainingRun) -> dataset.Aligned:
    return dataset.Aligned.load(run_dir(run) / "aligned.npz")


def split_masks_load(run: TrainingRun) -> tuple[np.ndarray, np.ndarray]:
    with np.load(run_dir(run) / "split.npz", allow_pickle=False) as data:
        return data["train"], data["test"]


def step_split(*, run_id: int) -> None:
    """Held-out batches or a chronological cut (random row splits were refused at validation)."""
    run = run_get(run_id)
    run_check_active(run)
    with run_step(run, "split") as out:
        aligned = aligned_load(run)
        train, test, described = splits.split_masks(
            run.config["split"], times_ns=aligned.times_ns, batch_index=aligned.batch_index, batch_ids=aligned.batch_ids
        )
        with open(run_dir(run) / "split.npz", "wb") as handle:
            np.savez(handle, train=train, test=test)
        out.update(described)
        run.refresh_from_db(fields=["dataset"])
        audited_update(TrainingRun.objects.filter(pk=run.pk), dataset={**run.dataset, "split": json_safe(described)})


def model_columns(run: TrainingRun, aligned: dataset.Aligned) -> np.ndarray:
    return np.array([aligned.features.index(f) for f in run.config["features"]], dtype=int)


def step_train(*, run_id: int, learner: str) -> None:
    """Fit one learner on the training rows; a learner that fails is a failed candidate, not a failed run."""
    run = run_get(run_id)
    run_check_active(run)
    candidate = Candidate.objects.get(run=run, learner=learner)
    name = f"train:{learner}"
    if candidate.version_id is not None:  # already registered: its artefact is the registered one
        with run_step(run, name) as out:
            out.update(reused=True, version=candidate.version_id)
        return
    with run_step(run, name) as out:
        aligned = aligned_load(run)
        train, _ = split_masks_load(run)
        columns = model_columns(run, aligned)
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
            Candidate.objects.filter(pk=candidate.pk).update(status=CandidateStatus.FAILED, error=failure_text(exc))
            out.update(error=failure_text(exc), _status=StepStatus.FAILED)
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

"""The register step: each trained candidate becomes a version of the run's soft sensor, with its descriptor."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.common.errors import ValidationFailed
from apps.registry.descriptors import DescriptorError, validate_config
from apps.registry.selectors import variable_list, version_for_lineage
from apps.registry.services import ArtifactInput, model_version_register

from .. import dataset, learners
from ..models import (
    Candidate,
    CandidateStatus,
    TrainingRun,
)
from .data_steps import aligned_load, model_columns, split_masks_load
from .runs import json_safe, run_check_active, run_get, run_step


def _descriptor(
    run: TrainingRun, candidate: Candidate, aligned: dataset.Aligned, train: np.ndarray
) -> tuple[dict[str, Any], str]:
    """The STAMM descriptor of a candidate and its model file name."""
    config = run.config
    learner = learners.learner_get(candidate.learner)
    info = candidate.metrics or {}
    language = info.get("language", learner.language)
    model_file = f"{run.model_id}{info.get('extension', '.skops')}"
    columns = model_columns(run, aligned)
    X_train = aligned.X[train][:, columns]
    envelope = dataset.envelope(X_train, config["features"])
    y_train = aligned.y[train]
    dictionary = {v.canonical_name: v for v in variable_list(project=run.project)}
    series_source = run.dataset.get("sources", {})

    def feature_entry(name: str) -> dict[str, Any]:
        if name == dataset.BATCH_AGE:
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
    validation = {
        "method": "held-out batches" if config["split"]["kind"] == "batches" else "chronological cut",
        "split": run.dataset.get("split", {}),
        "status": f"awaiting the evaluation of training run {run.pk}",
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
            "status": "offline",
            "status_description": f"Registered by training run {run.pk}; offline until its gates have judged it.",
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
            "experiments_ID": dataset.experiment_ids(
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
    return json_safe(document), model_file


def step_register(*, run_id: int) -> None:
    """Register every trained candidate as an offline version of the run's soft sensor (reusing earlier ones).

    Offline until the gate step has judged the estimator as deployed: only a candidate that passes goes online.
    """
    run = run_get(run_id)
    run_check_active(run)
    with run_step(run, "register") as out:
        aligned = aligned_load(run)
        train, _ = split_masks_load(run)
        registered = {}
        for candidate in run.candidates.filter(status=CandidateStatus.TRAINED):
            existing = candidate.version or version_for_lineage(
                training_run_id=run.lineage_id, candidate_id=candidate.pk
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
            columns = model_columns(run, aligned)
            training_data = {
                "candidate_id": candidate.pk,
                "training_run": run.pk,
                "batches": [b for b in run.config["batches"] if b not in run.config["split"].get("holdout", [])],
                "holdout": run.config["split"],
                "rows": int(train.sum()),
                "envelope": dataset.envelope(aligned.X[train][:, columns], run.config["features"]),
                # The bias update it is evaluated with travels with it into its deployments.
                "bias": run.config.get("bias"),
            }
            with transaction.atomic():
                version = model_version_register(
                    project=run.project,
                    descriptor=descriptor,
                    files={"model": ArtifactInput(data, model_file)},
                    user=run.created_by,
                    source="training",
                    training_run_id=run.lineage_id,
                    training_data=json_safe(training_data),
                )
                Candidate.objects.filter(pk=candidate.pk).update(version=version)
            registered[candidate.learner] = {"version": version.number, "status": version.status}
        out.update(versions=registered)

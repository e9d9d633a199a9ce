"""Simulation: a model version scored over a stored window the way a deployment scores it; nothing is written.

The simulation page and its Excel export, the simulation API, the divergence page and drift's
model-disagreement detector all ask "what would this version have estimated here?". They answer it here,
with the one scoring path (``scoring.estimates_score``), so their numbers are the live pipeline's:

* **Configuration.** ``selectors.estimator_under``: the input mapping, maximum input age and bias update of
  a deployment (by default the soft sensor's deployment that runs this version, else its first one:
  ``selectors.deployment_for_spec``); without one, the feature names, the default maximum age and the
  version's trained bias update. Scoring with or without the bias update is the caller's choice.
* **Window.** ``estimates_window`` reads the group chunk by chunk (``STAMM_PIPELINE_CHUNK`` snapshots, as the
  pipeline does) and carries the bias memo from chunk to chunk, which gives the estimates of scoring it at
  once. It stops after ``max_rows`` snapshots (bounded time and memory; ``truncated`` says so). With a bias
  update it starts at the group's first snapshot even when the caller wants a later part, because the bias
  in force at a row depends on every lab sample before it; the rows before the part are then dropped.
* **Predictor.** The simulation runs in the web process, in process (``LocalPredictor``), and may score a
  version that is registered offline (a candidate not promoted yet, which the REST endpoint never serves);
  archived versions and versions whose files no longer load are refused by the registry's predict service.
  Drift passes the configured predictor (``STAMM_PREDICTOR``), as the pipeline runs in workers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from apps.common.errors import NotFound, ValidationFailed
from apps.registry.selectors import soft_sensor_get, spec_get
from apps.registry.spec import ModelSpec
from apps.tsdb.types import GroupKey, SnapshotSet

from .predictors import LocalPredictor, Predictor
from .scoring import Estimates, Estimator, estimates_score, skip_reason_key, snapshots_read
from .selectors import deployment_for_spec, estimator_under

#: Most snapshots one simulation reads (rows scored plus rows skipped); more is reported as truncated.
MAX_SIMULATION_ROWS = 20_000


@dataclass
class WindowEstimates:
    """An estimator over (after, until] of one group: the estimates of every chunk joined, and whether the
    window was cut at ``max_rows``."""

    estimates: Estimates
    truncated: bool


def estimates_window(
    *,
    estimator: Estimator,
    group: GroupKey,
    after_ns: int | None = None,
    until_ns: int | None = None,
    max_rows: int = MAX_SIMULATION_ROWS,
    predictor: Predictor,
) -> WindowEstimates:
    """Score ``estimator`` on the snapshots of ``group`` in (after, until], chunk by chunk as the pipeline does.

    With a bias update the scoring starts at the group's first snapshot (the bias at a row depends on every
    lab result before it) and the rows at or before ``after_ns`` are dropped from the result.
    """
    start = None if estimator.config.bias is not None else after_ns
    chunk = max(1, int(settings.STAMM_PIPELINE_CHUNK))
    parts: list[Estimates] = []
    memo: dict = {}
    after, read, truncated = start, 0, False
    while True:
        if read >= max_rows:
            truncated = len(snapshots_read(estimator, group, after_ns=after, until_ns=until_ns, limit=1)) > 0
            break
        limit = min(chunk, max_rows - read)
        part = estimates_score(
            estimator=estimator,
            group=group,
            after_ns=after,
            until_ns=until_ns,
            limit=limit,
            predictor=predictor,
            bias_memo=memo,
        )
        count = len(part.snapshots)
        if count:
            parts.append(part)
        read += count
        if count < limit:
            break
        after, memo = int(part.snapshots.times_ns[-1]), part.bias_memo
    return WindowEstimates(_joined(estimator, group, parts, keep_after_ns=after_ns), truncated)


def _joined(estimator: Estimator, group: GroupKey, parts: list[Estimates], *, keep_after_ns: int | None) -> Estimates:
    """One ``Estimates`` from consecutive chunks, keeping the snapshots after ``keep_after_ns``."""
    spec = estimator.spec
    variables = estimator.snapshot_variables
    outputs = parts[0].outputs if parts else spec.output_names
    if not parts:
        times = np.empty(0, dtype=np.int64)
        return Estimates(
            estimator,
            group,
            SnapshotSet(group, variables, times, np.empty((0, len(variables))), np.empty(0, bool), []),
            np.empty(0, bool),
            Counter(),
            np.empty((0, len(spec.features))),
            np.empty((0, len(outputs))),
            np.empty((0, len(outputs))),
            [],
            tuple(outputs),
        )
    times = np.concatenate([p.snapshots.times_ns for p in parts])
    keep = times > keep_after_ns if keep_after_ns is not None else np.ones(times.shape[0], dtype=bool)
    complete = np.concatenate([np.asarray(p.complete, dtype=bool) for p in parts])
    scored_keep = keep[complete]  # per scored row: inside the part the caller asked for
    reasons = [r for p in parts for r in p.snapshots.reasons]
    validity = [v for p in parts for v in p.validity]
    skipped = Counter(skip_reason_key(reasons[i]) for i in np.flatnonzero(keep & ~complete))
    last = parts[-1]
    return Estimates(
        estimator=estimator,
        group=group,
        snapshots=SnapshotSet(
            group=group,
            variables=variables,
            times_ns=times[keep],
            matrix=np.vstack([p.snapshots.matrix for p in parts])[keep],
            complete=complete[keep],
            reasons=[reasons[i] for i in np.flatnonzero(keep)],
        ),
        complete=complete[keep],
        skipped=skipped,
        inputs=np.vstack([p.inputs for p in parts])[scored_keep],
        raw=np.vstack([p.raw for p in parts])[scored_keep],
        bias=np.vstack([p.bias for p in parts])[scored_keep],
        validity=[validity[i] for i in np.flatnonzero(scored_keep)],
        outputs=tuple(outputs),
        bias_applied=any(p.bias_applied for p in parts),
        bias_report=dict(last.bias_report),
        bias_memo=dict(last.bias_memo),
        attempts=sum(p.attempts for p in parts),
        detect_ms=sum(p.detect_ms for p in parts),
        infer_ms=sum(p.infer_ms for p in parts),
    )


def simulation_version_get(
    *, project_id: str, model_id: str, number: int | None = None, alias: str | None = None
) -> ModelSpec:
    """The spec of the version to simulate, by number or alias; a 400 naming what does not exist."""
    try:
        return spec_get(project_id=project_id, model_id=model_id, number=number, alias=alias)
    except NotFound as exc:
        try:
            soft_sensor_get(project_id=project_id, model_id=model_id)
        except NotFound as missing:
            raise ValidationFailed(missing.message, details={"project_id": project_id, "model_id": model_id}) from None
        field, value = ("alias", alias) if alias is not None else ("version", number)
        raise ValidationFailed(exc.message, details={field: value}) from None


@dataclass
class VersionSimulation:
    """A version scored over one stored batch as a deployment would score it (nothing written)."""

    spec: ModelSpec
    estimator: Estimator
    deployment_name: str | None
    group: GroupKey
    estimates: Estimates
    truncated: bool

    @property
    def bias_update(self) -> bool:
        return self.estimator.config.bias is not None


def simulation_run(
    *,
    spec: ModelSpec,
    group: GroupKey,
    bias: bool = True,
    max_rows: int = MAX_SIMULATION_ROWS,
    predictor: Predictor | None = None,
) -> VersionSimulation:
    """Score ``spec`` over the whole batch ``group`` (see the module docstring); a 400 naming ``batch`` when the
    batch holds no complete snapshot of the version's inputs."""
    deployment = deployment_for_spec(spec=spec)
    estimator = estimator_under(spec=spec, deployment=deployment, bias=bias)
    window = estimates_window(
        estimator=estimator,
        group=group,
        max_rows=max_rows,
        predictor=predictor or LocalPredictor(allow_offline=True),
    )
    estimates = window.estimates
    label = f"{group.project_name}/{group.device_id}/{group.batch_id}"
    where = {"device_id": group.device_id, "batch_id": group.batch_id}
    if not len(estimates.snapshots):
        raise ValidationFailed(
            f"batch: {label} holds no data of {spec.title}'s inputs ({', '.join(estimator.snapshot_variables)})",
            details={**where, "variables": list(estimator.snapshot_variables)},
        )
    if not estimates.rows:
        reasons = "; ".join(f"{k}: {v}" for k, v in estimates.skipped.most_common(5))
        raise ValidationFailed(
            f"batch: no complete snapshot of {spec.title}'s inputs in {label} ({reasons})",
            details={**where, "skipped": dict(estimates.skipped)},
        )
    return VersionSimulation(
        spec=spec,
        estimator=estimator,
        deployment_name=deployment.name if deployment is not None else None,
        group=group,
        estimates=estimates,
        truncated=window.truncated,
    )

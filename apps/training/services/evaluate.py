"""The evaluate step: every candidate as it would be deployed, beside persistence, the training mean and production.

Each candidate was registered offline by the register step; here its spec is run over every holdout batch
through the platform's one scoring path (``apps.orchestrator.scoring.estimates_score``): the same snapshots,
derived inputs, validity and lab bias update as the live pipeline, with the run's bias parameters. Its raw and
corrected estimates are matched to the holdout rows by time, and ``evaluation.estimator_report`` judges them.
The current ``production`` version is scored the same way (with its deployment's configuration when one
follows the alias), so ``not_worse_than_production`` compares like with like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from apps.audit.tracking import audited_update
from apps.common.errors import NotFound, ValidationFailed
from apps.orchestrator.predictors import LocalPredictor, Predictor
from apps.orchestrator.scoring import BiasSettings, Estimator, estimates_score, estimator_for_spec
from apps.orchestrator.selectors import deployment_estimator, deployment_following
from apps.registry.selectors import soft_sensor_get, spec_for_alias, spec_for_version
from apps.registry.services import model_version_explanation_build
from apps.registry.spec import bias_spec_parse
from apps.tsdb.types import GroupKey

from .. import dataset, evaluation
from ..models import Candidate, CandidateStatus, TrainingRun
from .data_steps import aligned_load, model_columns, split_masks_load
from .runs import TRANSIENT_ERRORS, failure_text, json_safe, run_check_active, run_get, run_step

#: Most lab samples per candidate kept for the run page's predicted-vs-lab plot.
PLOT_SAMPLES = 400


def run_bias(run: TrainingRun) -> BiasSettings | None:
    """The bias update the run judges (and deploys) its candidates with; None: raw estimates."""
    chosen = bias_spec_parse(run.config.get("bias"))
    if chosen is None:
        return None
    return BiasSettings.of(chosen, source=f"chosen by training run {run.pk}")


class Holdout:
    """The holdout rows of a run (truth, times, batches, persistence) and the groups they come from."""

    def __init__(self, run: TrainingRun, aligned: dataset.Aligned, train: np.ndarray, test: np.ndarray) -> None:
        self.run = run
        self.rows = np.flatnonzero(test)
        self.y = aligned.y[self.rows]
        self.times_ns = aligned.times_ns[self.rows].astype(np.int64)
        self.batch_index = aligned.batch_index[self.rows]
        self.batch_age_h = aligned.batch_age_h[self.rows]
        self.batch_ids = aligned.batch_ids
        self.labs = aligned.labs
        self.train_mean = float(aligned.y[train].mean())
        groups = dataset.groups_resolve(
            project_name=run.project.name, batches=run.config["batches"], device_id=run.config["device_id"]
        )
        self.groups: dict[str, GroupKey] = {g.batch_id: g for g in groups}
        delay_ns = int(run.config["lab_delay_seconds"]) * 1_000_000_000
        self.lab_delay_ns = delay_ns
        self.persistence = evaluation.persistence_predictions(
            self.times_ns, self.batch_index, aligned.labs, lab_delay_ns=delay_ns
        )

    def estimates(self, estimator: Estimator, target: str, predictor: Predictor) -> tuple[np.ndarray, np.ndarray]:
        """The estimator's raw and corrected estimates at the holdout rows (NaN where it scored none)."""
        raw = np.full(self.rows.shape[0], np.nan)
        corrected = np.full(self.rows.shape[0], np.nan)
        for b in np.unique(self.batch_index).tolist():
            at = np.flatnonzero(self.batch_index == b)
            scored = estimates_score(estimator=estimator, group=self.groups[self.batch_ids[b]], predictor=predictor)
            if not scored.rows or target not in scored.outputs:
                continue
            j = scored.outputs.index(target)
            times = scored.times_ns
            pos = np.clip(np.searchsorted(times, self.times_ns[at]), 0, times.shape[0] - 1)
            match = times[pos] == self.times_ns[at]
            raw[at[match]] = scored.raw[pos[match], j]
            corrected[at[match]] = scored.corrected[pos[match], j]
        return raw, corrected

    def lab_points(self, raw: np.ndarray, corrected: np.ndarray) -> list[dict[str, Any]]:
        """Per holdout lab sample: its value and the estimate in force at its time (the predicted-vs-lab plot)."""
        points: list[dict[str, Any]] = []
        for b in np.unique(self.batch_index).tolist():
            lab_t, lab_v = self.labs[b]
            at = np.flatnonzero((self.batch_index == b) & np.isfinite(raw))
            if not len(lab_t) or not at.size:
                continue
            pos = np.searchsorted(self.times_ns[at], np.asarray(lab_t, dtype=np.int64), side="right") - 1
            for i in np.flatnonzero(pos >= 0).tolist():
                row = at[pos[i]]
                points.append(
                    {
                        "batch": self.batch_ids[b],
                        "age_h": round(float(self.batch_age_h[row]), 3),
                        "lab": float(lab_v[i]),
                        "raw": float(raw[row]),
                        "as_deployed": float(corrected[row]),
                    }
                )
        step = max(1, -(-len(points) // PLOT_SAMPLES))
        return points[::step]


def _production_estimator(run: TrainingRun) -> Estimator | None:
    """What production runs now for the run's soft sensor: a deployment following the alias, else the version
    with its own trained bias update; None when there is no production version yet."""
    try:
        soft_sensor = soft_sensor_get(project_id=run.project.project_id, model_id=run.model_id)
    except NotFound:
        return None
    spec = spec_for_alias(soft_sensor_id=soft_sensor.pk, alias="production")
    if spec is None:
        return None
    deployment = deployment_following(soft_sensor_id=soft_sensor.pk, alias="production")
    estimator = deployment_estimator(deployment) if deployment is not None else None
    if estimator is None:
        estimator = estimator_for_spec(
            spec, max_input_age_seconds=int(run.config["preprocessing"]["max_input_age_seconds"]), bias=True
        )
    return estimator


def _versus(production: Mapping[str, Any], raw: np.ndarray, corrected: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """A candidate against production, as deployed, on the rows both scored."""
    prod = np.asarray(production["corrected"])
    both = np.isfinite(prod) & np.isfinite(corrected)
    return {
        "version": production["version"],
        "rows": int(both.sum()),
        "rmse": evaluation.metrics(y[both], prod[both])["rmse"],
        "candidate_rmse": evaluation.metrics(y[both], corrected[both])["rmse"],
    }


def _explain(run: TrainingRun, spec: Any, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Measure what the candidate depends on, on the same holdout rows (stored with its version: permutation
    importance, partial dependence, the background of its estimates' contributions). A failure is noted in
    the report, never a failure of the run."""
    held_out = run.config["split"].get("holdout")
    holdout = ", ".join(map(str, held_out)) if isinstance(held_out, list) and held_out else "the held-out rows"
    try:
        stored = model_version_explanation_build(
            spec=spec, X=X, y=y, source=f"training run {run.pk}, holdout {holdout}", allow_offline=True
        )
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - an explanation never fails a run
        return {"error": failure_text(exc)}
    return {"rows": stored.data["rows"], "top": [row["feature"] for row in stored.data["importance"][:3]]}


def step_evaluate(*, run_id: int) -> None:
    """Score every registered candidate as deployed on the holdout, beside both baselines and production."""
    run = run_get(run_id)
    run_check_active(run)
    config = run.config
    with run_step(run, "evaluate") as out:
        aligned = aligned_load(run)
        train, test = split_masks_load(run)
        candidates: Sequence[Candidate] = list(
            run.candidates.filter(status=CandidateStatus.TRAINED, version__isnull=False).select_related("version")
        )
        if not candidates:
            failures = "; ".join(f"{c.learner}: {c.error or 'not registered'}" for c in run.candidates.all())
            raise ValidationFailed(f"no candidate was trained and registered ({failures})")
        holdout = Holdout(run, aligned, train, test)
        predictor = LocalPredictor(allow_offline=True)  # candidates are offline until their gates pass
        bias = run_bias(run)
        max_age = int(config["preprocessing"]["max_input_age_seconds"])
        phases = config.get("phases") or []
        target = config["target"]
        baselines: dict[str, Any] = {
            "training_mean": {
                "value": holdout.train_mean,
                "overall": evaluation.metrics(holdout.y, np.full(holdout.y.shape[0], holdout.train_mean)),
            },
            "persistence": {
                "lab_delay_hours": round(holdout.lab_delay_ns / 3.6e12, 4),
                "coverage": {"rows": int(np.isfinite(holdout.persistence).sum()), "of": int(holdout.y.shape[0])},
                "overall": evaluation.metrics(holdout.y, holdout.persistence),
            },
            "bias": bias.as_dict() if bias is not None else None,
        }
        production: dict[str, Any] | None = None
        estimator = _production_estimator(run)
        if estimator is not None:
            try:
                _, prod_corrected = holdout.estimates(estimator, target, LocalPredictor())
                production = {"version": estimator.spec.number, "corrected": prod_corrected}
                baselines["production"] = {
                    "version": estimator.spec.number,
                    "bias": estimator.config.bias.as_dict() if estimator.config.bias else None,
                    "overall": evaluation.metrics(holdout.y, prod_corrected),
                }
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - reported on the gate, never a crash of the run
                baselines["production"] = {"version": estimator.spec.number, "error": failure_text(exc)}
        summary = {}
        columns = model_columns(run, aligned)
        for candidate in candidates:
            spec = spec_for_version(version_id=candidate.version_id)
            raw, corrected = holdout.estimates(
                estimator_for_spec(spec, max_input_age_seconds=max_age, bias=bias if bias is not None else False),
                target,
                predictor,
            )
            report = evaluation.estimator_report(
                y_true=holdout.y,
                raw=raw,
                corrected=corrected,
                persistence=holdout.persistence,
                train_mean=holdout.train_mean,
                batch_age_h=holdout.batch_age_h,
                phases=phases,
            )
            if production is not None:
                report["vs_production"] = _versus(production, raw, corrected, holdout.y)
            report["lab_points"] = holdout.lab_points(raw, corrected)
            report["explanation"] = _explain(run, spec, aligned.X[holdout.rows][:, columns], holdout.y)
            keep = {k: v for k, v in (candidate.metrics or {}).items() if k in ("packages", "estimator", "language")}
            keep["extension"] = (candidate.metrics or {}).get("extension")
            Candidate.objects.filter(pk=candidate.pk).update(metrics=json_safe({**keep, **report}))
            summary[candidate.learner] = {
                "as_deployed": report["as_deployed"]["overall"],
                "raw": report["raw"]["overall"],
                "rows_scored": report["rows"]["scored"],
            }
        audited_update(TrainingRun.objects.filter(pk=run.pk), baselines=json_safe(baselines))
        out.update(candidates=summary, baselines={k: (v or {}).get("overall") for k, v in baselines.items()})

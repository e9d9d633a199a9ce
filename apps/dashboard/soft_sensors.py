"""Soft sensors as the modeler pages show them: version pickers and the soft-sensor page, all read from the
registry's model specs (``apps.registry.spec``; the dashboard never reads descriptor JSON).

Training facts and the training workflow's evaluation (``spec.training``) arrive as mappings; this module
turns them into rows a person reads (label, text) and, for the evaluation, a small table of the estimator
as deployed against holding the last lab value, with a plain sentence when it does not beat it. Versions
uploaded without a training run have neither: they get no rows rather than an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.common.errors import ValidationFailed
from apps.registry.spec import BiasSpec, ModelSpec, bias_spec_parse

from .formatting import number_text

# -------------------------------------------------------------------------------------------- pickers


def version_label(spec: ModelSpec, aliases: Sequence[str] = ()) -> str:
    tags = f" @{', @'.join(aliases)}" if aliases else ""
    return f"{spec.title} ({spec.status}){tags}"


def version_options() -> list[dict[str, Any]]:
    """Every live version of every soft sensor (newest first within a soft sensor); the value is its id."""
    from apps.registry.selectors import alias_names_by_version, specs_all

    specs = specs_all()
    aliases = alias_names_by_version(version_ids=[s.version_id for s in specs])
    return [{"label": version_label(s, aliases.get(s.version_id, ())), "value": s.version_id} for s in specs]


def version_resolve(value: Any) -> ModelSpec:
    """A picker's value (a version id) → the version's spec; 400 when malformed, 404 when gone."""
    from apps.registry.selectors import spec_for_version

    text = str(value if value is not None else "").strip()
    if isinstance(value, bool) or not text.isdigit():
        raise ValidationFailed("version: expected a version id", details={"version": value})
    return spec_for_version(version_id=int(text))


def training_batches(spec: ModelSpec) -> list[str]:
    """The batch IDs a version was trained on (``experiments_ID`` 92 → ``batch_92``, drift's rule)."""
    from apps.drift.window_loading import batch_id_of

    return [batch_id_of(e, "experiments") for e in spec.experiments]


def input_variables(spec: ModelSpec) -> list[str]:
    """The project variables feeding a version's measured inputs, as the simulation maps them (the soft
    sensor's deployment's input mapping, else the feature names); derived inputs are not variables."""
    from apps.orchestrator.selectors import deployment_for_spec, estimator_under

    estimator = estimator_under(spec=spec, deployment=deployment_for_spec(spec=spec))
    return list(dict.fromkeys(estimator.variable(name) for name in spec.measured_features))


# ---------------------------------------------------------------------------------- readable training


def readable_pairs(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A mapping as (label, text) rows: nested keys joined with " › ", lists of scalars joined with commas."""
    if isinstance(value, Mapping):
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            label = f"{prefix} › {key}" if prefix else str(key)
            rows.extend(readable_pairs(item, label))
        return rows
    if isinstance(value, list | tuple):
        if all(not isinstance(v, Mapping | list | tuple) for v in value):
            return [(prefix, ", ".join(number_text(v) for v in value) or "—")]
        return [row for i, item in enumerate(value, 1) for row in readable_pairs(item, f"{prefix} {i}".strip())]
    return [(prefix, number_text(value))]


def bias_text(bias: BiasSpec | Any | None) -> str:
    """``α 0.8 · lab result known 2 h after sampling · used while at most 4 h old · lab values in [0, 50]``:
    a version's trained bias update (``BiasSpec``) or the one an estimator runs (``BiasSettings``)."""
    if bias is None:
        return "none"
    parts = [
        f"α {number_text(bias.alpha)}",
        f"lab result known {_duration(bias.lab_delay_seconds)} after sampling",
        f"used while at most {_duration(bias.max_lab_age_seconds)} old",
    ]
    if bias.lab_min is not None or bias.lab_max is not None:
        low = number_text(bias.lab_min) if bias.lab_min is not None else "−∞"
        high = number_text(bias.lab_max) if bias.lab_max is not None else "∞"
        parts.append(f"lab values in [{low}, {high}]")
    return " · ".join(parts)


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def training_rows(spec: ModelSpec) -> list[tuple[str, str]]:
    """What the version says about its training, as (label, text) rows (empty parts left out)."""
    training = spec.training if isinstance(spec.training, Mapping) else {}
    rows: list[tuple[str, str]] = []
    if training.get("instances") not in (None, ""):
        rows.append(("Training instances", number_text(training["instances"])))
    if spec.experiments:
        rows.append(("Training batches", ", ".join(training_batches(spec))))
    if training.get("rows") not in (None, ""):
        rows.append(("Training rows", number_text(training["rows"])))
    batches = training.get("batches")
    if batches and not spec.experiments:
        rows.extend(readable_pairs(batches, "Training batches"))
    for key, label in (
        ("hyperparameters", "Hyperparameters"),
        ("preprocessing", "Preprocessing"),
        ("validation", "Validation"),
        ("metrics", "Metrics"),
    ):
        value = training.get(key)
        if value:
            rows.extend((f"{label} › {k}" if k else label, text) for k, text in readable_pairs(value))
    if spec.bias is not None:
        rows.append(("Bias update", bias_text(spec.bias)))
    return rows


# -------------------------------------------------------------------------------------------- evaluation

#: The rows of the evaluation table: key in the evaluation, label.
EVALUATION_ESTIMATORS = (
    ("as_deployed", "Estimator as deployed (model + bias update)"),
    ("raw", "Raw model"),
    ("persistence", "Last lab value (delayed-lab persistence)"),
    ("training_mean", "Training mean"),
)


@dataclass
class EvaluationSummary:
    """The training workflow's verdict on a version, ready to show: metrics per estimator, the comparison with
    persistence in one sentence, per-phase RMSE, and the verdict and bias parameters it recorded."""

    rows: list[dict[str, Any]]
    sentence: str
    beats_persistence: bool | None
    phases: list[dict[str, Any]] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _metrics(evaluation: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], str]:
    """The metrics of one estimator and which rows they cover: the rows where persistence has a value (the fair
    comparison) when the evaluation has them, else every holdout row it scored."""
    compared = _mapping(_mapping(evaluation.get("on_persistence_rows")).get(key))
    if compared:
        return compared, "rows with a persistence value"
    block = _mapping(evaluation.get(key))
    return _mapping(block.get("overall")) or block, "holdout rows scored"


def evaluation_summary(spec: ModelSpec) -> EvaluationSummary | None:
    """The version's evaluation (``spec.training["evaluation"]``) as a summary; None when it has none."""
    evaluation = _mapping(_mapping(spec.training).get("evaluation"))
    if not evaluation:
        return None
    rows = []
    for key, label in EVALUATION_ESTIMATORS:
        metrics, covered = _metrics(evaluation, key)
        if not metrics:
            continue
        rows.append(
            {
                "key": key,
                "estimator": label,
                "rows": _number(metrics.get("n")),
                "covered": covered,
                **{name: _number(metrics.get(name)) for name in ("rmse", "mae", "r2", "bias")},
            }
        )
    by_key = {row["key"]: row for row in rows}
    deployed = (by_key.get("as_deployed") or {}).get("rmse")
    persistence = (by_key.get("persistence") or {}).get("rmse")
    beats = evaluation.get("beats_persistence")
    beats = beats if isinstance(beats, bool) else None
    figures = f"RMSE {number_text(deployed)} vs {number_text(persistence)}"
    if beats is False:
        sentence = (
            f"On its holdout, the estimator with its bias update does not beat holding the last lab value: {figures}."
        )
    elif beats is True:
        sentence = f"On its holdout, the estimator with its bias update beats holding the last lab value: {figures}."
    else:
        sentence = "Not compared with holding the last lab value (no lab result was known before the holdout rows)."
    phases = []
    deployed_phases = _mapping(_mapping(evaluation.get("as_deployed")).get("phases"))
    persistence_phases = _mapping(_mapping(evaluation.get("persistence")).get("phases"))
    raw_phases = _mapping(_mapping(evaluation.get("raw")).get("phases"))
    for name in deployed_phases:
        phases.append(
            {
                "phase": str(name),
                "as_deployed": _number(_mapping(deployed_phases.get(name)).get("rmse")),
                "raw": _number(_mapping(raw_phases.get(name)).get("rmse")),
                "persistence": _number(_mapping(persistence_phases.get(name)).get("rmse")),
            }
        )
    details: list[tuple[str, str]] = []
    verdict = evaluation.get("verdict")
    if isinstance(verdict, Mapping):
        details.extend((f"Verdict › {k}", v) for k, v in readable_pairs(verdict))
    elif verdict not in (None, ""):
        details.append(("Verdict", str(verdict)))
    if "bias" in evaluation:
        details.append(("Evaluated with bias update", bias_text(bias_spec_parse(evaluation.get("bias")))))
    counts = _mapping(evaluation.get("rows"))
    if counts:
        details.append(
            ("Holdout rows", ", ".join(f"{k.replace('_', ' ')} {number_text(v)}" for k, v in counts.items()))
        )
    return EvaluationSummary(rows=rows, sentence=sentence, beats_persistence=beats, phases=phases, details=details)


# ------------------------------------------------------------------------------------ soft-sensor page


def soft_sensor_overview(*, project_id: str) -> list[dict[str, Any]]:
    """Soft sensors of a project: the newest version's description, inputs and outputs, every version with its
    training facts and evaluation, and the alias history."""
    from apps.registry.selectors import (
        alias_history,
        project_get,
        soft_sensor_list,
        version_explanations,
        version_spec,
    )

    project = project_get(project_id=project_id)
    result = []
    for soft_sensor in soft_sensor_list(project=project):
        versions = list(soft_sensor.versions.all())  # prefetched, newest first, each with its soft sensor
        specs = [version_spec(v) for v in versions]
        explained = version_explanations(version_ids=[spec.version_id for spec in specs])
        newest = specs[0] if specs else None
        aliases = [(a.version_id, a.name) for a in soft_sensor.aliases.all()]
        result.append(
            {
                "soft_sensor": soft_sensor,
                "model_id": soft_sensor.model_id,
                "name": soft_sensor.name or (newest.name if newest else ""),
                "learner": newest.learner if newest else "",
                "model_type": newest.model_type if newest else "",
                "description": newest.description if newest else "",
                "author": newest.author if newest else "",
                "language": soft_sensor.language,
                "features": [
                    {
                        "name": f.name,
                        "type": f.kind + (" (computed)" if f.derived else ""),
                        "units": f.units,
                        "min": f.low,
                        "max": f.high,
                    }
                    for f in (newest.features if newest else ())
                ],
                "outputs": [
                    {"name": o.name, "units": o.units, "min": o.low, "max": o.high}
                    for o in (newest.outputs if newest else ())
                ],
                "versions": [
                    {
                        "number": spec.number,
                        "label": spec.label,
                        "status": spec.status,
                        "flavor": spec.flavor,
                        "created_at": spec.created_at,
                        "created_by": row.created_by.get_username() if row.created_by else "",
                        "source": spec.source,
                        "archived": spec.archived,
                        "aliases": ", ".join(sorted(n for v, n in aliases if v == spec.version_id)),
                        "training": training_rows(spec),
                        "evaluation": evaluation_summary(spec),
                        "explanation": explanation_summary(explained.get(spec.version_id), spec),
                    }
                    for row, spec in zip(versions, specs, strict=True)
                ],
                "alias_history": [
                    {
                        "alias": move.alias_name,
                        "from": move.from_version.number if move.from_version else None,
                        "to": move.to_version.number if move.to_version else None,
                        "by": move.moved_by.get_username() if move.moved_by else "",
                        "at": move.moved_at,
                        "reason": move.reason,
                    }
                    for move in alias_history(soft_sensor=soft_sensor)[:50]
                ],
            }
        )
    return result


def explanation_summary(stored: Any, spec: ModelSpec) -> dict[str, Any] | None:
    """A stored explanation as the page shows it: importance rows, curves with the inputs' units, its source."""
    if stored is None:
        return None
    units = {f.name: f.units for f in spec.features}
    data = stored.data
    return {
        "source": stored.source,
        "rows": data.get("rows", 0),
        "rmse": data.get("rmse"),
        "output": data.get("output", ""),
        "output_unit": next((o.units for o in spec.outputs if o.name == data.get("output")), ""),
        "importance": data.get("importance", []),
        "curves": [{**curve, "unit": units.get(curve["feature"], "")} for curve in data.get("partial_dependence", [])],
    }


def datetime_label(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"

"""Model-disagreement windows: the estimates of several model versions side by side, on the one scoring path.

The model-disagreement detector compares what several versions estimate for the same target over the same
rows. The estimates are not read back from the predictions collection: each version is scored over every
window segment by the platform's one scoring path (``apps.orchestrator.simulation.estimates_window``:
as-of snapshots, derived inputs such as batch age, the bias update), so

* a version that never ran anywhere (a challenger, a candidate) can be compared too;
* the numbers are those the pipeline stores and the simulation and divergence pages show;
* each version is run as the job's deployment would run it (``disagreement_estimators``).

The estimate compared is the one as deployed (raw + bias in force). Columns are ``model_id@version`` (the
STAMM model ID in lower case and the registry's version number, the tags of stored predictions).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stamm_drift import DataError

from apps.tsdb import selectors as tsdb
from apps.tsdb.types import PREDICTION_SOURCE, Collection, SeriesFilter, from_ns

from .window_loading import Segment, Window

#: Most snapshots of one group scored per version and segment (from the group's start when the version has a
#: bias update: the bias at a row depends on every lab result before it).
MAX_SCORED_ROWS = 100_000


def disagreement_estimators(*, project_id: str, deployment: Any, columns: Sequence[str]) -> dict[str, Any]:
    """The estimator scoring each ``model_id@version`` column: that version of the project, run as
    ``deployment`` would run it (its input mapping, maximum input age and bias update:
    ``apps.orchestrator.selectors.estimator_under``); without a deployment, as the simulation runs it (its own
    soft sensor's deployment, else defaults). Unknown columns are a ``DataError`` naming them."""
    from apps.orchestrator.selectors import deployment_for_spec, estimator_under
    from apps.registry.selectors import specs_for_project

    specs = {f"{s.model_tag}@{s.version_tag}": s for s in specs_for_project(project_id=project_id)}
    missing = [c for c in columns if c not in specs]
    if missing:
        raise DataError(f"no version {', '.join(missing)} in project {project_id} "
                        "(columns are model_id@version, the model ID in lower case)")
    estimators = {}
    for column in columns:
        spec = specs[column]
        runs_it = deployment if deployment is not None else deployment_for_spec(spec=spec)
        estimators[column] = estimator_under(spec=spec, deployment=runs_it)
    return estimators


def load_predictions(segments: Sequence[Segment], *, target: str, models: Sequence[str], kind: str,
                     project_id: str, deployment: Any, predictor: Any) -> Window:
    """Estimates of ``target`` by several versions of the project (columns ``model_id@version``), joined on time
    per segment, each version run as ``deployment`` would run it (``disagreement_estimators``) through
    ``predictor``. ``models`` empty: every version with stored predictions of ``target`` in every segment
    (what ran there); at least two.
    """
    from apps.orchestrator.simulation import estimates_window

    columns = tuple(models) if models else _predicted_everywhere(segments, target)
    if len(columns) < 2:
        raise DataError(f"{kind}: model disagreement needs at least two model versions predicting {target}; "
                        f"found {', '.join(columns) or 'none'}")
    estimators = disagreement_estimators(project_id=project_id, deployment=deployment, columns=columns)
    for column, estimator in estimators.items():
        if target not in estimator.spec.output_names:
            raise DataError(f"{kind}: {column} does not predict {target}")
    window = Window(kind, columns, {}, segments=list(segments), extra={
        "target": target, "source": "scoring path",
        "bias_update": {c: estimators[c].config.bias is not None for c in columns}})
    for s in segments:
        joined_t: np.ndarray | None = None
        values: list[tuple[np.ndarray, np.ndarray]] = []
        for column in columns:
            scored = estimates_window(estimator=estimators[column], group=s.group, after_ns=s.start_ns - 1,
                                      until_ns=s.end_ns, max_rows=MAX_SCORED_ROWS, predictor=predictor)
            if scored.truncated:
                raise DataError(f"{kind}: {s.label} has more than {MAX_SCORED_ROWS} snapshots up to the window's "
                                "end; choose a shorter window")
            estimates = scored.estimates
            values.append((estimates.times_ns, estimates.corrected[:, estimates.outputs.index(target)]))
            joined_t = estimates.times_ns if joined_t is None else np.intersect1d(joined_t, estimates.times_ns)
        assert joined_t is not None
        matrix = np.column_stack([v[np.searchsorted(t, joined_t)] for t, v in values])
        if s.last_n is not None:
            joined_t, matrix = joined_t[-s.last_n:], matrix[-s.last_n:]
        if joined_t.size < 2:
            raise DataError(f"{kind}: {s.label}: fewer than two times scored by every model version")
        window.blocks[s.label] = matrix
        window.times[s.label] = joined_t
    return window


def _predicted_everywhere(segments: Sequence[Segment], target: str) -> tuple[str, ...]:
    """``model_id@version`` of every version with stored predictions of ``target`` in each segment."""
    found: list[set[str]] = []
    for s in segments:
        infos = tsdb.series_list(collection=Collection.PREDICTIONS, where=SeriesFilter(
            project_name=s.group.project_name, device_id=s.group.device_id, batch_id=s.group.batch_id,
            source=PREDICTION_SOURCE, observed_property=target), start=from_ns(s.start_ns), end=from_ns(s.end_ns))
        found.append({f"{i.series.model_id}@{i.series.version}" for i in infos})
    return tuple(sorted(set.intersection(*found))) if found else ()

"""Why a stored estimate is what it is: its inputs read back exactly as the pipeline read them, explained.

An estimate in a batch is identified as the charts identify it: its group, the ``model_id`` and ``version``
tags of its series, and its time (to the second, as the charts show it). The inputs are the as-of snapshot the
scoring path used at that time (same variables, input mapping, maximum age and derived inputs: the estimator
the version runs under, ``selectors.estimator_under``); the contributions come from the registry
(``services.estimate_explain``: TreeSHAP in the model's worker, else Shapley values through predict). The
stored estimate is the raw one plus the bias update in force, so the answer also says how much of it the bias
update contributed: ``base + sum(contributions) = raw``, ``raw + bias_update = stored estimate``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from apps.common.errors import NotFound, ValidationFailed
from apps.registry.selectors import spec_for_tags
from apps.registry.services import estimate_explain
from apps.tsdb.selectors import series_read
from apps.tsdb.types import NS_PER_S, Collection, GroupKey, from_ns, to_ns

from .scoring import snapshots_read
from .selectors import deployment_for_spec, estimator_under


def estimate_explanation(
    *, group: GroupKey, model_tag: str, version_tag: str, time: datetime, output: str | None = None
) -> dict[str, Any]:
    """The explanation of the estimate of ``output`` (default: the version's first) stored in ``group`` at
    ``time`` (the second it falls in): contributions, base value, inputs outside the envelope, bias update."""
    spec = spec_for_tags(project_name=group.project_name, model_tag=model_tag, version_tag=version_tag)
    output = output or spec.output_names[0]
    if output not in spec.output_names:
        raise ValidationFailed(f"output: {output!r} is not an output of {spec.title}", details={"output": output})
    estimator = estimator_under(spec=spec, deployment=deployment_for_spec(spec=spec))
    start_ns = to_ns(time)
    snapshots = snapshots_read(estimator, group, after_ns=start_ns - 1, until_ns=start_ns + NS_PER_S - 1, limit=50)
    complete = np.flatnonzero(np.asarray(snapshots.complete, dtype=bool))
    if not complete.size:
        raise NotFound(
            f"No complete input snapshot of {spec.title} in {group.batch_id} at {time:%Y-%m-%d %H:%M:%S} UTC.",
            details={"time": time.isoformat()},
        )
    row = int(complete[0])
    at = from_ns(int(snapshots.times_ns[row]))
    x = snapshots.matrix[row][estimator.columns]
    explained = estimate_explain(spec=spec, x=x, output=spec.output_names.index(output), allow_offline=True)
    stored = series_read(
        collection=Collection.PREDICTIONS, series=estimator.output_series(group, output), start=at, end=at
    )
    estimate = float(stored.values[0]) if len(stored) else None
    return {
        **explained.as_dict(),
        "version": spec.title,
        "time": at,
        "estimate": estimate,
        "bias_update": None if estimate is None else estimate - explained.raw_estimate,
    }

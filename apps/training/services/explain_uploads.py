"""What an uploaded or imported version's estimates depend on, measured on the batches it declares.

A version the training workflow registers is explained on its holdout by the evaluate step. A version that
arrives as a file (an upload, a STAMM project import) comes with no holdout, but its descriptor names the
experiments it was trained on (``training_information.experiments_ID``). When those batches are in the
store, the same measurement (permutation importance, partial dependence, the background of its estimates'
contributions: ``apps.registry.services.model_version_explanation_build``) runs on their lab-aligned rows,
and the stored explanation says so. The registry cannot read batches (it sits beside the store), so this
lives here, queued by the registry's ``version_registered`` signal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.orchestrator.scoring import DEFAULT_MAX_INPUT_AGE_SECONDS
from apps.registry.selectors import spec_for_version, version_explanation_get
from apps.registry.services import model_version_explanation_build
from apps.tsdb import selectors as tsdb
from apps.tsdb.types import GroupKey

from .. import dataset

#: Sources whose versions get explained here (the training workflow explains its own on the holdout).
EXPLAINED_SOURCES = ("upload", "import")


def experiment_groups(*, project_name: str, experiments: tuple[int | str, ...]) -> list[GroupKey]:
    """The stored groups whose batch id is a declared experiment: the id itself, or its number
    (``92`` → ``batch_92``, the inverse of ``dataset.experiment_ids``)."""
    wanted = {str(e).strip().lower() for e in experiments if str(e).strip()}
    groups = []
    for info in tsdb.groups_list(project_name=project_name):
        batch = info.group.batch_id
        if batch.lower() in wanted or any(str(n) in wanted for n in dataset.experiment_ids([batch])):
            groups.append(info.group)
    return sorted(groups, key=lambda g: (g.device_id, g.batch_id))


def version_explain_on_experiments(*, version_id: int) -> dict[str, Any]:
    """Measure and store the explanation of an uploaded version on its declared experiments; a dict saying
    what was done, or why nothing was (no experiments declared or stored, an explanation already there)."""
    spec = spec_for_version(version_id=version_id)
    if version_explanation_get(version_id=version_id) is not None:
        return {"explained": False, "reason": "the version already has an explanation"}
    if not spec.experiments:
        return {"explained": False, "reason": "the descriptor declares no training experiments"}
    groups = experiment_groups(project_name=spec.project_name, experiments=spec.experiments)
    if not groups:
        return {"explained": False, "reason": "none of its training experiments is in the store"}
    target = spec.output_names[0]
    features = list(spec.feature_names)
    loaded, _ = dataset.batches_load(groups=groups, target=target, features=features)
    aligned = dataset.dataset_align(
        loaded, target=target, features=features, max_input_age_ns=DEFAULT_MAX_INPUT_AGE_SECONDS * 1_000_000_000
    )
    columns = np.array([aligned.features.index(f) for f in features], dtype=int)
    batches = ", ".join(g.batch_id for g in groups)
    stored = model_version_explanation_build(
        spec=spec,
        X=aligned.X[:, columns],
        y=aligned.y,
        source=f"registration: its declared training experiments ({batches}); an uploaded version has no holdout",
        allow_offline=True,
    )
    return {"explained": True, "rows": stored.data["rows"], "batches": [g.batch_id for g in groups]}

"""Derived snapshot inputs: values the store computes instead of reading a series.

``batch_age`` is the time since the group's first raw point, in hours. Fed-batch soft sensors rely on it,
training adds it as a feature (``apps.training.dataset``), and the pipeline must give the model the same
number at inference: so both take the definition from here. The name is reserved: a stored variable
called ``batch_age`` is not read by snapshots.
"""
from __future__ import annotations

import numpy as np

from apps.common.derived import BATCH_AGE, DERIVED_VARIABLES

from .types import SnapshotSet

__all__ = ["BATCH_AGE", "DERIVED_VARIABLES", "NS_PER_HOUR", "batch_age_hours", "split_derived", "with_derived"]

NS_PER_HOUR = 3600 * 1_000_000_000


def split_derived(variables: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(stored, derived) names, each in the caller's order."""
    stored = tuple(v for v in variables if v not in DERIVED_VARIABLES)
    derived = tuple(v for v in variables if v in DERIVED_VARIABLES)
    return stored, derived


def batch_age_hours(times_ns: np.ndarray, start_ns: int) -> np.ndarray:
    return (np.asarray(times_ns, dtype=np.int64) - int(start_ns)) / NS_PER_HOUR


def with_derived(stored: SnapshotSet, variables: tuple[str, ...], *, group_start_ns: int | None) -> SnapshotSet:
    """The snapshot set of ``variables`` (caller's order) from the stored columns plus computed ones.

    Derived columns never make a row incomplete: the group's start is known whenever it has a raw row.
    """
    n = len(stored)
    matrix = np.empty((n, len(variables)), dtype=np.float64)
    column = {name: i for i, name in enumerate(stored.variables)}
    for j, name in enumerate(variables):
        if name in column:
            matrix[:, j] = stored.matrix[:, column[name]]
        elif name == BATCH_AGE:
            matrix[:, j] = batch_age_hours(stored.times_ns, group_start_ns) if group_start_ns is not None else np.nan
        else:  # pragma: no cover - DERIVED_VARIABLES and this function change together
            raise ValueError(f"unknown derived variable {name}")
    return SnapshotSet(
        group=stored.group,
        variables=tuple(variables),
        times_ns=stored.times_ns,
        matrix=matrix,
        complete=stored.complete,
        reasons=stored.reasons,
    )


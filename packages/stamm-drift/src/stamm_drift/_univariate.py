"""Shared helpers of the per-variable detectors (one statistic per column, aggregated by the maximum)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def standardise(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both windows z-scored with the *reference's* mean and SD (a constant column keeps SD 1)."""
    mean = reference.mean(axis=0)
    sd = reference.std(axis=0, ddof=1) if reference.shape[0] > 1 else np.ones(reference.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    return (reference - mean) / sd, (test - mean) / sd


def worst(rows: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """The row with the largest ``key`` (the variable that drives the aggregated score)."""
    return max(rows, key=lambda r: r[key])

"""Shared part of the per-variable streaming detectors: the reference warms each stream up, the test is scored."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._univariate import worst
from .base import NO_DETECTION, DriftResult

#: ``run(values, n_reference)`` → (detection indices in the whole stream, the test part's score).
StreamRun = Callable[[np.ndarray, int], tuple[list[int], float]]


def first_detection(indices: list[int]) -> int:
    return min(indices) if indices else NO_DETECTION


def split_detections(indices: list[int], n_reference: int) -> tuple[list[int], list[int]]:
    """Detections in the reference part and in the test part (re-indexed from the test's first row)."""
    ref = [i for i in indices if i < n_reference]
    tst = [i - n_reference for i in indices if i >= n_reference]
    return ref, tst


def per_variable_streams(key: str, reference: np.ndarray, test: np.ndarray, variables: Sequence[str],
                         run: StreamRun, *, threshold: float) -> DriftResult:
    """Stream every variable (reference, then test) through ``run``: one row per variable with its test
    detections and score; the score is the largest, the detection index the earliest in the test."""
    n_ref = reference.shape[0]
    rows = []
    for j, name in enumerate(variables):
        indices, score = run(np.concatenate([reference[:, j], test[:, j]]), n_ref)
        in_ref, in_test = split_detections(indices, n_ref)
        rows.append({"variable": name, "detections": in_test, "reference_detections": len(in_ref), "score": score})
    top = worst(rows, "score")
    first = first_detection([r["detections"][0] for r in rows if r["detections"]])
    return DriftResult(
        detector=key, drift=first >= 0, score=top["score"], threshold=threshold, detection_index=first,
        variables=tuple(variables), details={"per_variable": rows, "worst_variable": top["variable"]},
    )


def detections_sentence(result: DriftResult, lead: str) -> str:
    """``"<lead>: aeration_rate (2), pH (1)."`` for the variables with detections in the test window."""
    hits = [f"{r['variable']} ({len(r['detections'])})" for r in result.details["per_variable"] if r["detections"]]
    return f"{lead}: {', '.join(hits)}." if hits else ""

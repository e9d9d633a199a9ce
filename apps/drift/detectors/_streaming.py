"""Shared helpers of the streaming detectors: the reference warms the detector up, the test is scored."""
from __future__ import annotations

import numpy as np

from .base import NO_DETECTION


def first_detection(indices: list[int]) -> int:
    return min(indices) if indices else NO_DETECTION


def split_detections(indices: list[int], n_reference: int) -> tuple[list[int], list[int]]:
    """Detections in the reference part and in the test part (re-indexed from the test's first row)."""
    ref = [i for i in indices if i < n_reference]
    tst = [i - n_reference for i in indices if i >= n_reference]
    return ref, tst


def stream(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    return np.concatenate([reference, test])

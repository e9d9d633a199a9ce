"""ADWIN (adaptive windowing), wrapping river's implementation."""
from __future__ import annotations

from typing import Annotated

import numpy as np
from river import drift as river_drift

from ._streaming import first_detection, split_detections
from ._univariate import standardise, worst
from .base import Bounds, Detector, DriftResult, register


def adwin_run(values: np.ndarray, *, delta: float) -> tuple[list[int], list[float]]:
    """river's ADWIN over ``values``: detection indices and the size of each cut (|Δ mean|)."""
    detector = river_drift.ADWIN(delta=delta)
    indices: list[int] = []
    shifts: list[float] = []
    csum = np.concatenate([[0.0], np.cumsum(values)])
    width = 0  # ADWIN's window holds the last ``width`` values (it may also shrink without a flag)
    for i, x in enumerate(values.tolist()):
        detector.update(x)
        if detector.drift_detected:
            indices.append(i)
            # After a cut the window holds the recent part only; its mean against the mean of the
            # window before this value measures the change ADWIN found.
            before = (csum[i] - csum[i - width]) / width if width else 0.0
            shifts.append(abs(detector.estimation - before))
        width = int(detector.width)
    return indices, shifts


@register
class ADWIN(Detector):
    """ADWIN on each variable's stream (river ``drift.ADWIN``).

    The reference window is streamed first (warm-up), then the test window; only cuts inside the test
    window count. The score is the largest change of the window mean at a cut inside the test window,
    in reference standard deviations when ``standardise`` is on (0 when ADWIN never cuts).

    Parameters
    ----------
    delta
        Confidence of ADWIN's cut test: smaller values detect fewer, larger changes.
    standardise
        Z-score each variable with the reference's mean and SD before streaming (ADWIN's bound assumes
        values of order one).
    """

    key = "adwin"
    per_variable = True
    label = "ADWIN"
    kind = "univariate"
    mode = "streaming"
    description = "Keeps a window of recent values and cuts it when two sub-windows' means differ significantly."
    references = ("Bifet, A., Gavaldà, R. (2007). Learning from time-changing data with adaptive windowing. SIAM SDM.",
                  "river: drift.ADWIN (river 0.26.1).")

    def __init__(self, *, delta: Annotated[float, Bounds(gt=0, lt=1)] = 0.002, standardise: bool = True) -> None:
        self.delta = delta
        self.standardise = standardise

    def _detect(self, reference, test, variables):
        ref, tst = standardise(reference, test) if self.standardise else (reference, test)
        rows = []
        for j, name in enumerate(variables):
            indices, shifts = adwin_run(np.concatenate([ref[:, j], tst[:, j]]), delta=self.delta)
            in_ref, in_test = split_detections(indices, ref.shape[0])
            test_shifts = [s for i, s in zip(indices, shifts, strict=True) if i >= ref.shape[0]]
            rows.append({"variable": name, "detections": in_test, "reference_detections": len(in_ref),
                         "score": max(test_shifts, default=0.0)})
        top = worst(rows, "score")
        first = first_detection([r["detections"][0] for r in rows if r["detections"]])
        return DriftResult(
            detector=self.key, drift=first >= 0, score=top["score"], threshold=0.0, detection_index=first,
            variables=tuple(variables), details={"per_variable": rows, "worst_variable": top["variable"]},
        )

    def _explain_details(self, result):
        hits = [f"{r['variable']} ({len(r['detections'])})" for r in result.details["per_variable"] if r["detections"]]
        return f"ADWIN cut the window in: {', '.join(hits)}." if hits else ""

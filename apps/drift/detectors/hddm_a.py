"""HDDM-A (Hoeffding drift detection, average test) on a 0/1 event stream, wrapping river."""
from __future__ import annotations

from typing import Annotated

import numpy as np
from river.drift import binary as river_binary

from ._streaming import first_detection, split_detections
from .base import Bounds, Detector, DriftResult, register


def hddm_a_run(events: np.ndarray, *, drift_confidence: float, warning_confidence: float,
               two_sided: bool) -> tuple[list[int], list[int]]:
    """river's HDDM_A over ``events``: detection and warning indices."""
    detector = river_binary.HDDMA(drift_confidence=drift_confidence, warning_confidence=warning_confidence,
                                   two_sided_test=two_sided)
    drifts: list[int] = []
    warnings: list[int] = []
    for i, x in enumerate(events.astype(int).tolist()):
        detector.update(x)
        if detector.drift_detected:
            drifts.append(i)
        elif detector.warning_detected:
            warnings.append(i)
    return drifts, warnings


@register
class HDDMA(Detector):
    """HDDM-A on a 0/1 event stream (river ``drift.binary.HDDMA``).

    Events are 1 where the model erred: for a regression soft sensor, a lab sample whose residual
    exceeds k·σ of the reference residuals (``apps.drift.residual_events``). The reference events are
    streamed first; the score is the number of drift detections inside the test window.

    Parameters
    ----------
    drift_confidence
        Confidence level of the Hoeffding bound for a drift.
    warning_confidence
        Confidence level of the Hoeffding bound for a warning.
    two_sided
        Also detect a *decrease* of the event rate (the model got better), not only an increase.
    """

    key = "hddm_a"
    label = "HDDM-A"
    kind = "model-based"
    mode = "streaming"
    input = "events"
    description = "Watches a model's error-event rate with Hoeffding bounds; no distributional assumption."
    references = ("Frías-Blanco, I. et al. (2015). Online and non-parametric drift detection methods based on "
                  "Hoeffding's bounds. IEEE TKDE 27(3), 810-823.", "river: drift.binary.HDDMA (river 0.26.1).")

    def __init__(
        self, *, drift_confidence: Annotated[float, Bounds(gt=0, lt=1)] = 0.001,
        warning_confidence: Annotated[float, Bounds(gt=0, lt=1)] = 0.005, two_sided: bool = True,
    ) -> None:
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.two_sided = two_sided

    def _detect(self, reference, test, variables):
        n_ref = reference.shape[0]
        drifts, warnings = hddm_a_run(np.concatenate([reference[:, 0], test[:, 0]]),
                                      drift_confidence=self.drift_confidence,
                                      warning_confidence=self.warning_confidence, two_sided=self.two_sided)
        in_ref, in_test = split_detections(drifts, n_ref)
        _, warn_test = split_detections(warnings, n_ref)
        first = first_detection(in_test)
        return DriftResult(
            detector=self.key, drift=first >= 0, score=float(len(in_test)), threshold=0.0, detection_index=first,
            variables=tuple(variables),
            details={"detections": in_test, "warnings": warn_test, "reference_detections": len(in_ref),
                     "reference_event_rate": float(reference.mean()), "test_event_rate": float(test.mean())},
        )

    def _explain_details(self, result):
        d = result.details
        return (f"Error-event rate {d['reference_event_rate']:.1%} in the reference, {d['test_event_rate']:.1%} "
                f"in the test window ({len(d['detections'])} detections, {len(d['warnings'])} warnings).")

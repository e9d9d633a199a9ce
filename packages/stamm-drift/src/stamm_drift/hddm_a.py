"""HDDM-A (Hoeffding drift detection, average test): a stream state machine with river's ``HDDMA``
detections, in pure Python, and the detector on 0/1 error events."""
from __future__ import annotations

import math
from typing import Annotated

import numpy as np

from ._streaming import first_detection, split_detections
from .base import Bounds, Detector, DriftResult, register
from .errors import ParameterError


class HDDMAStream:
    """HDDM-A (Frías-Blanco et al. 2015, the A-test) over one stream of values in [0, 1].

    It keeps the running mean of the whole stream and two earlier cut points: the one with the lowest
    mean plus its Hoeffding bound (to see an increase) and the one with the highest mean minus its
    bound (to see a decrease). The mean since a cut point is compared with the cut point's mean by
    Hoeffding's inequality at ``drift_confidence`` (detection, restart on the next value) and at
    ``warning_confidence`` (warning). A decrease counts only when ``two_sided``. Same arithmetic as
    river 0.26.1's ``drift.binary.HDDMA`` (tested against it); the bound assumes values in [0, 1].
    """

    __slots__ = ("drift_confidence", "drift_detected", "n_detections", "two_sided", "warning_confidence",
                 "warning_detected", "_max_mean", "_max_n", "_min_mean", "_min_n", "_z_mean", "_z_n")

    def __init__(self, *, drift_confidence: float = 0.001, warning_confidence: float = 0.005,
                 two_sided: bool = True) -> None:
        for name, value in (("drift_confidence", drift_confidence), ("warning_confidence", warning_confidence)):
            if not 0 < value < 1:
                raise ParameterError(name, f"must be in (0, 1), got {value}")
        self.drift_confidence = float(drift_confidence)
        self.warning_confidence = float(warning_confidence)
        self.two_sided = bool(two_sided)
        self.n_detections = 0
        self._reset()

    def _reset(self) -> None:
        self._z_n = self._z_mean = 0.0
        self._min_n = self._min_mean = 0.0
        self._max_n = self._max_mean = 0.0
        self.drift_detected = self.warning_detected = False

    def _bound(self, n: float) -> float:
        return math.sqrt(1.0 / (2 * n) * math.log(1.0 / self.drift_confidence))

    def _gap_bound(self, n_cut: float, confidence: float) -> float:
        m = (self._z_n - n_cut) / n_cut * (1.0 / self._z_n)
        return math.sqrt(m / 2 * math.log(2.0 / confidence))

    def _increased(self, confidence: float) -> bool:
        if self._min_n == self._z_n:
            return False
        return self._z_mean - self._min_mean >= self._gap_bound(self._min_n, confidence)

    def _decreased(self, confidence: float) -> bool:
        if self._max_n == self._z_n:
            return False
        return self._max_mean - self._z_mean >= self._gap_bound(self._max_n, confidence)

    def update(self, x: float) -> bool:
        if self.drift_detected:
            self._reset()
        self._z_n += 1.0
        self._z_mean += (1.0 / self._z_n) * (x - self._z_mean)
        if self._min_n == 0:
            self._min_n, self._min_mean = self._z_n, self._z_mean
        if self._max_n == 0:
            self._max_n, self._max_mean = self._z_n, self._z_mean
        eps_z = self._bound(self._z_n)
        if self._min_mean + self._bound(self._min_n) >= self._z_mean + eps_z:
            self._min_n, self._min_mean = self._z_n, self._z_mean
        if self._max_mean - self._bound(self._max_n) <= self._z_mean - eps_z:
            self._max_n, self._max_mean = self._z_n, self._z_mean
        if self._increased(self.drift_confidence):
            self.drift_detected, self.warning_detected = True, False
        elif self._increased(self.warning_confidence):
            self.drift_detected, self.warning_detected = False, True
        else:
            self.drift_detected = self.warning_detected = False
        if self.two_sided:
            if self._decreased(self.drift_confidence):
                self.drift_detected = True
            elif self._decreased(self.warning_confidence):
                self.warning_detected = True
        if self.drift_detected:
            self.n_detections += 1
        return self.drift_detected


def hddm_a_run(events: np.ndarray, *, drift_confidence: float, warning_confidence: float,
               two_sided: bool) -> tuple[list[int], list[int]]:
    """Detection and warning indices of :class:`HDDMAStream` over ``events``."""
    stream = HDDMAStream(drift_confidence=drift_confidence, warning_confidence=warning_confidence,
                         two_sided=two_sided)
    drifts: list[int] = []
    warnings: list[int] = []
    for i, x in enumerate(np.asarray(events, dtype=float).tolist()):
        if stream.update(x):
            drifts.append(i)
        elif stream.warning_detected:
            warnings.append(i)
    return drifts, warnings


@register
class HDDMA(Detector):
    """HDDM-A on a 0/1 event stream (:class:`HDDMAStream`; river's ``drift.binary.HDDMA`` detections).

    Events are 1 where the model erred: for a regression soft sensor, a lab sample whose residual
    exceeds k·σ of the reference residuals (:mod:`stamm_drift.residual_events`). The reference events are
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
                  "Hoeffding's bounds. IEEE TKDE 27(3), 810-823.",
                  "river: drift.binary.HDDMA (river 0.26.1), whose detections HDDMAStream reproduces.")

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

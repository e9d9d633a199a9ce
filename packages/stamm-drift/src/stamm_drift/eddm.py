"""EDDM (early drift detection) on a 0/1 event stream: a state machine with river's ``EDDM`` detections
that also exposes its level, and the detector."""
from __future__ import annotations

import math
from typing import Annotated

import numpy as np

from ._streaming import first_detection, split_detections
from .base import Bounds, Detector, DriftResult, register
from .errors import ParameterError


def check_levels(*, warning_level: float, drift_level: float) -> None:
    """The drift level is the lower one: the level falls through the warning level first."""
    for name, value in (("warning_level", warning_level), ("drift_level", drift_level)):
        if not 0 < value <= 1:
            raise ParameterError(name, f"must be in (0, 1], got {value}")
    if drift_level > warning_level:
        raise ParameterError("drift_level", f"must not exceed warning_level ({warning_level})")


class EDDMStream:
    """EDDM over one 0/1 error stream, one event at a time (river 0.26.1's ``drift.binary.EDDM``).

    The distance between consecutive errors is tracked with Welford's mean and variance (ddof = 1);
    once more than ``min_errors`` values were seen, the level (p′ + 2s′) / max(p′ + 2s′) is computed
    at each error that does not set a new maximum. Below ``drift_level`` it is a detection (the
    detector restarts on the next event), below ``warning_level`` a warning (``warning_detected`` holds
    until a later error's level clears it). ``level`` is this event's level, NaN where none was computed.
    """

    __slots__ = ("drift_detected", "drift_level", "level", "min_errors", "n_detections", "warning_detected",
                 "warning_level", "_count", "_last_error", "_m2", "_mean", "_n", "_n_errors", "_p2s_max")

    def __init__(self, *, warning_level: float = 0.95, drift_level: float = 0.90, min_errors: int = 30) -> None:
        check_levels(warning_level=warning_level, drift_level=drift_level)
        if int(min_errors) != min_errors or min_errors < 1:
            raise ParameterError("min_errors", f"must be an integer ≥ 1, got {min_errors!r}")
        self.warning_level = float(warning_level)
        self.drift_level = float(drift_level)
        self.min_errors = int(min_errors)
        self.n_detections = 0
        self._reset()

    def _reset(self) -> None:
        self._n = self._last_error = self._n_errors = self._count = 0
        self._mean = self._m2 = 0.0
        self._p2s_max = -1.0
        self.level = math.nan
        self.drift_detected = self.warning_detected = False

    def update(self, x: float) -> bool:
        if self.drift_detected:
            self._reset()
        self._n += 1
        self.level = math.nan
        if x == 1:
            self._n_errors += 1
            distance = self._n - self._last_error
            mean_old = self._mean  # river's stats.Var (ddof=1), operation for operation
            self._count += 1
            self._mean += (1.0 / self._count) * (distance - self._mean)
            self._m2 += (distance - mean_old) * (distance - self._mean)
            if self._n > self.min_errors:
                var = self._m2 / (self._count - 1) if self._count > 1 else 0.0
                p2s = self._mean + 2 * var**0.5
                if p2s > self._p2s_max:
                    self._p2s_max = p2s
                elif self._n_errors > self.min_errors:
                    self.level = p2s / self._p2s_max
                    if self.level < self.drift_level:
                        self.drift_detected = True
                        self.n_detections += 1
                    else:  # the warning holds until an error's level says otherwise, as in river
                        self.warning_detected = self.level < self.warning_level
            self._last_error = self._n
        return self.drift_detected


def eddm_run(events: np.ndarray, *, warning_level: float, drift_level: float, min_errors: int
             ) -> tuple[list[int], list[int], np.ndarray]:
    """Detections, warnings and the EDDM level after each event (NaN where none): :class:`EDDMStream`."""
    stream = EDDMStream(warning_level=warning_level, drift_level=drift_level, min_errors=min_errors)
    drifts: list[int] = []
    warnings: list[int] = []
    level = np.full(events.size, np.nan)
    for i, x in enumerate(events.astype(int).tolist()):
        if stream.update(x):
            drifts.append(i)
        elif stream.level < warning_level:  # this event's level (NaN where none: no warning)
            warnings.append(i)
        level[i] = stream.level
    return drifts, warnings, level


@register
class EDDM(Detector):
    """EDDM on a 0/1 event stream (the same detections as river's ``drift.binary.EDDM``).

    EDDM watches the distance between consecutive error events: when errors come closer together, the
    level (p' + 2s') / max(p' + 2s') falls; below ``drift_level`` it is a drift. The score is
    1 − the lowest level inside the test window, so drift ⇔ score > 1 − drift_level.

    Parameters
    ----------
    warning_level
        Level below which a warning is raised (river's alpha).
    drift_level
        Level below which a drift is detected (river's beta); must not exceed warning_level.
    min_errors
        Errors (and values) to see before a drift may be declared (river's warm_start).
    """

    key = "eddm"
    label = "EDDM"
    kind = "model-based"
    mode = "streaming"
    input = "events"
    description = "Watches the spacing of a model's error events; errors coming closer together signal drift."
    references = ("Baena-García, M. et al. (2006). Early drift detection method. ECML PKDD workshop on "
                  "knowledge discovery from data streams.", "river: drift.binary.EDDM (river 0.26.1).")

    def __init__(
        self, *, warning_level: Annotated[float, Bounds(gt=0, le=1)] = 0.95,
        drift_level: Annotated[float, Bounds(gt=0, le=1)] = 0.90, min_errors: Annotated[int, Bounds(ge=1)] = 30,
    ) -> None:
        check_levels(warning_level=warning_level, drift_level=drift_level)
        self.warning_level = warning_level
        self.drift_level = drift_level
        self.min_errors = min_errors

    def _detect(self, reference, test, variables):
        n_ref = reference.shape[0]
        drifts, warnings, level = eddm_run(np.concatenate([reference[:, 0], test[:, 0]]),
                                           warning_level=self.warning_level, drift_level=self.drift_level,
                                           min_errors=self.min_errors)
        in_ref, in_test = split_detections(drifts, n_ref)
        _, warn_test = split_detections(warnings, n_ref)
        test_level = level[n_ref:]
        lowest = float(np.nanmin(test_level)) if np.isfinite(test_level).any() else 1.0
        first = first_detection(in_test)
        return DriftResult(
            detector=self.key, drift=first >= 0, score=1.0 - lowest, threshold=1.0 - self.drift_level,
            detection_index=first, variables=tuple(variables),
            details={"detections": in_test, "warnings": warn_test, "reference_detections": len(in_ref),
                     "lowest_level": lowest, "test_errors": int(test.sum()), "reference_errors": int(reference.sum())},
        )

    def _explain_details(self, result):
        d = result.details
        return (f"{d['test_errors']} error events in the test window; the EDDM level fell to {d['lowest_level']:.3f} "
                f"(drift below {self.drift_level}).")

"""EDDM (early drift detection) on a 0/1 event stream: a port of river's ``EDDM`` exposing its level."""
from __future__ import annotations

from typing import Annotated

import numpy as np

from ._streaming import first_detection, split_detections
from .base import Bounds, Detector, DriftResult, ParameterError, register


def eddm_run(events: np.ndarray, *, warning_level: float, drift_level: float, min_errors: int
             ) -> tuple[list[int], list[int], np.ndarray]:
    """Detections, warnings and the EDDM level (p'+2s')/(p'+2s')_max after each event (NaN before).

    Same arithmetic as river 0.26.1 (``drift.binary.EDDM(warm_start, alpha, beta)``): the distance
    between consecutive errors is tracked with Welford's mean and variance; a drift is flagged when the
    level falls below ``drift_level`` once more than ``min_errors`` errors were seen; reset on the next value.
    """
    n = 0
    last_error = 0
    n_errors = 0
    count, mean, m2 = 0, 0.0, 0.0
    p2s_max = -1.0
    detected = False
    drifts: list[int] = []
    warnings: list[int] = []
    level = np.full(events.size, np.nan)
    for i, x in enumerate(events.astype(int).tolist()):
        if detected:
            n, last_error, n_errors, count, mean, m2, p2s_max, detected = 0, 0, 0, 0, 0.0, 0.0, -1.0, False
        n += 1
        if x == 1:
            n_errors += 1
            distance = n - last_error
            mean_old = mean  # river's stats.Var (ddof=1), operation for operation
            count += 1
            mean += (1.0 / count) * (distance - mean)
            m2 += (distance - mean_old) * (distance - mean)
            if n > min_errors:
                var = m2 / (count - 1) if count > 1 else 0.0
                p2s = mean + 2 * var**0.5
                if p2s > p2s_max:
                    p2s_max = p2s
                elif n_errors > min_errors:
                    level[i] = p2s / p2s_max
                    if level[i] < drift_level:
                        detected = True
                        drifts.append(i)
                    elif level[i] < warning_level:
                        warnings.append(i)
            last_error = n
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
        if drift_level > warning_level:
            raise ParameterError("drift_level", f"must not exceed warning_level ({warning_level})")
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

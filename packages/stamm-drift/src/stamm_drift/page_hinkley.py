"""Page-Hinkley test: a stream state machine with river's ``drift.PageHinkley`` detections, and the detector."""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np

from ._streaming import detections_sentence, per_variable_streams
from ._univariate import standardise
from .base import Bounds, Detector, register
from .errors import ParameterError


class PageHinkleyStream:
    """The Page-Hinkley test over one stream, one value at a time (river 0.26.1's ``drift.PageHinkley``).

    It keeps a running mean, two faded cumulative sums of the deviation from it (for an increase:
    ``α·S + (x − mean) − δ``; for a decrease: ``α·S + (x − mean) + δ``) and their extremes. Once
    ``min_instances`` values were seen, the statistic is how far a sum has left its extreme (``up``,
    ``down`` or the larger of both); above ``threshold`` (λ) it is a detection, and the test restarts
    on the next value. ``update`` returns whether this value was a detection; ``statistic`` holds the
    value's statistic (0 while warming up), so a caller can say how far past λ the stream went.
    """

    __slots__ = ("alpha", "delta", "direction", "drift_detected", "min_instances", "n_detections", "statistic",
                 "threshold", "_max_dec", "_mean", "_min_inc", "_n", "_sum_dec", "_sum_inc")

    def __init__(self, *, delta: float = 0.005, threshold: float = 50.0, alpha: float = 1 - 1e-4,
                 min_instances: int = 30, direction: str = "both") -> None:
        if direction not in ("both", "up", "down"):
            raise ParameterError("direction", f"expected 'both', 'up' or 'down', got {direction!r}")
        if not 0 < alpha <= 1:
            raise ParameterError("alpha", f"must be in (0, 1], got {alpha}")
        if not threshold > 0:
            raise ParameterError("threshold", f"must be > 0, got {threshold}")
        if int(min_instances) != min_instances or min_instances < 1:
            raise ParameterError("min_instances", f"must be an integer ≥ 1, got {min_instances!r}")
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.min_instances = int(min_instances)
        self.direction = direction
        self.n_detections = 0
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._sum_inc = self._sum_dec = 0.0
        self._min_inc, self._max_dec = float("inf"), -1.0
        self.statistic = 0.0
        self.drift_detected = False

    def update(self, x: float) -> bool:
        if self.drift_detected:
            self._reset()
        self._n += 1
        self._mean += (1.0 / self._n) * (x - self._mean)
        dev = x - self._mean
        self._sum_inc = self.alpha * self._sum_inc + dev - self.delta
        self._sum_dec = self.alpha * self._sum_dec + dev + self.delta
        if self._sum_inc < self._min_inc:
            self._min_inc = self._sum_inc
        if self._sum_dec > self._max_dec:
            self._max_dec = self._sum_dec
        if self._n < self.min_instances:
            self.statistic = 0.0
            return False
        up, down = self._sum_inc - self._min_inc, self._max_dec - self._sum_dec
        self.statistic = up if self.direction == "up" else down if self.direction == "down" else max(up, down)
        if self.statistic > self.threshold:
            self.drift_detected = True
            self.n_detections += 1
        return self.drift_detected


def page_hinkley_run(
    values: np.ndarray, *, delta: float, threshold: float, alpha: float, min_instances: int = 30,
    direction: str = "both",
) -> tuple[list[int], np.ndarray]:
    """Detection indices and the PH statistic after each value (:class:`PageHinkleyStream` over ``values``)."""
    stream = PageHinkleyStream(delta=delta, threshold=threshold, alpha=alpha, min_instances=min_instances,
                               direction=direction)
    indices: list[int] = []
    statistic = np.zeros(values.size)
    for i, x in enumerate(values.tolist()):
        if stream.update(x):
            indices.append(i)
        statistic[i] = stream.statistic
    return indices, statistic


@register
class PageHinkley(Detector):
    """Page-Hinkley test on each variable's stream (identical detections to river's ``PageHinkley``).

    The reference is streamed first, then the test window; only detections inside the test window
    count. The score is the largest PH statistic inside the test window divided by λ, so a score
    above 1 is a detection.

    Parameters
    ----------
    delta
        Magnitude of change tolerated before the cumulative sums grow (δ).
    threshold
        Detection threshold λ on the cumulative deviation (in reference SDs when standardised).
    alpha
        Forgetting factor of the cumulative sums (1 = no forgetting).
    min_instances
        Values seen before a detection is allowed.
    direction
        Watch increases ("up"), decreases ("down") or both.
    standardise
        Z-score each variable with the reference's mean and SD first, so that λ does not depend on units.
    """

    key = "page_hinkley"
    per_variable = True
    label = "Page-Hinkley"
    kind = "univariate"
    mode = "streaming"
    description = "A CUSUM-type test on the deviation from the running mean; flags sustained shifts."
    references = ("Page, E. S. (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.",
                  "river: drift.PageHinkley (river 0.26.1).")

    def __init__(
        self, *, delta: Annotated[float, Bounds(ge=0)] = 0.005, threshold: Annotated[float, Bounds(gt=0)] = 50.0,
        alpha: Annotated[float, Bounds(gt=0, le=1)] = 1 - 1e-4, min_instances: Annotated[int, Bounds(ge=1)] = 30,
        direction: Literal["both", "up", "down"] = "both", standardise: bool = True,
    ) -> None:
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.min_instances = min_instances
        self.direction = direction
        self.standardise = standardise

    def _detect(self, reference, test, variables):
        ref, tst = standardise(reference, test) if self.standardise else (reference, test)

        def run(values: np.ndarray, n_ref: int) -> tuple[list[int], float]:
            indices, stat = page_hinkley_run(values, delta=self.delta, threshold=self.threshold, alpha=self.alpha,
                                             min_instances=self.min_instances, direction=self.direction)
            return indices, float(stat[n_ref:].max() / self.threshold)

        return per_variable_streams(self.key, ref, tst, variables, run, threshold=1.0)

    def _explain_details(self, result):
        return detections_sentence(result, "Page-Hinkley detections in")

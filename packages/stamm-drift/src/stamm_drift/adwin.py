"""ADWIN (adaptive windowing, Bifet and Gavaldà 2007): a stream state machine and the detector.

:class:`AdwinStream` is ADWIN2 — the window kept as an exponential histogram — with river's
parameters and arithmetic, so it flags the same values as river 0.26.1's ``drift.ADWIN`` (tested
against river), in pure Python: the package needs no river.
"""
from __future__ import annotations

import math
from typing import Annotated

import numpy as np

from ._streaming import detections_sentence, per_variable_streams
from ._univariate import standardise
from .base import Bounds, Detector, register
from .errors import ParameterError


class AdwinStream:
    """ADWIN over one stream of numbers, one value at a time.

    The window is an exponential histogram: level ``i`` holds at most ``max_buckets`` summaries
    (sum, variance) of ``2**i`` consecutive values, oldest first, and higher levels hold older values.
    Every ``clock`` values (once the window is longer than ``grace_period``) each boundary between
    summaries is tried as a cut into an older part W0 and a newer part W1 (both at least
    ``min_window_length`` long); when the means differ by more than the bound

        ε = √(2·m·σ²_W·δ′) + ⅔·δ′·m,   m = 1/(n0 − L + 1) + 1/(n1 − L + 1),   δ′ = ln(2·ln|W| / δ)

    the oldest summary is dropped and the check repeats. A detection empties the window before the
    next value, as river does. ``update`` returns whether this value was a detection.
    """

    __slots__ = ("clock", "delta", "drift_detected", "grace_period", "max_buckets", "min_window_length",
                 "n_detections", "total", "variance", "width", "_levels", "_tick")

    def __init__(self, *, delta: float = 0.002, clock: int = 32, max_buckets: int = 5, min_window_length: int = 5,
                 grace_period: int = 10) -> None:
        if not 0 < delta < 1:
            raise ParameterError("delta", f"must be in (0, 1), got {delta}")
        for name, value, low in (("clock", clock, 1), ("max_buckets", max_buckets, 2),
                                 ("min_window_length", min_window_length, 1), ("grace_period", grace_period, 1)):
            if int(value) != value or value < low:
                raise ParameterError(name, f"must be an integer ≥ {low}, got {value!r}")
        self.delta = float(delta)
        self.clock = int(clock)
        self.max_buckets = int(max_buckets)
        self.min_window_length = int(min_window_length)
        self.grace_period = int(grace_period)
        self.n_detections = 0
        self._reset()

    def _reset(self) -> None:
        self._levels: list[list[tuple[float, float]]] = [[]]
        self.total = 0.0
        self.variance = 0.0  # sum of squared deviations in the window (width × variance)
        self.width = 0
        self._tick = 0
        self.drift_detected = False

    @property
    def estimation(self) -> float:
        """Mean of the values in the window (0 for an empty window)."""
        return self.total / self.width if self.width else 0.0

    def update(self, x: float) -> bool:
        if self.drift_detected:
            self._reset()
        x = float(x)
        width = self.width = self.width + 1
        if width > 1:  # Welford's update of the sum of squared deviations
            d = x - self.total / (width - 1)
            self.variance += (width - 1) * d * d / width
        self.total += x
        newest = self._levels[0]
        newest.append((x, 0.0))
        if len(newest) > self.max_buckets:
            self._merge()
        self._tick += 1
        if self._tick % self.clock or width <= self.grace_period:
            return False
        detected = False
        while self._cut_once():
            detected = True
        if detected:
            self.n_detections += 1
        self.drift_detected = detected
        return detected

    def _merge(self) -> None:
        """Merge the two oldest summaries of a full level into the next level, as far up as needed."""
        levels = self._levels
        level = 0
        while len(levels[level]) > self.max_buckets:
            (t0, v0), (t1, v1) = levels[level][0], levels[level][1]
            size = 1 << level
            mu0, mu1 = t0 / size, t1 / size
            merged = (t0 + t1, v0 + v1 + size * 0.5 * (mu0 - mu1) * (mu0 - mu1))
            del levels[level][:2]
            if level + 1 == len(levels):
                levels.append([])
            levels[level + 1].append(merged)
            level += 1

    def _cut_once(self) -> bool:
        """Try every boundary from the oldest; on the first significant one drop the oldest summary.

        The bound's parts that do not depend on the boundary are computed once per pass, each with the
        same operations in the same order as river, so the decisions are the same to the last bit.
        """
        width, low = self.width, self.min_window_length
        delta_prime = math.log(2.0 * math.log(width) / self.delta)
        mean_square = self.variance / width
        third = 2.0 / 3.0 * delta_prime
        n0, n1, u0, u1 = 0, width, 0.0, self.total
        levels = self._levels
        for level in range(len(levels) - 1, -1, -1):
            size = 1 << level
            entries = levels[level] if level else levels[0][:-1]  # the newest value is never cut off
            for total, _ in entries:
                n0 += size
                n1 -= size
                u0 += total
                u1 -= total
                if n0 >= low and n1 >= low:
                    m_recip = 1.0 / (n0 - low + 1.0) + 1.0 / (n1 - low + 1.0)
                    spread = 2.0 * m_recip * mean_square * delta_prime
                    # a tiny negative variance left by rounding (or NaN) never cuts, as in river
                    if spread >= 0.0 and abs(u0 / n0 - u1 / n1) > math.sqrt(spread) + third * m_recip:
                        self._drop_oldest()
                        return True
        return False

    def _drop_oldest(self) -> None:
        levels = self._levels
        last = len(levels) - 1
        total, variance = levels[last][0]
        size = 1 << last
        mu = total / size
        self.width -= size
        self.total -= total
        mu_window = self.total / self.width
        self.variance -= variance + size * self.width * (mu - mu_window) * (mu - mu_window) / (size + self.width)
        del levels[last][0]
        if not levels[last]:
            levels.pop()


def adwin_run(values: np.ndarray, *, delta: float) -> tuple[list[int], list[float]]:
    """ADWIN over ``values``: detection indices and the size of each cut (|Δ mean|)."""
    stream = AdwinStream(delta=delta)
    indices: list[int] = []
    shifts: list[float] = []
    csum = np.concatenate([[0.0], np.cumsum(values)])
    width = 0  # ADWIN's window holds the last ``width`` values (it may also shrink without a flag)
    for i, x in enumerate(values.tolist()):
        if stream.update(x):
            indices.append(i)
            # After a cut the window holds the recent part only; its mean against the mean of the
            # window before this value measures the change ADWIN found.
            before = (csum[i] - csum[i - width]) / width if width else 0.0
            shifts.append(abs(stream.estimation - before))
        width = stream.width
    return indices, shifts


@register
class ADWIN(Detector):
    """ADWIN on each variable's stream (:class:`AdwinStream`; river's ``drift.ADWIN`` detections).

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
                  "river: drift.ADWIN (river 0.26.1), whose detections AdwinStream reproduces.")

    def __init__(self, *, delta: Annotated[float, Bounds(gt=0, lt=1)] = 0.002, standardise: bool = True) -> None:
        self.delta = delta
        self.standardise = standardise

    def _detect(self, reference, test, variables):
        ref, tst = standardise(reference, test) if self.standardise else (reference, test)

        def run(values: np.ndarray, n_ref: int) -> tuple[list[int], float]:
            indices, shifts = adwin_run(values, delta=self.delta)
            return indices, max((s for i, s in zip(indices, shifts, strict=True) if i >= n_ref), default=0.0)

        return per_variable_streams(self.key, ref, tst, variables, run, threshold=0.0)

    def _explain_details(self, result):
        return detections_sentence(result, "ADWIN cut the window in")

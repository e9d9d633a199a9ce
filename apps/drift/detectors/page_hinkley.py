"""Page-Hinkley test, a line-for-line port of river's ``drift.PageHinkley`` that also exposes its statistic."""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np

from ._streaming import first_detection, split_detections
from ._univariate import standardise, worst
from .base import Bounds, Detector, DriftResult, register


def page_hinkley_run(
    values: np.ndarray, *, delta: float, threshold: float, alpha: float, min_instances: int = 30,
    direction: str = "both",
) -> tuple[list[int], np.ndarray]:
    """Detection indices and the PH statistic after each value, exactly as river 0.26.1 computes them.

    river keeps a running mean, two faded cumulative sums (increase / decrease) and their extremes;
    a change is flagged when a sum departs from its extreme by more than ``threshold`` (λ), and the
    detector resets on the next value. The per-row statistic is returned so the score can say *how far*
    past λ the stream went.
    """
    n = 0
    mean = 0.0
    sum_inc = sum_dec = 0.0
    min_inc, max_dec = float("inf"), -1.0
    detected = False
    indices: list[int] = []
    statistic = np.zeros(values.size)
    for i, x in enumerate(values.tolist()):
        if detected:
            n, mean, sum_inc, sum_dec, min_inc, max_dec, detected = 0, 0.0, 0.0, 0.0, float("inf"), -1.0, False
        n += 1
        mean += (1.0 / n) * (x - mean)
        dev = x - mean
        sum_inc = alpha * sum_inc + dev - delta
        sum_dec = alpha * sum_dec + dev + delta
        if sum_inc < min_inc:
            min_inc = sum_inc
        if sum_dec > max_dec:
            max_dec = sum_dec
        if n >= min_instances:
            up, down = sum_inc - min_inc, max_dec - sum_dec
            stat = {"up": up, "down": down}.get(direction, max(up, down))
            statistic[i] = stat
            if stat > threshold:
                detected = True
                indices.append(i)
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
        n_ref = ref.shape[0]
        rows = []
        for j, name in enumerate(variables):
            indices, stat = page_hinkley_run(
                np.concatenate([ref[:, j], tst[:, j]]), delta=self.delta, threshold=self.threshold,
                alpha=self.alpha, min_instances=self.min_instances, direction=self.direction,
            )
            in_ref, in_test = split_detections(indices, n_ref)
            rows.append({"variable": name, "detections": in_test, "reference_detections": len(in_ref),
                         "score": float(stat[n_ref:].max() / self.threshold)})
        top = worst(rows, "score")
        first = first_detection([r["detections"][0] for r in rows if r["detections"]])
        return DriftResult(
            detector=self.key, drift=first >= 0, score=top["score"], threshold=1.0, detection_index=first,
            variables=tuple(variables), details={"per_variable": rows, "worst_variable": top["variable"]},
        )

    def _explain_details(self, result):
        hits = [f"{r['variable']} ({len(r['detections'])})" for r in result.details["per_variable"] if r["detections"]]
        return f"Page-Hinkley detections in: {', '.join(hits)}." if hits else ""

"""Population Stability Index per variable, on quantile bins of the reference."""
from __future__ import annotations

from typing import Annotated

import numpy as np

from ._univariate import worst
from .base import Bounds, Detector, DriftResult, register

#: Default floor on a bin's share, so that an empty bin gives a large but finite term (a common PSI
#: convention).
EPSILON = 1e-4


def psi_bins(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges: the reference's quantiles at 1/bins … (bins−1)/bins, duplicates merged."""
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def psi_value(reference: np.ndarray, test: np.ndarray, bins: int, epsilon: float = EPSILON,
              ) -> tuple[float, np.ndarray, np.ndarray]:
    """PSI = Σ (t − r)·ln(t / r) over bins ``(−∞, e₁], (e₁, e₂], …, (e_k, ∞)``, shares floored at
    ``epsilon``; also the two (unfloored) shares."""
    edges = psi_bins(reference, bins)
    k = edges.size + 1
    r = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=k) / reference.size
    t = np.bincount(np.searchsorted(edges, test, side="left"), minlength=k) / test.size
    r_, t_ = np.maximum(r, epsilon), np.maximum(t, epsilon)
    return float(np.sum((t_ - r_) * np.log(t_ / r_))), r, t


@register
class PSI(Detector):
    """Population Stability Index of each variable.

    The reference is cut into ``bins`` quantile bins (ties merged); PSI sums (t − r)·ln(t/r) over the
    bins' shares, with shares floored at ``epsilon``. The score is the largest PSI over the variables.

    Parameters
    ----------
    threshold
        PSI above which a variable has drifted (0.1 = moderate shift, 0.25 = major shift by convention).
    bins
        Number of quantile bins cut on the reference window.
    epsilon
        Floor on a bin's share in either window, so that an empty bin adds a large but finite term.
    """

    key = "psi"
    per_variable = True
    label = "Population Stability Index"
    kind = "univariate"
    mode = "batch"
    description = "Compares each variable's binned distribution with the reference's; robust and easy to read."
    references = ("Yurdakul, B. (2018). Statistical properties of population stability index. "
                  "PhD thesis, Western Michigan University.",)

    def __init__(
        self, *, threshold: Annotated[float, Bounds(gt=0)] = 0.1, bins: Annotated[int, Bounds(ge=2, le=1000)] = 10,
        epsilon: Annotated[float, Bounds(gt=0, lt=1)] = EPSILON,
    ) -> None:
        self.threshold = threshold
        self.bins = bins
        self.epsilon = epsilon

    def _detect(self, reference, test, variables):
        rows = []
        for j, name in enumerate(variables):
            value, r, t = psi_value(reference[:, j], test[:, j], self.bins, self.epsilon)
            rows.append({"variable": name, "score": value, "bins": int(r.size), "drift": value > self.threshold})
        top = worst(rows, "score")
        return DriftResult(
            detector=self.key, drift=any(r["drift"] for r in rows), score=top["score"], threshold=self.threshold,
            variables=tuple(variables), details={"per_variable": rows, "worst_variable": top["variable"]},
        )

    def component_scores(self, reference, test):
        return np.array([psi_value(reference[:, j], test[:, j], self.bins, self.epsilon)[0]
                         for j in range(reference.shape[1])])

    def _explain_details(self, result):
        drifted = [r["variable"] for r in result.details["per_variable"] if r["drift"]]
        head = f"Worst variable: {result.details['worst_variable']} (PSI {result.score:.3g})."
        return head + (f" Above threshold: {', '.join(drifted)}." if drifted else "")

"""Two-sample Kolmogorov–Smirnov test per variable (scipy), Bonferroni-corrected over variables."""
from __future__ import annotations

import math
from typing import Annotated

import numpy as np

from ._univariate import worst
from .base import Bounds, Detector, DriftResult, register


def ks_statistic(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The KS statistic D of every column, vectorised (same value as ``scipy.stats.ks_2samp``)."""
    out = np.empty(reference.shape[1])
    for j in range(reference.shape[1]):
        a, b = np.sort(reference[:, j]), np.sort(test[:, j])
        grid = np.concatenate([a, b])
        cdf_a = np.searchsorted(a, grid, side="right") / a.size
        cdf_b = np.searchsorted(b, grid, side="right") / b.size
        out[j] = np.max(np.abs(cdf_a - cdf_b))
    return out


def ks_critical_value(alpha: float, n: int, m: int) -> float:
    """The asymptotic critical D at level ``alpha``: c(α)·√((n+m)/(n·m)), c(α) = √(−ln(α/2)/2)."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


@register
class KS(Detector):
    """Two-sample Kolmogorov–Smirnov test of each variable.

    The score is the largest KS statistic D over the variables; the p-value is the smallest
    per-variable p-value times the number of variables (Bonferroni), and drift means that p < alpha.
    The threshold shown is the asymptotic critical D at the corrected level.

    Parameters
    ----------
    alpha
        Significance level of the family of tests (Bonferroni-corrected over the variables).
    """

    key = "ks"
    per_variable = True
    label = "Kolmogorov–Smirnov test"
    kind = "univariate"
    mode = "batch"
    description = "Largest gap between the reference's and the test window's cumulative distributions, per variable."
    references = ("Massey, F. J. (1951). The Kolmogorov-Smirnov test for goodness of fit. JASA 46(253), 68-78.",)

    def __init__(self, *, alpha: Annotated[float, Bounds(gt=0, lt=1)] = 0.05) -> None:
        self.alpha = alpha

    def _detect(self, reference, test, variables):
        from scipy import stats  # noqa: PLC0415 - costly to import; only this detector's runs need it (disagreement.py)

        d = len(variables)
        rows = []
        for j, name in enumerate(variables):
            res = stats.ks_2samp(reference[:, j], test[:, j])
            rows.append({"variable": name, "score": float(res.statistic), "p_value": float(res.pvalue)})
        top = worst(rows, "score")
        p_adj = min(1.0, min(r["p_value"] for r in rows) * d)
        return DriftResult(
            detector=self.key, drift=p_adj < self.alpha, score=top["score"],
            threshold=ks_critical_value(self.alpha / d, reference.shape[0], test.shape[0]), p_value=p_adj,
            variables=tuple(variables),
            details={"per_variable": rows, "worst_variable": top["variable"], "correction": "bonferroni"},
        )

    def component_scores(self, reference, test):
        return ks_statistic(reference, test)

    def _explain_details(self, result):
        return (f"Worst variable: {result.details['worst_variable']}, whose reference and test empirical CDFs "
                f"are up to {result.score:.2f} apart.")

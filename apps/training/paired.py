"""The paired test that judges a challenger against its champion on the lab samples both scored (framework-free).

For each lab sample i both estimators scored, e_i = lab − estimate (the residual). The loss differential of
squared errors is d_i = e_champion,i² − e_challenger,i²: positive where the challenger was closer. RMSE compares
the same losses, so the test and the figures never disagree in direction.

- **Decision**: the one-sided Wilcoxon signed-rank test of H0 "d is symmetric about 0" against H1 "d tends to
  be positive" (scipy.stats.wilcoxon, ``alternative="greater"``; zero differences dropped, Wilcox's method;
  exact distribution for small samples without ties, the normal approximation otherwise). The challenger is
  better with confidence c when p < 1 − c and at least ``min_samples`` pairs were compared.
- **Also reported**: the Diebold–Mariano statistic on the same d, DM = mean(d) / sqrt(var(d) / n) (variance
  with n − 1; lag-0, as lab samples are hours apart) with its one-sided normal p-value. It does not decide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_CONFIDENCE = 0.95
DEFAULT_MIN_SAMPLES = 10


@dataclass(frozen=True)
class PairedVerdict:
    n: int
    champion_rmse: float | None
    challenger_rmse: float | None
    champion_bias: float | None
    challenger_bias: float | None
    wilcoxon_statistic: float | None  # W+, the sum of the ranks of the positive differences
    wilcoxon_p: float | None
    dm_statistic: float | None
    dm_p: float | None
    confidence: float
    min_samples: int
    challenger_better: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rmse(e: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(e * e))) if e.size else None


def _stats():
    """``scipy.stats``, imported on first use: the import costs ~0.8 s of CPU, and this module is imported
    when Django sets up (by the training tasks), in every web, worker and ``manage.py`` process."""
    from scipy import stats  # noqa: PLC0415

    return stats


def diebold_mariano(d: np.ndarray) -> tuple[float | None, float | None]:
    """DM statistic and its one-sided p-value (H1: mean(d) > 0); None when undefined (n < 2 or var(d) = 0)."""
    n = d.size
    if n < 2:
        return None, None
    variance = float(np.var(d, ddof=1))
    if variance <= 0:
        return None, None
    statistic = float(np.mean(d) / math.sqrt(variance / n))
    return statistic, float(_stats().norm.sf(statistic))


def wilcoxon_greater(d: np.ndarray) -> tuple[float | None, float | None]:
    """W+ and the one-sided p-value (H1: d tends to be positive); None when every difference is zero."""
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return None, None
    result = _stats().wilcoxon(nonzero, alternative="greater", zero_method="wilcox")
    return float(result.statistic), float(result.pvalue)


def paired_compare(
    champion_residuals: Any,
    challenger_residuals: Any,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> PairedVerdict:
    """Compare two estimators' residuals on the same lab samples (arrays of equal length, paired by index)."""
    a = np.asarray(champion_residuals, dtype=float)
    b = np.asarray(challenger_residuals, dtype=float)
    if a.shape != b.shape:
        raise ValueError("the residuals must be paired (same length)")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a * a - b * b
    n = int(d.size)
    w, wp = wilcoxon_greater(d)
    dm, dmp = diebold_mariano(d)
    alpha = 1.0 - confidence
    if n < min_samples:
        better, reason = False, f"{n} paired lab sample(s), fewer than the {min_samples} required"
    elif wp is None:
        better, reason = False, "the two estimators made the same errors"
    elif wp < alpha:
        better, reason = True, f"challenger better: Wilcoxon signed-rank p = {wp:.4g} < {alpha:.4g} on {n} samples"
    else:
        better, reason = False, f"not shown better: Wilcoxon signed-rank p = {wp:.4g} ≥ {alpha:.4g} on {n} samples"
    return PairedVerdict(
        n=n,
        champion_rmse=_rmse(a),
        challenger_rmse=_rmse(b),
        champion_bias=float(np.mean(a)) if n else None,
        challenger_bias=float(np.mean(b)) if n else None,
        wilcoxon_statistic=w,
        wilcoxon_p=wp,
        dm_statistic=dm,
        dm_p=dmp,
        confidence=confidence,
        min_samples=min_samples,
        challenger_better=better,
        reason=reason,
    )

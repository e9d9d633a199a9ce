"""Maximum Mean Discrepancy with an RBF kernel: unbiased estimate and a permutation-test p-value."""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np

from ._univariate import standardise
from .base import Bounds, Detector, DriftResult, register


def thin(x: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` rows, evenly spaced in time (keeps the whole window's span, deterministic)."""
    if x.shape[0] <= limit:
        return x
    return x[np.linspace(0, x.shape[0] - 1, limit).round().astype(int)]


def sq_distances(z: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances, computed in place (the kernel matrix dominates the cost)."""
    sq = np.einsum("ij,ij->i", z, z)
    d2 = z @ z.T
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    return np.maximum(d2, 0.0, out=d2)


def median_gamma(d2: np.ndarray) -> float:
    """The median heuristic: γ = 1 / (2·median²) over the pooled pairwise distances (off-diagonal)."""
    med = np.median(d2[np.triu_indices_from(d2, k=1)])
    return float(1.0 / (2.0 * med)) if med > 0 else 1.0


def mmd2_unbiased_many(kernel: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Unbiased MMD² for each labelling in ``member`` (N × P, 1 = first sample), vectorised.

    MMD²_u = Σ_{i≠j} k(xᵢ,xⱼ)/(n(n−1)) + Σ_{i≠j} k(yᵢ,yⱼ)/(m(m−1)) − 2 Σ k(xᵢ,yⱼ)/(nm)
    (Gretton et al., 2012, eq. 3), from quadratic forms of the kernel matrix.
    """
    a = member.astype(float)
    b = 1.0 - a
    n, m = a[:, 0].sum(), b[:, 0].sum()
    diag = np.diag(kernel)
    ka = kernel @ a
    kb = kernel.sum(axis=1)[:, None] - ka  # K·b = K·1 − K·a: one matrix product instead of two
    kxx = np.einsum("ip,ip->p", a, ka) - diag @ a
    kxy = np.einsum("ip,ip->p", b, ka)
    kyy = np.einsum("ip,ip->p", b, kb) - diag @ b
    return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2.0 * kxy / (n * m)


@register
class MMD(Detector):
    """Maximum Mean Discrepancy between the reference and test windows (all variables jointly).

    Inputs are z-scored with the reference's statistics; the RBF kernel k(x, y) = exp(−γ‖x − y‖²)
    uses a fixed γ or the median heuristic. The score is the unbiased MMD² estimate; the p-value comes
    from a permutation test (labels shuffled ``permutations`` times). Drift: MMD² > threshold and
    p < alpha. Windows longer than ``max_samples`` are thinned evenly in time.

    Parameters
    ----------
    kernel
        Kernel function; the RBF (Gaussian) kernel is characteristic, so MMD = 0 only for equal distributions.
    gamma
        RBF width γ in k = exp(−γ‖x−y‖²), or "median" for γ = 1/(2·median squared distance).
    threshold
        Unbiased MMD² above which the shift is large enough to matter.
    alpha
        Significance level of the permutation test.
    permutations
        Number of label permutations for the p-value (0 = skip the test).
    max_samples
        Longest window used; longer windows are thinned evenly in time to bound the kernel matrix
        (neighbouring rows of process data are strongly autocorrelated, so thinning loses little).
    standardise
        Z-score the inputs with the reference's mean and SD (process variables have very different units).
    seed
        Seed of the permutations, for reproducible p-values.
    """

    key = "mmd"
    label = "Maximum Mean Discrepancy"
    kind = "multivariate"
    mode = "batch"
    description = "Kernel two-sample test on all variables jointly; sensitive to any change of the joint distribution."
    references = ("Gretton, A. et al. (2012). A kernel two-sample test. JMLR 13, 723-773.",)

    def __init__(
        self, *, kernel: Literal["rbf"] = "rbf", gamma: Annotated[float, Bounds(gt=0)] | Literal["median"] = 1.0,
        threshold: Annotated[float, Bounds(ge=0)] = 0.05, alpha: Annotated[float, Bounds(gt=0, lt=1)] = 0.05,
        permutations: Annotated[int, Bounds(ge=0, le=10000)] = 200,
        max_samples: Annotated[int, Bounds(ge=10, le=5000)] = 300, standardise: bool = True,
        seed: Annotated[int, Bounds(ge=0)] = 0,
    ) -> None:
        self.kernel = kernel
        self.gamma = gamma
        self.threshold = threshold
        self.alpha = alpha
        self.permutations = permutations
        self.max_samples = max_samples
        self.standardise = standardise
        self.seed = seed

    def _kernel(self, reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, int, float]:
        ref, tst = standardise(reference, test) if self.standardise else (reference, test)
        ref, tst = thin(ref, self.max_samples), thin(tst, self.max_samples)
        d2 = sq_distances(np.vstack([ref, tst]))
        gamma = median_gamma(d2) if self.gamma == "median" else float(self.gamma)
        d2 *= -gamma
        return np.exp(d2, out=d2), ref.shape[0], gamma

    def _detect(self, reference, test, variables):
        kernel, n, gamma = self._kernel(reference, test)
        member = np.zeros((kernel.shape[0], 1), dtype=bool)
        member[:n] = True
        mmd2 = float(mmd2_unbiased_many(kernel, member)[0])
        p_value = None
        if self.permutations:
            rng = np.random.default_rng(self.seed)
            perm = np.argsort(rng.random((self.permutations, kernel.shape[0])), axis=1)[:, :n]
            shuffled = np.zeros((kernel.shape[0], self.permutations), dtype=bool)
            shuffled[perm.T, np.arange(self.permutations)[None, :]] = True
            null = mmd2_unbiased_many(kernel, shuffled)
            p_value = float((1 + np.sum(null >= mmd2)) / (1 + self.permutations))
        drift = mmd2 > self.threshold and (p_value is None or p_value < self.alpha)
        return DriftResult(
            detector=self.key, drift=bool(drift), score=mmd2, threshold=self.threshold, p_value=p_value,
            variables=tuple(variables),
            details={"gamma": gamma, "reference_rows": n, "test_rows": int(kernel.shape[0] - n),
                     "permutations": self.permutations},
        )

    def score(self, reference, test):
        kernel, n, _ = self._kernel(reference, test)
        member = np.zeros((kernel.shape[0], 1), dtype=bool)
        member[:n] = True
        return float(mmd2_unbiased_many(kernel, member)[0])

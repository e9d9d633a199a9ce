"""drift_detectors_pack's batch detectors (PSI, KSDetector, MMDDetector, PCA_CD, KDQTree) on stamm_drift.

Same names, constructor arguments and ``calculate`` signatures as drift_detectors_pack 0.4; scores and
verdicts are stamm_drift's (``result`` on the returned :class:`ScoreDriftResult` is the full
:class:`~stamm_drift.DriftResult`, with the explanation).
"""
from __future__ import annotations

from typing import Any

from ..psi import EPSILON
from ._base import ScoreDetector, ScoreDriftResult


class PSI(ScoreDetector):
    """Population Stability Index (stamm_drift ``psi``)."""

    stamm_key, folder, acronym = "psi", "psi", "PSI"
    differences = (
        "Bins are the reference's quantiles (deciles for bins=10, ties merged), not equal-width bins over the "
        "pooled range of both windows: each bin holds about 1/bins of the reference, so outliers do not "
        "stretch the bins and the score does not depend on the test window's range.",
        "Bin shares are floored at epsilon = 1e-4 by default (upstream: 1e-8), so one empty bin cannot "
        "dominate the score; epsilon can still be passed per call.",
        "A 2-D window is scored per variable: the score is the largest PSI, details['per_variable'] holds "
        "each (upstream flattens all columns into one sample).",
        "Drift when the score is above the threshold (upstream: at or above).",
    )

    def __init__(self, reference_data: Any = None, online: bool = False, threshold: float = 0.1) -> None:
        super().__init__(reference_data=reference_data, online=online)
        self._threshold = threshold

    def calculate(self, test_data: Any, reference_data: Any = None, bins: int = 10,
                  epsilon: float = EPSILON) -> ScoreDriftResult:
        params = {"threshold": self._threshold, "bins": bins, "epsilon": epsilon}
        return self._score(params, test_data, reference_data, {"bins": bins, "epsilon": epsilon})


class KSDetector(ScoreDetector):
    """Two-sample Kolmogorov–Smirnov test (stamm_drift ``ks``, scipy's ``ks_2samp``)."""

    stamm_key, folder, acronym = "ks", "ks", "KS"
    differences = (
        "A 2-D window is tested per variable with a Bonferroni correction (p = smallest per-variable p × "
        "number of variables, drift when p < alpha; the score is the largest D); upstream flattens all "
        "columns into one sample. On one variable both are scipy's ks_2samp: same statistic, same p-value.",
        "details['threshold'] is the asymptotic critical D at the corrected level.",
    )

    def __init__(self, reference_data: Any = None, alpha: float = 0.05, online: bool = False) -> None:
        super().__init__(reference_data=reference_data, online=online)
        self._alpha = alpha

    def calculate(self, test_data: Any, reference_data: Any = None, alpha: float | None = None) -> ScoreDriftResult:
        alpha = self._alpha if alpha is None else alpha
        return self._score({"alpha": alpha}, test_data, reference_data, {"alpha": alpha})


class MMDDetector(ScoreDetector):
    """Maximum Mean Discrepancy with an RBF kernel (stamm_drift ``mmd``).

    The keyword-only arguments after ``online`` are stamm_drift's own (see ``stamm_drift.MMD``).
    """

    stamm_key, folder, acronym = "mmd", "mmd", "MMD"
    not_ready_when_short = True
    differences = (
        "The score is the unbiased MMD² (Gretton et al. 2012, eq. 3), not the biased V-statistic, whose "
        "within-sample terms include k(x, x) = 1: with a kernel much narrower than the data (γ = 1 on raw "
        "process values) the biased score is about 1/n + 1/m for every window, drifted or not.",
        "Kernel width: inputs are z-scored with the reference's mean and SD first (standardise=True), so γ "
        "means the same for any units; gamma='median' is 1/(2·median squared distance) over all pairs of the "
        "pooled (thinned) windows, not over a random 500-row subsample.",
        "Windows longer than max_samples=300 rows are thinned evenly in time (upstream builds the full "
        "n × n kernel).",
        "Drift needs MMD² > threshold and a permutation-test p-value < alpha (200 permutations; "
        "permutations=0 drops the test); upstream compares the score with the threshold only (≥).",
    )

    def __init__(self, reference_data: Any = None, gamma: float | str = 1.0, threshold: float = 0.05,
                 online: bool = False, *, alpha: float = 0.05, permutations: int = 200, max_samples: int = 300,
                 standardise: bool = True, seed: int = 0) -> None:
        super().__init__(reference_data=reference_data, online=online)
        self.gamma = gamma
        self.threshold = threshold
        self._extra = {"alpha": alpha, "permutations": permutations, "max_samples": max_samples,
                       "standardise": standardise, "seed": seed}

    def calculate(self, test_data: Any, reference_data: Any = None, gamma: float | str | None = None,
                  threshold: float | None = None) -> ScoreDriftResult:
        gamma = self.gamma if gamma is None else gamma
        threshold = self.threshold if threshold is None else threshold
        return self._score({"gamma": gamma, "threshold": threshold, **self._extra}, test_data, reference_data,
                           {"threshold": threshold})


class PCA_CD(ScoreDetector):  # noqa: N801 -- drift_detectors_pack's name
    """PCA-based change detection (stamm_drift ``pca_cd``).

    ``threshold`` and ``warning_threshold`` (keyword-only) are stamm_drift's Hellinger-distance limits.
    """

    stamm_key, folder, acronym = "pca_cd", "pca_cd", "PCA-CD"
    not_ready_when_short = True
    differences = (
        "The score is the largest Hellinger distance between the reference's and the test window's kernel "
        "densities on the reference's leading principal components (Qahtan et al. 2015), on inputs z-scored "
        "with the reference's mean and SD; drift when it exceeds threshold=0.1. Upstream's score is "
        "max(CSD / csd_threshold, symmetric KL of the component variances / kl_threshold) on unscaled inputs, "
        "drift at ≥ 1, so its csd_threshold and kl_threshold have no counterpart.",
    )
    unsupported = {
        "csd_threshold": "Set threshold= (the Hellinger distance, default 0.1) instead.",
        "kl_threshold": "Set threshold= (the Hellinger distance, default 0.1) instead.",
    }

    def __init__(self, reference_data: Any = None, n_components: int = 2, csd_threshold: float = 0.1,
                 kl_threshold: float = 0.05, online: bool = False, *, threshold: float = 0.1,
                 warning_threshold: float = 0.05) -> None:
        self._refuse_unsupported(csd_threshold=csd_threshold, kl_threshold=kl_threshold)
        super().__init__(reference_data=reference_data, online=online)
        self._params = {"n_components": n_components, "threshold": threshold,
                        "warning_threshold": warning_threshold}

    def calculate(self, test_data: Any, reference_data: Any = None, csd_threshold: float | None = None,
                  kl_threshold: float | None = None) -> ScoreDriftResult:
        self._refuse_unsupported(csd_threshold=csd_threshold, kl_threshold=kl_threshold)
        return self._score(self._params, test_data, reference_data, {"threshold": self._params["threshold"]})


class KDQTree(ScoreDetector):
    """kdq-tree change detection (stamm_drift ``kdq_tree``).

    ``min_points_per_cell``, ``min_side``, ``bootstrap`` and ``seed`` (keyword-only) are stamm_drift's.
    """

    stamm_key, folder, acronym = "kdq_tree", "kdq_tree", "KDQ"
    not_ready_when_short = True
    differences = (
        "A kdq-tree (Dasu et al. 2006): the reference's space is cut into cells (halved at their midpoint, "
        "cycling through the dimensions, down to min_points_per_cell=50 reference points); the score is "
        "KL(test ‖ reference) of the cell frequencies and the threshold the (1 − alpha) quantile of the KL "
        "between bootstrap samples of the reference. Upstream runs KS tests on k-nearest-neighbour patches and "
        "scores the share of significant patches; k_neighbors, ks_method, score_threshold and use_fisher have "
        "no counterpart. alpha is the significance level in both.",
    )
    unsupported = {
        "k_neighbors": "The cell size is min_points_per_cell= (default 50).",
        "ks_method": "No per-patch KS tests are run.",
        "score_threshold": "The threshold comes from a bootstrap of the reference at level alpha.",
        "use_fisher": "No per-patch p-values are combined.",
    }

    def __init__(self, reference_data: Any = None, k_neighbors: int = 25, ks_method: str = "asymp",
                 alpha: float = 0.05, score_threshold: float = 0.25, use_fisher: bool = True, online: bool = False,
                 *, min_points_per_cell: int = 50, min_side: float = 0.01, bootstrap: int = 200,
                 seed: int = 0) -> None:
        self._refuse_unsupported(k_neighbors=k_neighbors, ks_method=ks_method, score_threshold=score_threshold,
                                 use_fisher=use_fisher)
        super().__init__(reference_data=reference_data, online=online)
        self.alpha = alpha
        self._extra = {"min_points_per_cell": min_points_per_cell, "min_side": min_side, "bootstrap": bootstrap,
                       "seed": seed}

    def calculate(self, test_data: Any, reference_data: Any = None, alpha: float | None = None) -> ScoreDriftResult:
        alpha = self.alpha if alpha is None else alpha
        return self._score({"alpha": alpha, **self._extra}, test_data, reference_data, {"alpha": alpha})

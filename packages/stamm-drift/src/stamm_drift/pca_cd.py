"""PCA-CD: change detection on the principal components of the reference (Qahtan et al., 2015)."""
from __future__ import annotations

from typing import Annotated

import numpy as np

from ._univariate import standardise
from .base import Bounds, Detector, DriftResult, register

GRID = 128
#: Samples per block of the KDE: the grid × block kernel matrix stays at 8 MB however long the window.
KDE_BLOCK = 8192


def kde_on_grid(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density (Scott's bandwidth) of ``samples`` on ``grid``, normalised to sum 1."""
    sd = samples.std(ddof=1) if samples.size > 1 else 0.0
    h = max(sd * samples.size ** (-1 / 5), (grid[1] - grid[0]))
    dens = np.zeros(grid.size)
    for start in range(0, samples.size, KDE_BLOCK):
        z = (grid[:, None] - samples[None, start:start + KDE_BLOCK]) / h
        z **= 2
        z *= -0.5
        dens += np.exp(z, out=z).sum(axis=1)
    return dens / dens.sum()


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger distance between two discrete densities, in [0, 1]."""
    return float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(p * q)))))


@register
class PCACD(Detector):
    """PCA-based change detection on reference-standardised inputs.

    Both windows are z-scored with the *reference's* mean and SD (unscaled process data would let the
    largest-unit variable own every component), projected on the reference's first principal
    components, and each component's density (Gaussian KDE) is compared with the Hellinger distance.
    The score is the largest distance over the components.

    Parameters
    ----------
    n_components
        Number of leading principal components of the reference that are monitored.
    threshold
        Hellinger distance above which a component has drifted.
    warning_threshold
        Hellinger distance above which a warning is reported (details only).
    """

    key = "pca_cd"
    label = "PCA change detection"
    kind = "multivariate"
    mode = "batch"
    description = "Projects the data on the reference's main directions of variation and compares their densities."
    references = ("Qahtan, A. et al. (2015). A PCA-based change detection framework for multidimensional data "
                  "streams. KDD '15, 935-944.",)

    def __init__(
        self, *, n_components: Annotated[int, Bounds(ge=1)] = 2, threshold: Annotated[float, Bounds(gt=0, le=1)] = 0.1,
        warning_threshold: Annotated[float, Bounds(gt=0, le=1)] = 0.05,
    ) -> None:
        self.n_components = n_components
        self.threshold = threshold
        self.warning_threshold = warning_threshold

    def _components(self, reference, test):
        ref, tst = standardise(reference, test)
        k = min(self.n_components, ref.shape[1])
        _, s, vt = np.linalg.svd(ref - ref.mean(axis=0), full_matrices=False)
        explained = (s**2 / np.sum(s**2))[:k] if np.sum(s**2) > 0 else np.zeros(k)
        pr, pt = ref @ vt[:k].T, tst @ vt[:k].T
        distances = []
        for c in range(k):
            lo, hi = min(pr[:, c].min(), pt[:, c].min()), max(pr[:, c].max(), pt[:, c].max())
            if hi - lo <= 0:
                distances.append(0.0)
                continue
            pad = 0.1 * (hi - lo)
            grid = np.linspace(lo - pad, hi + pad, GRID)
            distances.append(hellinger(kde_on_grid(pr[:, c], grid), kde_on_grid(pt[:, c], grid)))
        return np.array(distances), explained, vt[:k]

    def _detect(self, reference, test, variables):
        distances, explained, loadings = self._components(reference, test)
        worst = int(np.argmax(distances))
        top_vars = [variables[i] for i in np.argsort(-np.abs(loadings[worst]))[:3]]
        score = float(distances[worst])
        return DriftResult(
            detector=self.key, drift=score > self.threshold, score=score, threshold=self.threshold,
            variables=tuple(variables),
            details={"distances": distances.tolist(), "explained_variance": explained.tolist(),
                     "warning": score > self.warning_threshold, "worst_component": worst + 1,
                     "worst_component_loads_on": top_vars},
        )

    def score(self, reference, test):
        return float(self._components(reference, test)[0].max())

    def _explain_details(self, result):
        d = result.details
        return (f"Component {d['worst_component']} (mostly {', '.join(d['worst_component_loads_on'])}) moved most "
                f"(Hellinger {result.score:.3f}).")

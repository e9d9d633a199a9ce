"""drift_detectors_pack's names and call shapes on stamm_drift's detectors: change one import.

    # before:  from drift_detectors import PSI, KSDetector, MMDDetector, ModelDisagreementMetric
    from stamm_drift.compat import PSI, KSDetector, MMDDetector, ModelDisagreementMetric

    result = PSI().calculate(test, ref)            # ScoreDriftResult: score, drift, details
    MMDDetector(gamma="median").calculate(test_mv, ref_mv).score
    ph = PageHinkley(online=True)                  # streaming: StreamingDriftResult per call
    for x in stream:
        if ph.calculate([x]).drift: ...

Every class keeps drift_detectors_pack 0.4's constructor arguments and ``calculate`` signature, its
result fields (``score``/``drift``/``details``, ``last_index`` for streams), ``online=True``,
``set_reference_data``, ``metadata`` and ``get_metadata()``. The numbers are stamm_drift's: where its
formula differs on purpose (PSI bins on reference quantiles, KS per variable with Bonferroni, unbiased
MMD on reference-standardised inputs, a real kdq-tree, ...) the class docstring lists it under
"Differences from drift_detectors_pack", and ``docs/drift.md`` has the side-by-side table. Upstream
arguments without a STAMM counterpart are accepted at their default and refused otherwise
(:class:`UnsupportedArgument`). ``ScoreDriftResult.result`` is stamm_drift's full result, with its
plain-language explanation.
"""
from .. import __version__
from ._base import (
    DriftDetector,
    PointwiseDriftResult,
    ScoreDetector,
    ScoreDriftResult,
    StreamingDriftResult,
    UnsupportedArgument,
)
from .batch import PCA_CD, PSI, KDQTree, KSDetector, MMDDetector
from .disagreement import (
    DisagreementMetric,
    ModelDisagreementMetric,
    MSEDisagreement,
    PearsonDisagreement,
    SpearmanDisagreement,
)
from .metadata import get_metadata
from .streaming import EDDM, HDDM_A, Adwin, PageHinkley, StreamDetector

#: The compatibility classes in drift_detectors_pack's catalogue order.
DETECTORS: tuple[type[DriftDetector], ...] = (
    PSI, KSDetector, Adwin, PageHinkley, HDDM_A, EDDM, MMDDetector, PCA_CD, KDQTree, ModelDisagreementMetric,
)

__all__ = [
    "DriftDetector", "get_metadata",
    "ScoreDriftResult", "StreamingDriftResult", "PointwiseDriftResult",
    "PSI", "KSDetector", "Adwin", "PageHinkley", "HDDM_A", "EDDM",
    "MMDDetector", "PCA_CD", "KDQTree",
    "ModelDisagreementMetric",
    "DisagreementMetric",
    "MSEDisagreement", "PearsonDisagreement", "SpearmanDisagreement",
    "UnsupportedArgument", "ScoreDetector", "StreamDetector", "DETECTORS", "__version__",
]

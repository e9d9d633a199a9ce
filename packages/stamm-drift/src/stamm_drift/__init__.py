"""stamm_drift: STAMM's drift detectors, usable on plain arrays and DataFrames, with or without the platform.

    >>> import numpy as np, stamm_drift as sd
    >>> rng = np.random.default_rng(0)
    >>> reference, test = rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + [0.8, 0.0]
    >>> result = sd.PSI().detect(reference, test, variables=["aeration_rate", "pH"])
    >>> result.drift, result.details["worst_variable"]
    (True, 'aeration_rate')

Ten detectors (``catalogue()`` lists them as data: key, label, kind, mode, input, references,
parameters with JSON Schema), one result type (:class:`DriftResult`), a verdict calibrated on
reference batches (:func:`calibrate`, :func:`calibrated_detect`), stream state machines for one value
at a time (:class:`AdwinStream`, :class:`PageHinkleyStream`, :class:`HDDMAStream`,
:class:`EDDMStream`), residual events for the error-based detectors, and
:mod:`stamm_drift.compat`, which speaks drift_detectors_pack's names and call shapes.

Depends on numpy and scipy only; importing the package registers every detector.
"""
from . import adwin, disagreement, eddm, hddm_a, kdq_tree, ks, mmd, page_hinkley, pca_cd, psi  # noqa: F401
from .adwin import ADWIN, AdwinStream
from .base import (
    KINDS,
    MODES,
    NO_DETECTION,
    Detector,
    DriftResult,
    as_matrix,
    build_detector,
    catalogue,
    detector_class,
    register,
    registry,
)
from .calibration import (
    Calibration,
    CalibrationRule,
    apply_calibration,
    calibrate,
    calibrated_detect,
    result_component_scores,
)
from .disagreement import ModelDisagreement, disagreement_estimators
from .eddm import EDDM, EDDMStream
from .errors import DataError, DriftError, ParameterError, UnknownDetector
from .hddm_a import HDDMA, HDDMAStream
from .kdq_tree import KdqTreeDetector
from .ks import KS
from .mmd import MMD
from .page_hinkley import PageHinkley, PageHinkleyStream
from .params import Bounds, ParameterSpec
from .pca_cd import PCACD
from .psi import PSI
from .residual_events import align_to_lab, residual_events, residual_sigma

__version__ = "1.0.0"

__all__ = [
    "ADWIN",
    "EDDM",
    "HDDMA",
    "KINDS",
    "KS",
    "MMD",
    "MODES",
    "NO_DETECTION",
    "PCACD",
    "PSI",
    "AdwinStream",
    "Bounds",
    "Calibration",
    "CalibrationRule",
    "DataError",
    "Detector",
    "DriftError",
    "DriftResult",
    "EDDMStream",
    "HDDMAStream",
    "KdqTreeDetector",
    "ModelDisagreement",
    "PageHinkley",
    "PageHinkleyStream",
    "ParameterError",
    "ParameterSpec",
    "UnknownDetector",
    "align_to_lab",
    "apply_calibration",
    "as_matrix",
    "build_detector",
    "calibrate",
    "calibrated_detect",
    "catalogue",
    "detector_class",
    "disagreement_estimators",
    "register",
    "registry",
    "residual_events",
    "residual_sigma",
    "result_component_scores",
]

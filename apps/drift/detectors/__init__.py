"""The drift detector catalogue: importing this package registers every detector.

``catalogue()`` lists them with metadata and parameter schemas; ``build_detector(key, params)``
validates parameters against the signature and builds one.
"""
from . import adwin, disagreement, eddm, hddm_a, kdq_tree, ks, mmd, page_hinkley, pca_cd, psi  # noqa: F401
from .base import (  # noqa: F401
    DataError,
    Detector,
    DriftError,
    DriftResult,
    ParameterError,
    UnknownDetector,
    build_detector,
    catalogue,
    detector_class,
    registry,
)

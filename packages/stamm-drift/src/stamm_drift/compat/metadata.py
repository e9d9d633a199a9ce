"""drift_detectors_pack's ``metadata.yaml`` documents, derived from stamm_drift's catalogue.

Upstream ships one YAML file per detector folder (name, acronym, version, type, mode, description,
inputs, parameters, output, references) that dashboards read with ``get_metadata()``. Here the same
documents are built from the detector classes — their catalogue attributes and the parameter
descriptions of their docstrings — so there is no second copy to keep in step, and no YAML parser is
needed. ``metadata["stamm"]`` adds the stamm_drift key and the deliberate differences.
"""
from __future__ import annotations

import inspect
from typing import Any

from ..base import detector_class

_SCORE_OUTPUT = {
    "description": "A ScoreDriftResult: one score, a drift flag and details.",
    "fields": {
        "score": {"description": "The detector's score (stamm_drift's; see stamm.differences)."},
        "drift": {"description": "True when the detector's rule says drift."},
        "details": {"description": "Parameters, mode, reference_size, test_size, threshold, p_value, explanation "
                                   "and the detector's own figures."},
    },
}
_STREAM_OUTPUT = {
    "description": "A StreamingDriftResult for the values of one call.",
    "fields": {
        "last_index": {"description": "Offset of the last detection among this call's values, or -1."},
        "drift": {"description": "True when any of this call's values was a detection."},
        "details": {"description": "Parameters, mode, n_observations, detections (all offsets) and warning where "
                                   "the detector has one."},
    },
}


def _parameters(cls: type) -> dict[str, dict[str, str]]:
    """Constructor and ``calculate`` arguments, described by the stamm_drift parameter they set."""
    specs = {s.name: s.description for s in detector_class(cls.stamm_key).parameters()}
    out: dict[str, dict[str, str]] = {}
    names = [*inspect.signature(cls.__init__).parameters, *inspect.signature(cls.calculate).parameters]
    for name in dict.fromkeys(names):
        if name in ("self", "test_data") or name in out:
            continue
        if name in cls.unsupported:
            text = f"drift_detectors_pack's setting without a STAMM counterpart: {cls.unsupported[name]}"
        else:
            text = specs.get(cls.renamed.get(name, name)) or cls.notes.get(name, "")
        out[name] = {"description": text}
    return out


def metadata_for(cls: type) -> dict[str, Any]:
    """The upstream ``metadata.yaml`` document of a compatibility class ({} for a user's own class)."""
    from .. import __version__
    from ._base import ScoreDetector

    if getattr(cls, "stamm_key", None) is None:
        return {}
    detector = detector_class(cls.stamm_key)
    batch = issubclass(cls, ScoreDetector)
    if cls.stamm_key == "model_disagreement":
        inputs = {name: {"description": cls.notes[name]} for name in ("predictions", "reference_data")}
    elif batch:
        inputs = {"reference_data": {"description": cls.notes["reference_data"]},
                  "test_data": {"description": "Test window, the same variables as the reference."}}
    else:
        inputs = {"test_data": {"description": "Stream values (a scalar, list or 1-D array)."}}
    return {
        "name": detector.label,
        "acronym": cls.acronym,
        "version": __version__,
        "type": detector.kind.replace("-", "_"),
        "mode": detector.mode,
        "description": detector.description,
        "inputs": inputs,
        "parameters": _parameters(cls),
        "output": _SCORE_OUTPUT if batch or cls.stamm_key == "model_disagreement" else _STREAM_OUTPUT,
        "references": list(detector.references),
        "stamm": {"key": cls.stamm_key, "differences": list(cls.differences)},
    }


def get_metadata() -> dict[str, dict[str, Any]]:
    """Every detector's metadata keyed by drift_detectors_pack's folder name (``'psi'``, ``'mmd'``, ...),
    plus ``'disagreement_metrics'`` for the pluggable disagreement metrics."""
    from . import DETECTORS
    from .disagreement import MSEDisagreement, PearsonDisagreement, SpearmanDisagreement

    out = {cls.folder: metadata_for(cls) for cls in DETECTORS}
    out["disagreement_metrics"] = {
        "name": "Disagreement Metrics (catalogue)",
        "acronym": "disagreement_metrics",
        "version": out["model_disagreement"]["version"],
        "type": "model_based",
        "mode": "batch",
        "description": "Pairwise model-disagreement metrics for ModelDisagreementMetric(metrics=[...]); subclass "
                       "DisagreementMetric and implement pair(y_i, y_j, *, scale) for your own.",
        "inputs": {"predictions": {"description": "Two prediction vectors of equal length."}},
        "shipped_metrics": {m.__name__: {"description": (m.__doc__ or "").strip(), "kind": m.kind}
                            for m in (MSEDisagreement, PearsonDisagreement, SpearmanDisagreement)},
        "references": out["model_disagreement"]["references"],
    }
    return out

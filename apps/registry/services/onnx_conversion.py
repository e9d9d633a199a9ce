"""Serving a scikit-learn upload as ONNX: converted by skl2onnx inside the model's own runtime worker, then
checked against the original on the version's reference rows before anything is stored as the version.

The original file is kept as the ``original_model`` artefact (for audit and export, never served). The check
runs both models on the same rows (``serving.reference_rows``) and refuses the conversion when one prediction
differs by more than ``ONNX_AGREEMENT_RTOL`` × max(1, |original|): ONNX's tree ensembles compare in float32,
so a row that falls between a float32 and a float64 threshold could otherwise change its leaf unnoticed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from apps.common.errors import ValidationFailed

from .. import artifacts as store
from ..models import Flavor
from ..runtimes import ArtifactBundle, ArtifactFile, runtime_for
from ..serving import bundle_load_error

#: Largest accepted difference, relative to max(1, |original prediction|).
ONNX_AGREEMENT_RTOL = 1e-4


def onnx_agreement(original: np.ndarray, converted: np.ndarray) -> tuple[bool, float, int]:
    """``(agrees, largest difference, its row)`` of two prediction arrays of the same rows."""
    original = np.asarray(original, dtype=float).reshape(len(original), -1)
    converted = np.asarray(converted, dtype=float).reshape(len(converted), -1)
    if original.shape != converted.shape:
        return False, float("inf"), 0
    difference = np.abs(original - converted).max(axis=1)
    allowed = ONNX_AGREEMENT_RTOL * np.maximum(1.0, np.abs(original).max(axis=1))
    worst = int(np.argmax(difference / allowed)) if len(difference) else 0
    return bool((difference <= allowed).all()), float(difference[worst]) if len(difference) else 0.0, worst


def onnx_conversion_check(*, flavor: str, roles: Iterable[str], awaiting_approval: str | None = None) -> None:
    """Refuse (400) what cannot be converted, before any file is stored or loaded: only a scikit-learn model
    without scaler files, and a pickle only once an administrator approved it (converting loads it)."""
    if flavor not in (Flavor.SKLEARN_PICKLE, Flavor.SKLEARN_SKOPS):
        raise ValidationFailed(
            "convert_to_onnx: only scikit-learn models (.pkl, .joblib, .skops) can be converted to ONNX.",
            details={"convert_to_onnx": flavor},
        )
    if set(roles) & {"input_scaler", "output_scaler"}:
        raise ValidationFailed(
            "convert_to_onnx: models with scaler files cannot be converted (put the scaler in a Pipeline instead).",
            details={"convert_to_onnx": "scaler files"},
        )
    if awaiting_approval:
        raise ValidationFailed(
            "convert_to_onnx: converting loads the model, and this pickle cannot be loaded yet "
            f"({awaiting_approval}); upload it as .skops to convert it at upload.",
            details={"convert_to_onnx": "pickle awaiting approval"},
        )


def _roles(bundle: ArtifactBundle) -> list[str]:
    return [role for role in ("input_scaler", "output_scaler") if getattr(bundle, role) is not None]


def onnx_convert(
    *, bundle: ArtifactBundle, stored: Mapping[str, store.StoredFile], directory: str, reference: np.ndarray
) -> tuple[str, dict[str, store.StoredFile]]:
    """Convert, store and check; returns the new flavor and files (the ONNX model, the original kept).

    Raises ValidationFailed (400) when the model cannot be converted or the converted model disagrees.
    """
    onnx_conversion_check(flavor=bundle.flavor, roles=_roles(bundle))
    runtime = runtime_for(bundle.flavor)
    try:
        data = runtime.to_onnx(bundle)
    except Exception as exc:  # noqa: BLE001 - the worker's reason, as a 400 on this upload
        raise ValidationFailed(f"convert_to_onnx: {exc}", details={"convert_to_onnx": str(exc)}) from exc
    original = stored["model"]
    stem = original.original_name.rsplit(".", 1)[0]
    onnx_file = store.store_file(data, directory=directory, original_name=f"{stem}.onnx", field="convert_to_onnx")
    converted = ArtifactBundle(
        flavor=Flavor.ONNX,
        model=ArtifactFile(store.absolute_path(onnx_file.relative_path), onnx_file.sha256, onnx_file.original_name),
        feature_names=bundle.feature_names,
        output_names=bundle.output_names,
        probe_row=bundle.probe_row,
    )
    problem = bundle_load_error(converted)
    if problem is not None:
        raise ValidationFailed(f"convert_to_onnx: the converted model does not load: {problem}")
    expected = runtime.predict(bundle, reference, bundle.feature_names)
    actual = runtime_for(Flavor.ONNX).predict(converted, reference, bundle.feature_names)
    agrees, difference, row = onnx_agreement(expected, actual)
    if not agrees:
        raise ValidationFailed(
            f"convert_to_onnx: the ONNX model disagrees with the original on reference row {row} "
            f"(difference {difference:.3g}, allowed {ONNX_AGREEMENT_RTOL:g} relative); the upload was not stored.",
            details={"convert_to_onnx": {"row": row, "difference": difference, "rows_checked": len(reference)}},
            code="onnx_disagrees",
        )
    files = {"model": onnx_file, "original_model": original}
    return Flavor.ONNX, files


def onnx_descriptor(config: Mapping[str, Any], stored: Mapping[str, store.StoredFile]) -> dict[str, Any]:
    """The descriptor of a converted version: its model file is the ONNX file, the original is named too."""
    result = copy.deepcopy(dict(config))
    description = result.setdefault("model_description", {})
    files = dict(description.get("config_files") or {})
    files["model_file"] = stored["model"].original_name
    files["converted_from"] = stored["original_model"].original_name
    description["config_files"] = files
    return result


__all__ = ["ONNX_AGREEMENT_RTOL", "onnx_agreement", "onnx_convert", "onnx_descriptor"]

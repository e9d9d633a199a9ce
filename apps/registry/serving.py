"""Prediction: request bodies → a feature matrix in descriptor order → runtime → verdicts.

Accepted bodies (exactly one key):
- ``{"inputs": {"temperature": [..], ...}}`` columnar (a scalar per feature means one row),
- ``{"instances": [{...}, ...]}`` and MLflow's ``{"dataframe_records": [{...}, ...]}`` row-wise,
- MLflow's ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``.

Columns are picked by name in the descriptor's ``features`` order whatever the caller's order; a
missing feature is an error naming it; extra names are ignored and listed. Every row gets a verdict:
``ok``, or ``out_of_range`` with the inputs outside ``expected_range`` (or, for a feature without a
declared range, outside the training envelope recorded in ``training_data["envelope"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from apps.common.errors import ValidationFailed

from .artifacts import absolute_path
from .runtimes import ArtifactBundle, ArtifactFile, runtime_for

BODY_KINDS = ("inputs", "instances", "dataframe_split", "dataframe_records")
_MISSING = object()
OK = {"verdict": "ok"}


def max_predict_rows() -> int:
    """``REGISTRY_MAX_PREDICT_ROWS`` (default 100,000): the largest batch one request may carry."""
    return int(getattr(settings, "REGISTRY_MAX_PREDICT_ROWS", 100_000))


@dataclass(frozen=True)
class FeatureMatrix:
    X: np.ndarray
    ignored: list[str]


def _column(values: Any, path: str) -> np.ndarray:
    """A float64 column; the first non-number is reported by index."""
    try:
        column = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        column = None
    if column is None or column.ndim != 1:
        if column is not None and column.ndim == 0:
            return column.reshape(1)
        for index, value in enumerate(values if isinstance(values, list) else [values]):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValidationFailed(
                    f"{path}[{index}]: must be a number, got {value!r}", details={path: f"[{index}] is not a number"}
                )
        raise ValidationFailed(f"{path}: must be a list of numbers", details={path: "must be a list of numbers"})
    bad = ~np.isfinite(column)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        original = values[index] if isinstance(values, list) else values
        raise ValidationFailed(
            f"{path}[{index}]: must be a finite number, got {original!r}",
            details={path: f"[{index}] is missing or not finite"},
        )
    return column


def _check_rows(count: int) -> None:
    if count == 0:
        raise ValidationFailed("The body holds no rows to predict.", details={"body": "no rows"})
    if count > max_predict_rows():
        raise ValidationFailed(
            f"At most {max_predict_rows()} rows per request, got {count}.", details={"body": f"{count} rows"}
        )


def _missing(names: Sequence[str], where: str) -> ValidationFailed:
    listed = ", ".join(names)
    return ValidationFailed(
        f"{where}: missing input(s) {listed}", details={"missing_inputs": list(names)}, code="missing_input"
    )


def columns_matrix(columns: Mapping[str, Any], features: Sequence[str], where: str) -> FeatureMatrix:
    """Columnar input ``{feature: value or [values]}``; ``where`` prefixes error paths."""
    return _from_columns(columns, features, where)


def _from_columns(columns: Mapping[str, Any], features: Sequence[str], where: str) -> FeatureMatrix:
    missing = [name for name in features if name not in columns]
    if missing:
        raise _missing(missing, where)
    arrays = [_column(columns[name], f"{where}.{name}") for name in features]
    lengths = {len(array) for array in arrays}
    if len(lengths) > 1:
        sizes = {name: len(array) for name, array in zip(features, arrays, strict=True)}
        raise ValidationFailed(
            f"{where}: every input needs the same number of values, got {sizes}", details={where: sizes}
        )
    _check_rows(arrays[0].shape[0])
    ignored = sorted(str(key) for key in columns if key not in set(features))
    return FeatureMatrix(np.column_stack(arrays), ignored)


def _from_records(records: Any, features: Sequence[str], where: str) -> FeatureMatrix:
    if not isinstance(records, list):
        raise ValidationFailed(f"{where}: must be a list of objects", details={where: "must be a list"})
    _check_rows(len(records))
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValidationFailed(
                f"{where}[{index}]: must be an object of input values", details={where: f"[{index}]"}
            )
    wanted = set(features)
    seen = set().union(*records)
    missing_everywhere = [name for name in features if name not in seen]
    if missing_everywhere:
        raise _missing(missing_everywhere, where)
    arrays = []
    for name in features:
        values = [record.get(name, _MISSING) for record in records]
        if any(value is _MISSING for value in values):
            index = next(i for i, value in enumerate(values) if value is _MISSING)
            raise _missing([name], f"{where}[{index}]")
        arrays.append(_column(values, f"{where}.{name}"))
    return FeatureMatrix(np.column_stack(arrays), sorted(str(key) for key in seen - wanted))


def _from_split(split: Any, features: Sequence[str]) -> FeatureMatrix:
    where = "dataframe_split"
    if not isinstance(split, Mapping):
        raise ValidationFailed(
            f"{where}: must be an object with columns and data", details={where: "must be an object"}
        )
    columns, data = split.get("columns"), split.get("data")
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        raise ValidationFailed(
            f"{where}.columns: must be a list of column names", details={f"{where}.columns": "required"}
        )
    if not isinstance(data, list):
        raise ValidationFailed(f"{where}.data: must be a list of rows", details={f"{where}.data": "required"})
    _check_rows(len(data))
    position = {name: index for index, name in enumerate(columns)}
    missing = [name for name in features if name not in position]
    if missing:
        raise _missing(missing, where)
    try:
        matrix = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = None
    if matrix is None or matrix.ndim != 2 or matrix.shape[1] != len(columns):
        for index, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise ValidationFailed(
                    f"{where}.data[{index}]: must be a list of {len(columns)} values (one per column)",
                    details={f"{where}.data": f"row {index}"},
                )
        for name in features:
            _column([row[position[name]] for row in data], f"{where}.{name}")
        raise ValidationFailed(f"{where}.data: must hold numbers", details={f"{where}.data": "not numeric"})
    X = matrix[:, [position[name] for name in features]]
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ValidationFailed(
            f"{where}.{features[col]}[{row}]: must be a finite number", details={f"{where}.{features[col]}": f"[{row}]"}
        )
    return FeatureMatrix(np.ascontiguousarray(X), sorted(set(columns) - set(features)))


def feature_matrix(body: Any, features: Sequence[str]) -> FeatureMatrix:
    """Parse any accepted predict body. Raises ValidationFailed naming what and where."""
    if not isinstance(body, Mapping):
        raise ValidationFailed("The body must be a JSON object.", details={"body": "must be an object"})
    kinds = [kind for kind in BODY_KINDS if kind in body]
    if len(kinds) != 1:
        found = ", ".join(kinds) or ", ".join(map(str, body)) or "nothing"
        raise ValidationFailed(
            f"body: expected exactly one of {', '.join(BODY_KINDS)}; found {found}",
            details={"body": f"expected one of {', '.join(BODY_KINDS)}"},
        )
    kind = kinds[0]
    value = body[kind]
    if kind == "inputs":
        if not isinstance(value, Mapping):
            raise ValidationFailed(
                "inputs: must be an object {feature: [values]}", details={"inputs": "must be an object"}
            )
        return _from_columns(value, features, "inputs")
    if kind == "dataframe_split":
        return _from_split(value, features)
    return _from_records(value, features, kind)


# ------------------------------------------------------------------------------------------- validity


def feature_bounds(config: Mapping[str, Any], training_data: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound per feature (NaN = unchecked): declared range, else training envelope."""
    envelope = (training_data or {}).get("envelope") or {}
    features = config["inputs"]["features"]
    low = np.full(len(features), np.nan)
    high = np.full(len(features), np.nan)
    for index, feature in enumerate(features):
        declared = {k: v for k, v in (feature.get("expected_range") or {}).items() if _is_number(v)}
        bounds = (
            declared if declared else {k: v for k, v in (envelope.get(feature["name"]) or {}).items() if _is_number(v)}
        )
        if "min" in bounds:
            low[index] = bounds["min"]
        if "max" in bounds:
            high[index] = bounds["max"]
    return low, high


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def validity(X: np.ndarray, features: Sequence[str], low: np.ndarray, high: np.ndarray) -> list[dict[str, Any]]:
    """One verdict per row, computed on the whole matrix at once."""
    with np.errstate(invalid="ignore"):
        outside = (X < low) | (X > high)  # comparisons with NaN bounds are False: unchecked
    flagged = outside.any(axis=1)
    verdicts: list[dict[str, Any]] = [OK] * X.shape[0]
    if not flagged.any():
        return verdicts
    rows = np.flatnonzero(flagged)
    patterns, inverse = np.unique(outside[rows], axis=0, return_inverse=True)
    shared = [
        {"verdict": "out_of_range", "inputs": [features[col] for col in np.flatnonzero(pattern)]}
        for pattern in patterns
    ]
    for row, which in zip(rows.tolist(), inverse.reshape(-1).tolist(), strict=True):
        verdicts[row] = shared[which]
    return verdicts


# --------------------------------------------------------------------------------------------- bundles


def probe_row(config: Mapping[str, Any], training_data: Mapping[str, Any] | None) -> tuple[float, ...]:
    """A plausible input row for the load check: mid-range where known, else 0."""
    low, high = feature_bounds(config, training_data)
    row = np.where(np.isnan(low), np.where(np.isnan(high), 0.0, high), np.where(np.isnan(high), low, (low + high) / 2))
    return tuple(float(v) for v in row)


def bundle_for_version(version: Any, artifacts: Sequence[Any] | None = None) -> ArtifactBundle:
    """The runtime bundle of a ModelVersion (``artifacts`` given, or prefetched on the version)."""
    files: dict[str, ArtifactFile] = {}
    for artifact in artifacts if artifacts is not None else version.artifacts.all():
        files[artifact.role] = ArtifactFile(
            path=absolute_path(artifact.path),
            sha256=artifact.sha256,
            name=artifact.original_name,
            trusted_types=tuple(artifact.trusted_types or ()),
        )
    config = version.descriptor
    return ArtifactBundle(
        flavor=version.flavor,
        model=files["model"],
        feature_names=tuple(f["name"] for f in config["inputs"]["features"]),
        output_names=tuple(o["name"] for o in config["outputs"]["information"]),
        input_scaler=files.get("input_scaler"),
        output_scaler=files.get("output_scaler"),
        probe_row=probe_row(config, version.training_data),
    )


def load_error(version: Any) -> str | None:
    """Why the version cannot serve, or None (loads it into the cache as a side effect)."""
    try:
        bundle = bundle_for_version(version)
    except KeyError:
        return "the version has no model artefact"
    try:
        return runtime_for(version.flavor).load_error(bundle)
    except Exception as exc:  # noqa: BLE001 - a runtime that blows up is a load error, not a 500
        return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class PredictionResult:
    predictions: np.ndarray
    validity: list[dict[str, Any]]
    ignored: list[str]
    features: list[str]
    outputs: list[str]


def predict_body(version: Any, body: Any, *, artifacts: Sequence[Any] | None = None) -> PredictionResult:
    """Parse ``body`` for ``version``, predict in one vectorised call, attach verdicts."""
    config = version.descriptor
    features = [f["name"] for f in config["inputs"]["features"]]
    parsed = feature_matrix(body, features)
    return predict_matrix(version, parsed.X, ignored=parsed.ignored, artifacts=artifacts)


_BUNDLES: dict[tuple[Any, ...], ArtifactBundle] = {}


def _serving_bundle(version: Any, artifacts: Sequence[Any] | None) -> ArtifactBundle:
    """The bundle for prediction, cached per process: a version's files and features never change.

    (The probe row inside is only used by load checks, which build a fresh bundle.)
    """
    key = (version.pk, version.created_at, version.flavor)
    bundle = _BUNDLES.get(key)
    if bundle is None or bundle.feature_names != tuple(f["name"] for f in version.descriptor["inputs"]["features"]):
        bundle = bundle_for_version(version, artifacts)
        if len(_BUNDLES) > 1024:
            _BUNDLES.clear()
        _BUNDLES[key] = bundle
    return bundle


def predict_matrix(
    version: Any, X: np.ndarray, *, ignored: list[str] | None = None, artifacts: Sequence[Any] | None = None
) -> PredictionResult:
    config = version.descriptor
    features = [f["name"] for f in config["inputs"]["features"]]
    bundle = _serving_bundle(version, artifacts)
    predictions = runtime_for(version.flavor).predict(bundle, X, features)
    low, high = feature_bounds(config, version.training_data)
    return PredictionResult(
        predictions=np.asarray(predictions, dtype=float),
        validity=validity(X, features, low, high),
        ignored=ignored or [],
        features=features,
        outputs=list(bundle.output_names),
    )

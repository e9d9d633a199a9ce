"""Prediction: request bodies → a feature matrix in descriptor order → runtime → verdicts.

Accepted bodies (exactly one key):
- ``{"inputs": {"temperature": [..], ...}}`` columnar (a scalar per feature means one row),
- ``{"instances": [{...}, ...]}`` and MLflow's ``{"dataframe_records": [{...}, ...]}`` row-wise,
- MLflow's ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``.

Columns are picked by name in the descriptor's ``features`` order whatever the caller's order; a
missing feature is an error naming it; extra names are ignored and listed. Every row gets a verdict:
``ok``, or ``out_of_range`` with the inputs outside the spec's envelope (``FeatureSpec.low``/``high``:
the declared ``expected_range``, else the training envelope).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from apps.common.errors import ValidationFailed

from .artifact_safety import approval_pending
from .artifacts import absolute_path
from .runtimes import (
    FLAVOR_R_RDS,
    ArtifactBundle,
    ArtifactFile,
    ArtifactLoadError,
    OfflineReason,
    RuntimeUnavailable,
    runtime_for,
)
from .runtimes.python import environment_ref
from .spec import ModelSpec

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


def _from_split(split: Any, features: Sequence[str], where: str = "dataframe_split") -> FeatureMatrix:
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
        if isinstance(value, list):  # MLflow's tensor form: rows of values in the model's feature order
            for index, row in enumerate(value[: max_predict_rows() + 1]):
                if not isinstance(row, list) or len(row) != len(features):
                    raise ValidationFailed(
                        f"inputs[{index}]: must be a list of {len(features)} values (the features in order), "
                        "or give inputs as {feature: [values]}",
                        details={"inputs": f"row {index}"},
                    )
            return _from_split({"columns": list(features), "data": value}, features, where="inputs")
        if not isinstance(value, Mapping):
            raise ValidationFailed(
                "inputs: must be an object {feature: [values]} or a list of rows",
                details={"inputs": "must be an object"},
            )
        return _from_columns(value, features, "inputs")
    if kind == "dataframe_split":
        return _from_split(value, features)
    return _from_records(value, features, kind)


# ------------------------------------------------------------------------------------------- validity


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


def bundle_for(spec: ModelSpec, artifacts: Sequence[Any]) -> ArtifactBundle:
    """The runtime bundle of a version: its spec and its artefact rows (role, path, sha256, name)."""
    files: dict[str, ArtifactFile] = {}
    for artifact in artifacts:
        files[artifact.role] = ArtifactFile(
            path=absolute_path(artifact.path),
            sha256=artifact.sha256,
            name=artifact.original_name,
            trusted_types=tuple(artifact.trusted_types or ()),
            approved_sha256=artifact.approved_sha256 or "",
        )
    if "model" not in files:
        raise ArtifactLoadError("the version has no model artefact")
    return ArtifactBundle(
        flavor=spec.flavor,
        model=files["model"],
        feature_names=spec.feature_names,
        output_names=spec.output_names,
        input_scaler=files.get("input_scaler"),
        output_scaler=files.get("output_scaler"),
        probe_row=spec.probe_row(),
        environment=environment_ref(spec.environment),
        packages=declared_r_packages(spec.packages) if spec.flavor == FLAVOR_R_RDS else (),
    )


def declared_r_packages(packages: Sequence[Any]) -> tuple[str, ...]:
    """The R packages a descriptor declares (``R`` itself is the language, not a package)."""
    names = (str(item.get("package") or "").strip() for item in packages if hasattr(item, "get"))
    return tuple(name for name in names if name and name != "R")


#: Rows of the deterministic reference sample a version's conversions are checked on.
REFERENCE_ROWS = 256


def reference_rows(spec: ModelSpec, rows: int = REFERENCE_ROWS) -> np.ndarray:
    """A version's reference rows: its probe row, then a seeded uniform sample of its validity envelope.

    Where a feature has no envelope the sample spreads ±50 % around the probe value (±1 around 0), so every
    input varies. Deterministic: the same spec always gives the same rows.
    """
    probe = np.asarray(spec.probe_row(), dtype=float)
    low, high = spec.bounds()
    spread = np.maximum(np.abs(probe) * 0.5, 1.0)
    low = np.where(np.isnan(low), probe - spread, low)
    high = np.where(np.isnan(high), probe + spread, high)
    sample = np.random.default_rng(0).uniform(low, high, size=(max(rows - 1, 0), len(probe)))
    return np.vstack([probe[None, :], sample])


def bundle_load_error(bundle: ArtifactBundle) -> str | None:
    """Why the bundle cannot serve, or None (loads it into the runtime's cache as a side effect)."""
    try:
        return runtime_for(bundle.flavor).load_error(bundle)
    except Exception as exc:  # noqa: BLE001 - a runtime that blows up is a load error, not a 500
        return f"{type(exc).__name__}: {exc}"


def load_error(spec: ModelSpec, artifacts: Sequence[Any]) -> str | None:
    """Why the version cannot serve, or None."""
    try:
        bundle = bundle_for(spec, artifacts)
    except ArtifactLoadError as exc:
        return str(exc)
    except RuntimeUnavailable as exc:
        return OfflineReason(str(exc))
    return bundle_load_error(bundle)


@dataclass(frozen=True)
class PredictionResult:
    predictions: np.ndarray
    validity: list[dict[str, Any]]
    ignored: list[str]
    features: list[str]
    outputs: list[str]


_BUNDLES: dict[tuple[Any, ...], ArtifactBundle] = {}


def _serving_bundle(spec: ModelSpec, artifacts: Sequence[Any]) -> ArtifactBundle:
    """The bundle for prediction, cached per process: a version's files and features never change."""
    key = (spec.version_id, spec.created_at, spec.flavor, spec.feature_names, spec.environment)
    bundle = _BUNDLES.get(key)
    if bundle is None:
        bundle = bundle_for(spec, artifacts)
        if approval_pending(artifacts):  # will change when approved: never cached
            return bundle
        if len(_BUNDLES) > 1024:
            _BUNDLES.clear()
        _BUNDLES[key] = bundle
    return bundle


def predict_matrix(
    spec: ModelSpec, X: np.ndarray, *, artifacts: Sequence[Any], ignored: list[str] | None = None
) -> PredictionResult:
    """Predict ``X`` (columns in the spec's feature order) in one vectorised call, with a verdict per row."""
    features = list(spec.feature_names)
    bundle = _serving_bundle(spec, artifacts)
    predictions = runtime_for(spec.flavor).predict(bundle, X, features)
    low, high = spec.bounds()
    return PredictionResult(
        predictions=np.asarray(predictions, dtype=float),
        validity=validity(X, features, low, high),
        ignored=ignored or [],
        features=features,
        outputs=list(bundle.output_names),
    )


def explain_matrix(spec: ModelSpec, X: np.ndarray, *, artifacts: Sequence[Any], output: int = 0) -> Any:
    """Exact contributions of ``X``'s rows to output ``output`` from the version's runtime, computed where the
    model runs (``TreeContributions``); None when the runtime has no exact explainer for this model."""
    runtime = runtime_for(spec.flavor)
    explain = getattr(runtime, "explain", None)
    if explain is None:
        return None
    return explain(_serving_bundle(spec, artifacts), np.asarray(X, dtype=float), output)

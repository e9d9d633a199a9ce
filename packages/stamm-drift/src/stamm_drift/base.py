"""The detector contract: catalogue metadata, parameters from the signature, one result type.

A detector's ``__init__`` signature *is* its parameter list (keyword-only, typed, with defaults); the
description of each parameter is written once, in the class docstring's ``Parameters`` section, and
numeric bounds are written once, as ``Annotated[float, Bounds(...)]`` on the annotation. From these the
module derives everything an interface needs: :meth:`Detector.parameters` (typed specs with tooltips),
:meth:`Detector.json_schema` (a JSON Schema for forms and request validation),
:meth:`Detector.build` (validation that names the offending parameter) and the JSON round trip.

The package depends on numpy and scipy only (no Django, no platform code: the repository's import
contract checks it), so detectors run in a notebook on plain arrays or DataFrames and the platform's API
layer maps :class:`ParameterError` / :class:`UnknownDetector` / :class:`DataError` to HTTP 400/404.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np

from .errors import DataError, DriftError, ParameterError, UnknownDetector
from .params import Bounds, ParameterSpec, parse_docstring_parameters, read_annotation

Kind = Literal["univariate", "multivariate", "model-based"]
Mode = Literal["batch", "streaming"]
#: What a detector's two arrays hold: process features (n × d), 0/1 events (n,), or the predictions of
#: several models side by side (n × models).
InputKind = Literal["features", "events", "predictions"]

KINDS: tuple[str, ...] = typing.get_args(Kind)
MODES: tuple[str, ...] = typing.get_args(Mode)
NO_DETECTION = -1


def _json_safe(value: Any) -> Any:
    """numpy scalars/arrays, tuples and non-finite floats → plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


@dataclass(frozen=True)
class DriftResult:
    """What every detector returns, serialisable with :meth:`to_dict`.

    ``score`` and ``threshold`` are on the same scale (drift when the score exceeds the threshold);
    ``p_value`` is set where the detector defines one; ``detection_index`` is the position in the
    test window of the first detection for streaming detectors (``-1`` = none) and ``None`` for batch
    detectors. ``details`` holds per-variable figures, the nominal verdict and, once calibrated, the
    calibration rule and its data.
    """

    detector: str
    drift: bool
    score: float
    threshold: float
    p_value: float | None = None
    detection_index: int | None = None
    variables: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    explanation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftResult:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["variables"] = tuple(kwargs.get("variables", ()))
        return cls(**kwargs)


def as_matrix(data: Any, *, name: str, variables: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """A finite float matrix (n × d) and its column names from an array, a list, a DataFrame or a Series.

    DataFrames and Series are read by duck typing (``columns`` / ``name`` and ``to_numpy``), so the
    package needs no pandas: a DataFrame's columns and a named Series' name become the variable names.
    """
    columns = getattr(data, "columns", None)
    if columns is not None:
        variables = variables or tuple(str(c) for c in columns)
    elif hasattr(data, "to_numpy") and getattr(data, "name", None) is not None:
        variables = variables or (str(data.name),)
    try:
        if hasattr(data, "to_numpy"):
            try:
                data = data.to_numpy(dtype=float, na_value=np.nan)  # pandas: missing values become NaN
            except TypeError:  # a frame library whose to_numpy takes no arguments
                data = data.to_numpy()
        array = np.asarray(data, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: not numeric ({exc})") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"{name}: expected a 1-D or 2-D array, got {array.ndim} dimensions")
    if array.shape[0] == 0:
        raise DataError(f"{name}: the window is empty")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DataError(f"{name}: {bad} missing or non-finite values; drop or fill them first")
    names = tuple(variables) if variables is not None else tuple(f"x{i}" for i in range(array.shape[1]))
    if len(names) != array.shape[1]:
        raise DataError(f"{name}: {array.shape[1]} columns but {len(names)} variable names")
    return array, names


def require_events(values: np.ndarray, *, name: str, reader: str) -> None:
    """Refuse anything but 0/1 error events (what EDDM and HDDM-A read)."""
    if not ((values == 0.0) | (values == 1.0)).all():  # not np.isin: ten times slower on one value
        raise DataError(f"{name}: {reader} reads 0/1 events (stamm_drift.residual_events turns residuals into "
                        "events)")


def standardised_shifts(reference: np.ndarray, test: np.ndarray, variables: Sequence[str]) -> list[dict[str, float]]:
    """Per variable: means and the mean shift in reference standard deviations, largest first."""
    ref_mean, test_mean = reference.mean(axis=0), test.mean(axis=0)
    ref_sd = reference.std(axis=0, ddof=1) if reference.shape[0] > 1 else np.zeros(reference.shape[1])
    scale = np.where(ref_sd > 0, ref_sd, np.nan)
    shift = (test_mean - ref_mean) / scale
    rows = [
        {
            "variable": v,
            "reference_mean": float(ref_mean[i]),
            "test_mean": float(test_mean[i]),
            "shift_sd": float(shift[i]) if np.isfinite(shift[i])
            else (0.0 if test_mean[i] == ref_mean[i] else math.inf),
        }
        for i, v in enumerate(variables)
    ]
    return sorted(rows, key=lambda r: -abs(r["shift_sd"]))


def format_shifts(shifts: Sequence[Mapping[str, float]], limit: int = 3) -> str:
    parts = []
    for row in list(shifts)[:limit]:
        s = row["shift_sd"]
        size = "a constant reference" if math.isinf(s) else f"{s:+.2f} reference SD"
        parts.append(f"{row['variable']} (mean {row['reference_mean']:.4g} → {row['test_mean']:.4g}, {size})")
    return "; ".join(parts)


class Detector:
    """Base of every detector. Subclasses set the catalogue attributes and implement :meth:`_detect`.

    ``detect(reference, test)`` compares a test window with a reference window. Streaming detectors
    read the reference as their warm-up and report detections inside the test window only.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    kind: ClassVar[Kind]
    mode: ClassVar[Mode]
    description: ClassVar[str]
    references: ClassVar[tuple[str, ...]]
    input: ClassVar[InputKind] = "features"
    #: Smallest window (rows) each side the detector accepts.
    min_rows: ClassVar[int] = 2
    #: True when the detector scores each variable on its own; the score is then the largest
    #: per-variable score and calibration sets one threshold per variable.
    per_variable: ClassVar[bool] = False

    _specs: ClassVar[tuple[ParameterSpec, ...]]

    # -- parameters -------------------------------------------------------------------------------
    @classmethod
    def parameters(cls) -> tuple[ParameterSpec, ...]:
        """Typed parameter specs read from ``__init__``'s keyword-only arguments and the docstring."""
        if "_specs" not in cls.__dict__:
            signature = inspect.signature(cls.__init__)
            hints = typing.get_type_hints(cls.__init__, include_extras=True)
            docs = parse_docstring_parameters(cls.__doc__)
            specs = []
            for param in list(signature.parameters.values())[1:]:
                if param.kind is not inspect.Parameter.KEYWORD_ONLY:
                    raise TypeError(f"{cls.__name__}: parameter {param.name!r} must be keyword-only")
                if param.default is inspect.Parameter.empty:
                    raise TypeError(f"{cls.__name__}: parameter {param.name!r} needs a default")
                if param.name not in hints:
                    raise TypeError(f"{cls.__name__}: parameter {param.name!r} needs a type annotation")
                types, choices, bounds = read_annotation(param.name, hints[param.name])
                specs.append(
                    ParameterSpec(
                        name=param.name,
                        types=types,
                        choices=choices,
                        default=param.default,
                        description=docs.get(param.name, ""),
                        bounds=bounds,
                    )
                )
            cls._specs = tuple(specs)
        return cls._specs

    @classmethod
    def validate_params(cls, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``params``, each value validated; unknown names are refused."""
        params = dict(params or {})
        specs = {s.name: s for s in cls.parameters()}
        for name in params:
            if name not in specs:
                raise ParameterError(name, f"unknown parameter of {cls.key}; known: {', '.join(specs) or 'none'}")
        return {name: spec.validate(params.get(name, spec.default)) for name, spec in specs.items()}

    @classmethod
    def build(cls: type[D], params: Mapping[str, Any] | None = None) -> D:
        """The detector with validated parameters (``ParameterError`` names a bad one)."""
        return cls(**cls.validate_params(params))

    def get_params(self) -> dict[str, Any]:
        return {spec.name: getattr(self, spec.name) for spec in self.parameters()}

    def to_json(self) -> str:
        return json.dumps({"detector": self.key, "params": _json_safe(self.get_params())}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Detector:
        data = json.loads(text)
        return detector_class(data["detector"]).build(data.get("params", {}))

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """A JSON Schema (draft 2020-12) of the parameters, for forms and request validation."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": cls.label,
            "type": "object",
            "properties": {spec.name: spec.schema() for spec in cls.parameters()},
            "additionalProperties": False,
        }

    @classmethod
    def catalogue_entry(cls) -> dict[str, Any]:
        return {
            "key": cls.key,
            "label": cls.label,
            "kind": cls.kind,
            "mode": cls.mode,
            "input": cls.input,
            "description": cls.description,
            "references": list(cls.references),
            "parameters": [spec.to_dict() for spec in cls.parameters()],
            "schema": cls.json_schema(),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- detection --------------------------------------------------------------------------------
    def detect(self, reference: Any, test: Any, *, variables: Sequence[str] | None = None) -> DriftResult:
        """Compare ``test`` with ``reference`` and explain the verdict."""
        ref, names = as_matrix(reference, name="reference", variables=variables)
        tst, _ = as_matrix(test, name="test", variables=names)
        self._check_shapes(ref, tst)
        result = self._detect(ref, tst, names)
        if self.input == "features":
            details = {**result.details, "shifts": standardised_shifts(ref, tst, names)}
            result = dataclasses.replace(result, details=details)
        return dataclasses.replace(result, explanation=self.explain(result))

    def score(self, reference: np.ndarray, test: np.ndarray) -> float:
        """The drift score alone (calibration calls this many times; override where it is cheaper)."""
        if self.per_variable:
            return float(np.max(self.component_scores(reference, test)))
        return float(self._detect(reference, test, tuple(f"x{i}" for i in range(reference.shape[1]))).score)

    def component_scores(self, reference: np.ndarray, test: np.ndarray) -> np.ndarray:
        """One score per variable for per-variable detectors, else the single score (as a 1-array)."""
        if self.per_variable:
            result = self._detect(reference, test, tuple(f"x{i}" for i in range(reference.shape[1])))
            return np.array([row["score"] for row in result.details["per_variable"]], dtype=float)
        return np.array([self.score(reference, test)])

    def _check_shapes(self, ref: np.ndarray, tst: np.ndarray) -> None:
        if ref.shape[1] != tst.shape[1]:
            raise DataError(f"reference has {ref.shape[1]} columns, test has {tst.shape[1]}")
        for label, arr in (("reference", ref), ("test", tst)):
            if arr.shape[0] < self.min_rows:
                raise DataError(f"{label}: {self.label} needs at least {self.min_rows} rows, got {arr.shape[0]}")
        if self.input == "events":
            if ref.shape[1] != 1:
                raise DataError(f"{self.label} reads one 0/1 event stream, got {ref.shape[1]} columns")
            for label, arr in (("reference", ref), ("test", tst)):
                require_events(arr, name=label, reader=self.label)
        if self.input == "predictions" and ref.shape[1] < 2:
            raise DataError(f"{self.label} compares at least two models' predictions (columns)")

    def _detect(self, reference: np.ndarray, test: np.ndarray, variables: tuple[str, ...]) -> DriftResult:
        raise NotImplementedError

    def explain(self, result: DriftResult) -> str:
        """A plain-language sentence: verdict, score against threshold, the variables that moved."""
        verdict = "drift detected" if result.drift else "no drift"
        text = f"{self.label}: {verdict} (score {result.score:.4g} vs threshold {result.threshold:.4g}"
        if result.p_value is not None:
            text += f", p = {result.p_value:.3g}"
        text += ")."
        if result.detection_index is not None and result.detection_index != NO_DETECTION:
            text += f" First detection at test row {result.detection_index}."
        extra = self._explain_details(result)
        if extra:
            text += f" {extra}"
        shifts = result.details.get("shifts")
        if shifts:
            text += f" Largest mean shifts: {format_shifts(shifts)}."
        return text

    def _explain_details(self, result: DriftResult) -> str:
        return ""


D = TypeVar("D", bound=Detector)
_REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[D]) -> type[D]:
    """Class decorator: check the catalogue entry and the signature, then register under ``cls.key``."""
    for attr in ("key", "label", "kind", "mode", "description", "references"):
        if not getattr(cls, attr, None):
            raise TypeError(f"{cls.__name__} lacks catalogue attribute {attr!r}")
    if cls.kind not in KINDS or cls.mode not in MODES:
        raise TypeError(f"{cls.__name__}: kind must be one of {KINDS}, mode one of {MODES}")
    if cls.key in _REGISTRY and _REGISTRY[cls.key] is not cls:
        raise TypeError(f"detector key {cls.key!r} registered twice")
    specs = cls.parameters()
    missing = [s.name for s in specs if not s.description]
    if missing:
        raise TypeError(f"{cls.__name__}: document parameters {missing} in the class docstring")
    for spec in specs:  # the defaults must satisfy the declared types and bounds
        spec.validate(spec.default)
    _REGISTRY[cls.key] = cls
    return cls


def detector_class(key: str) -> type[Detector]:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise UnknownDetector(key, _REGISTRY) from None


def build_detector(key: str, params: Mapping[str, Any] | None = None) -> Detector:
    return detector_class(key).build(params)


def registry() -> dict[str, type[Detector]]:
    return dict(_REGISTRY)


def catalogue() -> list[dict[str, Any]]:
    return [cls.catalogue_entry() for cls in _REGISTRY.values()]


__all__ = [
    "Bounds",
    "DataError",
    "Detector",
    "DriftError",
    "DriftResult",
    "NO_DETECTION",
    "ParameterError",
    "ParameterSpec",
    "UnknownDetector",
    "as_matrix",
    "build_detector",
    "catalogue",
    "detector_class",
    "register",
    "registry",
]

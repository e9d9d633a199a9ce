"""The model spec: one version of a soft sensor as every other part of the platform sees it.

A stored version keeps STAMM's descriptor document (``ml_model_configuration``) as JSON. Reading that
document in many places is how the simulation page and the pipeline came to disagree on what a model
needs, so this module is the only reader of a stored descriptor: ``spec_build`` turns a version's row
(descriptor, training data, status) into a frozen ``ModelSpec`` once, and the registry's selectors hand
specs out. Everything downstream (the scoring path, drift, training, the pages) works from the spec.

Framework-free: no Django import, so it is tested on plain dictionaries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from apps.common.derived import is_derived

from .descriptors import DescriptorError, is_scaler_name, parse_experiments

ONLINE = "online"


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, text, NaN, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class FeatureSpec:
    """One model input, in the model's order.

    ``low``/``high`` are the validity envelope: the descriptor's declared ``expected_range`` where it has
    one, else the training envelope recorded when the version was trained (None: unchecked).
    ``derived`` inputs are computed by the platform (``apps.common.derived``), never read from a series.
    """

    name: str
    kind: str = ""
    units: str = ""
    description: str = ""
    derived: bool = False
    low: float | None = None
    high: float | None = None
    declared_low: float | None = None
    declared_high: float | None = None


@dataclass(frozen=True)
class OutputSpec:
    """One predicted variable with its units and declared range (the training range for trained models)."""

    name: str
    units: str = ""
    description: str = ""
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class BiasSpec:
    """The lab bias update a version was evaluated with (training stores it; deployments start from it).

    ``corrected = raw + bias``, ``bias ← (1 − alpha)·bias + alpha·(lab − raw at the sample time)`` for each
    lab result in [lab_min, lab_max], known ``lab_delay_seconds`` after sampling and at most
    ``max_lab_age_seconds`` old by then.
    """

    alpha: float
    lab_delay_seconds: int
    max_lab_age_seconds: int
    lab_min: float | None = None
    lab_max: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "lab_delay_seconds": self.lab_delay_seconds,
            "max_lab_age_seconds": self.max_lab_age_seconds,
            "lab_min": self.lab_min,
            "lab_max": self.lab_max,
        }


def bias_spec_parse(value: Any) -> BiasSpec | None:
    """A ``BiasSpec`` from its stored mapping, or None when absent or unusable (never raises)."""
    if not isinstance(value, Mapping):
        return None
    alpha = _number(value.get("alpha"))
    delay = _number(value.get("lab_delay_seconds"))
    age = _number(value.get("max_lab_age_seconds"))
    if alpha is None or not 0.0 <= alpha <= 1.0 or delay is None or delay < 0 or age is None or age < 0:
        return None
    return BiasSpec(
        alpha=alpha,
        lab_delay_seconds=int(delay),
        max_lab_age_seconds=int(age),
        lab_min=_number(value.get("lab_min")),
        lab_max=_number(value.get("lab_max")),
    )


@dataclass(frozen=True)
class EnvironmentRow:
    """A version's declared Python environment as stored: its key, build state and built folder."""

    key: str
    state: str
    message: str = ""
    location: str = ""
    variables: tuple[tuple[str, str], ...] = ()

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def environment_row(
    key: str | None, state: str | None, message: str | None, location: str | None, variables: Any
) -> EnvironmentRow | None:
    """The spec's environment from its stored columns (None when the version has none)."""
    if not key:
        return None
    pairs = tuple(sorted((str(k), str(v)) for k, v in variables.items())) if isinstance(variables, Mapping) else ()
    return EnvironmentRow(key=key, state=state or "", message=message or "", location=location or "", variables=pairs)


@dataclass(frozen=True)
class ModelSpec:
    """One version of a soft sensor: identity, status, inputs, outputs, envelope, training facts."""

    version_id: int
    soft_sensor_id: int
    project_id: str
    project_name: str
    model_id: str
    number: int
    label: str
    status: str
    status_description: str
    archived: bool
    flavor: str
    features: tuple[FeatureSpec, ...]
    outputs: tuple[OutputSpec, ...]
    input_scaler: str | None = None
    output_scaler: str | None = None
    experiments: tuple[int | str, ...] = ()
    name: str = ""
    author: str = ""
    learner: str = ""
    model_type: str = ""
    description: str = ""
    language: str = ""
    packages: tuple[Mapping[str, Any], ...] = ()
    training: Mapping[str, Any] = field(default_factory=dict)
    bias: BiasSpec | None = None
    source: str = ""
    created_at: datetime | None = None
    first_predicted_at: datetime | None = None
    model_name: str = ""
    #: STAMM's ``outputs`` block as stored: its predict endpoint echoes it back as ``metadata``.
    outputs_block: Mapping[str, Any] = field(default_factory=dict)
    #: STAMM's ``model_identification`` block as stored: its model list returns it as ``metadata``.
    identification_block: Mapping[str, Any] = field(default_factory=dict)
    #: The declared environment it runs in (empty key: the platform's own interpreter).
    environment: EnvironmentRow | None = None

    # -- identity --------------------------------------------------------------------------------
    @property
    def online(self) -> bool:
        """Callable by the scoring path: status online and not archived (the one online rule)."""
        return self.status == ONLINE and not self.archived

    @property
    def model_tag(self) -> str:
        """The ``model_id`` tag of stored predictions: the STAMM model ID in lower case."""
        return self.model_id.lower()

    @property
    def version_tag(self) -> str:
        """The ``version`` tag of stored predictions: the registry's version number."""
        return str(self.number)

    @property
    def title(self) -> str:
        """How people name it: ``0100_[python]_P0001_penicillin v3``."""
        return f"{self.model_id} v{self.number}"

    @property
    def ref(self) -> str:
        """A stable reference for pickers and URLs: ``P0001/<model_id>/<number>``."""
        return f"{self.project_id}/{self.model_id}/{self.number}"

    # -- inputs and outputs ----------------------------------------------------------------------
    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def measured_features(self) -> tuple[str, ...]:
        """Inputs read from stored series (derived ones left out): what can be missing, stale or drift."""
        return tuple(f.name for f in self.features if not f.derived)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def output(self, name: str | None = None) -> OutputSpec:
        """The named output, or the first one (what a single-output soft sensor estimates)."""
        if name is None:
            return self.outputs[0]
        for output in self.outputs:
            if output.name == name:
                return output
        raise KeyError(name)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bound per feature as float arrays (NaN where unchecked): the validity envelope."""
        low = np.array([np.nan if f.low is None else f.low for f in self.features], dtype=float)
        high = np.array([np.nan if f.high is None else f.high for f in self.features], dtype=float)
        return low, high

    def probe_row(self) -> tuple[float, ...]:
        """A plausible input row for a load check: mid-envelope where known, else a bound, else 0."""
        row = []
        for feature in self.features:
            if feature.low is not None and feature.high is not None:
                row.append((feature.low + feature.high) / 2)
            else:
                row.append(feature.low if feature.low is not None else feature.high or 0.0)
        return tuple(float(v) for v in row)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _range(value: Any) -> tuple[float | None, float | None]:
    if not isinstance(value, Mapping):
        return None, None
    return _number(value.get("min")), _number(value.get("max"))


def _features(items: Sequence[Any], envelope: Mapping[str, Any]) -> tuple[FeatureSpec, ...]:
    features = []
    for item in items:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        name = str(item["name"])
        declared_low, declared_high = _range(item.get("expected_range"))
        low, high = declared_low, declared_high
        if low is None and high is None:  # no declared range: the training envelope, when recorded
            low, high = _range(envelope.get(name))
        features.append(
            FeatureSpec(
                name=name,
                kind=_text(item.get("type")),
                units=_text(item.get("units")),
                description=_text(item.get("description")),
                derived=is_derived(name),
                low=low,
                high=high,
                declared_low=declared_low,
                declared_high=declared_high,
            )
        )
    return tuple(features)


def _outputs(items: Sequence[Any]) -> tuple[OutputSpec, ...]:
    outputs = []
    for item in items:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        low, high = _range(item.get("expected_range"))
        outputs.append(
            OutputSpec(
                name=str(item["name"]),
                units=_text(item.get("units")),
                description=_text(item.get("description")),
                low=low,
                high=high,
            )
        )
    return tuple(outputs)


def _language(value: Any) -> str:
    """``python`` / ``R`` from STAMM's list-of-mappings form or a plain string."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        for item in value:
            if isinstance(item, Mapping) and item.get("name"):
                return str(item["name"])
    return ""


def _scaler(value: Any) -> str | None:
    name = _text(value)
    return name if is_scaler_name(name) else None


def _block(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key)
    return value if isinstance(value, Mapping) else {}


def spec_build(
    *,
    descriptor: Mapping[str, Any],
    training_data: Mapping[str, Any] | None,
    version_id: int,
    soft_sensor_id: int,
    project_id: str,
    project_name: str,
    model_id: str,
    number: int,
    label: str = "",
    status: str = "",
    status_description: str = "",
    archived: bool = False,
    flavor: str = "",
    source: str = "",
    created_at: datetime | None = None,
    first_predicted_at: datetime | None = None,
    environment: EnvironmentRow | None = None,
) -> ModelSpec:
    """The spec of one version from its stored descriptor and training data (the only descriptor reader)."""
    document = descriptor or {}
    training_data = training_data or {}
    identification = _block(document, "model_identification")
    description = _block(document, "model_description")
    training = _block(document, "training_information")
    inputs = _block(document, "inputs")
    outputs = _block(document, "outputs")
    envelope = training_data.get("envelope")
    try:
        experiments = parse_experiments(training.get("experiments_ID"))
    except DescriptorError:
        experiments = ()
    packages = description.get("packages")
    return ModelSpec(
        version_id=int(version_id),
        soft_sensor_id=int(soft_sensor_id),
        project_id=project_id,
        project_name=project_name.lower(),
        model_id=model_id,
        number=int(number),
        label=label,
        status=status,
        status_description=status_description,
        archived=archived,
        flavor=flavor,
        features=_features(inputs.get("features") or [], envelope if isinstance(envelope, Mapping) else {}),
        outputs=_outputs(outputs.get("information") or []),
        input_scaler=_scaler(inputs.get("scaler")),
        output_scaler=_scaler(outputs.get("scaler")),
        experiments=tuple(experiments),
        name=_text(identification.get("name")),
        author=_text(identification.get("author")),
        learner=_text(description.get("learner")),
        model_type=_text(description.get("model_type")),
        description=_text(description.get("description")),
        language=_language(description.get("language")),
        packages=tuple(p for p in packages if isinstance(p, Mapping)) if isinstance(packages, list) else (),
        training={
            "instances": training.get("number_of_instances"),
            "experiments": list(experiments),
            "hyperparameters": training.get("hyperparameters") or {},
            "validation": training.get("validation") or {},
            "preprocessing": training.get("preprocessing") or {},
            "rows": training_data.get("rows"),
            "batches": training_data.get("batches") or [],
            "metrics": training_data.get("metrics") or {},
            # How the training workflow judged the version as deployed (raw model, with its bias update,
            # persistence, training mean) on its holdout; empty for uploaded versions.
            "evaluation": training_data.get("evaluation") or {},
        },
        bias=bias_spec_parse(training_data.get("bias")),
        source=source,
        created_at=created_at,
        first_predicted_at=first_predicted_at,
        model_name=_text(description.get("model_name")),
        outputs_block=dict(outputs),
        identification_block=dict(identification),
        environment=environment,
    )

"""STAMM model descriptors: parse, validate, normalise and export (framework-free).

A descriptor is the YAML file ``configs/<MODEL_ID>.yaml`` of a STAMM project folder (contracts §2.2).
Upstream files are hand-written and inconsistent, so this module accepts every shape the contracts list
(three ``language`` shapes, ``experiments_ID`` as a list or a comma-separated string, several
``creation_date`` formats, optional sections) and reports *every* problem at once, each prefixed with the
path of the offending value, e.g. ``inputs.features[3].expected_range.min: must be a number``.

The stored form is the ``ml_model_configuration`` mapping exactly as written (after YAML decoding into
JSON-safe values), so export gives back the same structure; the parsed :class:`Descriptor` is the typed
view the registry and the serving code use.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .yaml_io import DescriptorError, dump_yaml, json_safe, load_yaml

ROOT_KEY = "ml_model_configuration"

#: ``NNNN_[language]_name``: the bracketed language appears in any case (contracts §2).
MODEL_ID_RE = re.compile(r"^[0-9]{4}_\[[A-Za-z0-9.+-]+\]_[A-Za-z0-9_.\-]+$")
FEATURE_TYPES = ("sensor", "actuator", "computed_variable", "computed", "soft_sensor", "offline_measurement")
STATUSES = ("online", "offline")

#: Date formats seen in upstream ``creation_date`` values, tried in order (day-first before month-first).
DATE_FORMATS = (
    "%d-%m-%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%d-%m-%y",
    "%d/%m/%y",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%b %d %Y",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y%m%d",
)


@dataclass(frozen=True)
class Range:
    min: float | None
    max: float | None


@dataclass(frozen=True)
class Feature:
    name: str
    type: str | None
    units: str | None
    lag: int
    expected_range: Range | None


@dataclass(frozen=True)
class Output:
    name: str
    units: str | None
    forecast_horizon: float | None
    expected_range: Range | None


@dataclass(frozen=True)
class Descriptor:
    """The validated, typed view of one descriptor. ``config`` is the JSON-safe stored mapping."""

    config: dict[str, Any]
    model_id: str
    name: str
    version: str
    author: str
    creation_date: dt.date | None
    status: str | None
    language: str
    language_version: str | None
    model_file: str
    serialized_model_file: str | None
    features: tuple[Feature, ...]
    outputs: tuple[Output, ...]
    input_scaler: str | None
    output_scaler: str | None
    experiments_ids: tuple[int | str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]


# --------------------------------------------------------------------------------------------- YAML export


def export_descriptor_yaml(config: Mapping[str, Any]) -> str:
    """The descriptor file text for a stored ``ml_model_configuration`` mapping."""
    return dump_yaml({ROOT_KEY: copy.deepcopy(dict(config))})


# ------------------------------------------------------------------------------------------- validation


class _Checker:
    """Collects ``path: message`` errors while walking a descriptor."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def mapping(self, parent: Mapping, key: str, path: str, *, required: bool) -> Mapping | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.error(path, "is required")
            return None
        if not isinstance(value, Mapping):
            self.error(path, "must be a mapping")
            return None
        return value

    def text(
        self, parent: Mapping, key: str, path: str, *, required: bool = False, allow_number: bool = False
    ) -> str | None:
        value = parent.get(key)
        if value is None or value == "":
            if required:
                self.error(path, "is required")
            return None
        if allow_number and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            self.error(path, "must be a string")
            return None
        return value.strip()

    def number(self, parent: Mapping, key: str, path: str, *, required: bool = False) -> float | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.error(path, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(path, "must be a number")
            return None
        if not math.isfinite(value):
            self.error(path, "must be a finite number")
            return None
        return float(value)

    def integer(self, parent: Mapping, key: str, path: str, *, minimum: int | None = None) -> int | None:
        value = parent.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                self.error(path, "must be an integer")
                return None
        if minimum is not None and value < minimum:
            self.error(path, f"must be at least {minimum}")
            return None
        return value

    def expected_range(self, parent: Mapping, path: str) -> Range | None:
        block = self.mapping(parent, "expected_range", f"{path}.expected_range", required=False)
        if block is None:
            return None
        # Upstream writes NaN / null / "" for "no bound": that is an absent bound, not an error.
        block = {key: (None if _is_blank(value) else value) for key, value in block.items()}
        low = self.number(block, "min", f"{path}.expected_range.min")
        high = self.number(block, "max", f"{path}.expected_range.max")
        if low is not None and high is not None and low > high:
            self.error(f"{path}.expected_range", f"min ({low:g}) is greater than max ({high:g})")
            return None
        if low is None and high is None:
            return None
        return Range(low, high)


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan", "none", "null", "na"))


def parse_language(value: Any, path: str = "model_description.language") -> tuple[str, str | None]:
    """Name and version from any of the three upstream shapes. Raises DescriptorError naming ``path``.

    ``[{name: python}, {version: "3.11.7"}]``, ``[{name: R, version: "4.3.3"}]`` and
    ``{name: python, version: "3.11.7"}`` all give ``("python", "3.11.7")`` (name lower-cased).
    """
    merged: dict[str, Any] = {}
    if isinstance(value, Mapping):
        merged = dict(value)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise DescriptorError([f"{path}[{index}]: must be a mapping such as {{name: python}}"])
            merged.update(item)
    elif isinstance(value, str) and value.strip():
        merged = {"name": value}
    else:
        raise DescriptorError([f"{path}: must be a mapping {{name, version}} or a list of mappings"])
    name = merged.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DescriptorError([f"{path}.name: is required (e.g. python or R)"])
    version = merged.get("version")
    return name.strip().lower(), (None if version in (None, "") else str(version))


def parse_experiments(value: Any, path: str = "training_information.experiments_ID") -> tuple[int | str, ...]:
    """The training experiments (batches) as STAMM writes them, in any of its shapes.

    ``[92, 93]``, ``"92, 93"`` or one number give ``(92, 93)``; identifiers that are not numbers are kept as
    text, as STAMM's E. coli descriptors write them (``"BR01, BR02"`` → ``("BR01", "BR02")``). Raises
    DescriptorError naming ``path`` for anything that is not a number or a name (a mapping, a boolean).
    """
    if value is None or value == "":
        return ()
    items: list[Any]
    if isinstance(value, str):
        items = [part.strip() for part in re.split(r"[,;\s]+", value) if part.strip()]
    elif isinstance(value, list):
        items = value
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    else:
        raise DescriptorError([f"{path}: must be a list of experiment IDs or a comma-separated string"])
    result: list[int | str] = []
    errors: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, bool):
            errors.append(f"{path}[{index}]: must be an experiment ID (a number or a name), got {item!r}")
        elif isinstance(item, int):
            result.append(item)
        elif isinstance(item, float) and item.is_integer():
            result.append(int(item))
        elif isinstance(item, str) and re.fullmatch(r"[+-]?\d+(\.0+)?", item.strip()):
            result.append(int(float(item)))
        elif isinstance(item, str) and item.strip() and len(item.strip()) <= 200:
            result.append(item.strip())
        else:
            errors.append(f"{path}[{index}]: must be an experiment ID (a number or a name), got {item!r}")
    if errors:
        raise DescriptorError(errors)
    return tuple(result)


def parse_date(value: Any) -> dt.date | None:
    """A date from the formats upstream descriptors use; None when empty or unrecognised."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text or text.lower() in ("nan", "none", "null"):
        return None
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        return None


def _named_items(
    check: _Checker, section: Mapping, key: str, where: str, required_what: str, noun: str
) -> Iterator[tuple[str, Mapping, str | None]]:
    """``(path, item, name)`` of each mapping in ``section[key]``, a required non-empty list whose items
    carry unique names; problems (missing list, non-mapping item, duplicate name) go to ``check``."""
    raw = section.get(key)
    if raw is None:
        check.error(f"{where}.{key}", f"is required ({required_what})")
        return
    if not isinstance(raw, list) or not raw:
        check.error(f"{where}.{key}", "must be a non-empty list")
        return
    seen: set[str] = set()
    for index, item in enumerate(raw):
        path = f"{where}.{key}[{index}]"
        if not isinstance(item, Mapping):
            check.error(path, "must be a mapping")
            continue
        name = check.text(item, "name", f"{path}.name", required=True)
        if name is not None:
            if name in seen:
                check.error(f"{path}.name", f"duplicate {noun} name {name!r}")
            seen.add(name)
        yield path, item, name


def _features(check: _Checker, inputs: Mapping) -> list[Feature]:
    features: list[Feature] = []
    for path, item, name in _named_items(
        check, inputs, "features", "inputs", "the ordered list of model inputs", "feature"
    ):
        kind = check.text(item, "type", f"{path}.type")
        if kind is not None and kind.lower() not in FEATURE_TYPES:
            check.error(f"{path}.type", f"must be one of {', '.join(FEATURE_TYPES)}, got {kind!r}")
        units = check.text(item, "units", f"{path}.units", allow_number=True)
        check.text(item, "description", f"{path}.description")
        check.text(item, "feature_scaling", f"{path}.feature_scaling")
        lag = check.integer(item, "lag", f"{path}.lag", minimum=0)
        expected = check.expected_range(item, path)
        if name is not None:
            features.append(Feature(name, kind.lower() if kind else None, units, lag or 0, expected))
    return features


def _outputs(check: _Checker, outputs: Mapping) -> list[Output]:
    result: list[Output] = []
    for path, item, name in _named_items(
        check, outputs, "information", "outputs", "the list of predicted variables", "output"
    ):
        units = check.text(item, "units", f"{path}.units", allow_number=True)
        check.text(item, "description", f"{path}.description")
        check.text(item, "feature_scaling", f"{path}.feature_scaling")
        horizon = check.number(item, "forecast_horizon", f"{path}.forecast_horizon")
        expected = check.expected_range(item, path)
        if name is not None:
            result.append(Output(name, units, horizon, expected))
    return result


def _file_name(check: _Checker, parent: Mapping, key: str, path: str, *, required: bool) -> str | None:
    name = check.text(parent, key, path, required=required)
    if name is None:
        return None
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        check.error(path, "must be a bare file name (no directories)")
        return None
    return name


def validate_config(config: Any) -> Descriptor:
    """Validate an ``ml_model_configuration`` mapping (without the root key). Raises DescriptorError."""
    if not isinstance(config, Mapping):
        raise DescriptorError([f"{ROOT_KEY}: must be a mapping"])
    config = json_safe(dict(config))
    check = _Checker()

    ident = check.mapping(config, "model_identification", "model_identification", required=True) or {}
    name = check.text(ident, "name", "model_identification.name", required=True, allow_number=True)
    version = check.text(ident, "version", "model_identification.version", required=True, allow_number=True)
    model_id = check.text(ident, "ID", "model_identification.ID", required=True)
    if model_id is not None and not MODEL_ID_RE.match(model_id):
        check.error("model_identification.ID", f"must look like NNNN_[language]_name, got {model_id!r}")
    author = check.text(ident, "author", "model_identification.author", allow_number=True) or ""
    check.text(ident, "UUID", "model_identification.UUID", allow_number=True)
    check.text(ident, "doi", "model_identification.doi", allow_number=True)
    status = check.text(ident, "status", "model_identification.status")
    if status is not None:
        status = status.lower()
        if status not in STATUSES:
            check.error("model_identification.status", f"must be online or offline, got {status!r}")
    check.text(ident, "status_description", "model_identification.status_description")
    created_raw = ident.get("creation_date")
    created = parse_date(created_raw)
    if created_raw not in (None, "") and created is None:
        check.warnings.append(f"model_identification.creation_date: unrecognised date {created_raw!r}, kept as text")

    desc = check.mapping(config, "model_description", "model_description", required=True) or {}
    language, language_version = "", None
    if "language" not in desc or desc.get("language") in (None, ""):
        if desc:
            check.error("model_description.language", "is required")
    else:
        try:
            language, language_version = parse_language(desc["language"])
        except DescriptorError as exc:
            check.errors.extend(exc.errors)
    if model_id and language:
        bracket = model_id.split("]")[0].split("[")[-1].lower() if "[" in model_id else ""
        if bracket and bracket != language:
            check.warnings.append(
                f"model_identification.ID: language in brackets ({bracket}) differs from "
                f"model_description.language ({language})"
            )
    for key in ("learner", "model_type", "model_name", "description"):
        check.text(desc, key, f"model_description.{key}", allow_number=True)
    files = check.mapping(desc, "config_files", "model_description.config_files", required=bool(desc)) or {}
    model_file = _file_name(
        check, files, "model_file", "model_description.config_files.model_file", required=bool(desc)
    )
    serialized = _file_name(
        check, files, "serialized_model_file", "model_description.config_files.serialized_model_file", required=False
    )
    packages = desc.get("packages")
    if packages is not None:
        if not isinstance(packages, list):
            check.error("model_description.packages", "must be a list")
        else:
            for index, item in enumerate(packages):
                if not isinstance(item, Mapping):
                    check.error(f"model_description.packages[{index}]", "must be a mapping {package, class, version}")
                    continue
                check.text(item, "package", f"model_description.packages[{index}].package", required=True)
                check.text(item, "version", f"model_description.packages[{index}].version", allow_number=True)
    interval = check.mapping(desc, "input_time_interval", "model_description.input_time_interval", required=False)
    if interval is not None:
        ti = check.mapping(
            interval, "time_interval", "model_description.input_time_interval.time_interval", required=False
        )
        if ti is not None:
            check.number(ti, "value", "model_description.input_time_interval.time_interval.value")
            check.text(ti, "unit", "model_description.input_time_interval.time_interval.unit")

    training = check.mapping(config, "training_information", "training_information", required=False) or {}
    check.integer(training, "number_of_instances", "training_information.number_of_instances", minimum=0)
    if training.get("hyperparameters") is not None and not isinstance(training["hyperparameters"], Mapping):
        check.error("training_information.hyperparameters", "must be a mapping")
    validation = training.get("validation")
    if validation is not None and not isinstance(validation, (str, Mapping, int, float)):
        check.error("training_information.validation", "must be text or a mapping")
    experiments: tuple[int | str, ...] = ()
    try:
        experiments = parse_experiments(training.get("experiments_ID"))
    except DescriptorError as exc:
        check.errors.extend(exc.errors)

    inputs = check.mapping(config, "inputs", "inputs", required=True) or {}
    input_scaler = _file_name(check, inputs, "scaler", "inputs.scaler", required=False) if inputs else None
    features = _features(check, inputs) if inputs else []
    outputs = check.mapping(config, "outputs", "outputs", required=True) or {}
    output_scaler = _file_name(check, outputs, "scaler", "outputs.scaler", required=False) if outputs else None
    output_list = _outputs(check, outputs) if outputs else []

    if check.errors:
        raise DescriptorError(check.errors)
    return Descriptor(
        config=config,
        model_id=model_id or "",
        name=name or "",
        version=version or "",
        author=author,
        creation_date=created,
        status=status,
        language=language,
        language_version=language_version,
        model_file=model_file or "",
        serialized_model_file=serialized,
        features=tuple(features),
        outputs=tuple(output_list),
        input_scaler=input_scaler if is_scaler_name(input_scaler) else None,
        output_scaler=output_scaler if is_scaler_name(output_scaler) else None,
        experiments_ids=experiments,
        warnings=tuple(check.warnings),
    )


def is_scaler_name(name: str | None) -> bool:
    """Upstream writes ``scaler: none`` / ``NaN`` for "no scaler"; only a real file name counts."""
    return bool(name) and name.lower() not in ("none", "nan", "null", "false", "no")


def parse_descriptor(data: Any) -> Descriptor:
    """Validate a decoded descriptor document (with the ``ml_model_configuration`` root key)."""
    if not isinstance(data, Mapping):
        raise DescriptorError(["<root>: must be a mapping with the key ml_model_configuration"])
    if ROOT_KEY not in data:
        raise DescriptorError([f"{ROOT_KEY}: is required (the root key of a STAMM descriptor)"])
    return validate_config(data[ROOT_KEY])


def parse_descriptor_yaml(text: str | bytes) -> Descriptor:
    """Decode and validate descriptor YAML text."""
    return parse_descriptor(load_yaml(text))


# ---------------------------------------------------------------------------------------------- updates


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Upstream ``PUT update``: mappings merge key by key, any other value (lists too) replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def serving_signature(descriptor: Descriptor) -> dict[str, Any]:
    """What fixes a version's behaviour: edits that change it need a new version, not an update."""
    return {
        "ID": descriptor.model_id,
        "language": descriptor.language,
        "model_file": descriptor.model_file,
        "features": descriptor.feature_names,
        "outputs": descriptor.output_names,
        "input_scaler": descriptor.input_scaler,
        "output_scaler": descriptor.output_scaler,
    }


def with_status(config: Mapping[str, Any], *, status: str, description: str) -> dict[str, Any]:
    """A copy of ``config`` whose identification block states the given status."""
    result = copy.deepcopy(dict(config))
    ident = dict(result.get("model_identification") or {})
    ident["status"] = status
    ident["status_description"] = description
    result["model_identification"] = ident
    return result


def descriptor_sections(config: Mapping[str, Any], sections: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """The document's top-level blocks as ``{key, title, value}`` rows, in ``sections`` order (the page's
    view of the stored document; everything that acts on a model reads its spec instead)."""
    return [{"key": key, "title": title, "value": config[key]} for key, title in sections if key in config]

"""Parameters read from a detector's signature: types, choices, bounds, defaults and tooltips.

A detector declares each parameter once — keyword-only, annotated, with a default — and documents it
once, in the class docstring's ``Parameters`` section; numeric bounds ride on the annotation
(``Annotated[float, Bounds(gt=0)]``). This module turns that declaration into a :class:`ParameterSpec`
that validates values (naming the parameter in :class:`~stamm_drift.errors.ParameterError`), and
describes itself as a JSON Schema property and as a form field.
"""
from __future__ import annotations

import inspect
import math
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import ParameterError


@dataclass(frozen=True)
class Bounds:
    """Numeric bounds of a parameter, attached with ``Annotated[float, Bounds(gt=0)]``."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def check(self, name: str, value: float) -> None:
        if self.gt is not None and not value > self.gt:
            raise ParameterError(name, f"must be > {self.gt}, got {value}")
        if self.ge is not None and not value >= self.ge:
            raise ParameterError(name, f"must be ≥ {self.ge}, got {value}")
        if self.lt is not None and not value < self.lt:
            raise ParameterError(name, f"must be < {self.lt}, got {value}")
        if self.le is not None and not value <= self.le:
            raise ParameterError(name, f"must be ≤ {self.le}, got {value}")

    def schema(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.gt is not None:
            out["exclusiveMinimum"] = self.gt
        if self.ge is not None:
            out["minimum"] = self.ge
        if self.lt is not None:
            out["exclusiveMaximum"] = self.lt
        if self.le is not None:
            out["maximum"] = self.le
        return out


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter as read from a detector's signature and docstring."""

    name: str
    types: tuple[type, ...]  # plain Python types accepted (bool, int, float, str)
    choices: tuple[Any, ...]  # Literal values accepted in addition (or instead)
    default: Any
    description: str
    bounds: Bounds | None = None

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def type_name(self) -> str:
        names = [_JSON_TYPES[t] for t in self.types]
        if self.choices:
            names.append("choice")
        return " | ".join(names)

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to the declared type, or raise :class:`ParameterError`."""
        if isinstance(value, str) and value in self.choices:
            return value
        for kind in self.types:
            coerced = _coerce(value, kind)
            if coerced is not _NOPE:
                if kind in (int, float):
                    if isinstance(coerced, float) and not math.isfinite(coerced):
                        raise ParameterError(self.name, f"must be a finite number, got {value!r}")
                    if self.bounds is not None:
                        self.bounds.check(self.name, coerced)
                return coerced
        expected = " or ".join([_JSON_TYPES[t] for t in self.types] + [repr(c) for c in self.choices])
        raise ParameterError(self.name, f"expected {expected}, got {value!r}")

    def schema(self) -> dict[str, Any]:
        """This parameter as a JSON Schema property (with ``default`` and ``description``)."""
        alternatives: list[dict[str, Any]] = []
        for kind in self.types:
            alt: dict[str, Any] = {"type": _JSON_TYPES[kind]}
            if self.bounds is not None and kind in (int, float):
                alt.update(self.bounds.schema())
            alternatives.append(alt)
        if self.choices:
            alternatives.append({"enum": list(self.choices)})
        out: dict[str, Any] = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
        return {**out, "title": self.label, "default": self.default, "description": self.description}

    def to_dict(self) -> dict[str, Any]:
        """The parameter for a form builder: name, label, type, default, tooltip, choices, bounds."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type_name,
            "default": self.default,
            "description": self.description,
            "choices": list(self.choices),
            "bounds": self.bounds.schema() if self.bounds else {},
        }


_NOPE = object()


def _coerce(value: Any, kind: type) -> Any:
    if kind is bool:
        return value if isinstance(value, bool) else _NOPE
    if isinstance(value, bool):  # True is an int in Python, never a number here
        return _NOPE
    if kind is int:
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return int(value)
        return _NOPE
    if kind is float:
        return float(value) if isinstance(value, int | float | np.integer | np.floating) else _NOPE
    if kind is str:
        return value if isinstance(value, str) else _NOPE
    return _NOPE


def parse_docstring_parameters(doc: str | None) -> dict[str, str]:
    """``{name: description}`` from a numpy-style ``Parameters`` section."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Parameters")
    except StopIteration:
        return {}
    current: str | None = None
    body = lines[start + 2 :]
    for i, line in enumerate(body):
        if line and not line.startswith(" "):
            if i + 1 < len(body) and re.fullmatch(r"-{3,}", body[i + 1].strip()):
                break  # the next section's header
            current = line.split(":")[0].strip()
            out[current] = ""
        elif current is not None and line.strip():
            out[current] = f"{out[current]} {line.strip()}".strip()
    return out


def read_annotation(name: str, annotation: Any) -> tuple[tuple[type, ...], tuple[Any, ...], Bounds | None]:
    bounds = None
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        bounds = next((e for e in extras if isinstance(e, Bounds)), None)
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    types: list[type] = []
    choices: list[Any] = []
    for member in members:
        if typing.get_origin(member) is typing.Annotated:  # e.g. Annotated[float, Bounds(gt=0)] | Literal[...]
            member, *extras = typing.get_args(member)
            bounds = next((e for e in extras if isinstance(e, Bounds)), bounds)
        if typing.get_origin(member) is Literal:
            choices.extend(typing.get_args(member))
        elif member in _JSON_TYPES:
            types.append(member)
        else:
            raise TypeError(f"parameter {name!r}: unsupported annotation {member!r}")
    return tuple(types), tuple(choices), bounds


def _is_union(annotation: Any) -> bool:
    import types as _types

    return typing.get_origin(annotation) in (typing.Union, _types.UnionType)


"""drift_detectors_pack's result types and base class, on top of stamm_drift.

The upstream contract kept here: ``calculate(test_data, reference_data=None, ...)`` returns a
:class:`ScoreDriftResult` (``score``, ``drift``, ``details``) or, for streaming detectors, a
:class:`StreamingDriftResult` (``last_index``, ``drift``, ``details``); a reference is given to the
constructor, to :meth:`DriftDetector.set_reference_data` or per call; ``online=True`` keeps state (the
accumulated test window, or the stream) across calls; ``details`` carries the parameters, ``mode`` and
the window sizes; every instance has a ``metadata`` dict in the upstream ``metadata.yaml`` schema.

Every number is computed by stamm_drift's own detectors. A class states how its formula differs from
drift_detectors_pack's in ``differences`` (appended to its docstring, served in
``metadata["stamm"]["differences"]``). Upstream arguments that have no counterpart in STAMM's formula
are accepted at their upstream default, so a script that spells the default out still runs, and
refused with :class:`UnsupportedArgument` otherwise — never silently ignored.
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..base import DriftResult, as_matrix, detector_class
from ..errors import DataError, ParameterError
from .metadata import metadata_for


@dataclass
class ScoreDriftResult:
    """A batch detector's verdict: one score, a flag, details (``result``: stamm_drift's own result)."""

    score: float | None
    drift: bool
    details: dict[str, Any] = field(default_factory=dict)
    result: DriftResult | None = field(default=None, repr=False, compare=False)


@dataclass
class StreamingDriftResult:
    """A streaming detector's verdict on the values of one call: the last detection's offset (−1: none)."""

    last_index: int
    drift: bool
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class PointwiseDriftResult:
    """Change points as indices (kept for drift_detectors_pack's API; no shipped detector returns it)."""

    indices: list[int]
    details: dict[str, Any] = field(default_factory=dict)


class UnsupportedArgument(ParameterError):
    """A drift_detectors_pack argument that STAMM's formula has no use for was set to another value than
    its upstream default."""


class DriftDetector(ABC):
    """drift_detectors_pack's abstract detector: subclass it and implement ``calculate``.

    ``stamm_key`` names the stamm_drift detector a class adapts (``None`` for a user's own class, whose
    ``metadata`` is then empty); ``folder`` and ``acronym`` are the upstream catalogue's names.
    """

    stamm_key: ClassVar[str | None] = None
    folder: ClassVar[str | None] = None
    acronym: ClassVar[str] = ""
    #: One sentence per deliberate difference from drift_detectors_pack's formula or behaviour.
    differences: ClassVar[tuple[str, ...]] = ()
    #: Upstream arguments without a STAMM counterpart: {name: what to do instead}.
    unsupported: ClassVar[Mapping[str, str]] = {}
    #: Upstream arguments renamed in STAMM: {upstream name: stamm_drift parameter}.
    renamed: ClassVar[Mapping[str, str]] = {}
    #: Descriptions of arguments that set no stamm_drift parameter (for ``metadata``).
    notes: ClassVar[Mapping[str, str]] = {
        "reference_data": "Reference window (1-D: one variable; 2-D: rows × variables), used when calculate() "
                          "gets none.",
        "online": "Keep state across calculate() calls: the accumulated test window, or the stream.",
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("differences"):
            notes = "".join(f"    - {line}\n" for line in cls.differences)
            cls.__doc__ = (f"{(cls.__doc__ or '').rstrip()}\n\n    Differences from drift_detectors_pack\n"
                           f"    -------------------------------------\n{notes}")

    def __init__(self, reference_data: Any = None, online: bool | None = False) -> None:
        self._reference_data = reference_data
        self._online = bool(online)
        self.metadata = metadata_for(type(self))

    def set_reference_data(self, reference_data: Any) -> None:
        """Store or replace the reference window used when ``calculate`` gets none."""
        self._reference_data = reference_data

    def is_online(self) -> bool:
        """Whether state (the accumulated test window, or the stream) is kept across calls."""
        return self._online

    @property
    def _mode(self) -> str:
        return "online" if self._online else "offline"

    @abstractmethod
    def calculate(self, test_data: Any, reference_data: Any = None, **kwargs: Any) -> Any:
        """Compare ``test_data`` with the reference (or feed it to the stream) and return a result."""

    @classmethod
    def _refuse_unsupported(cls, **given: Any) -> None:
        """Raise :class:`UnsupportedArgument` for an upstream-only argument set away from its default."""
        defaults = _defaults(cls)
        for name, value in given.items():
            if value is not None and value != defaults.get(name):
                raise UnsupportedArgument(
                    name, f"drift_detectors_pack's setting, with no counterpart in STAMM's {cls.__name__}; "
                          f"only its default {defaults.get(name)!r} is accepted. {cls.unsupported[name]}")


def _defaults(cls: type) -> dict[str, Any]:
    """Defaults of ``__init__`` and ``calculate`` together (the upstream signature's defaults)."""
    out: dict[str, Any] = {}
    for method in (cls.__init__, getattr(cls, "calculate", None)):
        if method is None:
            continue
        for param in inspect.signature(method).parameters.values():
            if param.default is not inspect.Parameter.empty:
                out.setdefault(param.name, param.default)
    return out


class ScoreDetector(DriftDetector):
    """A batch detector: windows resolved the upstream way, scored by the stamm_drift detector."""

    #: Return ``score=None`` with ``details["status"] == "not_ready"`` (as upstream does) instead of an
    #: error when a window is shorter than the detector needs.
    not_ready_when_short: ClassVar[bool] = False

    def __init__(self, reference_data: Any = None, online: bool | None = False) -> None:
        super().__init__(reference_data=reference_data, online=online)
        self._test_buffer: list[np.ndarray] = []

    def _windows(self, test_data: Any, reference_data: Any) -> tuple[Any, Any]:
        reference = reference_data if reference_data is not None else self._reference_data
        if reference is None:
            raise DataError("Reference data must be provided or initialized (constructor, set_reference_data "
                            "or calculate's reference_data).")
        if np.ndim(test_data) == 0:
            test_data = [test_data]
        if not self._online:
            return reference, test_data
        chunk, _ = as_matrix(test_data, name="test")
        if self._test_buffer and chunk.shape[1] != self._test_buffer[0].shape[1]:
            raise DataError(f"test: {chunk.shape[1]} columns, but the accumulated test window has "
                            f"{self._test_buffer[0].shape[1]}")
        self._test_buffer.append(chunk)
        return reference, np.vstack(self._test_buffer)

    def _score(self, params: Mapping[str, Any], test_data: Any, reference_data: Any,
               details: Mapping[str, Any]) -> ScoreDriftResult:
        detector = detector_class(self.stamm_key).build(params)
        reference, test = self._windows(test_data, reference_data)
        reference, names = as_matrix(reference, name="reference")
        test, _ = as_matrix(test, name="test", variables=names)
        sizes = {"mode": self._mode, "reference_size": reference.shape[0], "test_size": test.shape[0]}
        if self.not_ready_when_short and min(reference.shape[0], test.shape[0]) < detector.min_rows:
            return ScoreDriftResult(score=None, drift=False, details={
                "status": "not_ready", "reason": f"{detector.label} needs at least {detector.min_rows} rows each side",
                **details, **sizes})
        result = detector.detect(reference, test, variables=names)
        return ScoreDriftResult(
            score=result.score, drift=result.drift, result=result,
            details={**result.details, "threshold": result.threshold, "p_value": result.p_value,
                     "explanation": result.explanation, **details, **sizes},
        )

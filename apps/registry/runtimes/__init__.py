"""Model runtimes: one object per artefact flavor that loads a version's files and predicts.

The interface is deliberately small so that runtimes for other languages plug in:

- ``load_error(artifact) -> str | None``: load (and cache) the bundle and try one prediction; ``None``
  when the version can serve, else a human-readable reason (the version then gets ``load_error``).
- ``predict(artifact, X, feature_names) -> np.ndarray``: ``X`` is a float64 matrix whose columns are
  already in the descriptor's ``features`` order (``feature_names``); the result has one row per row of
  ``X`` (shape ``(n,)`` for one output, ``(n, k)`` for ``k`` outputs). Scalers named by the descriptor
  are the runtime's business, because only the runtime knows how to load them.

Runtimes must check every file's sha256 before loading it (``ArtifactFile.read()`` does) and may keep
loaded models in a process-wide cache keyed by the bundle's sha256 key.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from ..artifacts import read_path_verified

FLAVOR_SKLEARN_PICKLE = "sklearn-pickle"
FLAVOR_SKLEARN_SKOPS = "sklearn-skops"
FLAVOR_R_RDS = "r-rds"
R_UNAVAILABLE = "R runtime not available"


@dataclass(frozen=True)
class ArtifactFile:
    """One stored file: absolute path, recorded sha256, the descriptor's name for it."""

    path: Path
    sha256: str
    name: str
    trusted_types: tuple[str, ...] = ()

    def read(self) -> bytes:
        """The file's bytes, verified against ``sha256`` (raises ArtifactIntegrityError)."""
        return read_path_verified(self.path, self.sha256, label=self.name)


@dataclass(frozen=True)
class ArtifactBundle:
    """Everything a runtime needs to load one version: its files and the descriptor's shape."""

    flavor: str
    model: ArtifactFile
    feature_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_scaler: ArtifactFile | None = None
    output_scaler: ArtifactFile | None = None
    probe_row: tuple[float, ...] = ()

    @property
    def key(self) -> str:
        """Cache key: the sha256 of every file, in role order (same files → same loaded model)."""
        parts = [self.model.sha256]
        parts.append(self.input_scaler.sha256 if self.input_scaler else "-")
        parts.append(self.output_scaler.sha256 if self.output_scaler else "-")
        return ":".join(parts)


class Runtime(Protocol):
    name: str

    def load_error(self, artifact: ArtifactBundle) -> str | None: ...

    def predict(self, artifact: ArtifactBundle, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray: ...


class RuntimeUnavailable(Exception):
    """The runtime for a flavor cannot serve (e.g. R is not installed)."""


class ArtifactLoadError(Exception):
    """A file that cannot be turned into a model (bad bytes, incompatible pickle, untrusted types)."""


T = TypeVar("T")


class LRUCache:
    """A small thread-safe LRU of loaded models, one per process (each web worker keeps its own)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get_or_load(self, key: str, loader: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:  # one load per key even when several threads miss at once
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            value = loader()
            with self._lock:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
                self._loading.pop(key, None)
            return value

    def discard(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class RRuntime:
    """Adapter to ``apps.registry.runtimes.r`` (a long-lived ``Rscript`` worker per process).

    That module exposes ``r_available()``, ``load_error(path, sha256)`` and
    ``predict(path, sha256, X, feature_names)``; it verifies the sha256 before R reads a file. Without R,
    every R version reports "R runtime not available" and stays offline.
    """

    name = "r"

    def _module(self):
        try:
            from . import r as r_module  # noqa: PLC0415 - optional dependency on an installed R
        except ImportError:
            return None
        try:
            return r_module if r_module.r_available() else None
        except Exception:  # noqa: BLE001 - a broken R install is "not available", not a crash
            return None

    def load_error(self, artifact: ArtifactBundle) -> str | None:
        module = self._module()
        if module is None:
            return R_UNAVAILABLE
        if artifact.input_scaler or artifact.output_scaler:
            return "scaler files are not supported for R models; scale inside the R model object"
        problem = module.load_error(str(artifact.model.path), artifact.model.sha256)
        if problem is not None:
            return problem
        try:
            probe = np.asarray([artifact.probe_row or [0.0] * len(artifact.feature_names)], dtype=float)
            result = self.predict(artifact, probe, artifact.feature_names)
        except Exception as exc:  # noqa: BLE001 - any failure here is the version's load error
            return f"test prediction failed: {exc}"
        if result.shape[0] != 1:
            return f"the R model returned {result.shape[0]} rows for 1 input row"
        return None

    def predict(self, artifact: ArtifactBundle, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        try:
            from . import r as module  # noqa: PLC0415
        except ImportError as exc:
            raise RuntimeUnavailable(R_UNAVAILABLE) from exc
        try:
            return np.asarray(
                module.predict(str(artifact.model.path), artifact.model.sha256, X, list(feature_names)), dtype=float
            )
        except (module.RRuntimeUnavailable, module.RWorkerTimeout, module.RWorkerCrashed) as exc:
            raise RuntimeUnavailable(f"{R_UNAVAILABLE}: {exc}") from exc
        except (module.RArtefactError, module.RModelError) as exc:
            raise ArtifactLoadError(str(exc)) from exc


_RUNTIMES: dict[str, Runtime] = {}


def register_runtime(flavor: str, runtime: Runtime) -> None:
    _RUNTIMES[flavor] = runtime


def runtime_for(flavor: str) -> Runtime:
    """The runtime serving ``flavor`` (raises RuntimeUnavailable for an unknown flavor)."""
    if not _RUNTIMES:
        _register_defaults()
    try:
        return _RUNTIMES[flavor]
    except KeyError:
        raise RuntimeUnavailable(f"no runtime for artefact flavor {flavor!r}") from None


def _register_defaults() -> None:
    from .python import PythonRuntime  # noqa: PLC0415

    python = PythonRuntime()
    register_runtime(FLAVOR_SKLEARN_PICKLE, python)
    register_runtime(FLAVOR_SKLEARN_SKOPS, python)
    register_runtime(FLAVOR_R_RDS, RRuntime())

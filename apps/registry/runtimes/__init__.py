"""Model runtimes: one object per artefact flavor that loads a version's files and predicts.

Model code never runs in the web or Celery process: every runtime here is a client of long-lived worker
processes (``process.py``) started in a sandbox (``sandbox.py``): ``python.py`` for the Python flavors, one
worker per environment (``environments.py``); ``r.py`` for R.

The interface is deliberately small so that runtimes for other languages plug in:

- ``load_error(artifact) -> str | None``: load the bundle and try one prediction; ``None`` when the version
  can serve, else a human-readable reason: an :class:`OfflineReason` when this platform cannot serve it
  here (R or an R package missing; the version is registered offline with that reason), any other string
  when the artefact itself is at fault (the version then gets ``load_error``).
- ``predict(artifact, X, feature_names) -> np.ndarray``: ``X`` is a float64 matrix whose columns are
  already in the descriptor's ``features`` order (``feature_names``); the result has one row per row of
  ``X`` (shape ``(n,)`` for one output, ``(n, k)`` for ``k`` outputs). Scalers named by the descriptor
  are the runtime's business, because only the runtime knows how to load them.

- optionally ``explain(artifact, X, output) -> TreeContributions | None``: exact contributions computed where
  the model lives (TreeSHAP in the Python worker); None, or a runtime without the method, means the registry
  computes model-agnostic Shapley values through ``predict`` instead (``apps/registry/explanations.py``).

Workers check every file's sha256 before loading it and keep loaded models keyed by the bundle's key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..artifacts import read_path_verified

FLAVOR_SKLEARN_PICKLE = "sklearn-pickle"
FLAVOR_SKLEARN_SKOPS = "sklearn-skops"
FLAVOR_R_RDS = "r-rds"
FLAVOR_ONNX = "onnx"
FLAVOR_KERAS = "keras"
FLAVOR_MLFLOW = "mlflow"
PYTHON_FLAVORS = (FLAVOR_SKLEARN_PICKLE, FLAVOR_SKLEARN_SKOPS, FLAVOR_ONNX, FLAVOR_KERAS, FLAVOR_MLFLOW)
R_UNAVAILABLE = "R runtime not available"


class OfflineReason(str):
    """A reason a version cannot serve *here* (a missing runtime or package), not a fault of its files."""


@dataclass(frozen=True)
class ArtifactFile:
    """One stored file: absolute path, recorded sha256, the descriptor's name for it, and for a pickle
    the sha256 an administrator approved (``artifact_safety`` decides what may be loaded)."""

    path: Path
    sha256: str
    name: str
    trusted_types: tuple[str, ...] = ()
    approved_sha256: str = ""

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
    #: Where a Python version runs (``python.EnvironmentRef``); None is the platform's own interpreter.
    environment: Any = None
    #: Packages the descriptor declares that the runtime checks before loading (R packages).
    packages: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Cache key: the sha256 of every file, in role order (same files → same loaded model)."""
        parts = [self.model.sha256]
        parts.append(self.input_scaler.sha256 if self.input_scaler else "-")
        parts.append(self.output_scaler.sha256 if self.output_scaler else "-")
        return ":".join(parts)


@dataclass(frozen=True)
class TreeContributions:
    """Contributions of each input to each row's estimate: ``base + contributions.sum(axis=1) == prediction``."""

    method: str
    base: float
    prediction: np.ndarray
    contributions: np.ndarray


class Runtime(Protocol):
    name: str

    def load_error(self, artifact: ArtifactBundle) -> str | None: ...

    def predict(self, artifact: ArtifactBundle, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray: ...


class RuntimeUnavailable(Exception):
    """The runtime for a flavor cannot serve (e.g. R is not installed)."""


class ArtifactLoadError(Exception):
    """A file that cannot be turned into a model (bad bytes, incompatible pickle, untrusted types)."""


class PredictFailed(Exception):
    """A loaded model raised while predicting (its message is the model's), the version stays as it is."""


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
            return OfflineReason(R_UNAVAILABLE)
        try:
            missing = module.get_runtime().missing_packages(artifact.packages)
        except module.RRuntimeError as exc:
            return OfflineReason(f"{R_UNAVAILABLE}: {exc}")
        if missing:
            return OfflineReason(f"missing R package(s): {', '.join(missing)} (not installed on this server)")
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
    for flavor in PYTHON_FLAVORS:
        register_runtime(flavor, python)
    register_runtime(FLAVOR_R_RDS, RRuntime())

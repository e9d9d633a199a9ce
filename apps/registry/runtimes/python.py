"""The Python model runtime: scikit-learn (pickle/joblib, skops), ONNX, Keras and MLflow models, each served by a
long-lived worker process of its environment (``pyworker/``), never inside the web or Celery process.

One worker per environment per Python process: the platform's own interpreter for versions whose packages
match the platform's (the *default runtime*), a built virtual environment (``environments.py``) for the others.
Workers are kept warm in a small LRU pool (``REGISTRY_RUNTIME_MAX_WORKERS``), restarted when they die, and
every call has a timeout (``process.py``). Each worker runs in the sandbox of ``sandbox.py`` and reads the
artefact store read-only; it verifies every file's sha256 before loading the very bytes it hashed.

What may be loaded at all is ``artifact_safety``'s decision, taken here before a request reaches a worker:
a pickle only when an administrator approved that very sha256 (and ``REGISTRY_ALLOW_PICKLE`` is on); skops
files are loaded by the worker with the allow-listed types recorded at upload, nothing else.

Protocol (a JSON line plus raw little-endian float64 bytes each way):

- ``load`` ``{key, flavor, files: {role: {path, sha256, name, trusted_types}}, features}`` →
  ``{class, model_inputs, scaler_inputs}``;
- ``predict`` ``{key, rows, cols}`` + the row-major matrix → ``{rows, outputs}`` + the row-major predictions;
- ``to_onnx`` ``{key, cols}`` → the ONNX bytes; ``unload`` ``{key}``; ``ping``; ``quit``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from ..artifact_safety import UnsafeArtifact, is_pickle, pickle_load_check, skops_allowed
from ..artifacts import STORAGE_ROOT
from . import (
    ArtifactBundle,
    ArtifactLoadError,
    PredictFailed,
    RuntimeUnavailable,
    TreeContributions,
    environments,
    sandbox,
)
from .process import WorkerError, WorkerHandle, WorkerProcess

logger = logging.getLogger(__name__)

WORKER_DIR = Path(__file__).resolve().with_name("pyworker")
WORKER_MAIN = WORKER_DIR / "main.py"
PLATFORM = "platform"


@dataclass(frozen=True)
class EnvironmentRef:
    """Where a version's Python runs: an interpreter and the variables its worker starts with."""

    key: str
    python: str
    variables: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return "platform" if self.key == PLATFORM else f"environment {self.key[:12]}"


def platform_environment() -> EnvironmentRef:
    """The platform's own interpreter: versions whose packages match it need no build."""
    return EnvironmentRef(PLATFORM, sys.executable)


def environment_root() -> Path:
    """``STAMM_RUNTIME_ENV_DIR``: where built environments live (default ``<STAMM_VAR_DIR>/runtime-envs``)."""
    return Path(getattr(settings, "STAMM_RUNTIME_ENV_DIR", "") or Path(settings.VAR_DIR) / "runtime-envs")


def environment_ref(row) -> EnvironmentRef | None:
    """Where a version with this environment row runs (None: the platform's interpreter).

    Raises RuntimeUnavailable while the environment is not built (building, or failed with its reason).
    """
    if row is None:
        return None
    if not row.ready:
        detail = f": {row.message}" if row.message else ""
        raise RuntimeUnavailable(f"its environment {row.key[:12]} is {row.state}{detail}")
    return EnvironmentRef(row.key, str(environments.python_for(row.location, environment_root())), tuple(row.variables))


def artifact_store() -> Path:
    """Where version files are stored (``MEDIA_ROOT/registry``): the only data a worker may read."""
    return Path(settings.MEDIA_ROOT) / STORAGE_ROOT


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


class PythonWorker(WorkerHandle):
    """One warm Python worker for one environment."""

    label = "Python"
    unavailable_error = RuntimeUnavailable
    timeout_error = RuntimeUnavailable
    crashed_error = RuntimeUnavailable

    def __init__(self, environment: EnvironmentRef) -> None:
        super().__init__(
            call_timeout=_setting("REGISTRY_RUNTIME_CALL_TIMEOUT", 60),
            start_timeout=_setting("REGISTRY_RUNTIME_START_TIMEOUT", 60),
            restart_backoff=_setting("REGISTRY_RUNTIME_RESTART_BACKOFF", 5),
        )
        self.environment = environment
        self.load_timeout = _setting("REGISTRY_RUNTIME_LOAD_TIMEOUT", 300)
        self._scratch: sandbox.Scratch | None = None
        #: The artefact store the sandbox shows the worker (read-only); another store needs another worker.
        self.store = artifact_store()

    @property
    def scratch(self) -> Path | None:
        """The running worker's scratch folder (its only writable path)."""
        return self._scratch.path if self._scratch is not None else None

    def launch(self) -> WorkerProcess:
        python = self.environment.python
        if not Path(python).exists():
            raise RuntimeUnavailable(f"Python runtime not available: {python} does not exist")
        if self._scratch is None or not self._scratch.path.is_dir():
            self._scratch = sandbox.Scratch.create("python")
        self.store.mkdir(parents=True, exist_ok=True)
        try:
            command = sandbox.command(
                [python, "-I", "-B", str(WORKER_MAIN)],
                scratch=self._scratch.path,
                read_only=[WORKER_DIR, self.store, *sandbox.python_prefixes(python)],
                environment=dict(self.environment.variables),
            )
        except sandbox.SandboxUnavailable as exc:
            raise RuntimeUnavailable(str(exc)) from None
        return WorkerProcess(command.argv, env=command.env, cwd=command.cwd, label=f"Python ({self.environment.label})")

    def unavailable_prefix(self) -> str:
        return f"Python runtime not available ({self.environment.label})"

    def on_close(self) -> None:
        if self._scratch is not None:
            self._scratch.remove()
            self._scratch = None

    def after_fork(self) -> None:
        self._scratch = None

    # -- calls ----------------------------------------------------------------------------------------

    def _request(self, worker: WorkerProcess, request: dict, *, timeout: float, payload: bytes | None = None):
        reply, data = worker.call(request, timeout=timeout, payload=payload)
        return reply, data

    def _ensure_loaded(self, worker: WorkerProcess, bundle: ArtifactBundle, *, fresh: bool = False) -> dict:
        loaded: OrderedDict[str, dict] = worker.state.setdefault("loaded", OrderedDict())
        if not fresh and bundle.key in loaded:
            loaded.move_to_end(bundle.key)
            return loaded[bundle.key]
        for item in (bundle.model, bundle.input_scaler, bundle.output_scaler):
            if item is not None and is_pickle(item.name):  # refused before the worker even reads it
                try:
                    pickle_load_check(name=item.name, sha256=item.sha256, approved_sha256=item.approved_sha256)
                except UnsafeArtifact as exc:
                    raise ArtifactLoadError(str(exc)) from exc
        files = {
            role: {
                "path": str(item.path),
                "sha256": item.sha256,
                "name": item.name,
                # what was recorded at upload is re-checked: a stored list never widens the allow-list
                "trusted_types": [name for name in item.trusted_types if skops_allowed(name)],
            }
            for role, item in (
                ("model", bundle.model),
                ("input_scaler", bundle.input_scaler),
                ("output_scaler", bundle.output_scaler),
            )
            if item is not None
        }
        request = {
            "op": "load",
            "key": bundle.key,
            "flavor": bundle.flavor,
            "files": files,
            "features": list(bundle.feature_names),
            "max_loaded": int(getattr(settings, "REGISTRY_MODEL_CACHE_SIZE", 32)),
        }
        reply, _ = self._request(worker, request, timeout=self.load_timeout)
        if not reply.get("ok"):
            loaded.pop(bundle.key, None)
            raise ArtifactLoadError(str(reply.get("error") or "the worker could not load the model"))
        loaded[bundle.key] = reply
        while len(loaded) > int(getattr(settings, "REGISTRY_MODEL_CACHE_SIZE", 32)):  # as the worker does
            loaded.popitem(last=False)
        return reply

    def load(self, bundle: ArtifactBundle) -> dict:
        """(Re)load the bundle from its verified files; the worker's report (class, input counts)."""
        with self.locked(self.load_timeout):
            return self.run(lambda worker: self._ensure_loaded(worker, bundle, fresh=True))

    def predict(self, bundle: ArtifactBundle, X: np.ndarray) -> np.ndarray:
        """Predictions as a (rows × outputs) float64 array, in one worker call."""
        matrix = np.ascontiguousarray(X, dtype="<f8")
        rows, cols = matrix.shape
        payload = matrix.tobytes()

        def call(worker: WorkerProcess) -> np.ndarray:
            self._ensure_loaded(worker, bundle)
            request = {"op": "predict", "key": bundle.key, "rows": rows, "cols": cols}
            reply, data = self._request(worker, request, timeout=self.call_timeout, payload=payload)
            if not reply.get("ok") and "is not loaded" in str(reply.get("error")):
                self._ensure_loaded(worker, bundle, fresh=True)  # dropped by the worker's own LRU
                reply, data = self._request(worker, request, timeout=self.call_timeout, payload=payload)
            if not reply.get("ok"):
                raise PredictFailed(str(reply.get("error") or "the model failed to predict"))
            outputs = int(reply.get("outputs") or 1)
            if data is None or len(data) != rows * outputs * 8:
                raise PredictFailed(f"the worker returned {0 if data is None else len(data)} bytes for {rows} rows")
            return np.frombuffer(data, dtype="<f8").reshape(rows, outputs).astype(np.float64)

        with self.locked(self.call_timeout):
            return self.run(call)

    def explain(self, bundle: ArtifactBundle, X: np.ndarray, output: int = 0) -> TreeContributions | None:
        """Exact TreeSHAP contributions of ``X``'s rows to output ``output``, computed inside the worker
        (``pyworker/explain.py``); None when the model is not one TreeSHAP reads (the caller falls back)."""
        matrix = np.ascontiguousarray(X, dtype="<f8")
        rows, cols = matrix.shape
        payload = matrix.tobytes()

        def call(worker: WorkerProcess) -> TreeContributions | None:
            self._ensure_loaded(worker, bundle)
            request = {"op": "explain", "key": bundle.key, "rows": rows, "cols": cols, "output": int(output)}
            reply, data = self._request(worker, request, timeout=self.call_timeout, payload=payload)
            if not reply.get("ok") and "is not loaded" in str(reply.get("error")):
                self._ensure_loaded(worker, bundle, fresh=True)
                reply, data = self._request(worker, request, timeout=self.call_timeout, payload=payload)
            if not reply.get("ok"):
                raise PredictFailed(str(reply.get("error") or "the model failed to explain"))
            if not reply.get("supported"):
                return None
            if data is None or len(data) != rows * cols * 8:
                raise PredictFailed(f"the worker returned {0 if data is None else len(data)} bytes for {rows} rows")
            return TreeContributions(
                method=str(reply.get("method") or "tree_shap"),
                base=float(reply["base"]),
                prediction=np.asarray(reply["prediction"], dtype=float),
                contributions=np.frombuffer(data, dtype="<f8").reshape(rows, cols).astype(np.float64),
            )

        with self.locked(self.call_timeout):
            return self.run(call)

    def to_onnx(self, bundle: ArtifactBundle) -> bytes:
        """The bundle's scikit-learn model converted to ONNX inside the worker."""

        def call(worker: WorkerProcess) -> bytes:
            self._ensure_loaded(worker, bundle)
            request = {"op": "to_onnx", "key": bundle.key, "cols": len(bundle.feature_names)}
            reply, data = self._request(worker, request, timeout=self.load_timeout)
            if not reply.get("ok") or not data:
                raise ArtifactLoadError(str(reply.get("error") or "the conversion to ONNX failed"))
            return data

        with self.locked(self.load_timeout):
            return self.run(call)

    def ping(self) -> dict:
        """The worker's report (Python version, pid, package versions), starting it if needed."""
        with self.locked(self.start_timeout):
            return self.run(lambda worker: self._request(worker, {"op": "ping"}, timeout=self.start_timeout)[0])


class PythonRuntime:
    """The registry's runtime for every Python flavor: routes each bundle to its environment's worker."""

    name = "python"

    def __init__(self) -> None:
        self._workers: OrderedDict[str, PythonWorker] = OrderedDict()
        self._lock = threading.Lock()
        self._owner = os.getpid()

    def worker(self, environment: EnvironmentRef | None = None) -> PythonWorker:
        """The (warm) worker of an environment; the least recently used one is stopped beyond the pool size."""
        environment = environment or platform_environment()
        if os.getpid() != self._owner:
            self._lock, self._owner = threading.Lock(), os.getpid()
        evicted = []
        with self._lock:
            worker = self._workers.get(environment.key)
            if worker is None or worker.environment != environment or worker.store != artifact_store():
                if worker is not None:
                    evicted.append(worker)
                worker = PythonWorker(environment)
                self._workers[environment.key] = worker
            self._workers.move_to_end(environment.key)
            limit = max(1, int(getattr(settings, "REGISTRY_RUNTIME_MAX_WORKERS", 4)))
            while len(self._workers) > limit:
                evicted.append(self._workers.popitem(last=False)[1])
        for old in evicted:
            old.close()
        return worker

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), OrderedDict()
        for worker in workers:
            worker.close()

    def load_error(self, artifact: ArtifactBundle) -> str | None:
        """None when the bundle loads in its environment and answers a probe row with the declared outputs."""
        worker = self.worker(artifact.environment)
        try:
            info = worker.load(artifact)
        except (ArtifactLoadError, RuntimeUnavailable, WorkerError) as exc:
            return str(exc)
        expected = len(artifact.feature_names)
        for label, count in (("input scaler", info.get("scaler_inputs")), ("model", info.get("model_inputs"))):
            if count is not None and int(count) != expected:
                return f"the {label} expects {int(count)} inputs but the descriptor lists {expected} features"
        try:
            probe = np.asarray([artifact.probe_row or [0.0] * expected], dtype=float)
            result = worker.predict(artifact, probe)
        except (PredictFailed, RuntimeUnavailable, WorkerError) as exc:
            return f"test prediction failed: {exc}"
        if result.shape[0] != 1 or result.shape[1] != len(artifact.output_names):
            return (
                f"the model returns {result.shape[1]} output(s) but the descriptor lists {len(artifact.output_names)}"
            )
        return None

    def predict(self, artifact: ArtifactBundle, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        result = self.worker(artifact.environment).predict(artifact, np.asarray(X, dtype=float))
        return result[:, 0] if result.shape[1] == 1 else result

    def to_onnx(self, artifact: ArtifactBundle) -> bytes:
        return self.worker(artifact.environment).to_onnx(artifact)

    def explain(self, artifact: ArtifactBundle, X: np.ndarray, output: int = 0) -> TreeContributions | None:
        """TreeSHAP contributions from the bundle's worker, or None for a model TreeSHAP cannot read."""
        return self.worker(artifact.environment).explain(artifact, np.asarray(X, dtype=float), output)


_WARMED: dict[str, int] = {"pid": 0}


def prewarm(**_signal_arguments) -> None:
    """Start this process's default runtime worker in the background, once per process.

    Connected to the first request of a web process and to each Celery worker process's start
    (``REGISTRY_RUNTIME_PREWARM``), so the first prediction does not also pay for starting an interpreter
    and importing scikit-learn; a prediction arriving meanwhile waits for the same start-up.
    """
    if _WARMED["pid"] == os.getpid() or not getattr(settings, "REGISTRY_RUNTIME_PREWARM", True):
        return
    _WARMED["pid"] = os.getpid()

    def warm() -> None:
        from . import runtime_for  # noqa: PLC0415

        try:
            runtime_for("sklearn-pickle").worker().ping()
        except Exception as exc:  # noqa: BLE001 - a failed warm-up is retried by the first real call
            logger.info("registry: runtime worker warm-up failed: %s", exc)

    threading.Thread(target=warm, name="registry-runtime-prewarm", daemon=True).start()


__all__ = [
    "PLATFORM",
    "EnvironmentRef",
    "PythonRuntime",
    "PythonWorker",
    "environment_ref",
    "environment_root",
    "platform_environment",
    "prewarm",
]

"""R model runtime: serves ``.rds`` / ``.RData`` artefacts through a long-lived ``Rscript`` worker.

Why a worker process rather than rpy2: rpy2 3.6 does not load against Debian's R 4.2, and a separate
process keeps R's memory, threads and crashes out of the web or Celery process. The worker
(``r_worker.R``) keeps loaded models in an environment keyed by the artefact's sha256. Each request is a
JSON line on its stdin, followed for a prediction by the input columns as raw float64 bytes; each reply is
one JSON line on its stdout (protocol in ``docs/r-runtime.md``).

Each Python process owns at most one worker per :class:`RWorkerRuntime` (the module-level functions use a
process-wide default runtime). The process handling (lock, timeouts, restarts, forks) is shared with the
Python model runtimes in ``process.py``; the sandbox the worker runs in is ``sandbox.py``.

Defence in depth: before every load the artefact's bytes are hashed while being copied into the worker's
private scratch folder, and R reads that copy, so the bytes R loads are exactly the bytes that matched the
expected sha256 (no window for the file to change between the check and the load).

Loading an R artefact runs R code from the file's author (like a pickle): only trusted uploads
(modelers, admins) may reach this module.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import sandbox
from .process import CallTimedOut, WorkerDied, WorkerHandle, WorkerProcess, as_list

logger = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).resolve().with_name("r_worker.R")
UNAVAILABLE_MESSAGE = "R runtime not available"
#: File suffixes this runtime serves (the worker detects RDS vs RData from the content, not the name).
R_SUFFIXES = (".rds", ".rdata", ".rda")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_READ_CHUNK = 1 << 20


class RRuntimeError(Exception):
    """Base class of every error this runtime raises; ``str(exc)`` is a message for people."""


class RRuntimeUnavailable(RRuntimeError):
    """R (``Rscript``) is absent or its worker cannot start; R model versions stay offline."""


class RArtefactError(RRuntimeError):
    """The artefact file is missing, unreadable, or its bytes do not match the expected sha256."""


class RModelError(RRuntimeError):
    """R refused to load the model or to predict with it; the worker is still healthy."""


class RWorkerTimeout(RRuntimeError):
    """A call took longer than its timeout; the worker was killed and restarts on the next call."""


class RWorkerCrashed(RRuntimeError):
    """The worker died during a call, twice in a row (once is retried after a restart)."""


@dataclass(frozen=True)
class RModelInfo:
    """What the worker reported about a loaded model."""

    sha256: str
    classes: tuple[str, ...]
    format: str  # "rds" or "RData"
    variables: tuple[str, ...] | None  # input names the model reads, when the model records them


class RWorkerRuntime(WorkerHandle):
    """Loads and serves R models through one ``Rscript`` worker per Python process.

    Thread-safe: one lock serialises calls to the worker (R is single-threaded anyway). Every method
    raises only :class:`RRuntimeError` subclasses (or ``ValueError`` for malformed arguments). The worker
    runs inside the registry's sandbox (``sandbox.py``): no secrets in its environment, rlimits, and under
    bubblewrap no network and a read-only filesystem except its scratch folder.
    """

    label = "R"
    unavailable_error = RRuntimeUnavailable
    timeout_error = RWorkerTimeout
    crashed_error = RWorkerCrashed

    def __init__(
        self,
        *,
        rscript: str = "Rscript",
        call_timeout: float = 60.0,
        load_timeout: float = 120.0,
        start_timeout: float = 30.0,
        max_models: int = 32,
        restart_backoff: float = 10.0,
    ) -> None:
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        super().__init__(call_timeout=call_timeout, start_timeout=start_timeout, restart_backoff=restart_backoff)
        self.rscript = rscript
        self.load_timeout = float(load_timeout)
        self.max_models = int(max_models)
        self._scratch: sandbox.Scratch | None = None

    # -- public API ---------------------------------------------------------------------------------

    def available(self) -> bool:
        """True when ``Rscript`` is on PATH and the worker answers a ping."""
        try:
            with self.locked(self.start_timeout):
                self.run(lambda worker: self._ping(worker))
            return True
        except RRuntimeError as exc:
            logger.info("R runtime not available: %s", exc)
            return False

    def load(self, path: str | os.PathLike, sha256: str) -> RModelInfo:
        """Verify the artefact's sha256 and load it into the worker (a no-op for R if already loaded)."""
        sha = _normalise_sha(sha256)
        source = Path(path)
        with self.locked(self.load_timeout):
            return self.run(lambda worker: self._ensure_loaded(worker, source, sha, reverify=True))

    def load_error(self, path: str | os.PathLike, sha256: str) -> str | None:
        """None when the artefact loads and has a usable predict method; otherwise why not, for people."""
        try:
            self.load(path, sha256)
        except RRuntimeError as exc:
            return str(exc)
        except ValueError as exc:
            return str(exc)
        return None

    def missing_packages(self, names: Sequence[str]) -> list[str]:
        """The R packages among ``names`` that are not installed where the worker runs."""
        wanted = [str(name) for name in names if str(name).strip()]
        if not wanted:
            return []

        def ask(worker: WorkerProcess) -> list[str]:
            reply = self._call(worker, {"op": "packages", "names": wanted}, timeout=self.call_timeout)
            if not reply.get("ok"):
                raise RModelError(f"R could not check packages: {reply.get('error', 'unknown error')}")
            return [str(name) for name in as_list(reply.get("missing"))]

        with self.locked(self.call_timeout):
            return self.run(ask)

    def predict(self, path: str | os.PathLike, sha256: str, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        """Predict every row of ``X`` in one worker call; columns are matched to the model by name.

        ``X`` is 2-D (rows × features) in the order of ``feature_names``; NaN is passed to R as NA.
        Returns a float64 vector with one prediction per row (NaN where R returned NA).
        """
        sha = _normalise_sha(sha256)
        source = Path(path)
        matrix, names = _validate_inputs(X, feature_names)
        payload = _columns_payload(matrix)
        rows = matrix.shape[0]

        def run(worker: WorkerProcess) -> np.ndarray:
            info = self._ensure_loaded(worker, source, sha, reverify=False)
            if info.variables is not None:
                missing = [name for name in info.variables if name not in names]
                if missing:
                    raise RModelError(f"the R model needs input(s) not supplied: {', '.join(missing)}")
            if rows == 0:
                return np.empty(0, dtype=np.float64)
            reply = self._call(
                worker,
                {"op": "predict", "key": sha, "columns": names, "rows": rows},
                timeout=self.call_timeout,
                payload=payload,
            )
            if not reply.get("ok"):
                raise RModelError(f"R predict failed: {reply.get('error', 'unknown error')}")
            predictions = _decode_f64(reply.get("predictions_f64le"))
            if predictions.shape != (rows,):
                raise RModelError(f"R returned {predictions.size} predictions for {rows} rows")
            return predictions

        with self.locked(self.call_timeout):
            return self.run(run)

    def unload(self, sha256: str) -> None:
        """Drop a model from the worker (e.g. when its version is deleted)."""
        sha = _normalise_sha(sha256)
        with self.locked(self.call_timeout):
            worker = self.current()
            if worker is None or sha not in _loaded(worker):
                return
            try:
                self._unload(worker, sha)
            except (WorkerDied, CallTimedOut):
                self.discard(worker)  # the model is gone with the worker, which is what was asked

    # -- WorkerHandle hooks -------------------------------------------------------------------------

    def launch(self) -> WorkerProcess:
        rscript = shutil.which(self.rscript)
        if rscript is None:
            raise RRuntimeUnavailable(UNAVAILABLE_MESSAGE)
        if self._scratch is None or not self._scratch.path.is_dir():
            self._scratch = sandbox.Scratch.create("r")
        command = sandbox.command(
            [rscript, "--vanilla", str(WORKER_SCRIPT)],
            scratch=self._scratch.path,
            read_only=[WORKER_SCRIPT.parent, *_r_read_only()],
        )
        try:
            return WorkerProcess(command.argv, env=command.env, cwd=command.cwd, label="R")
        except OSError as exc:
            raise RRuntimeUnavailable(f"{UNAVAILABLE_MESSAGE}: cannot start {rscript}: {exc}") from None

    def unavailable_prefix(self) -> str:
        return UNAVAILABLE_MESSAGE

    def on_close(self) -> None:
        if self._scratch is not None:
            self._scratch.remove()
            self._scratch = None

    def after_fork(self) -> None:
        self._scratch = None  # the parent's folder; the child makes its own on first use

    # -- internals ----------------------------------------------------------------------------------

    def _call(self, worker: WorkerProcess, request: dict, *, timeout: float, payload: bytes | None = None) -> dict:
        reply, _ = worker.call(request, timeout=timeout, payload=payload)
        return reply

    def _ping(self, worker: WorkerProcess) -> dict:
        reply = self._call(worker, {"op": "ping"}, timeout=self.start_timeout)
        if not reply.get("ok"):
            raise RRuntimeUnavailable(f"{UNAVAILABLE_MESSAGE}: ping failed: {reply.get('error')}")
        return reply

    def _ensure_loaded(self, worker: WorkerProcess, source: Path, sha: str, *, reverify: bool) -> RModelInfo:
        loaded = _loaded(worker)
        info = loaded.get(sha)
        if info is not None:
            if reverify:
                _verify_file(source, sha)
            loaded.move_to_end(sha)
            return info
        copy = self._verified_copy(source, sha)
        try:
            reply = self._call(worker, {"op": "load", "key": sha, "path": str(copy)}, timeout=self.load_timeout)
        finally:
            copy.unlink(missing_ok=True)
        if not reply.get("ok"):
            raise RModelError(f"R could not load {source.name}: {reply.get('error', 'unknown error')}")
        variables = reply.get("variables")
        info = RModelInfo(
            sha256=sha,
            classes=tuple(as_list(reply.get("class"))),
            format=str(reply.get("format")),
            variables=None if variables is None else tuple(as_list(variables)),
        )
        loaded[sha] = info
        while len(loaded) > self.max_models:
            oldest = next(iter(loaded))
            self._unload(worker, oldest)
        return info

    def _unload(self, worker: WorkerProcess, sha: str) -> None:
        _loaded(worker).pop(sha, None)
        reply = self._call(worker, {"op": "unload", "key": sha}, timeout=self.call_timeout)
        if not reply.get("ok"):
            logger.warning("R worker could not unload %s: %s", sha, reply.get("error"))

    def _verified_copy(self, source: Path, sha: str) -> Path:
        """Copy ``source`` into the worker's scratch folder while hashing it; refuse it unless the hash matches.

        The worker reads that copy, so the bytes R deserialises are exactly the bytes that matched.
        """
        if self._scratch is None or not self._scratch.path.is_dir():
            self._scratch = sandbox.Scratch.create("r")
        target = self._scratch.path / f"{sha}{source.suffix.lower()}"
        digest = hashlib.sha256()
        try:
            with source.open("rb") as reader, open(target, "wb") as writer:
                os.chmod(target, 0o644)  # readable by the sandboxed worker, in a 0700 folder
                while chunk := reader.read(_READ_CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
        except FileNotFoundError:
            target.unlink(missing_ok=True)
            raise RArtefactError(f"artefact file not found: {source}") from None
        except OSError as exc:
            target.unlink(missing_ok=True)
            raise RArtefactError(f"cannot read artefact {source}: {exc.strerror or exc}") from None
        actual = digest.hexdigest()
        if actual != sha:
            target.unlink(missing_ok=True)
            raise RArtefactError(_mismatch_message(source, sha, actual))
        return target


def _loaded(worker: WorkerProcess) -> OrderedDict[str, RModelInfo]:
    """The models loaded in this worker process (least recently used first)."""
    return worker.state.setdefault("loaded", OrderedDict())


def _r_read_only() -> list[Path]:
    """What R needs to see besides /usr: its configuration (Debian keeps R_HOME/etc in /etc/R)."""
    return [path for path in (Path("/etc/R"),) if path.exists()]


def _normalise_sha(sha256: str) -> str:
    sha = str(sha256).strip().lower()
    if not _SHA256_RE.match(sha):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha


def _mismatch_message(source: Path, expected: str, actual: str) -> str:
    return f"artefact {source.name} refused: sha256 mismatch (expected {expected}, file has {actual})"


def _verify_file(source: Path, sha: str) -> None:
    digest = hashlib.sha256()
    try:
        with source.open("rb") as reader:
            while chunk := reader.read(_READ_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise RArtefactError(f"artefact file not found: {source}") from None
    except OSError as exc:
        raise RArtefactError(f"cannot read artefact {source}: {exc.strerror or exc}") from None
    if digest.hexdigest() != sha:
        raise RArtefactError(_mismatch_message(source, sha, digest.hexdigest()))


def _validate_inputs(X: np.ndarray, feature_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    names = list(feature_names)
    if not names:
        raise ValueError("feature_names is empty")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"feature_names[{index}] must be a non-empty string")
    seen: set[str] = set()
    duplicates = sorted({name for name in names if name in seen or seen.add(name)})
    if duplicates:
        raise ValueError(f"duplicate feature name(s): {', '.join(duplicates)}")
    try:
        matrix = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must hold numbers: {exc}") from None
    if matrix.ndim != 2:
        raise ValueError(f"X must be 2-D (rows × features), got {matrix.ndim}-D")
    if matrix.shape[1] != len(names):
        raise ValueError(f"X has {matrix.shape[1]} columns but {len(names)} feature names were given")
    infinite = np.isinf(matrix).any(axis=0)
    if infinite.any():
        bad = [name for name, flag in zip(names, infinite, strict=True) if flag]
        raise ValueError(f"infinite value(s) in column(s): {', '.join(bad)}")
    return matrix, names


def _columns_payload(matrix: np.ndarray) -> bytes:
    """The columns one after the other as little-endian float64 bytes (NaN becomes NA in R).

    Binary is bit-exact and costs well under a millisecond for 10k×5 values, where formatting and parsing
    the same numbers as JSON text costs tens of milliseconds on each side.
    """
    return np.ascontiguousarray(matrix.T, dtype="<f8").tobytes()


def _decode_f64(value: Any) -> np.ndarray:
    if not isinstance(value, str):
        raise RModelError("the R worker's reply has no predictions")
    raw = base64.b64decode(value)
    if len(raw) % 8:
        raise RModelError("the R worker's predictions are not a whole number of doubles")
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


# -- process-wide default runtime ---------------------------------------------------------------------

_default: RWorkerRuntime | None = None
_default_guard = threading.Lock()


def _default_options() -> dict[str, Any]:
    """Optional overrides from Django's ``REGISTRY_R_RUNTIME`` setting (keys: RWorkerRuntime's arguments)."""
    try:
        from django.conf import settings

        if settings.configured:
            return dict(getattr(settings, "REGISTRY_R_RUNTIME", {}) or {})
    except ImportError:
        pass
    return {}


def get_runtime() -> RWorkerRuntime:
    """The process-wide runtime (one R worker per Python process), created on first use."""
    global _default
    with _default_guard:
        if _default is None:
            _default = RWorkerRuntime(**_default_options())
        return _default


def r_available() -> bool:
    """True when ``Rscript`` is on PATH and the worker answers a ping."""
    return get_runtime().available()


def load(path: str | os.PathLike, sha256: str) -> str:
    """Verify and load the R artefact into this process's worker; returns the model key (its sha256)."""
    return get_runtime().load(path, sha256).sha256


def load_error(path: str | os.PathLike, sha256: str) -> str | None:
    """None when the R artefact loads; otherwise a message ("R runtime not available" without R)."""
    return get_runtime().load_error(path, sha256)


def predict(path: str | os.PathLike, sha256: str, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
    """Vectorised prediction of every row of ``X`` by the R model stored at ``path``."""
    return get_runtime().predict(path, sha256, X, feature_names)

"""R model runtime: serves ``.rds`` / ``.RData`` artefacts through a long-lived ``Rscript`` worker.

Why a worker process rather than rpy2: rpy2 3.6 does not load against Debian's R 4.2, and a separate
process keeps R's memory, threads and crashes out of the web or Celery process. The worker
(``r_worker.R``) keeps loaded models in an environment keyed by the artefact's sha256. Each request is a
JSON line on its stdin, followed for a prediction by the input columns as raw float64 bytes; each reply is
one JSON line on its stdout (protocol in ``docs/r-runtime.md``).

Each Python process owns at most one worker per :class:`RWorkerRuntime` (the module-level functions use a
process-wide default runtime). Calls are serialised by a lock, bounded by a timeout (a hung R is killed,
never waited on forever), and a worker that died is restarted on the next call, which reloads the models
it needs from their verified files. A forked child (gunicorn, Celery prefork) never talks to its parent's
worker: it starts its own on first use. The worker is closed at interpreter exit and also exits by itself
when its stdin closes, so it cannot outlive its Python process.

Defence in depth: before every load the artefact's bytes are hashed while being copied into a private
temporary directory, and R reads that copy, so the bytes R loads are exactly the bytes that matched the
expected sha256 (no window for the file to change between the check and the load).

Loading an R artefact runs R code from the file's author (like a pickle): only trusted uploads
(modelers, admins) may reach this module.
"""
from __future__ import annotations

import atexit
import base64
import hashlib
import itertools
import json
import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


class _WorkerDied(Exception):
    """Internal: the pipe broke or closed mid-call."""


class _CallTimedOut(Exception):
    """Internal: the deadline passed before the reply."""


@dataclass(frozen=True)
class RModelInfo:
    """What the worker reported about a loaded model."""

    sha256: str
    classes: tuple[str, ...]
    format: str  # "rds" or "RData"
    variables: tuple[str, ...] | None  # input names the model reads, when the model records them


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class _Worker:
    """One ``Rscript`` process and its pipes. Not thread-safe: the runtime's lock guards it."""

    def __init__(self, rscript: str) -> None:
        self.owner_pid = os.getpid()
        self.proc = subprocess.Popen(
            [rscript, "--vanilla", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            bufsize=0,  # raw pipes: no buffered-IO locks to inherit across a fork
            # Own session: a Ctrl-C or SIGTERM sent to the server's process group does not hit R
            # mid-call; the worker still exits when its stdin closes.
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._in_fd = self.proc.stdin.fileno()
        self._out_fd = self.proc.stdout.fileno()
        os.set_blocking(self._in_fd, False)
        self._buffer = bytearray()
        self._ids = itertools.count(1)
        self.loaded: OrderedDict[str, RModelInfo] = OrderedDict()
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, name=f"r-worker-stderr-{self.proc.pid}", daemon=True
        )
        self._stderr_thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _drain_stderr(self) -> None:
        # R's own output (diverted there by the worker) and messages: kept for error reports and logged.
        # Draining also keeps a chatty package from filling the pipe and blocking R. Raw os.read on the
        # fd, never a buffered reader: a buffered reader's internal lock, held by this thread at the
        # moment a fork happens, would deadlock the child when it closes the inherited pipe.
        stream = self.proc.stderr
        fd = stream.fileno()
        pending = b""
        try:
            while chunk := os.read(fd, 65536):
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").rstrip()
                    if line:
                        self.stderr_tail.append(line)
                        logger.debug("R worker %s: %s", self.proc.pid, line)
        except OSError:
            pass
        finally:
            if pending.strip():
                self.stderr_tail.append(pending.decode("utf-8", "replace").rstrip())
            stream.close()

    def describe_exit(self) -> str:
        code = self.proc.poll()
        status = "still running" if code is None else (f"killed by signal {-code}" if code < 0 else f"exit code {code}")
        tail = " | ".join(list(self.stderr_tail)[-5:])
        return f"{status}; stderr: {tail}" if tail else status

    def call(self, request: dict[str, Any], *, timeout: float, payload: bytes | None = None) -> dict:
        """Send one request (a JSON line, then ``payload`` if any) and read its one-line reply."""
        request_id = next(self._ids)
        header = {**request, "id": request_id}
        if payload is not None:
            header["payload_bytes"] = len(payload)
        line = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
        deadline = time.monotonic() + timeout
        self._write(line + payload if payload else line, deadline)
        line = self._read_line(deadline)
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise _WorkerDied(f"unreadable reply from the R worker: {line[:200]!r}") from exc
        if not isinstance(reply, dict) or reply.get("id") != request_id:
            raise _WorkerDied(f"reply out of step with request {request_id}: {line[:200]!r}")
        for warning in _as_list(reply.get("warnings")):
            logger.warning("R warning (%s): %s", request.get("op"), warning)
        return reply

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        poller = select.poll()
        poller.register(self._in_fd, select.POLLOUT)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _CallTimedOut
            events = poller.poll(remaining * 1000)
            if not events:
                continue
            if any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events):
                raise _WorkerDied("the R worker closed its stdin")
            try:
                written = os.write(self._in_fd, view)
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError) as exc:
                raise _WorkerDied(f"writing to the R worker failed: {exc}") from exc
            view = view[written:]

    def _read_line(self, deadline: float) -> bytes:
        poller = select.poll()
        poller.register(self._out_fd, select.POLLIN)
        scanned = 0
        while True:
            newline = self._buffer.find(b"\n", scanned)
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                return line
            scanned = len(self._buffer)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _CallTimedOut
            if not poller.poll(remaining * 1000):
                continue
            chunk = os.read(self._out_fd, _READ_CHUNK)
            if not chunk:
                raise _WorkerDied("the R worker closed its stdout")
            self._buffer += chunk

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def quit(self, grace: float = 2.0) -> None:
        """Ask the worker to exit, and kill it if it does not within ``grace`` seconds."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"op":"quit","id":0}\n')
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("R worker %s did not exit after SIGKILL", self.proc.pid)

    def abandon_after_fork(self) -> None:
        """In a forked child: drop the parent's pipes without touching the parent's process."""
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        # Make the Popen object forget the process so its finaliser never signals or waits on it.
        self.proc.returncode = 0


_RUNTIMES: weakref.WeakSet[RWorkerRuntime] = weakref.WeakSet()


class RWorkerRuntime:
    """Loads and serves R models through one ``Rscript`` worker per Python process.

    Thread-safe: one lock serialises calls to the worker (R is single-threaded anyway). Every method
    raises only :class:`RRuntimeError` subclasses (or ``ValueError`` for malformed arguments).
    """

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
        self.rscript = rscript
        self.call_timeout = float(call_timeout)
        self.load_timeout = float(load_timeout)
        self.start_timeout = float(start_timeout)
        self.max_models = int(max_models)
        self.restart_backoff = float(restart_backoff)
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._owner_pid = os.getpid()
        self._tmpdir: Path | None = None
        self._failed_start: tuple[float, str] | None = None
        _RUNTIMES.add(self)
        atexit.register(self.close)

    # -- public API ---------------------------------------------------------------------------------

    def available(self) -> bool:
        """True when ``Rscript`` is on PATH and the worker answers a ping."""
        try:
            with self._locked(self.start_timeout):
                self._with_restart(lambda worker: self._ping(worker))
            return True
        except RRuntimeError as exc:
            logger.info("R runtime not available: %s", exc)
            return False

    def load(self, path: str | os.PathLike, sha256: str) -> RModelInfo:
        """Verify the artefact's sha256 and load it into the worker (a no-op for R if already loaded)."""
        sha = _normalise_sha(sha256)
        source = Path(path)
        with self._locked(self.load_timeout):
            return self._with_restart(lambda worker: self._ensure_loaded(worker, source, sha, reverify=True))

    def load_error(self, path: str | os.PathLike, sha256: str) -> str | None:
        """None when the artefact loads and has a usable predict method; otherwise why not, for people."""
        try:
            self.load(path, sha256)
        except RRuntimeError as exc:
            return str(exc)
        except ValueError as exc:
            return str(exc)
        return None

    def predict(
        self, path: str | os.PathLike, sha256: str, X: np.ndarray, feature_names: Sequence[str]
    ) -> np.ndarray:
        """Predict every row of ``X`` in one worker call; columns are matched to the model by name.

        ``X`` is 2-D (rows × features) in the order of ``feature_names``; NaN is passed to R as NA.
        Returns a float64 vector with one prediction per row (NaN where R returned NA).
        """
        sha = _normalise_sha(sha256)
        source = Path(path)
        matrix, names = _validate_inputs(X, feature_names)
        payload = _columns_payload(matrix)
        rows = matrix.shape[0]

        def run(worker: _Worker) -> np.ndarray:
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

        with self._locked(self.call_timeout):
            return self._with_restart(run)

    def unload(self, sha256: str) -> None:
        """Drop a model from the worker (e.g. when its version is deleted)."""
        sha = _normalise_sha(sha256)
        with self._locked(self.call_timeout):
            worker = self._worker
            if worker is None or not worker.alive() or sha not in worker.loaded:
                return
            try:
                self._unload(worker, sha)
            except (_WorkerDied, _CallTimedOut):
                self._discard(worker)  # the model is gone with the worker, which is what was asked

    @property
    def worker_pid(self) -> int | None:
        """The worker's process id, or None when no worker runs (for monitoring and tests)."""
        worker = self._worker
        return worker.pid if worker is not None and worker.alive() else None

    def close(self) -> None:
        """Stop the worker and remove the private temporary directory. Safe to call twice."""
        if os.getpid() != self._owner_pid:
            return
        acquired = self._lock.acquire(timeout=5)
        try:
            if self._worker is not None:
                self._worker.quit()
                self._worker = None
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None
        finally:
            if acquired:
                self._lock.release()

    # -- internals ----------------------------------------------------------------------------------

    def _locked(self, timeout: float) -> _Held:
        if os.getpid() != self._owner_pid:
            self._reset_after_fork()
        return _Held(self._lock, timeout)

    def _reset_after_fork(self) -> None:
        # Called in a forked child: the worker, its pipes and the temporary directory belong to the parent.
        self._lock = threading.Lock()
        if self._worker is not None:
            self._worker.abandon_after_fork()
        self._worker = None
        self._tmpdir = None
        self._failed_start = None
        self._owner_pid = os.getpid()

    def _with_restart(self, operation):
        """Run ``operation(worker)``; if the worker dies during it, restart once and run it again."""
        for attempt in (1, 2):
            worker = self._ensure_worker()
            try:
                return operation(worker)
            except _WorkerDied as exc:
                detail = f"{exc} ({worker.describe_exit()})"
                self._discard(worker)
                if attempt == 2:
                    raise RWorkerCrashed(f"the R worker died during the call twice: {detail}") from None
                logger.warning("R worker %s died (%s); restarting and retrying once", worker.pid, detail)
            except _CallTimedOut:
                self._discard(worker)
                raise RWorkerTimeout(
                    "the R worker did not answer in time; it was stopped and restarts on the next call"
                ) from None
        raise AssertionError("unreachable")

    def _ensure_worker(self) -> _Worker:
        worker = self._worker
        if worker is not None:
            if worker.alive():
                return worker
            logger.warning("R worker %s is gone (%s); starting a new one", worker.pid, worker.describe_exit())
            self._discard(worker)
        if self._failed_start is not None:
            failed_at, reason = self._failed_start
            if time.monotonic() - failed_at < self.restart_backoff:
                raise RRuntimeUnavailable(reason)
        rscript = shutil.which(self.rscript)
        if rscript is None:
            self._failed_start = (time.monotonic(), UNAVAILABLE_MESSAGE)
            raise RRuntimeUnavailable(UNAVAILABLE_MESSAGE)
        try:
            worker = _Worker(rscript)
        except OSError as exc:
            reason = f"{UNAVAILABLE_MESSAGE}: cannot start {rscript}: {exc}"
            self._failed_start = (time.monotonic(), reason)
            raise RRuntimeUnavailable(reason) from None
        try:
            reply = worker.call({"op": "ping"}, timeout=self.start_timeout)
            if not reply.get("ok"):
                raise _WorkerDied(str(reply.get("error")))
        except (_WorkerDied, _CallTimedOut) as exc:
            worker.kill()
            detail = str(exc) or "no answer in time"
            reason = f"{UNAVAILABLE_MESSAGE}: the R worker did not start ({detail}; {worker.describe_exit()})"
            self._failed_start = (time.monotonic(), reason)
            raise RRuntimeUnavailable(reason) from None
        logger.info("R worker %s started (R %s)", worker.pid, reply.get("r_version"))
        self._failed_start = None
        self._worker = worker
        return worker

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        if self._worker is worker:
            self._worker = None

    def _call(self, worker: _Worker, request: dict, *, timeout: float, payload: bytes | None = None) -> dict:
        return worker.call(request, timeout=timeout, payload=payload)

    def _ping(self, worker: _Worker) -> dict:
        reply = self._call(worker, {"op": "ping"}, timeout=self.start_timeout)
        if not reply.get("ok"):
            raise RRuntimeUnavailable(f"{UNAVAILABLE_MESSAGE}: ping failed: {reply.get('error')}")
        return reply

    def _ensure_loaded(self, worker: _Worker, source: Path, sha: str, *, reverify: bool) -> RModelInfo:
        info = worker.loaded.get(sha)
        if info is not None:
            if reverify:
                _verify_file(source, sha)
            worker.loaded.move_to_end(sha)
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
            classes=tuple(_as_list(reply.get("class"))),
            format=str(reply.get("format")),
            variables=None if variables is None else tuple(_as_list(variables)),
        )
        worker.loaded[sha] = info
        while len(worker.loaded) > self.max_models:
            oldest = next(iter(worker.loaded))
            self._unload(worker, oldest)
        return info

    def _unload(self, worker: _Worker, sha: str) -> None:
        worker.loaded.pop(sha, None)
        reply = self._call(worker, {"op": "unload", "key": sha}, timeout=self.call_timeout)
        if not reply.get("ok"):
            logger.warning("R worker could not unload %s: %s", sha, reply.get("error"))

    def _verified_copy(self, source: Path, sha: str) -> Path:
        """Copy ``source`` into the private directory while hashing it; refuse it unless the hash matches."""
        if self._tmpdir is None or not self._tmpdir.is_dir():
            self._tmpdir = Path(tempfile.mkdtemp(prefix="stamm-r-runtime-"))
        target = self._tmpdir / f"{sha}{source.suffix.lower()}"
        digest = hashlib.sha256()
        try:
            with source.open("rb") as reader, open(target, "wb") as writer:
                os.chmod(target, 0o600)
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


class _Held:
    """``with`` a lock acquired within a timeout, so a caller never waits forever behind a slow call."""

    def __init__(self, lock: threading.Lock, timeout: float) -> None:
        self._lock = lock
        self._timeout = timeout

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=self._timeout):
            raise RWorkerTimeout(f"the R worker stayed busy for more than {self._timeout:g} s")

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


def _after_fork_in_child() -> None:
    for runtime in list(_RUNTIMES):
        runtime._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


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

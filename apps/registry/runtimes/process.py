"""Long-lived worker processes that load and run model artefacts outside the web and Celery processes.

Every model runtime (R, and Python in each of its environments) is a child process speaking one small
protocol over its stdin/stdout: a request is one JSON line (with ``op`` and an ``id`` the reply echoes),
followed by exactly ``payload_bytes`` raw bytes when the request says so; a reply is one JSON line, also
optionally followed by ``payload_bytes`` raw bytes. Binary payloads carry matrices as little-endian
float64, which is bit-exact and costs far less than formatting numbers as text.

:class:`WorkerHandle` owns at most one worker process per Python process and keeps it warm: calls are
serialised by a lock, bounded by a deadline (a hung worker is killed, never waited on), a worker found
dead is restarted before the next call and a call during which it dies is retried once on a fresh worker.
A forked child (gunicorn, Celery prefork) never talks to its parent's worker: it starts its own on first
use. Workers live in their own session and exit by themselves when their stdin closes, so they cannot
outlive the Python process that started them.

How a worker is isolated (sandbox, rlimits, environment) is decided by ``sandbox.py``; this module only
runs what it is given.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import select
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

_READ_CHUNK = 1 << 20
T = TypeVar("T")


class WorkerError(Exception):
    """Base class of every worker failure; ``str(exc)`` is a message for people."""


class WorkerUnavailable(WorkerError):
    """The worker cannot start (interpreter missing, sandbox refused, no answer to the first ping)."""


class WorkerTimeout(WorkerError):
    """A call took longer than its timeout; the worker was killed and restarts on the next call."""


class WorkerCrashed(WorkerError):
    """The worker died during a call, twice in a row (once is retried after a restart)."""


class WorkerDied(Exception):
    """Internal: the pipe broke or closed mid-call."""


class CallTimedOut(Exception):
    """Internal: the deadline passed before the reply."""


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class WorkerProcess:
    """One worker process and its pipes. Not thread-safe: the handle's lock guards it."""

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None, label: str = ""
    ) -> None:
        self.owner_pid = os.getpid()
        self.label = label or os.path.basename(argv[0])
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            bufsize=0,  # raw pipes: no buffered-IO locks to inherit across a fork
            env=None if env is None else dict(env),
            cwd=cwd,
            # Own session: a Ctrl-C or SIGTERM sent to the server's process group does not hit the worker
            # mid-call; the worker still exits when its stdin closes.
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._in_fd = self.proc.stdin.fileno()
        self._out_fd = self.proc.stdout.fileno()
        os.set_blocking(self._in_fd, False)
        self._buffer = bytearray()
        self._ids = itertools.count(1)
        self.state: dict[str, Any] = {}  # what the owner keeps about this process (loaded models, ...)
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, name=f"{self.label}-stderr-{self.proc.pid}", daemon=True
        )
        self._stderr_thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _drain_stderr(self) -> None:
        # What the worker prints besides the protocol: kept for error reports and logged. Draining also keeps
        # a chatty library from filling the pipe and blocking the worker. Raw os.read on the fd, never a
        # buffered reader: a buffered reader's internal lock, held by this thread at the moment a fork
        # happens, would deadlock the child when it closes the inherited pipe.
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
                        logger.debug("%s worker %s: %s", self.label, self.proc.pid, line)
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

    def call(
        self, request: Mapping[str, Any], *, timeout: float, payload: bytes | None = None
    ) -> tuple[dict, bytes | None]:
        """Send one request (a JSON line, then ``payload`` if any); return its reply and the reply's payload."""
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
            raise WorkerDied(f"unreadable reply from the {self.label} worker: {line[:200]!r}") from exc
        if not isinstance(reply, dict) or reply.get("id") != request_id:
            raise WorkerDied(f"reply out of step with request {request_id}: {line[:200]!r}")
        size = reply.get("payload_bytes")
        data = self._read_exact(int(size), deadline) if isinstance(size, int) and size >= 0 else None
        for warning in as_list(reply.get("warnings")):
            logger.warning("%s warning (%s): %s", self.label, request.get("op"), warning)
        return reply, data

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        poller = select.poll()
        poller.register(self._in_fd, select.POLLOUT)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CallTimedOut
            events = poller.poll(remaining * 1000)
            if not events:
                continue
            if any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events):
                raise WorkerDied(f"the {self.label} worker closed its stdin")
            try:
                written = os.write(self._in_fd, view)
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError) as exc:
                raise WorkerDied(f"writing to the {self.label} worker failed: {exc}") from exc
            view = view[written:]

    def _fill(self, deadline: float, poller: select.poll) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CallTimedOut
        if not poller.poll(remaining * 1000):
            return
        chunk = os.read(self._out_fd, _READ_CHUNK)
        if not chunk:
            raise WorkerDied(f"the {self.label} worker closed its stdout")
        self._buffer += chunk

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
            self._fill(deadline, poller)

    def _read_exact(self, size: int, deadline: float) -> bytes:
        poller = select.poll()
        poller.register(self._out_fd, select.POLLIN)
        while len(self._buffer) < size:
            self._fill(deadline, poller)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

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
            logger.error("%s worker %s did not exit after SIGKILL", self.label, self.proc.pid)

    def abandon_after_fork(self) -> None:
        """In a forked child: drop the parent's pipes without touching the parent's process."""
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        # Make the Popen object forget the process so its finaliser never signals or waits on it.
        self.proc.returncode = 0


class Held:
    """``with`` a lock acquired within a timeout, so a caller never waits forever behind a slow call."""

    def __init__(self, lock: threading.Lock, timeout: float, error: Callable[[str], Exception]) -> None:
        self._lock = lock
        self._timeout = timeout
        self._error = error

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=self._timeout):
            raise self._error(f"the worker stayed busy for more than {self._timeout:g} s")

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


_HANDLES: weakref.WeakSet[WorkerHandle] = weakref.WeakSet()


class WorkerHandle:
    """At most one warm worker process per Python process, restarted when it dies.

    Subclasses say how to start it (``launch``), how to check it answers (``greet``) and which exception
    classes callers see (``unavailable_error``, ``timeout_error``, ``crashed_error``).
    """

    label = "model"
    unavailable_error: type[Exception] = WorkerUnavailable
    timeout_error: type[Exception] = WorkerTimeout
    crashed_error: type[Exception] = WorkerCrashed

    def __init__(self, *, call_timeout: float, start_timeout: float, restart_backoff: float) -> None:
        self.call_timeout = float(call_timeout)
        self.start_timeout = float(start_timeout)
        self.restart_backoff = float(restart_backoff)
        self._lock = threading.Lock()
        self._worker: WorkerProcess | None = None
        self._owner_pid = os.getpid()
        self._failed_start: tuple[float, str] | None = None
        self.started_info: dict[str, Any] = {}
        _HANDLES.add(self)
        atexit.register(self.close)

    # -- to override -----------------------------------------------------------------------------------

    def launch(self) -> WorkerProcess:
        """Start the process (raise ``unavailable_error`` with a reason when it cannot be started)."""
        raise NotImplementedError

    def greet(self, worker: WorkerProcess) -> dict:
        """The first call on a fresh worker (a ping); its reply is kept as ``started_info``."""
        reply, _ = worker.call({"op": "ping"}, timeout=self.start_timeout)
        if not reply.get("ok"):
            raise WorkerDied(str(reply.get("error")))
        return reply

    def on_close(self) -> None:
        """Called under the lock when the handle closes (remove scratch folders and the like)."""

    # -- public ------------------------------------------------------------------------------------------

    @property
    def worker_pid(self) -> int | None:
        """The worker's process id, or None when no worker runs (for monitoring and tests)."""
        worker = self._worker
        return worker.pid if worker is not None and worker.alive() else None

    def locked(self, timeout: float) -> Held:
        if os.getpid() != self._owner_pid:
            self.reset_after_fork()
        return Held(self._lock, timeout, self.timeout_error)

    def run(self, operation: Callable[[WorkerProcess], T]) -> T:
        """Run ``operation(worker)`` (call under ``locked``); if the worker dies during it, restart once and retry."""
        for attempt in (1, 2):
            worker = self.ensure_worker()
            try:
                return operation(worker)
            except WorkerDied as exc:
                detail = f"{exc} ({worker.describe_exit()})"
                self.discard(worker)
                if attempt == 2:
                    raise self.crashed_error(f"the {self.label} worker died during the call twice: {detail}") from None
                logger.warning("%s worker %s died (%s); restarting and retrying once", self.label, worker.pid, detail)
            except CallTimedOut:
                self.discard(worker)
                raise self.timeout_error(
                    f"the {self.label} worker did not answer in time; it was stopped and restarts on the next call"
                ) from None
        raise AssertionError("unreachable")

    def ensure_worker(self) -> WorkerProcess:
        worker = self._worker
        if worker is not None:
            if worker.alive():
                return worker
            logger.warning(
                "%s worker %s is gone (%s); starting a new one", self.label, worker.pid, worker.describe_exit()
            )
            self.discard(worker)
        if self._failed_start is not None:
            failed_at, reason = self._failed_start
            if time.monotonic() - failed_at < self.restart_backoff:
                raise self.unavailable_error(reason)
        try:
            worker = self.launch()
        except self.unavailable_error as exc:
            self._failed_start = (time.monotonic(), str(exc))
            raise
        except OSError as exc:
            reason = f"{self.label} runtime not available: cannot start the worker: {exc}"
            self._failed_start = (time.monotonic(), reason)
            raise self.unavailable_error(reason) from None
        try:
            self.started_info = self.greet(worker)
        except (WorkerDied, CallTimedOut) as exc:
            worker.kill()
            detail = str(exc) or "no answer in time"
            reason = f"{self.unavailable_prefix()}: the worker did not start ({detail}; {worker.describe_exit()})"
            self._failed_start = (time.monotonic(), reason)
            raise self.unavailable_error(reason) from None
        logger.info("%s worker %s started", self.label, worker.pid)
        self._failed_start = None
        self._worker = worker
        return worker

    def unavailable_prefix(self) -> str:
        return f"{self.label} runtime not available"

    def discard(self, worker: WorkerProcess) -> None:
        worker.kill()
        if self._worker is worker:
            self._worker = None

    def current(self) -> WorkerProcess | None:
        """The running worker, if any (without starting one)."""
        worker = self._worker
        return worker if worker is not None and worker.alive() else None

    def close(self) -> None:
        """Stop the worker and call ``on_close``. Safe to call twice."""
        if os.getpid() != self._owner_pid:
            return
        acquired = self._lock.acquire(timeout=5)
        try:
            if self._worker is not None:
                self._worker.quit()
                self._worker = None
            self.on_close()
        finally:
            if acquired:
                self._lock.release()

    def reset_after_fork(self) -> None:
        # Called in a forked child: the worker and its pipes belong to the parent.
        self._lock = threading.Lock()
        if self._worker is not None:
            self._worker.abandon_after_fork()
        self._worker = None
        self._failed_start = None
        self._owner_pid = os.getpid()
        self.after_fork()

    def after_fork(self) -> None:
        """Subclasses forget per-process state (scratch folders) here."""


def _after_fork_in_child() -> None:
    for handle in list(_HANDLES):
        handle.reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

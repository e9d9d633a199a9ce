"""How a model runtime worker is isolated: its environment, its resource limits and, with bubblewrap, its view
of the machine.

Loading a model artefact may run its author's code (pickles, R objects, MLflow ``python_function`` models).
So every worker (``process.py``) is started through :func:`command`, which gives it:

- **no secrets**: the environment is rebuilt from scratch (``PATH``, ``HOME`` and ``TMPDIR`` = its scratch
  folder, a UTF-8 locale, one BLAS/OpenMP thread, and the runtime's own variables such as ``KERAS_BACKEND``);
  ``DJANGO_SECRET_KEY``, ``DATABASE_URL``, broker URLs, tokens never reach it;
- **rlimits** (``prlimit``, util-linux): address space, CPU seconds (a worker that used its budget is
  killed by the kernel and restarted on the next call), open files, file size, no core dumps;
- its **own scratch folder** (mode 0700) as working directory, removed when the worker's owner closes;
- with **bubblewrap** (``bwrap``, Debian package ``bubblewrap``; mode ``bwrap``): new user, PID, IPC, UTS,
  cgroup and network namespaces (no network at all), every capability dropped, a read-only root holding only
  ``/usr`` (and the ``/bin``, ``/lib`` links), the dynamic-loader files of ``/etc``, the interpreter, the
  runtime environment, the worker code and the artefact store, read-only; the scratch folder is the only
  writable path; ``/proc`` shows only the sandbox's own processes. The database file, the secret-key file,
  the media folder outside the artefact store, the repository and every home directory are not there.

Without bubblewrap (mode ``process``) the worker is a separate process with the cleared environment, rlimits
and scratch folder, but it runs as the same user and sees the same files as the server: a hostile artefact
could read whatever that user can read. ``REGISTRY_RUNTIME_SANDBOX`` chooses: ``auto`` (bwrap when it works
here, else process), ``bwrap`` (required: workers refuse to start without it), ``process``.
``docs/security.md`` says which uploads each mode accepts.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

MODE_BWRAP = "bwrap"
MODE_PROCESS = "process"
MODES = ("auto", MODE_BWRAP, MODE_PROCESS)

#: What the dynamic loader and Debian's alternatives need from /etc (nothing else of /etc is visible).
ETC_READ_ONLY = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime")
#: Top-level entries that are symlinks into /usr on a merged-/usr system (recreated as links), or directories.
ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Host variables a worker keeps: OpenBLAS's core-type override is needed for correct results on some CPUs.
PASSED_THROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


class SandboxUnavailable(Exception):
    """bubblewrap was required (``REGISTRY_RUNTIME_SANDBOX=bwrap``) but cannot run here."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one worker process."""

    memory_mb: int = 4096
    cpu_seconds: int = 3600
    open_files: int = 256
    file_size_mb: int = 1024


@dataclass(frozen=True)
class Command:
    """What to execute for one worker: argv (the sandbox and limits included), environment, working folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    mode: str
    limits: Limits = field(default_factory=Limits)


def _setting(name: str, default):
    try:
        from django.conf import settings  # noqa: PLC0415 - usable without Django (benchmarks, unit tests)

        if settings.configured:
            return getattr(settings, name, default)
    except ImportError:
        pass
    return default


def configured_mode() -> str:
    """``REGISTRY_RUNTIME_SANDBOX``: auto | bwrap | process."""
    value = str(_setting("REGISTRY_RUNTIME_SANDBOX", "auto") or "auto").lower()
    return value if value in MODES else "auto"


def limits() -> Limits:
    """The worker limits from the ``REGISTRY_RUNTIME_*`` settings."""
    return Limits(
        memory_mb=int(_setting("REGISTRY_RUNTIME_MEMORY_MB", 4096)),
        cpu_seconds=int(_setting("REGISTRY_RUNTIME_CPU_SECONDS", 3600)),
        open_files=int(_setting("REGISTRY_RUNTIME_OPEN_FILES", 256)),
        file_size_mb=int(_setting("REGISTRY_RUNTIME_FILE_SIZE_MB", 1024)),
    )


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """True when ``bwrap`` is installed and can create its namespaces here (checked once per process)."""
    binary = shutil.which("bwrap")
    if binary is None:
        return False
    try:
        done = subprocess.run(
            [binary, "--ro-bind", "/", "/", "--unshare-all", "--cap-drop", "ALL", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if done.returncode != 0:
        logger.warning("bubblewrap is installed but cannot run here: %s", done.stderr.decode(errors="replace")[-300:])
    return done.returncode == 0


def effective_mode() -> str:
    """The mode workers start in now: ``bwrap`` or ``process`` (raises SandboxUnavailable when bwrap is required)."""
    wanted = configured_mode()
    if wanted == MODE_PROCESS:
        return MODE_PROCESS
    if bwrap_works():
        return MODE_BWRAP
    if wanted == MODE_BWRAP:
        raise SandboxUnavailable(
            "REGISTRY_RUNTIME_SANDBOX=bwrap but bubblewrap is missing or cannot create namespaces here "
            "(Debian: apt-get install bubblewrap)"
        )
    return MODE_PROCESS


def describe() -> dict[str, object]:
    """The isolation in force, for the health page, the API and the docs' tests."""
    try:
        mode = effective_mode()
        problem = ""
    except SandboxUnavailable as exc:
        mode, problem = "unavailable", str(exc)
    return {
        "configured": configured_mode(),
        "mode": mode,
        "problem": problem,
        "network": "none" if mode == MODE_BWRAP else "host",
        "filesystem": "read-only, scratch folder only" if mode == MODE_BWRAP else "same user as the server",
        "limits": limits().__dict__,
        "rlimits": shutil.which("prlimit") is not None,
    }


class Scratch:
    """A worker's private, writable folder (mode 0700), under ``REGISTRY_RUNTIME_SCRATCH_DIR`` or the temp dir."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, label: str) -> Scratch:
        base = _setting("REGISTRY_RUNTIME_SCRATCH_DIR", "") or None
        if base:
            Path(base).mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"stamm-runtime-{label}-", dir=base)).resolve()
        os.chmod(path, 0o700)
        return cls(path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _environment(scratch: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
    }
    for name in PASSED_THROUGH:
        if name in os.environ:
            env[name] = os.environ[name]
    env.update({str(key): str(value) for key, value in extra.items()})
    return env


def _rlimit_prefix(limit: Limits) -> list[str]:
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        logger.warning("prlimit (util-linux) not found: model runtime workers run without rlimits")
        return []
    memory = limit.memory_mb * 1024 * 1024
    size = limit.file_size_mb * 1024 * 1024
    return [
        prlimit,
        f"--as={memory}:{memory}",
        f"--cpu={limit.cpu_seconds}:{limit.cpu_seconds + 5}",
        f"--nofile={limit.open_files}:{limit.open_files}",
        f"--fsize={size}:{size}",
        "--core=0:0",
        "--",
    ]


def _bwrap_prefix(scratch: Path, read_only: Iterable[Path]) -> list[str]:
    # No --die-with-parent: its parent-death signal fires when the *thread* that started the worker ends (a
    # runserver request thread, a warm-up thread), not the process. Workers exit when their stdin closes,
    # which happens when the owning process goes, however it goes.
    argv = [
        shutil.which("bwrap") or "bwrap",
        "--new-session",
        "--unshare-all",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for entry in ROOT_LINKS:
        path = Path(entry)
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), entry]
        elif path.is_dir():
            argv += ["--ro-bind", entry, entry]
    for entry in ETC_READ_ONLY:
        argv += ["--ro-bind-try", entry, entry]
    seen: set[str] = set()
    for path in sorted({str(Path(p).resolve()) for p in read_only}):
        if path in seen or path.startswith("/usr/") or path == "/usr":
            continue
        seen.add(path)
        argv += ["--ro-bind-try", path, path]
    argv += [
        "--bind",
        str(scratch),
        str(scratch),
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--chdir",
        str(scratch),
        "--remount-ro",
        "/",
        "--",
    ]
    return argv


def python_prefixes(executable: str | Path) -> list[Path]:
    """What an interpreter needs to see: its virtual environment and the installation it was made from."""
    executable = Path(executable)
    paths = [executable.parent.parent]
    config = executable.parent.parent / "pyvenv.cfg"
    if config.is_file():
        for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                paths.append(Path(value.strip()).parent)
    else:
        paths.append(Path(os.path.realpath(executable)).parent.parent)
    if Path(sys.executable).resolve() == executable.resolve():
        paths.append(Path(sys.base_prefix))
    return paths


def command(
    argv: Sequence[str],
    *,
    scratch: Path,
    read_only: Iterable[Path] = (),
    environment: Mapping[str, str] | None = None,
) -> Command:
    """The full command line for a worker running ``argv`` with the configured isolation."""
    mode = effective_mode()
    limit = limits()
    prefix = _bwrap_prefix(scratch, read_only) if mode == MODE_BWRAP else []
    return Command(
        argv=[*prefix, *_rlimit_prefix(limit), *argv],
        env=_environment(scratch, environment or {}),
        cwd=str(scratch),
        mode=mode,
        limits=limit,
    )

"""Declared environments: which Python packages a version needs, whether the platform's own interpreter has
them, and building a cached virtual environment (uv) when it does not.

A version's environment comes from its descriptor (``model_description.packages`` with versions, the
``language`` version) or from an explicit requirements list uploaded with it. STAMM names packages by the
module it imported (``sklearn.ensemble``), so names are mapped to distributions (``scikit-learn``); a version
of ``unknown`` (or empty) means "any". When every requirement is satisfied by the platform's installed
distributions, the version runs in the default runtime without a build.

Otherwise an environment is built once: the requirements plus what the worker itself needs (numpy, and the
flavor's loader) are resolved with ``uv pip compile`` against the configured package index, and installed with
``uv pip install`` into ``<STAMM_RUNTIME_ENV_DIR>/<resolved key>/``, keyed by the sha256 of the interpreter's
version and the resolved pins; two requests resolving to the same pins share one folder. Only wheels are
installed (``--no-build``): no package's build code runs on the server. A build happens under a file lock, in a
temporary folder renamed into place when complete, so concurrent builders (several Celery workers, the test
processes) wait for one another and a half-built environment is never used.

Framework-free: settings come in as arguments (``services/environments.py`` passes them).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

#: Module names STAMM descriptors use → the distribution that provides them.
DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python-headless",
    "pil": "pillow",
    "yaml": "pyyaml",
    "tf": "tensorflow",
    "skimage": "scikit-image",
}
#: Version texts that mean "any version".
ANY_VERSION = {"", "unknown", "nan", "none", "latest", "any", "-", "n/a", "na", "?", "*"}
#: What every built environment gets besides the declared packages: the worker's own needs.
WORKER_REQUIREMENTS = ("numpy",)
#: Extra requirements per flavor (the loader the worker uses).
FLAVOR_REQUIREMENTS = {
    "sklearn-skops": ("skops",),
    "onnx": ("onnxruntime",),
    "mlflow": ("pyyaml", "cloudpickle"),
}
#: Keras 3 backends, in the order tried when several are installed.
KERAS_BACKENDS = ("jax", "tensorflow", "torch")
READY_MARKER = ".stamm-environment.json"
MESSAGE_LIMIT = 4000


class RequirementsError(ValueError):
    """A requirement list that cannot be used (the message names the line or package)."""


@dataclass(frozen=True)
class EnvironmentSpec:
    """What a version asks for: a Python version (major.minor, or None for any) and requirements."""

    python: str | None
    requirements: tuple[str, ...]
    variables: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """The declared key (what was asked for); the built folder is keyed by the resolved pins."""
        text = json.dumps({"python": self.python, "requirements": list(self.requirements)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def requirements_text(self) -> str:
        return "\n".join(self.requirements) + "\n"


def distribution_for(package: str) -> str:
    """``sklearn.ensemble`` → ``scikit-learn``; ``tensorflow`` → ``tensorflow``."""
    top = str(package).strip().split(".")[0].split("[")[0].strip()
    return DISTRIBUTIONS.get(top.lower(), top)


def requirements_from_packages(packages: Iterable[Mapping]) -> list[str]:
    """Requirement strings from a descriptor's ``packages`` list (raises RequirementsError naming the entry)."""
    pins: dict[str, str] = {}
    for index, item in enumerate(packages):
        name = str(item.get("package") or "").strip()
        if not name:
            continue
        dist = distribution_for(name)
        try:
            canonical = canonicalize_name(Requirement(dist).name)
        except InvalidRequirement:
            raise RequirementsError(
                f"model_description.packages[{index}].package: {name!r} is not a package name"
            ) from None
        version = str(item.get("version") if item.get("version") is not None else "").strip()
        if version.lower() in ANY_VERSION:
            pins.setdefault(canonical, canonical)
            continue
        if version[:1] in "<>=!~":
            text = f"{canonical}{version}"
        else:
            try:
                Version(version)
            except InvalidVersion:
                raise RequirementsError(
                    f"model_description.packages[{index}].version: {version!r} is not a version (e.g. 1.5.2)"
                ) from None
            text = f"{canonical}=={version}"
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            raise RequirementsError(f"model_description.packages[{index}]: {exc}") from None
        previous = pins.get(canonical)
        if previous and previous != canonical and previous != text:
            raise RequirementsError(
                f"model_description.packages[{index}]: {canonical} is declared twice ({previous} and {text})"
            )
        pins[canonical] = text
    return sorted(pins.values())


def parse_requirements_text(text: str) -> list[str]:
    """A requirements file (one requirement per line, ``#`` comments) → requirement strings.

    Index options, editable installs, URLs and local paths are refused: the platform installs from its own
    configured index only.
    """
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-") or "://" in line or line.startswith((".", "/")) or " @ " in line:
            raise RequirementsError(f"requirements line {number}: {line!r}: only package requirements are accepted")
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise RequirementsError(f"requirements line {number}: {exc}") from None
        if requirement.url:
            raise RequirementsError(f"requirements line {number}: direct URLs are not accepted")
        result[canonicalize_name(requirement.name)] = str(requirement)
    if len(result) > 200:
        raise RequirementsError("requirements: at most 200 packages")
    return sorted(result.values())


def python_request(version: str | None) -> str | None:
    """``3.12.7`` → ``3.12``; ``3.x``, ``3`` or nothing → None (any Python 3)."""
    parts = str(version or "").strip().split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        return f"{parts[0]}.{parts[1]}"
    return None


def keras_variables(requirements: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``KERAS_BACKEND`` for an environment holding keras and one of its backends."""
    names = {canonicalize_name(Requirement(r).name) for r in requirements}
    if "keras" not in names and "tensorflow" not in names:
        return ()
    for backend in KERAS_BACKENDS:
        if backend in names:
            return (("KERAS_BACKEND", backend),)
    return ()


def platform_satisfies(requirements: Sequence[str]) -> bool:
    """True when the platform's own installed distributions satisfy every requirement."""
    for text in requirements:
        requirement = Requirement(text)
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            return False
    return True


def environment_spec(
    *,
    flavor: str,
    packages: Iterable[Mapping] = (),
    language_version: str | None = None,
    requirements_text: str | None = None,
) -> EnvironmentSpec | None:
    """The environment a Python version needs, or None when the platform's own interpreter serves it.

    An explicit requirements list replaces the descriptor's packages. Raises RequirementsError naming the
    package or line that cannot be used.
    """
    if requirements_text:
        declared = parse_requirements_text(requirements_text)
    elif flavor == "onnx":
        declared = []  # code-free: the descriptor's packages say how it was made, onnxruntime runs it
    else:
        declared = requirements_from_packages(packages)
    needed = sorted({*declared, *(r for r in (*WORKER_REQUIREMENTS, *FLAVOR_REQUIREMENTS.get(flavor, ())))})
    requested_python = python_request(language_version)
    if platform_satisfies(needed) and flavor != "keras":
        return None
    named = {canonicalize_name(Requirement(r).name) for r in declared}
    extras = [r for r in needed if canonicalize_name(Requirement(r).name) not in named]
    requirements = tuple(sorted({*declared, *extras}))
    return EnvironmentSpec(requested_python, requirements, keras_variables(requirements))


# ---------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class BuildOptions:
    root: Path
    uv: str
    index_url: str = ""
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    timeout: float = 900.0
    python_search: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildResult:
    ok: bool
    message: str
    location: str = ""
    python_version: str = ""
    resolved: str = ""
    seconds: float = 0.0


def python_for(location: str, root: Path) -> Path:
    """The interpreter of a built environment."""
    return Path(root) / location / "bin" / "python"


def is_ready(location: str, root: Path) -> bool:
    return bool(location) and (Path(root) / location / READY_MARKER).is_file()


def find_interpreter(requested: str | None, search: Sequence[str] = ()) -> tuple[str, str]:
    """``(path, note)``: an interpreter of the requested major.minor, else the platform's, with a note."""
    platform_python = sys.executable
    platform_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if requested is None or requested == platform_version:
        return platform_python, ""
    patterns = list(search) or [
        f"{sys.base_prefix}/bin/python{requested}",
        f"/usr/bin/python{requested}",
        f"/usr/local/bin/python{requested}",
        os.path.expanduser(f"{os.environ.get('PYENV_ROOT', '~/.pyenv')}/versions/{requested}*/bin/python{requested}"),
    ]
    for pattern in patterns:
        for candidate in sorted(glob.glob(pattern.replace("{version}", requested)), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate, ""
    return platform_python, f"Python {requested} is not installed here; built with Python {platform_version}"


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MESSAGE_LIMIT else "…" + text[-MESSAGE_LIMIT:]


def _run(argv: Sequence[str], *, options: BuildOptions, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(options.root / ".uv-cache"),
        "UV_NO_PROGRESS": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=options.timeout, env=env, check=False
    )


def _index_arguments(options: BuildOptions) -> list[str]:
    argv = ["--no-build", "--quiet"]
    if options.index_url:
        argv += ["--index-url", options.index_url]
    for url in options.extra_index_urls:
        argv += ["--extra-index-url", url]
    for url in options.find_links:
        argv += ["--find-links", url]
    return argv


def build(spec: EnvironmentSpec, options: BuildOptions) -> BuildResult:
    """Resolve and install ``spec`` (or find it already built). Never raises for installer failures."""
    started = time.monotonic()
    root = Path(options.root)
    root.mkdir(parents=True, exist_ok=True)
    interpreter, note = find_interpreter(spec.python, options.python_search)
    try:
        version = subprocess.run(
            [interpreter, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        compiled = _run(
            [
                options.uv,
                "pip",
                "compile",
                "-",
                "--python",
                interpreter,
                "--no-header",
                "--no-annotate",
                *_index_arguments(options),
            ],
            options=options,
            stdin=spec.requirements_text(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return BuildResult(False, f"the installer could not run: {exc}", seconds=time.monotonic() - started)
    if compiled.returncode != 0:
        return BuildResult(False, _tail(compiled.stderr or compiled.stdout), seconds=time.monotonic() - started)
    resolved = "\n".join(line for line in compiled.stdout.splitlines() if line and not line.startswith("#")) + "\n"
    location = hashlib.sha256(f"python {version}\n{resolved}".encode()).hexdigest()[:32]
    target = root / location
    with open(root / f".{location}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_ready(location, root):
            problem = _install(interpreter, resolved, target, options)
            if problem:
                return BuildResult(False, problem, location, version, resolved, time.monotonic() - started)
    message = "; ".join(filter(None, [note, f"Python {version}, {len(resolved.splitlines())} packages"]))
    return BuildResult(True, message, location, version, resolved, time.monotonic() - started)


def _install(interpreter: str, resolved: str, target: Path, options: BuildOptions) -> str:
    """Install into a temporary folder renamed into place; the installer's message on failure, else ''."""
    staging = target.with_name(target.name + f".building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    try:
        created = _run([options.uv, "venv", str(staging), "--python", interpreter, "--quiet"], options=options)
        if created.returncode != 0:
            return _tail(created.stderr or created.stdout)
        (staging / "requirements.lock").write_text(resolved, encoding="utf-8")
        installed = _run(
            [
                options.uv,
                "pip",
                "install",
                "--python",
                str(staging / "bin" / "python"),
                "--no-deps",
                "-r",
                str(staging / "requirements.lock"),
                *_index_arguments(options),
            ],
            options=options,
        )
        if installed.returncode != 0:
            return _tail(installed.stderr or installed.stdout)
        (staging / READY_MARKER).write_text(json.dumps({"resolved": resolved}), encoding="utf-8")
        os.rename(staging, target)
        return ""
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the installer could not run: {exc}"
    finally:
        shutil.rmtree(staging, ignore_errors=True)

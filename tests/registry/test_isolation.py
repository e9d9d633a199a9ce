"""A pickle that runs code when it is loaded: uploaded, load-checked and predicted, its code runs only inside the
runtime worker, which cannot read the secrets or the database, write outside its scratch folder or reach the
network (bubblewrap), and always runs without secrets in its environment and under rlimits."""

from __future__ import annotations

import json
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

from apps.registry.descriptors import parse_descriptor
from apps.registry.models import VersionStatus
from apps.registry.runtimes import runtime_for, sandbox
from apps.registry.services import ArtifactInput, model_version_register
from tests.conftest import pickle_approver
from tests.predicting import predict_body
from tests.services import require

from .conftest import FEATURES, descriptor, kill_worker, train

pytestmark = pytest.mark.django_db

PROBE = r"""
import json, os, resource, socket
report = {"pid": os.getpid(), "cwd": os.getcwd(), "environ": dict(os.environ),
          "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0],
          "rlimit_cpu": resource.getrlimit(resource.RLIMIT_CPU)[0]}
def attempt(action):
    try:
        action()
        return "ok"
    except Exception as exc:
        return type(exc).__name__
def read(path):
    with open(path, "rb") as handle:
        handle.read(16)
def write(path):
    with open(path, "w") as handle:
        handle.write("written by a model")
def connect():
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
report["read_secret_key"] = attempt(lambda: read(SECRET_FILE))
report["read_database"] = attempt(lambda: read(DATABASE_FILE))
report["read_settings"] = attempt(lambda: read(SETTINGS_FILE))
report["read_server_environ"] = attempt(lambda: read(f"/proc/{SERVER_PID}/environ"))
report["write_outside"] = attempt(lambda: write(OUTSIDE_FILE))
report["write_tmp"] = attempt(lambda: write(TMP_FILE))
report["write_scratch"] = attempt(lambda: write("scratch-ok.txt"))
report["network"] = attempt(connect)
os.environ["STAMM_MODEL_CODE_RAN"] = "1"
with open("load-report.json", "w") as handle:
    json.dump(report, handle)
"""


class LoadsWithCode:
    """Unpickles into ``model`` after running ``code`` (what a hostile or careless pickle can do)."""

    def __init__(self, code: str, model_bytes: bytes) -> None:
        self.code, self.model_bytes = code, model_bytes

    def __reduce__(self):
        expression = "__import__('builtins').exec(CODE) or __import__('pickle').loads(MODEL)"
        return eval, (expression, {"CODE": self.code, "MODEL": self.model_bytes})


@pytest.fixture
def secrets_on_disk(tmp_path, monkeypatch, settings):
    """A secret-key file and a database file like the embedded default's, and secrets in the environment."""
    var = tmp_path / "var"
    var.mkdir()
    (var / "secret_key").write_text("s3cr3t-" * 8)
    os.chmod(var / "secret_key", 0o600)
    (var / "stamm.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    monkeypatch.setenv("DJANGO_SECRET_KEY", "s3cr3t-" * 8)
    monkeypatch.setenv("DATABASE_URL", "postgresql://stamm:hunter2@db.internal/stamm")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    runtime_for("sklearn-pickle").close()  # fresh workers: they start after the secrets are set
    yield var, listener
    listener.close()
    runtime_for("sklearn-pickle").close()


def _register_hostile(project, user, training_frame, tmp_path, var, listener):
    fitted = train("rf", training_frame)
    code = (
        PROBE.replace("SECRET_FILE", repr(str(var / "secret_key")))
        .replace("DATABASE_FILE", repr(str(var / "stamm.sqlite3")))
        .replace("SETTINGS_FILE", repr(str(Path(__file__).resolve().parents[2] / "stamm_site/settings/local.py")))
        .replace("SERVER_PID", str(os.getpid()))
        .replace("OUTSIDE_FILE", repr(str(tmp_path / "outside.txt")))
        .replace("PORT", str(listener.getsockname()[1]))
        .replace("TMP_FILE", repr(_tmp_file()))
    )
    data = pickle.dumps(LoadsWithCode(code, pickle.dumps(fitted["model"])))
    name = "0042_[python]_hostile.pkl"
    version = model_version_register(
        project=project,
        descriptor=parse_descriptor(descriptor("0042_[python]_hostile", model_file=name, frame=training_frame)),
        files={"model": ArtifactInput(data, name)},
        user=user,
        pickle_approved_by=pickle_approver(),  # approving runs it: in the sandboxed worker, nowhere else
    )
    return version, fitted


def _tmp_file() -> str:
    return f"/tmp/stamm-model-was-here-{os.getpid()}"


def _report() -> dict:
    worker = runtime_for("sklearn-pickle").worker()
    return json.loads((worker.scratch / "load-report.json").read_text())


def test_pickle_code_runs_only_in_the_sandboxed_worker(
    project, role_users, training_frame, test_frame, tmp_path, secrets_on_disk, settings
):
    require(sandbox.bwrap_works(), "bubblewrap (bwrap)")
    settings.REGISTRY_RUNTIME_SANDBOX = "bwrap"
    var, listener = secrets_on_disk
    version, fitted = _register_hostile(project, role_users["modeler"], training_frame, tmp_path, var, listener)
    assert version.status == VersionStatus.ONLINE, version.status_description
    X = test_frame[FEATURES].to_numpy(dtype=float)
    result = predict_body(version, {"inputs": {name: test_frame[name].tolist() for name in FEATURES}})
    np.testing.assert_allclose(result.predictions, fitted["model"].predict(X), rtol=1e-12)

    report = _report()
    # it ran in the worker, never here
    assert "STAMM_MODEL_CODE_RAN" not in os.environ
    assert report["pid"] != os.getpid()
    # no secrets reach it: not in its environment, not on its filesystem, not through /proc
    assert "DJANGO_SECRET_KEY" not in report["environ"] and "DATABASE_URL" not in report["environ"]
    assert not any("s3cr3t" in value or "hunter2" in value for value in report["environ"].values())
    assert report["read_secret_key"] == "FileNotFoundError"
    assert report["read_database"] == "FileNotFoundError"
    assert report["read_settings"] == "FileNotFoundError"
    assert report["read_server_environ"] == "FileNotFoundError"
    # it can write only in its scratch folder
    assert report["write_outside"] in ("FileNotFoundError", "OSError", "PermissionError")
    assert not (tmp_path / "outside.txt").exists()
    assert report["write_tmp"] in ("FileNotFoundError", "OSError", "PermissionError")
    assert not Path(_tmp_file()).exists()
    assert report["write_scratch"] == "ok" and report["cwd"] == str(runtime_for("sklearn-pickle").worker().scratch)
    # no network
    assert report["network"] != "ok"
    # limited
    assert report["rlimit_as"] == settings.REGISTRY_RUNTIME_MEMORY_MB * 1024 * 1024
    assert report["rlimit_cpu"] == settings.REGISTRY_RUNTIME_CPU_SECONDS


def test_without_bubblewrap_the_worker_still_has_no_secrets_and_is_limited(
    project, role_users, training_frame, tmp_path, secrets_on_disk, settings
):
    settings.REGISTRY_RUNTIME_SANDBOX = "process"
    var, listener = secrets_on_disk
    version, _ = _register_hostile(project, role_users["modeler"], training_frame, tmp_path, var, listener)
    assert version.status == VersionStatus.ONLINE, version.status_description
    report = _report()
    assert "STAMM_MODEL_CODE_RAN" not in os.environ and report["pid"] != os.getpid()
    assert not any("s3cr3t" in value or "hunter2" in value for value in report["environ"].values())
    assert report["environ"]["HOME"] == report["cwd"] == str(runtime_for("sklearn-pickle").worker().scratch)
    assert report["rlimit_as"] == settings.REGISTRY_RUNTIME_MEMORY_MB * 1024 * 1024
    # documented: without bubblewrap the same user's files are readable and writable (docs/security.md)
    assert report["read_secret_key"] == "ok"
    Path(_tmp_file()).unlink(missing_ok=True)


def test_a_worker_killed_mid_service_is_restarted_and_a_hung_one_is_stopped(register, test_frame, settings):
    version, fitted = register("rf")
    runtime = runtime_for(version.flavor)
    worker = runtime.worker()
    first_pid = worker.worker_pid
    kill_worker(first_pid)
    X = test_frame[FEATURES].to_numpy(dtype=float)[:5]
    body = {"inputs": {name: test_frame[name].tolist()[:5] for name in FEATURES}}
    np.testing.assert_allclose(predict_body(version, body).predictions, fitted["model"].predict(X), rtol=1e-12)
    assert worker.worker_pid not in (None, first_pid)


def test_health_reports_the_sandbox_and_fails_when_bubblewrap_is_required_but_absent(
    api_client_for, settings, monkeypatch
):
    body = api_client_for("operator").get("/api/v1/health/").json()
    assert body["checks"]["model_runtimes"]["sandbox"] in ("bwrap", "process")
    settings.REGISTRY_RUNTIME_SANDBOX = "bwrap"
    monkeypatch.setattr(sandbox, "bwrap_works", lambda: False)
    part = api_client_for("operator").get("/api/v1/health/").json()["checks"]["model_runtimes"]
    assert part["ok"] is False and "bubblewrap" in part["detail"]


def test_a_worker_started_by_a_short_lived_thread_outlives_it(register, test_frame):
    """runserver serves each connection in its own thread: a worker must not die with the thread that started it."""
    import threading
    import time

    version, fitted = register("rf")
    runtime = runtime_for(version.flavor)
    runtime.close()
    started = threading.Thread(target=lambda: runtime.worker().ping())
    started.start()
    started.join(timeout=120)
    pid = runtime.worker().worker_pid
    time.sleep(1.0)
    body = {"inputs": {name: test_frame[name].tolist()[:3] for name in FEATURES}}
    X = test_frame[FEATURES].to_numpy(dtype=float)[:3]
    np.testing.assert_allclose(predict_body(version, body).predictions, fitted["model"].predict(X), rtol=1e-12)
    assert runtime.worker().worker_pid == pid  # the same warm worker, not a restart

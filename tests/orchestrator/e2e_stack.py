"""The processes of one deployment of the application for the end-to-end tests (``test_worker_e2e_*``):
gunicorn, Celery workers with embedded beat, the database they share, a registry proxy that can delay or
fail requests, and a redis-server of the tests' own.

In its own module so the test files can run on different xdist workers.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import requests

from tests.embedded_db import REPO, WORKER_ENVIRONMENT, manage, migrated_database
from tests.services import POSTGRES_URL, _port_open, redis_test_url

from .helpers import FEATURES, MODEL_ID, PROJECT, PROJECT_INFO, T0, TARGET, pickled_rf_file
from .registry_proxy import RegistryProxy

BROKER = os.environ.get("STAMM_TEST_E2E_REDIS_URL", redis_test_url(1))
LEASE_SECONDS = 5
#: Once Redis is back after a restart, every snapshot must be predicted within this (a task lost with the
#: broker is redone when its lease expires and beat's sweep queues it again; on a quiet 2-core VM it took
#: 3-4 s, the rest is room for a busy machine).
RECOVERY_SECONDS = 30
STEP_NS = 20 * 10**9
PROJECT_ID = PROJECT_INFO["project_ID"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Stack:
    """The processes of one deployment of the application, sharing one database and one broker."""

    def __init__(self, tmp: Path, database: str, broker: str = BROKER, lease_seconds: int = LEASE_SECONDS) -> None:
        self.tmp = tmp
        self.database = database
        self.broker = broker
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proxy = RegistryProxy(self.url)
        self.pg_name = None
        self.redis: PrivateRedis | None = None  # the stack's own redis-server, when it has one
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "stamm_site.settings.local",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "STAMM_VAR_DIR": str(tmp / "var"),
            **WORKER_ENVIRONMENT,
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": "",
            "STAMM_REGISTRY_URL": self.proxy.url,
            "STAMM_PIPELINE_LEASE_SECONDS": str(lease_seconds),
            "STAMM_PIPELINE_DETECT_INTERVAL": "2",
            "STAMM_PIPELINE_RETRY_BACKOFF_MS": "50",
            "DJANGO_LOG_LEVEL": "WARNING",
            # The seeded model is a pickle, approved by an administrator in e2e_seed.
            "REGISTRY_ALLOW_PICKLE": "true",
        }
        self.env.pop("DATABASE_URL", None)
        if database == "postgres":
            import psycopg

            self.pg_name = f"stamm_e2e_{os.getpid()}_{secrets.token_hex(3)}"
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            self.env["DATABASE_URL"] = POSTGRES_URL.rsplit("/", 1)[0] + "/" + self.pg_name
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    # -- processes ---------------------------------------------------------------------------------
    def boot(self) -> None:
        """Migrate (SQLite: a copy of the run's migrated file), seed (roles, an admin token, the approved RF,
        a deployment), start web and one worker."""
        if self.database == "postgres":
            self.manage("migrate", "--noinput", "-v", "0")
        else:
            migrated_database(self.tmp / "var")
        self.env["STAMM_E2E_MODEL"] = str(pickled_rf_file(self.tmp / "rf.pkl"))
        seed = json.loads(self.manage("shell", "-c", "import tests.orchestrator.e2e_seed").strip().splitlines()[-1])
        self.token, self.deployment = seed["token"], seed["deployment"]
        self.start_web()
        self.warm_up()
        self.start_worker()

    def warm_up(self) -> None:
        """Have the web processes load the model before the tests' first run.

        The first predict of a web process starts its sandboxed runtime and unpickles the forest; on a busy
        2-core machine that can outlast the stacks' 5-s lease, and the tests' first run would then be
        redone as if its worker had died. The calls go through the pipeline's own registry client.
        """
        from concurrent.futures import ThreadPoolExecutor

        from apps.orchestrator.registry_client import RegistryClient

        client = RegistryClient(base_url=self.url, token=self.token, timeout=180)
        inputs = {name: [1.0] for name in FEATURES}

        def predict(_: int) -> None:
            client.predict(project_id=PROJECT_ID, model_id=MODEL_ID, number=1, inputs=inputs, rows=1, outputs=[TARGET])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(predict, range(8)))

    def manage(self, *args: str) -> str:
        return manage(self.env, *args)

    def start(self, name: str, argv: list[str]) -> None:
        log = self.tmp / f"{name}.log"
        self.logs[name] = log
        self.processes[name] = subprocess.Popen(
            argv, cwd=REPO, env=self.env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_web(self) -> None:
        """gunicorn with one process of eight threads: what the tests need of the web tier is its API, and each
        more process is one more Django and one more model runtime to start on a shared 2-core machine."""
        self.start(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "stamm_site.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                "1",
                "--threads",
                "8",
                "--timeout",
                "120",
            ],
        )
        wait_for(lambda: _port_open("127.0.0.1", self.port), 60, "the web server")

    def start_worker(self, name: str = "worker", *, beat: bool = True) -> None:
        """A Celery worker; ``beat`` embeds the scheduler (exactly one worker of a stack does)."""
        self.start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "stamm_site",
                "worker",
                *(["--beat", "-s", str(self.tmp / f"beat-{name}")] if beat else []),
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "--hostname",
                f"e2e-{name}-{os.getpid()}@%h",
            ],
        )

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def close(self) -> None:
        """Stop everything at once: a warm shutdown would wait for the workers' prefetched tasks, and the
        tests are over (shutdown is tested where it matters)."""
        for name in list(self.processes):
            self.kill(name, signal.SIGKILL)
        self.proxy.close()
        if self.pg_name:
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {n}\n{p.read_text(errors='replace')[-3000:]}" for n, p in self.logs.items() if p.exists()
        )

    # -- data ----------------------------------------------------------------------------------------
    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.database == "postgres":
            import psycopg

            with psycopg.connect(self.env["DATABASE_URL"]) as conn:
                return conn.execute(sql, params).fetchall()
        with sqlite3.connect(self.tmp / "var" / "stamm.sqlite3", timeout=30) as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()

    def predictions(self, batch_id: str) -> list[tuple[int, float]]:
        return self.query(
            "SELECT p.time, p.value FROM tsdb_predictionpoint p JOIN tsdb_series s ON s.id = p.series_id"
            " WHERE s.batch_id = %s AND s.model_id = %s ORDER BY p.time",
            (batch_id, MODEL_ID.lower()),
        )

    def runs(self, batch_id: str) -> list[tuple]:
        return self.query(
            "SELECT id, status, snapshots, predictions, skipped, error, registry_attempts, trigger"
            " FROM orchestrator_pipelinerun WHERE batch_id = %s ORDER BY id",
            (batch_id,),
        )

    def ingest(self, frame, *, batch_id: str, rows: range, variables: list[str] = FEATURES) -> None:
        times = [T0.timestamp() * 1e9 + i * STEP_NS for i in rows]
        body = {
            "collection": "raw",
            "project_name": PROJECT,
            "device_id": "R1",
            "batch_id": batch_id,
            "precision": "ns",
            "times": [int(t) for t in times],
            "columns": [
                {"source": "sensor", "observed_property": v, "values": [float(frame[v].iloc[i]) for i in rows]}
                for v in variables
            ],
        }
        response = requests.post(
            f"{self.url}/api/v1/tsdb/points", json=body, timeout=60, headers={"Authorization": f"Token {self.token}"}
        )
        assert response.status_code == 201, response.text

    def wait_scored(self, batch_id: str, count: int, timeout: float = 90) -> list[tuple[int, float]]:
        try:
            wait_for(lambda: len(self.predictions(batch_id)) >= count, timeout, f"{count} predictions of {batch_id}")
        except AssertionError:
            raise AssertionError(
                f"{len(self.predictions(batch_id))} of {count} predictions\n{self.runs(batch_id)}\n{self.log_tail()}"
            ) from None
        # Quiet period: nothing more arrives (no duplicates can: the primary key is (series, time)).
        time.sleep(1.0)
        return self.predictions(batch_id)


def assert_exactly_once(stack: Stack, batch_id: str, rows: list[int], model, frame, timeout: float = 90) -> None:
    stored = stack.wait_scored(batch_id, len(rows), timeout=timeout)
    times = [t for t, _ in stored]
    expected_times = [int(T0.timestamp() * 1e9) + i * STEP_NS for i in sorted(rows)]
    assert times == expected_times, "every snapshot has exactly one prediction, at its own time"
    expected = model.predict(frame[FEATURES].iloc[sorted(rows)].to_numpy(dtype=float))
    np.testing.assert_allclose([v for _, v in stored], expected, rtol=1e-9)


class PrivateRedis:
    """A redis-server of this test's own, on its own port, which the test may stop and start at will.

    The shared Redis other tests (and other people's runs) use is never touched. The port is
    ``STAMM_TEST_PRIVATE_REDIS_PORT`` when set, else a free one.
    """

    def __init__(self, tmp: Path) -> None:
        self.port = int(os.environ.get("STAMM_TEST_PRIVATE_REDIS_PORT") or free_port())
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.tmp = tmp
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: _port_open("127.0.0.1", self.port), 30, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def restart(self, down_for: float) -> None:
        """Stop the server (every client connection drops), wait ``down_for`` seconds, start it again."""
        self.stop()
        wait_for(lambda: not _port_open("127.0.0.1", self.port), 20, "redis to stop")
        time.sleep(down_for)
        self.start()



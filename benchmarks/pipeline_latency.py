"""Pipeline benchmark: ingest-commit → stored-prediction latency under a live replay, and backfill throughput.

    .venv/bin/python benchmarks/pipeline_latency.py                          # 50 snapshots/s for 60 s, 100k backfill
    .venv/bin/python benchmarks/pipeline_latency.py --duration 20 --backfill 20000   # a quicker run

Stack (all throwaway): a PostgreSQL database created and dropped (``--pg-admin-url``; ``--database sqlite``
uses the embedded SQLite file instead), gunicorn serving the registry and the ingest API, one Celery
worker (prefork, 2 processes) with embedded beat on Redis (``--broker``), a random forest
(``--trees``) trained on IndPenSim batch 92, registered online with alias ``production`` and deployed.

Live phase: one snapshot (six features, one POST to ``/api/v1/tsdb/points``) every 1/rate s into one
batch. For each snapshot, latency = the ``finished_at`` of the run that stored its prediction (set in the
transaction that writes it) minus the moment the ingest request was sent: the commit happens between
sending and the response, so ``p50/p95/max_ms`` are upper bounds and ``*_after_response_ms`` lower
bounds. Also: snapshots ingested vs predictions stored.

Backfill phase: the worker is stopped, N snapshots are written straight to the store (no trigger), then
``pipeline_backfill`` rescores them in-process (REST calls to gunicorn, chunks of STAMM_PIPELINE_CHUNK).

Targets: p95 ≤ 250 ms; ingested == stored; backfill ≥ 5,000 predictions/s. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FEATURES = ["temperature", "sugar_feed_rate", "aeration_rate", "dissolved_oxygen_concentration", "pH", "vessel_volume"]
T0_NS = 1_772_323_200 * 10**9  # 2026-03-01T00:00:00Z
STEP_NS = 20 * 10**9

SEED = """
import io, json, pickle, secrets
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from django.contrib.auth import get_user_model
from apps.accounts.services import api_token_create, roles_ensure
from apps.orchestrator.services import deployment_create, service_account_ensure
from apps.registry.descriptors import parse_descriptor
from apps.registry.project_info import parse_project_info
from apps.registry.services import ArtifactInput, alias_move, model_version_register, project_upsert
from tests.orchestrator.helpers import FEATURES, INDPENSIM, PROJECT_INFO, TARGET, descriptor_document

roles_ensure()
admin = get_user_model().objects.create_superuser("bench-admin", password=secrets.token_urlsafe(16))
_, key = api_token_create(user=admin, name="benchmark")
service_account_ensure()
frame = pd.read_csv(INDPENSIM / "batch_92.csv")
model = RandomForestRegressor(n_estimators=TREES, max_depth=10, random_state=0, n_jobs=1).fit(
    frame[FEATURES].to_numpy(dtype=float), frame[TARGET].to_numpy(dtype=float))
blob = io.BytesIO(); pickle.dump(model, blob)
project = project_upsert(info=parse_project_info(PROJECT_INFO))
version = model_version_register(project=project, descriptor=parse_descriptor(descriptor_document()),
    files={"model": ArtifactInput(blob.getvalue(), "0001_[python]_penicillin_RF.pkl")}, user=admin, status="online",
    pickle_approved_by=admin)
alias_move(soft_sensor=version.soft_sensor, name="production", version=version, user=admin, reason="benchmark")
deployment = deployment_create(user=admin, name="bench-rf", soft_sensor=version.soft_sensor, alias="production",
                               max_input_age_seconds=600)
print(json.dumps({"token": key, "deployment": deployment.pk}))
"""

BACKFILL = """
import json, time
import numpy as np
import pandas as pd
from apps.orchestrator.selectors import deployment_get
from apps.orchestrator.services import pipeline_backfill
from apps.tsdb.backends import get_backend
from apps.tsdb.types import Collection, PointBatch, SeriesKey, from_ns
from tests.orchestrator.helpers import FEATURES, INDPENSIM

frame = pd.read_csv(INDPENSIM / "batch_94.csv")
n = N
rows = np.arange(n) % len(frame)
times = T0 + np.arange(n, dtype=np.int64) * STEP
backend = get_backend()
started = time.perf_counter()
for lo in range(0, n, 20000):
    hi = min(n, lo + 20000)
    k = hi - lo
    backend.write(PointBatch(
        collection=Collection.RAW,
        series=[SeriesKey("penicillin", "R9", "batch_backfill", "sensor", v) for v in FEATURES],
        series_index=np.repeat(np.arange(len(FEATURES), dtype=np.int32), k),
        times_ns=np.tile(times[lo:hi], len(FEATURES)),
        values=np.concatenate([frame[v].to_numpy(dtype=float)[rows[lo:hi]] for v in FEATURES]),
    ))
load_s = time.perf_counter() - started
started = time.perf_counter()
runs = pipeline_backfill(deployment=deployment_get(deployment_id="bench-rf"), start=from_ns(int(times[0])),
                         end=from_ns(int(times[-1])))
elapsed = time.perf_counter() - started
print(json.dumps({"snapshots": sum(r.snapshots for r in runs), "predictions": sum(r.predictions for r in runs),
                  "seconds": elapsed, "load_seconds": load_s,
                  "infer_ms": sum(r.infer_ms or 0 for r in runs), "store_ms": sum(r.store_ms or 0 for r in runs),
                  "detect_ms": sum(r.detect_ms or 0 for r in runs)}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on {port} after {timeout} s")


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.pg_name = ""
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "stamm_site.settings.local",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "STAMM_VAR_DIR": str(tmp / "var"),
            "CELERY_BROKER_URL": args.broker,
            "CELERY_RESULT_BACKEND": "",
            "STAMM_REGISTRY_URL": self.url,
            "DJANGO_LOG_LEVEL": "WARNING",
            "REGISTRY_ALLOW_PICKLE": "true",  # the seeded RF is a pickle, approved by the seed's admin
            "PYTHONPATH": str(REPO),
        }
        self.env.pop("DATABASE_URL", None)
        if args.database == "postgres":
            import psycopg

            self.pg_name = f"stamm_bench_{os.getpid()}"
            with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            self.env["DATABASE_URL"] = args.pg_admin_url.rsplit("/", 1)[0] + "/" + self.pg_name

    def manage(self, *argv: str) -> str:
        result = subprocess.run([PYTHON, "manage.py", *argv], cwd=REPO, env=self.env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(result.stderr[-4000:])
        return result.stdout

    def shell(self, code: str) -> dict[str, Any]:
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])

    def start(self, name: str, argv: list[str]) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_web(self) -> None:
        """gunicorn with 2 workers × 4 threads serving the registry and the APIs, once it listens."""
        argv = [
            PYTHON,
            "-m",
            "gunicorn",
            "stamm_site.wsgi",
            "-b",
            f"127.0.0.1:{self.port}",
            "-w",
            "2",
            "--threads",
            "4",
        ]
        self.start("web", argv)
        wait_port(self.port)

    def start_worker(self, *, concurrency: int) -> None:
        """One Celery worker (prefork) with embedded beat, without gossip and mingle."""
        argv = [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "stamm_site",
            "worker",
            "--beat",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "-s",
            str(self.tmp / "beat"),
            "--without-mingle",
            "--without-gossip",
        ]
        self.start("worker", argv)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        if self.pg_name and getattr(self.args, "keep", False):
            print(f"database kept: {self.env['DATABASE_URL']}", file=sys.stderr)
        elif self.pg_name:
            import psycopg

            with psycopg.connect(self.args.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.pg_name:
            import psycopg

            with psycopg.connect(self.env["DATABASE_URL"]) as conn:
                return conn.execute(sql, params).fetchall()
        import sqlite3

        with sqlite3.connect(self.tmp / "var" / "stamm.sqlite3", timeout=30) as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()


def replay(bench: Bench, token: str, rate: float, duration: float) -> dict[int, tuple[float, float]]:
    """POST one snapshot every 1/rate s; returns {snapshot time ns: (request sent, response received)}."""
    import pandas as pd

    frame = pd.read_csv(REPO / ".." / "shared" / "data" / "indpensim" / "batch_93.csv")
    values = frame[FEATURES].to_numpy(dtype=float)
    session = requests.Session()
    headers = {"Authorization": f"Token {token}"}
    sent: dict[int, float] = {}
    total = int(rate * duration)
    start = time.time()
    for i in range(total):
        due = start + i / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        t_ns = T0_NS + i * STEP_NS
        row = values[i % len(values)]
        body = {
            "collection": "raw",
            "project_name": "penicillin",
            "device_id": "R1",
            "batch_id": "batch_live",
            "precision": "ns",
            "times": [t_ns],
            "columns": [
                {"source": "sensor", "observed_property": f, "values": [float(v)]}
                for f, v in zip(FEATURES, row, strict=True)
            ],
        }
        sent_at = time.time()
        response = session.post(f"{bench.url}/api/v1/tsdb/points", json=body, headers=headers, timeout=30)
        if response.status_code != 201:
            raise SystemExit(f"ingest refused: {response.status_code} {response.text[:500]}")
        sent[t_ns] = (sent_at, time.time())
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="snapshots per second (default 50)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of live replay (default 60)")
    parser.add_argument("--backfill", type=int, default=100_000, help="snapshots to backfill (0: skip)")
    parser.add_argument("--trees", type=int, default=100, help="trees of the random forest (default 100)")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/11")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs) and the PostgreSQL database"
    )
    args = parser.parse_args()

    import redis

    if args.broker.startswith("redis://"):
        redis.Redis.from_url(args.broker).flushdb()
    holder = tempfile.TemporaryDirectory(prefix="stamm-pipeline-bench-")
    if args.keep:
        holder.cleanup = lambda: None  # type: ignore[method-assign]
        holder._finalizer.detach()
    with holder as tmp:
        print(f"work directory: {tmp}", file=sys.stderr)
        bench = Bench(args, Path(tmp))
        try:
            bench.manage("migrate", "--noinput", "-v", "0")
            seed = bench.shell(SEED.replace("TREES", str(args.trees)))
            bench.start_web()
            bench.start_worker(concurrency=2)
            # Warm up: the first requests of each gunicorn worker import the URL conf and every API module.
            for _ in range(6):
                requests.get(
                    f"{bench.url}/api/v1/me/", headers={"Authorization": f"Token {seed['token']}"}, timeout=180
                )
            time.sleep(4)  # worker boot
            print(
                f"live: {args.rate:g} snapshots/s for {args.duration:g} s ({args.database}, {args.broker})",
                file=sys.stderr,
            )
            sent = replay(bench, seed["token"], args.rate, args.duration)
            replay_end = time.time()
            count_sql = (
                "SELECT COUNT(*) FROM tsdb_predictionpoint p JOIN tsdb_series s ON s.id = p.series_id"
                " WHERE s.batch_id = %s"
            )
            deadline = time.time() + 120
            while time.time() < deadline and bench.query(count_sql, ("batch_live",))[0][0] < len(sent):
                time.sleep(0.5)
            time.sleep(2)
            stored = bench.query(count_sql, ("batch_live",))[0][0]
            runs = bench.query(
                "SELECT first_snapshot_ns, last_snapshot_ns, finished_at, status, snapshots"
                " FROM orchestrator_pipelinerun WHERE batch_id = %s AND status = %s AND predictions > 0"
                " ORDER BY first_snapshot_ns",
                ("batch_live", "succeeded"),
            )
            statuses = dict(
                bench.query(
                    "SELECT status, COUNT(*) FROM orchestrator_pipelinerun WHERE batch_id = %s GROUP BY status",
                    ("batch_live",),
                )
            )
            latencies, after_ack = [], []
            for first, last, finished, _, _ in runs:
                if isinstance(finished, str):  # SQLite
                    from datetime import datetime

                    finished = datetime.fromisoformat(finished)
                done = finished.timestamp()
                for t_ns in range(int(first), int(last) + 1, STEP_NS):
                    if t_ns in sent:
                        sent_at, acked_at = sent.pop(t_ns)
                        latencies.append((done - sent_at) * 1000)
                        after_ack.append((done - acked_at) * 1000)
            lat = np.asarray(latencies)
            ack = np.asarray(after_ack)
            live = {
                "rate": args.rate,
                "duration_s": args.duration,
                "ingested": int(args.rate * args.duration),
                "stored": int(stored),
                "equal": int(stored) == int(args.rate * args.duration),
                "measured": int(lat.size),
                "runs": statuses,
                "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
                "p95_ms": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
                "max_ms": round(float(lat.max()), 1) if lat.size else None,
                # Lower bound: from the ingest response (the commit happened before it).
                "p50_after_response_ms": round(float(np.percentile(ack, 50)), 1) if ack.size else None,
                "p95_after_response_ms": round(float(np.percentile(ack, 95)), 1) if ack.size else None,
                "mean_snapshots_per_run": round(float(np.mean([r[4] for r in runs])), 2) if runs else None,
                "drain_s": round(time.time() - replay_end, 1),
            }
            print(f"live: {live}", file=sys.stderr)
            result: dict[str, Any] = {
                "benchmark": "pipeline_latency",
                "database": args.database,
                "trees": args.trees,
                "live": live,
                "targets": {"p95_ms": 250, "backfill_predictions_per_s": 5000},
            }
            if args.backfill:
                bench.stop("worker")
                code = (
                    BACKFILL.replace("N\n", f"{args.backfill}\n")
                    .replace("T0 +", f"{T0_NS} +")
                    .replace("* STEP", f"* {STEP_NS}")
                )
                fill = bench.shell(code)
                fill["predictions_per_s"] = round(fill["predictions"] / fill["seconds"], 0)
                print(f"backfill: {fill}", file=sys.stderr)
                result["backfill"] = fill
            result["pass"] = bool(
                live["equal"]
                and live["p95_ms"] is not None
                and live["p95_ms"] <= 250
                and (not args.backfill or result["backfill"]["predictions_per_s"] >= 5000)
            )
        finally:
            bench.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

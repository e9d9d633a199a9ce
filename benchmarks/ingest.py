"""Ingest benchmark: one line-protocol payload, three receivers, over HTTP; plus web-process memory.

    .venv/bin/python benchmarks/ingest.py                 # 1M points, 10k lines per request
    .venv/bin/python benchmarks/ingest.py --points 100000 # a quicker run

Receivers, in one run, each fed the same payload in the same requests, one request at a time:
  (a) this app (gunicorn, production settings) with the SQL backend on PostgreSQL, via /api/v2/write;
  (b) this app with the InfluxDB backend, via /api/v2/write;
  (c) InfluxDB's own /write.
After one warm-up request each (a batch of its own, not counted), the receivers take turns, round
after round (``--rounds``, default 3: c, a, b, c, a, b, ...), each round with its timestamps moved past
the previous round's, so every round is fresh data and a slow spell of this shared machine hits all
three alike. It prints points/s per round and the median of each, and the ratios a/c and b/c of the
medians (target a/c >= 0.5). Then one ~100 MB request
(``--big-mb``) goes to a fresh web process of each app; the peak RSS of that worker (VmHWM) is reported
next to its baseline, to show that memory does not grow with the body.

Everything is throwaway: a PostgreSQL database created and dropped (``--pg-admin-url``), an influxd
started by scripts/influxdb-start.sh in a temporary directory on its own port and stopped, gunicorn
processes on loopback ports, stopped. Needs PostgreSQL; without influxd, (b) and (c) are skipped.
The last line printed is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
import requests

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
GUNICORN = REPO / ".venv" / "bin" / "gunicorn"
PROPS = [f"var_{i:02d}" for i in range(20)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def payload_requests(points: int, lines_per_request: int, start_ns: int, batches: int = 5) -> list[bytes]:
    """STAMM raw points (20 variables x ``batches`` batches, 1 s apart) as request bodies of N lines."""
    series = [
        f"device_obs,batch_id=bench_{b},device_id=R1,observed_property={p},project_name=benchmark,source=sensor"
        for b in range(batches)
        for p in PROPS
    ]
    bodies: list[bytes] = []
    chunk: list[str] = []
    per_series_step = 1_000_000_000
    for i in range(points):
        s = i % len(series)
        t = start_ns + (i // len(series)) * per_series_step
        chunk.append(f"{series[s]} value={(i % 1000) * 0.37 + 290.0!r} {t}")
        if len(chunk) == lines_per_request:
            bodies.append(("\n".join(chunk) + "\n").encode())
            chunk = []
    if chunk:
        bodies.append(("\n".join(chunk) + "\n").encode())
    return bodies


def send(url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int = 1) -> float:
    """Seconds to POST every body (``concurrency`` clients, each on one keep-alive connection); all 204."""
    errors: list[str] = []

    def client(mine: list[bytes]) -> None:
        session = requests.Session()
        for body in mine:
            response = session.post(url, data=body, headers=headers, timeout=600)
            if response.status_code != 204:
                errors.append(f"{url} answered {response.status_code}: {response.text[:300]}")
                return
        session.close()

    threads = [threading.Thread(target=client, args=(bodies[i::concurrency],)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    return elapsed


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(PYTHON), "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


@contextmanager
def throwaway_postgres(admin_url: str) -> Iterator[str]:
    name = f"stamm_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def throwaway_influxd() -> Iterator[str | None]:
    if shutil.which("influxd") is None:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="stamm-bench-influx-")
    port = free_port()
    env = {**os.environ, "INFLUXDB_PORT": str(port)}
    script = REPO / "scripts" / "influxdb-start.sh"
    subprocess.run(["bash", str(script), directory], env=env, check=True, capture_output=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(script), "--stop", directory], env=env, check=False, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def gunicorn(env: dict[str, str], workers: int) -> Iterator[tuple[str, psutil.Process]]:
    """A gunicorn of this app on a free loopback port; yields (base URL, the first worker process)."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="stamm-bench-gunicorn-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "stamm_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "900",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health/", 90)
        master = psutil.Process(process.pid)
        worker = master.children()[0]
        yield f"http://127.0.0.1:{port}", worker
    except Exception:
        log.flush()
        sys.stderr.write(Path(log.name).read_text()[-3000:])
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        os.unlink(log.name)


def peak_rss(worker: psutil.Process) -> int:
    """The process's high-water resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return worker.memory_info().rss


def big_request(url: str, token: str, target_mb: int, start_ns: int, worker: psutil.Process) -> dict[str, Any]:
    lines = max(1, int(target_mb * 1_000_000 / 128))
    body = payload_requests(lines, lines, start_ns, batches=50)[0]
    requests.post(  # warm the worker: imports, connections, first query plans
        f"{url}/api/v2/write?bucket=stamm_raw",
        data=payload_requests(2000, 2000, start_ns - 10**12, batches=1)[0],
        headers={"Authorization": f"Token {token}", "Content-Type": "text/plain"},
        timeout=600,
    ).raise_for_status()
    baseline = worker.memory_info().rss
    started = time.perf_counter()
    response = requests.post(
        f"{url}/api/v2/write?bucket=stamm_raw",
        data=body,
        headers={"Authorization": f"Token {token}", "Content-Type": "text/plain"},
        timeout=900,
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 204:
        raise RuntimeError(f"big request answered {response.status_code}: {response.text[:300]}")
    peak = peak_rss(worker)
    return {
        "body_mb": round(len(body) / 1e6, 1),
        "points": lines,
        "seconds": round(elapsed, 2),
        "rss_before_mb": round(baseline / 1e6, 1),
        "rss_peak_mb": round(peak / 1e6, 1),
        "rss_growth_mb": round((peak - baseline) / 1e6, 1),
    }


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TSDB_", "INFLUXDB_", "DATABASE_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="stamm_site.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DATABASE_URL=database_url,
        CELERY_BROKER_URL="memory://",
        CELERY_RESULT_BACKEND="cache+memory://",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_LOG_LEVEL="WARNING",
        TSDB_LINE_PROTOCOL_MAX_BYTES=str(512 * 1024 * 1024),
    )
    env.update(extra)
    return env


TOKEN_SCRIPT = """
from django.contrib.auth.models import Group, User
from apps.accounts.services import api_token_create, roles_ensure
from apps.accounts.roles import MODELER
roles_ensure()
user, _ = User.objects.get_or_create(username="bench-ingest")
user.groups.add(Group.objects.get(name=MODELER))
print(api_token_create(user=user, name="benchmark")[1])
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--lines-per-request", type=int, default=10_000)
    parser.add_argument("--big-mb", type=int, default=100, help="size of the single large request (0: skip)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per app")
    parser.add_argument("--concurrency", type=int, default=1, help="clients sending at once, to every receiver")
    parser.add_argument("--rounds", type=int, default=3, help="turns each receiver takes (the median counts)")
    parser.add_argument(
        "--pg-admin-url", default=os.environ.get("STAMM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()

    start_ns = (time.time_ns() // 10**9 - 2 * 86_400) * 10**9  # two days ago: inside every retention
    bodies = payload_requests(args.points, args.lines_per_request, start_ns)
    payload_mb = sum(len(b) for b in bodies) / 1e6
    summary = f"{args.points} points, {len(bodies)} requests of <= {args.lines_per_request} lines, {payload_mb:.1f} MB"
    print(f"payload: {summary}")
    text = {"Content-Type": "text/plain; charset=utf-8"}
    results: dict[str, Any] = {
        "workers": args.workers,
        "concurrency": args.concurrency,
        "points": args.points,
        "lines_per_request": args.lines_per_request,
        "rounds": args.rounds,
        "payload_mb": round(payload_mb, 1),
    }
    rows: list[tuple[str, float | None, str]] = []

    with ExitStack() as stack:
        database_url = stack.enter_context(throwaway_postgres(args.pg_admin_url))
        influx_url = stack.enter_context(throwaway_influxd())
        sql_env = app_env(database_url, TSDB_BACKEND="sql")
        manage(sql_env, "migrate", "--noinput")
        token = manage(sql_env, "shell", "-c", TOKEN_SCRIPT).strip().splitlines()[-1]
        auth = {**text, "Authorization": f"Token {token}"}

        receivers: list[tuple[str, str, str, dict[str, str]]] = []  # (key, label, write URL, headers)
        if influx_url:  # (c) InfluxDB's own /write, into a database of its own
            requests.post(
                f"{influx_url}/query", data={"q": 'CREATE DATABASE "bench_direct"'}, timeout=30
            ).raise_for_status()
            receivers.append(
                ("influxdb_direct", "(c) InfluxDB /write", f"{influx_url}/write?db=bench_direct&precision=ns", text)
            )
        sql_url, _ = stack.enter_context(gunicorn(sql_env, args.workers))  # (a) the app, SQL on PostgreSQL
        receivers.append(
            (
                "app_sql_postgres",
                "(a) app, SQL on PostgreSQL",
                f"{sql_url}/api/v2/write?bucket=stamm_raw&precision=ns",
                auth,
            )
        )
        if influx_url:  # (b) the app, InfluxDB backend
            influx_env = app_env(database_url, TSDB_BACKEND="influxdb", INFLUXDB_URL=influx_url)
            manage(
                influx_env,
                "shell",
                "-c",
                "from apps.tsdb.backends import get_backend; get_backend().ensure_collections()",
            )
            app_influx_url, _ = stack.enter_context(gunicorn(influx_env, args.workers))
            receivers.append(
                (
                    "app_influxdb",
                    "(b) app, InfluxDB backend",
                    f"{app_influx_url}/api/v2/write?bucket=stamm_raw&precision=ns",
                    auth,
                )
            )

        # One warm-up request each, into a batch of its own a day before the payload: the web worker's
        # first request imports and connects, InfluxDB's creates its shard; neither is ingest speed.
        warm_up = payload_requests(args.lines_per_request, args.lines_per_request, start_ns - 86_400 * 10**9, 1)
        warm_up = [body.replace(b"batch_id=bench_0,", b"batch_id=warm_up,") for body in warm_up]
        for _key, _label, url, headers in receivers:
            send(url, warm_up, headers)

        rates: dict[str, list[float]] = {key: [] for key, *_ in receivers}
        span_ns = (args.points // (5 * len(PROPS)) + 1) * 1_000_000_000
        for round_number in range(args.rounds):
            round_bodies = (
                bodies
                if round_number == 0
                else payload_requests(
                    args.points, args.lines_per_request, start_ns + round_number * (span_ns + 60 * 10**9)
                )
            )
            for key, _label, url, headers in receivers:
                seconds = send(url, round_bodies, headers, args.concurrency)
                rates[key].append(args.points / seconds)
            print(
                f"round {round_number + 1}: "
                + ", ".join(f"{label.split(')')[0]}) {rates[key][-1]:,.0f}" for key, label, *_ in receivers)
                + " points/s"
            )
            del round_bodies

        with psycopg.connect(database_url) as conn:
            stored_sql = conn.execute(
                "SELECT count(*) FROM tsdb_rawpoint p JOIN tsdb_series s ON s.id = p.series_id"
                " WHERE s.batch_id <> 'warm_up'"
            ).fetchone()[0]
        stored: dict[str, int] = {"app_sql_postgres": stored_sql}
        if influx_url:
            for key, database in (("influxdb_direct", "bench_direct"), ("app_influxdb", "stamm_raw")):
                answer = requests.post(
                    f"{influx_url}/query",
                    data={
                        "db": database,
                        "q": 'SELECT count("value") FROM "device_obs" WHERE "batch_id" != \'warm_up\'',
                    },
                    timeout=120,
                ).json()
                stored[key] = sum(s["values"][0][1] for s in answer["results"][0].get("series", []))
        for key, label, *_ in receivers:
            median = statistics.median(rates[key])
            results[key] = {
                "points_per_s": round(median),
                "rounds_points_per_s": [round(r) for r in rates[key]],
                "stored": stored[key],
            }
            note = f"{stored[key]} points stored; rounds: " + ", ".join(f"{r:,.0f}" for r in rates[key])
            rows.append((label, median, note))

        if "influxdb_direct" in results:
            direct = results["influxdb_direct"]["points_per_s"]
            results["ratio_a_c"] = round(results["app_sql_postgres"]["points_per_s"] / direct, 3)
            results["ratio_a_c_rounds"] = [
                round(a / c, 3) for a, c in zip(rates["app_sql_postgres"], rates["influxdb_direct"], strict=True)
            ]
            if "app_influxdb" in results:
                results["ratio_b_c"] = round(results["app_influxdb"]["points_per_s"] / direct, 3)

        # Memory of one web process for one large request (and one a quarter of its size, to show that
        # memory does not follow the body), each on a fresh worker.
        if args.big_mb:
            big_start = start_ns - 15 * 86_400 * 10**9
            envs = [("sql", sql_env)]
            if influx_url:
                envs.append(("influxdb", app_env(database_url, TSDB_BACKEND="influxdb", INFLUXDB_URL=influx_url)))
            for label, env in envs:
                for size in (max(1, args.big_mb // 4), args.big_mb):
                    with gunicorn(env, 1) as (url, worker):
                        results[f"big_request_{label}_{size}mb"] = big_request(url, token, size, big_start, worker)

    print()
    print(f"{'receiver':32} {'median p/s':>12}  note")
    for name, rate, note in rows:
        print(f"{name:32} {rate:12,.0f}  {note}")
    if "ratio_a_c" in results:
        print(f"{'ratio a/c (target >= 0.5)':32} {results['ratio_a_c']:12.3f}")
    if "ratio_b_c" in results:
        print(f"{'ratio b/c':32} {results['ratio_b_c']:12.3f}")
    for key, r in results.items():
        if key.startswith("big_request_"):
            label = "SQL" if "_sql_" in key else "InfluxDB"
            print(
                f"{r['body_mb']} MB request ({r['points']} points), app with {label} backend: {r['seconds']} s, "
                f"worker RSS {r['rss_before_mb']} MB before, peak {r['rss_peak_mb']} MB (+{r['rss_growth_mb']} MB)"
            )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

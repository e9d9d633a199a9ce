"""Bad-input benchmark: what refusing hostile or clumsy bodies costs a production web process.

    .venv/bin/python benchmarks/bad_input.py

The cases the hardening issue measured (before: a 100 MiB line 44 s and +500 MiB; a 1 MB gzip of zeros
102 s and +640 MiB; a 1 MB gzip of newlines 45 s and +440 MiB; a 596-byte YAML alias bomb minutes and
+2 GB), plus their neighbours: each is sent to a fresh gunicorn worker of this app (production settings,
a throwaway PostgreSQL database, one sync worker), and the answer's status, the seconds until it came and
the worker's resident-memory growth (high-water mark, VmHWM, over its baseline after a warm-up request)
are printed. Targets: 400/413 in under 2 s (YAML: 1 s) and under 50 MB of extra memory; a gzip of valid
lines that inflates past the limit is parsed up to the limit, as a legitimate body of that size is. Nothing is
stored by any of them (the suite checks that: ``tests/tsdb/test_bad_input.py``). The last line is JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from ingest import app_env, gunicorn, manage, peak_rss, throwaway_postgres  # noqa: E402

from tests.gzip_bombs import gzip_of  # noqa: E402

TOKEN_SCRIPT = """
from django.contrib.auth.models import Group, User
from apps.accounts.services import api_token_create, roles_ensure
from apps.accounts.roles import MODELER
roles_ensure()
user, _ = User.objects.get_or_create(username="bench-bad-input")
user.groups.add(Group.objects.get(name=MODELER))
print(api_token_create(user=user, name="benchmark")[1])
"""
TAGS = "device_id=R1,project_name=bench,batch_id=b1,source=sensor,observed_property=t"
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def cases() -> list[tuple[str, str, float | None, Callable[[str, dict[str, str]], requests.Response]]]:
    """(name, expected status, seconds allowed or None, send(url, headers)).

    None: the body is valid up to the size limit, so it is parsed (and, on SQL, written in the request's
    transaction, then rolled back) until the limit stops it: it costs what a legitimate body of the
    largest accepted size costs, bounded by ``TSDB_LINE_PROTOCOL_MAX_BYTES``, not a fixed time.
    """
    line = b"x" * (100 << 20)
    zeros = gzip_of(b"\0" * (1 << 20), 1024)
    newlines = gzip_of(b"\n" * (1 << 20), 1024)
    comments = gzip_of(b"#\n" * (1 << 19), 1024)
    points = gzip_of(f"device_obs,{TAGS} value=1 1767225600000000000\n".encode() * 20_000, 1024)
    big_json = b'{"points": [' + b"0," * (40 << 20) + b"0]}"
    nested = b"[" * 100_000
    ragged = b"time,t,u\n" + b"0,1,2\n" * 100_000 + b"1,2\n"

    def lp(body: bytes, gz: bool = False) -> Callable[[str, dict[str, str]], requests.Response]:
        extra = {"Content-Encoding": "gzip"} if gz else {}
        return lambda url, h: requests.post(
            f"{url}/api/v2/write?bucket=stamm_raw", data=body, headers={**h, **extra, "Content-Type": "text/plain"},
            timeout=600,
        )

    def json_body(body: bytes) -> Callable[[str, dict[str, str]], requests.Response]:
        return lambda url, h: requests.post(
            f"{url}/api/v1/tsdb/points", data=body, headers={**h, "Content-Type": "application/json"}, timeout=600
        )

    def csv(body: bytes) -> Callable[[str, dict[str, str]], requests.Response]:
        fields = {"project_name": "bench", "device_id": "R1", "batch_id": "b1", "start": "2026-01-01T00:00:00Z"}
        return lambda url, h: requests.post(
            f"{url}/api/v1/tsdb/import", data=fields, files={"file": ("b.csv", io.BytesIO(body))}, headers=h,
            timeout=600,
        )

    def yaml_bomb(url: str, h: dict[str, str]) -> requests.Response:
        files = {"project_info": ("project_info.yaml", io.BytesIO(BILLION_LAUGHS.encode()))}
        return requests.post(f"{url}/api/v1/registry/projects/create/", files=files, headers=h, timeout=600)

    return [
        ("line protocol: one 100 MiB line", "400", 2, lp(line)),
        (f"line protocol: {len(zeros) / 1e6:.1f} MB gzip of zeros (1 GiB)", "400", 2, lp(zeros, gz=True)),
        (f"line protocol: {len(newlines) / 1e6:.1f} MB gzip of newlines (1 GiB)", "400", 2, lp(newlines, gz=True)),
        (f"line protocol: {len(comments) / 1e6:.1f} MB gzip of '#' lines (1 GiB)", "400", 2, lp(comments, gz=True)),
        (f"line protocol: {len(points) / 1e6:.1f} MB gzip of valid lines (1.5 GiB)", "413", None, lp(points, gz=True)),
        ("JSON: 80 MiB body", "413", 2, json_body(big_json)),
        ("JSON: nested 100,000 deep", "400", 2, json_body(nested)),
        ("CSV: 600 kB, last row ragged", "400", 2, csv(ragged)),
        (f"YAML: {len(BILLION_LAUGHS)}-byte alias bomb (project info)", "400", 1, yaml_bomb),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}")
    results: list[dict[str, Any]] = []
    with throwaway_postgres(args.pg_admin_url) as database_url:
        env = app_env(database_url, TSDB_LINE_PROTOCOL_MAX_BYTES=str(256 * 1024 * 1024))
        manage(env, "migrate", "--noinput")
        token = manage(env, "shell", "-c", TOKEN_SCRIPT).strip().splitlines()[-1]
        headers = {"Authorization": f"Token {token}"}
        for name, expected, allowed, send in cases():
            with gunicorn(env, workers=1) as (url, worker):
                requests.get(f"{url}/api/v1/me/", headers=headers, timeout=60).raise_for_status()  # warm up
                baseline = worker.memory_info().rss
                started = time.perf_counter()
                response = send(url, headers)
                seconds = time.perf_counter() - started
                growth = (peak_rss(worker) - baseline) / 1e6
            results.append(
                {
                    "case": name,
                    "status": response.status_code,
                    "expected": int(expected),
                    "seconds": round(seconds, 3),
                    "seconds_allowed": allowed,
                    "rss_growth_mb": round(growth, 1),
                }
            )
            bound = f"< {allowed} s" if allowed else "the limit"
            print(
                f"{name:58} {response.status_code} (want {expected})  {seconds:6.2f} s ({bound:>9})"
                f"  +{growth:6.1f} MB"
            )
    ok = all(
        r["status"] == r["expected"]
        and (r["seconds_allowed"] is None or r["seconds"] < r["seconds_allowed"])
        and r["rss_growth_mb"] < 50
        for r in results
    )
    print(json.dumps({"benchmark": "bad_input", "all_within_targets": ok, "cases": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Where line-protocol ingest spends its time, in process, on PostgreSQL: parse, append, overwrite, stream.

    .venv/bin/python benchmarks/ingest_parts.py                  # 200k points in 10k-line bodies
    .venv/bin/python benchmarks/ingest_parts.py --points 1000000

Uses the payload of ``benchmarks/ingest.py`` (20 variables x 5 batches, 1 s apart) and a throwaway
PostgreSQL database (``tests/tsdb/pgdb.py``). Per point, for each 10k-line body:

- ``parse``: ``LineProtocolParser`` feed + take, CPU time;
- ``write_append``: ``SQLBackend.write`` of the parsed batch, every point newer than the stored ones
  (the binary COPY straight into the point table), wall time;
- ``write_overwrite``: the same batches again (the staging table and the counted upsert), wall time;
- ``stream``: what the line-protocol endpoint does on the SQL backend, parse 256 KiB then write it
  through ``points_stream``, repeat (one COPY kept open across pieces), wall time and this process's CPU
  time (PostgreSQL's work runs in its own process).

The pipeline trigger (``points_committed`` -> orchestrator) is disconnected: it is not ingest work.

Prints a table, then one last line of JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stamm_site.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connections  # noqa: E402
from ingest import payload_requests  # noqa: E402

from apps.tsdb.backends.sql import SQLBackend  # noqa: E402
from apps.tsdb.influx_apis import FEED_SIZE  # noqa: E402
from apps.tsdb.lineprotocol import LineProtocolParser  # noqa: E402
from apps.tsdb.services import points_stream  # noqa: E402
from apps.tsdb.signals import points_committed  # noqa: E402
from apps.tsdb.types import Collection  # noqa: E402
from tests.tsdb.pgdb import throwaway_postgres  # noqa: E402


def parse(body: bytes) -> object:
    parser = LineProtocolParser(Collection.RAW)
    parser.feed(body)
    parser.close()
    return parser.take()


def stream(body: bytes, backend: SQLBackend) -> None:
    parser = LineProtocolParser(Collection.RAW)
    with points_stream(collection=Collection.RAW, backend=backend) as write:
        for offset in range(0, len(body), FEED_SIZE):
            parser.feed(body[offset : offset + FEED_SIZE])
            if parser.buffered_points:
                write(parser.take())
        parser.close()
        if parser.buffered_points:
            write(parser.take())


def per_point_us(seconds: list[float], points: list[int]) -> float:
    """Median over bodies of microseconds per point."""
    return statistics.median(s / n * 1e6 for s, n in zip(seconds, points, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--lines-per-request", type=int, default=10_000)
    args = parser.parse_args()

    start_ns = (time.time_ns() // 10**9 - 2 * 86_400) * 10**9
    span_ns = (args.points // 100 + 1) * 10**9
    bodies = payload_requests(args.points, args.lines_per_request, start_ns)
    later = payload_requests(args.points, args.lines_per_request, start_ns + span_ns + 60 * 10**9)
    sizes = [body.count(b"\n") for body in bodies]
    timings: dict[str, list[float]] = {
        k: [] for k in ("parse", "write_append", "write_overwrite", "stream", "stream_cpu")
    }

    # The pipeline's trigger reads deployments from the default database, which this run leaves empty.
    points_committed.disconnect(dispatch_uid="orchestrator.points_committed")
    with throwaway_postgres("stamm_bench_ingest_parts") as alias:
        backend = SQLBackend({"DATABASE": alias})
        batches = []
        for body in bodies:
            started = time.process_time()
            batches.append(parse(body))
            timings["parse"].append(time.process_time() - started)
        for key in ("write_append", "write_overwrite"):  # the second pass rewrites every point
            for batch in batches:
                started = time.perf_counter()
                backend.write(batch)
                timings[key].append(time.perf_counter() - started)
        for body in later:
            started, cpu = time.perf_counter(), time.process_time()
            stream(body, backend)
            timings["stream"].append(time.perf_counter() - started)
            timings["stream_cpu"].append(time.process_time() - cpu)
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM tsdb_rawpoint")
            stored = cursor.fetchone()[0]

    results = {k: round(per_point_us(v, sizes), 3) for k, v in timings.items()}
    results.update(points=args.points, lines_per_request=args.lines_per_request, stored=stored)
    labels = {
        "parse": "parse (CPU)",
        "write_append": "SQLBackend.write, appending",
        "write_overwrite": "SQLBackend.write, overwriting",
        "stream": "parse + stream (wall)",
        "stream_cpu": "parse + stream (this process's CPU)",
    }
    print(f"{args.points} points in bodies of {args.lines_per_request} lines; {stored} stored")
    print(f"{'step':40} {'µs/point':>9}")
    for key, label in labels.items():
        print(f"{label:40} {results[key]:9.2f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

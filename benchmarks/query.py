"""Query benchmark of the time-series store on PostgreSQL (SQL backend), optionally InfluxDB too.

Stores ``--points`` raw points (default 10 M) as ``--series`` series of one device (1 point per second
each) in a throwaway PostgreSQL database through ``SQLBackend.write`` (binary COPY + upsert), then times:

- ``read_1h``: a 1-hour read of one series (3 600 raw points) at random offsets;  target <= 50 ms;
- ``buckets_1min``: 1-minute mean buckets over 1 M points of one series (server-side GROUP BY);
- ``minmax_1day`` / ``lttb_1day``: one day (86 400 points) reduced to 1 000 points;
- ``snapshots_1h``: as-of snapshots of every variable of the device over one hour;
- ``latest`` and ``groups``.

With ``--influxdb-url`` (and the InfluxDB backend installed) the same data and queries run on InfluxDB.
Prints a table, then one last line of JSON with every figure.

    .venv/bin/python benchmarks/query.py --points 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stamm_site.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connections  # noqa: E402

from apps.tsdb.backends.base import TimeSeriesBackend  # noqa: E402
from apps.tsdb.backends.sql import SQLBackend  # noqa: E402
from apps.tsdb.types import (  # noqa: E402
    NS_PER_S,
    Collection,
    Downsample,
    GroupKey,
    PointBatch,
    SeriesFilter,
    SeriesKey,
    to_ns,
)

#: Data start: midnight UTC 15 days before the run (10 M points = 11.6 days per series at 1 s), so the
#: points stay inside the 90-day retention of an InfluxDB ``stamm_raw`` database when comparing.
T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=15)
CHUNK = 1_000_000


def load(backend: TimeSeriesBackend, group: GroupKey, *, points: int, series: int) -> tuple[float, int]:
    """Write ``points`` points spread over ``series`` series at 1 s; returns (seconds, points per series)."""
    per_series = points // series
    keys = [
        SeriesKey(group.project_name, group.device_id, group.batch_id, "sensor", f"var_{i:02d}") for i in range(series)
    ]
    rng = np.random.default_rng(42)
    started = time.perf_counter()
    t0 = to_ns(T0)
    for i, _key in enumerate(keys):
        for offset in range(0, per_series, CHUNK):
            n = min(CHUNK, per_series - offset)
            steps = np.arange(offset, offset + n, dtype=np.int64)
            values = np.sin(steps / 3600.0 + i) * 10 + rng.normal(0, 0.2, n)
            backend.write(
                PointBatch(
                    Collection.RAW,
                    [keys[i]],
                    np.zeros(n, dtype=np.int32),
                    t0 + steps * NS_PER_S,
                    values,
                )
            )
            print(f"  loaded {keys[i].observed_property}: {offset + n:,}/{per_series:,}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return time.perf_counter() - started, per_series


def timed(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    fn()  # warm-up (plans, caches)
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    runs.sort()
    return {
        "median_ms": round(statistics.median(runs), 2),
        "p95_ms": round(runs[min(len(runs) - 1, int(len(runs) * 0.95))], 2),
        "min_ms": round(runs[0], 2),
    }


def run_queries(
    backend: TimeSeriesBackend, group: GroupKey, *, per_series: int, series: int, repeat: int
) -> dict[str, dict]:
    rng = np.random.default_rng(7)
    key = SeriesKey(group.project_name, group.device_id, group.batch_id, "sensor", "var_00")
    span_s = per_series
    results: dict[str, dict] = {}

    def read_1h() -> None:
        start = T0 + timedelta(seconds=int(rng.integers(0, max(1, span_s - 3600))))
        data = backend.read(collection=Collection.RAW, series=key, start=start, end=start + timedelta(seconds=3599))
        assert len(data) == min(3600, span_s), len(data)

    results["read_1h"] = timed(read_1h, repeat)

    bucket_points = min(per_series, 1_000_000)
    end = T0 + timedelta(seconds=bucket_points - 1)
    minutes = -(-bucket_points // 60)

    def buckets_1min() -> None:
        data = backend.read(
            collection=Collection.RAW, series=key, start=T0, end=end, max_points=minutes, method=Downsample.MEAN
        )
        assert len(data) == minutes, (len(data), minutes)

    results["buckets_1min"] = {**timed(buckets_1min, max(3, repeat // 4)), "points": bucket_points, "buckets": minutes}

    day_end = T0 + timedelta(seconds=min(per_series, 86_400) - 1)
    for method in (Downsample.MINMAX, Downsample.LTTB):

        def reduce_day(method: Downsample = method) -> None:
            data = backend.read(
                collection=Collection.RAW, series=key, start=T0, end=day_end, max_points=1000, method=method
            )
            assert len(data) <= 1000

        results[f"{method.value}_1day"] = timed(reduce_day, max(3, repeat // 4))

    variables = tuple(f"var_{i:02d}" for i in range(series))

    def snapshots_1h() -> None:
        after = T0 + timedelta(seconds=int(rng.integers(0, max(1, span_s - 3600))))
        snaps = backend.snapshots(
            group=group,
            variables=variables,
            after=after,
            until=after + timedelta(seconds=3600),
            max_age=timedelta(seconds=5),
        )
        assert len(snaps) == min(3600, span_s - 1) or len(snaps) > 0

    results["snapshots_1h"] = {**timed(snapshots_1h, max(3, repeat // 4)), "variables": series}
    results["latest"] = timed(
        lambda: backend.latest(collection=Collection.RAW, where=SeriesFilter(project_name=group.project_name)), repeat
    )
    results["groups"] = timed(lambda: backend.groups(project_name=group.project_name), max(3, repeat // 4))
    return results


def partitioning_comparison(alias: str, *, per_series: int, repeat: int) -> dict[str, dict]:
    """The same raw points in a natively partitioned table (weekly ranges on time, PK (series_id, time))
    next to a plain copy with the shipped layout (PK btree + BRIN): bulk copy time, 1-hour read, buckets.
    """
    week = 7 * 86_400 * NS_PER_S
    results: dict[str, dict] = {}
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT min(time), max(time) FROM tsdb_rawpoint")
        lo, hi = cursor.fetchone()
        cursor.execute(
            "CREATE TABLE bench_plain (series_id bigint NOT NULL, time bigint NOT NULL,"
            " value double precision NOT NULL, PRIMARY KEY (series_id, time))"
        )
        cursor.execute("CREATE INDEX ON bench_plain USING brin (time) WITH (pages_per_range = 32)")
        cursor.execute(
            "CREATE TABLE bench_part (series_id bigint NOT NULL, time bigint NOT NULL,"
            " value double precision NOT NULL, PRIMARY KEY (series_id, time)) PARTITION BY RANGE (time)"
        )
        first = lo - lo % week
        partitions = 0
        for begin in range(first, hi + 1, week):
            cursor.execute(
                f"CREATE TABLE bench_part_{partitions} PARTITION OF bench_part"
                f" FOR VALUES FROM ({begin}) TO ({begin + week})"
            )
            partitions += 1
        for table in ("bench_plain", "bench_part"):
            started = time.perf_counter()
            cursor.execute(
                f"INSERT INTO {table} SELECT series_id, time, value FROM tsdb_rawpoint ORDER BY series_id, time"
            )
            results.setdefault(table, {})["bulk_insert_s"] = round(time.perf_counter() - started, 2)
    vacuum_analyze(alias, tables=("bench_plain", "bench_part"))
    span_s = per_series
    bucket_points = min(per_series, 1_000_000)
    t0 = to_ns(T0)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT id FROM tsdb_series WHERE observed_property = 'var_00'")
        sid = cursor.fetchone()[0]
        for table in ("bench_plain", "bench_part"):
            rng = np.random.default_rng(11)  # same offsets for both tables

            def read_1h(table: str = table, rng: np.random.Generator = rng) -> None:
                start = t0 + int(rng.integers(0, max(1, span_s - 3600))) * NS_PER_S
                cursor.execute(
                    f"SELECT time, value FROM {table} WHERE series_id = %s AND time >= %s AND time <= %s ORDER BY time",
                    [sid, start, start + 3599 * NS_PER_S],
                )
                assert len(cursor.fetchall()) == min(3600, span_s)

            def buckets(table: str = table) -> None:
                cursor.execute(
                    f"SELECT (time - %s) / %s AS bucket, AVG(value), MIN(value), MAX(value), COUNT(*) FROM {table}"
                    " WHERE series_id = %s AND time >= %s AND time <= %s GROUP BY bucket ORDER BY bucket",
                    [t0, 60 * NS_PER_S, sid, t0, t0 + (bucket_points - 1) * NS_PER_S],
                )
                cursor.fetchall()

            results[table]["read_1h"] = timed(read_1h, repeat)
            results[table]["buckets_1min"] = timed(buckets, max(3, repeat // 4))
        results["bench_part"]["partitions"] = partitions
        cursor.execute("DROP TABLE bench_plain, bench_part")
    return results


def postgres_facts(alias: str) -> dict[str, object]:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('tsdb_rawpoint')),"
            " pg_size_pretty(pg_relation_size('tsdb_rawpoint_pkey')),"
            " pg_size_pretty(pg_relation_size('tsdb_rawpoint_time_brin')), version()"
        )
        total, pkey, brin, version = cursor.fetchone()
    return {"table_total": total, "pkey_index": pkey, "brin_index": brin, "server": version.split(",")[0]}


def vacuum_analyze(alias: str, tables: tuple[str, ...] = ("tsdb_rawpoint", "tsdb_series")) -> None:
    """What autovacuum would do after a bulk load: visibility map (index-only scans) and statistics."""
    conn = connections[alias]
    conn.ensure_connection()
    raw = conn.connection
    previous = raw.autocommit
    raw.autocommit = True
    try:
        for table in tables:
            raw.execute(f"VACUUM ANALYZE {table}")
    finally:
        raw.autocommit = previous


def print_table(rows: list[tuple[str, str, dict]]) -> None:
    print(f"{'backend':<15} {'query':<14} {'median ms':>10} {'p95 ms':>10} {'min ms':>10}  notes")
    for backend, name, r in rows:
        notes = ", ".join(f"{k}={v}" for k, v in r.items() if not k.endswith("_ms"))
        print(f"{backend:<15} {name:<14} {r['median_ms']:>10.2f} {r['p95_ms']:>10.2f} {r['min_ms']:>10.2f}  {notes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000_000, help="Raw points stored (default 10M)")
    parser.add_argument("--series", type=int, default=10, help="Series the points are spread over (default 10)")
    parser.add_argument("--repeat", type=int, default=40, help="Timed runs of the quick queries")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("STAMM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--compare-partitioning",
        action="store_true",
        help="Also time the same data in a natively partitioned table (weekly ranges) against the shipped layout",
    )
    parser.add_argument("--influxdb-url", default="", help="Also benchmark the InfluxDB backend at this URL")
    parser.add_argument("--influxdb-token", default=os.environ.get("INFLUXDB_TOKEN", ""))
    args = parser.parse_args()
    if args.points < args.series * 3600:
        parser.error("--points must give every series at least one hour (3600 points)")
    if args.points // args.series > 14 * 86_400:
        parser.error("at most 14 days (1 209 600 points) per series: raise --series")

    from tests.tsdb.pgdb import throwaway_postgres

    figures: dict[str, object] = {"points": args.points, "series": args.series}
    table: list[tuple[str, str, dict]] = []
    group = GroupKey("bench", "R1", f"b{uuid.uuid4().hex[:6]}")
    with throwaway_postgres("stamm_tsdb_bench", server_url=args.postgres_url) as alias:
        backend = SQLBackend({"DATABASE": alias})
        seconds, per_series = load(backend, group, points=args.points, series=args.series)
        vacuum_analyze(alias)
        figures["postgres_load"] = {"seconds": round(seconds, 1), "points_per_s": round(args.points / seconds)}
        results = run_queries(backend, group, per_series=per_series, series=args.series, repeat=args.repeat)
        figures["postgres"] = results
        figures["postgres_storage"] = postgres_facts(alias)
        table += [("postgresql", name, r) for name, r in results.items()]
        if args.compare_partitioning:
            comparison = partitioning_comparison(alias, per_series=per_series, repeat=args.repeat)
            figures["partitioning"] = comparison
            for layout, label in (("bench_plain", "pg-btree+brin"), ("bench_part", "pg-partitioned")):
                extra = {k: v for k, v in comparison[layout].items() if not isinstance(v, dict)}
                for name in ("read_1h", "buckets_1min"):
                    table.append((label, name, {**comparison[layout][name], **(extra if name == "read_1h" else {})}))

    if args.influxdb_url:
        try:
            from apps.tsdb.backends.influx import InfluxBackend
        except ImportError as exc:
            figures["influxdb"] = f"skipped: {exc}"
        else:
            influx = InfluxBackend({"URL": args.influxdb_url, "TOKEN": args.influxdb_token})
            influx.ensure_collections()
            seconds, per_series = load(influx, group, points=args.points, series=args.series)
            figures["influxdb_load"] = {"seconds": round(seconds, 1), "points_per_s": round(args.points / seconds)}
            results = run_queries(influx, group, per_series=per_series, series=args.series, repeat=args.repeat)
            figures["influxdb"] = results
            table += [("influxdb", name, r) for name, r in results.items()]
            influx.delete(collection=Collection.RAW, group=group)

    load_info = figures["postgres_load"]
    print(
        f"\nStored {args.points:,} points ({args.series} series x {per_series:,}) on PostgreSQL in "
        f"{load_info['seconds']} s ({load_info['points_per_s']:,} points/s); storage {figures['postgres_storage']}"
    )
    print_table(table)
    read = figures["postgres"]["read_1h"]["median_ms"]
    figures["target_read_1h_ms"] = 50
    figures["target_met"] = read <= 50
    print(f"1-hour read on PostgreSQL: {read} ms median (target <= 50 ms: {'met' if read <= 50 else 'MISSED'})")
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()

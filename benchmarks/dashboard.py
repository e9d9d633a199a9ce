"""Dashboard benchmark: server time of the operator page's data callbacks with millions of raw points stored.

    .venv/bin/python benchmarks/dashboard.py                    # 5 M raw points, throwaway SQLite file
    .venv/bin/python benchmarks/dashboard.py --points 500000    # a quicker run
    .venv/bin/python benchmarks/dashboard.py --database-url postgresql://postgres@127.0.0.1:5432/bench_dash

Data: IndPenSim batches (../shared/data/indpensim) ingested through ``apps.tsdb.services.points_ingest``
again and again as new batches of reactors R1..Rn, laid back to back, until ``--points`` raw points are
stored (about 33 000 per batch). Two real scikit-learn soft sensors are registered through the registry's
services, and their predictions for the newest batch stored as the pipeline stores them.

Timed (``--repeat`` times each, after one warm-up): the operator page's data callbacks, POSTed through
Django's test client to django-plotly-dash's ``_dash-update-component`` endpoint as a signed-in
operator, so the figure covers URL routing, the session, the role check, the reads and the JSON:
``chart_24h`` (estimates, lab samples and two process variables over the last 24 h), ``chart_batch``
(the same over the whole batch, downsampled to <= 2 000 points per trace), ``trust`` (latest
estimates, validity, latest lab residual, pipeline lag), ``batches`` (the batch picker with "last data
N minutes ago") and ``explain_rf100`` (a click on one estimate of a 100-tree random forest: its input snapshot
read back, TreeSHAP contributions computed in the model's runtime worker, the waterfall drawn). Target:
p50 <= 300 ms per callback. The last line printed is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=5_000_000, help="raw points to store (default 5 M)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per callback")
    parser.add_argument(
        "--database-url",
        default="",
        help="an empty database to fill (default: a throwaway SQLite file in a temporary folder)",
    )
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    args = parse_args()
    workdir = tempfile.mkdtemp(prefix="stamm-bench-dashboard-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ["STAMM_VAR_DIR"] = workdir
    os.environ["DJANGO_MEDIA_ROOT"] = f"{workdir}/media"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stamm_site.settings.test")

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0, skip_checks=True)

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from apps.accounts.services import roles_ensure
    from tests.dashboard.seed import PROJECT, batch_frame, ingest_batch, register_model, store_predictions

    # ---- data ------------------------------------------------------------------------------------
    numbers = (92, 93, 96, 98, 91, 94, 95, 97, 99, 100)
    durations = {n: float(batch_frame(n)["time"].iloc[-1]) for n in numbers}
    per_device = 20  # batches per reactor, back to back
    stored, index = 0, 0
    started = time.perf_counter()
    # Batches back to back per reactor, newest first, so that each reactor's first batch ends now; as many
    # as it takes to reach --points.
    now = datetime.now(UTC)
    ends: dict[str, datetime] = {}
    live_device, live_batch = "R1", "batch_1000"  # R1's newest batch, ingested first
    while stored < args.points:
        number, device, batch = numbers[index % len(numbers)], f"R{1 + index // per_device}", f"batch_{1000 + index}"
        end = ends.get(device, now - timedelta(minutes=2))
        start = end - timedelta(hours=durations[number])
        ends[device] = start - timedelta(hours=1)
        stored += ingest_batch(number, start=start, device=device, batch_id=batch)
        index += 1
        if index % 20 == 0:
            rate = stored / (time.perf_counter() - started)
            print(f"  {stored:,} raw points stored ({rate:,.0f} points/s)", file=sys.stderr)
    ingest_seconds = time.perf_counter() - started
    rf = register_model(
        model_id="0001_[python]_penicillin_RF", learner="random_forest", experiments=[92, 93], alias="production"
    )
    ridge = register_model(model_id="0002_[python]_penicillin_ridge", learner="ridge", experiments=[92, 93])
    forest = register_model(
        model_id="0003_[python]_penicillin_RF100", learner="random_forest", experiments=[92, 93], n_estimators=100
    )
    predictions = (
        store_predictions(version=rf, batch_id=live_batch)
        + store_predictions(version=ridge, batch_id=live_batch)
        + store_predictions(version=forest, batch_id=live_batch)
    )
    from apps.orchestrator.services import deployment_create

    deployment_create(name="penicillin-rf", soft_sensor=rf.soft_sensor, alias="production")

    roles_ensure()
    user = get_user_model().objects.create_user(username="bench-operator", password="x" * 12)
    user.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(user)

    # ---- callbacks -------------------------------------------------------------------------------
    group = f"{PROJECT}|{live_device}|{live_batch}"

    def body(output: str, inputs: list[dict], state: list[dict] | None = None) -> str:
        outputs = (
            [{"id": p.split(".")[0], "property": p.split(".")[1]} for p in output[2:-2].split("...")]
            if output.startswith("..")
            else {"id": output.split(".")[0], "property": output.split(".")[1]}
        )
        return json.dumps(
            {"output": output, "outputs": outputs, "inputs": inputs, "state": state or [], "changedPropIds": []}
        )

    def chart(range_key: str) -> str:
        return body(
            "..chart.figure...chart-status.children..",
            [
                {"id": "batch", "property": "value", "value": group},
                {"id": "range", "property": "value", "value": range_key},
                {"id": "variables", "property": "value", "value": ["temperature", "dissolved_oxygen_concentration"]},
                {"id": "tick", "property": "n_intervals", "value": 1},
                {"id": "flags", "property": "data", "value": []},
            ],
        )

    calls = {
        "chart_24h": chart("24h"),
        "chart_batch": chart("batch"),
        "trust": body(
            "trust.children",
            [
                {"id": "batch", "property": "value", "value": group},
                {"id": "tick", "property": "n_intervals", "value": 1},
                {"id": "alert-message", "property": "children", "value": None},
            ],
        ),
        "batches": body(
            "..batch.options...batch.value..",
            [
                {"id": "project", "property": "value", "value": PROJECT},
                {"id": "device", "property": "value", "value": live_device},
                {"id": "tick", "property": "n_intervals", "value": 1},
            ],
            [{"id": "batch", "property": "value", "value": group}],
        ),
    }
    from apps.dashboard import selectors as dashboard_selectors
    from apps.tsdb.types import GroupKey

    estimates = dashboard_selectors.live_chart(
        group=GroupKey(PROJECT, live_device, live_batch), range_key="batch", variables=[]
    ).estimates
    trace = next(t for t in estimates if t.series.model_id == "0003_[python]_penicillin_rf100")
    middle = len(trace) // 2
    series = f"predictions|{trace.series.observed_property}|{trace.series.model_id}|{trace.series.version}"
    calls["explain_rf100"] = body(
        "explain.children",
        [
            {
                "id": "chart",
                "property": "clickData",
                "value": {"points": [{"x": trace.times[middle], "y": trace.values[middle], "customdata": series}]},
            }
        ],
        [{"id": "batch", "property": "value", "value": group}],
    )
    url = "/django_plotly_dash/app/operator_live/_dash-update-component"
    results: dict[str, dict[str, float]] = {}
    for name, payload in calls.items():
        response = client.post(url, data=payload, content_type="application/json")  # warm-up
        if response.status_code != 200:
            raise SystemExit(f"{name}: HTTP {response.status_code}: {response.content[:300]!r}")
        if name.startswith("chart"):
            figure = json.loads(response.content)["response"]["chart"]["figure"]
            longest = max(len(trace["x"]) for trace in figure["data"])
            if longest > 2000:
                raise SystemExit(f"{name}: a trace has {longest} points (> 2000)")
        if name == "explain_rf100" and "TreeSHAP" not in response.content.decode():
            raise SystemExit(f"{name}: no TreeSHAP explanation: {response.content[:300]!r}")
        timings = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            response = client.post(url, data=payload, content_type="application/json")
            timings.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200
        results[name] = {
            "p50_ms": round(statistics.median(timings), 1),
            "p95_ms": round(percentile(timings, 95), 1),
            "max_ms": round(max(timings), 1),
            "bytes": len(response.content),
        }
    every = [v["p50_ms"] for v in results.values()]
    report = {
        "benchmark": "dashboard operator callbacks",
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "raw_points": stored,
        "batches": index,
        "prediction_points": predictions,
        "ingest_seconds": round(ingest_seconds, 1),
        "repeat": args.repeat,
        "callbacks": results,
        "worst_p50_ms": max(every),
        "target_p50_ms": 300,
        "target_met": max(every) <= 300,
    }
    print(f"{'callback':<14}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'bytes':>10}")
    for name, row in results.items():
        print(f"{name:<14}{row['p50_ms']:>10}{row['p95_ms']:>10}{row['max_ms']:>10}{row['bytes']:>10}")
    if not args.database_url:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

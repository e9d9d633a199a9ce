"""Connectors benchmark: MQTT in → stored estimate → estimate published back, at site scale.

    .venv/bin/python benchmarks/connectors.py                       # 100 devices × 10 tags × 1 msg/s, 60 s
    .venv/bin/python benchmarks/connectors.py --devices 20 --duration 20   # a quicker run

Stack (all throwaway): a PostgreSQL database created and dropped (``--pg-admin-url``), Celery on its own Redis
DB (``--broker``), a private ``mosquitto`` on a free port, gunicorn serving the registry, one Celery worker
(prefork, ``--concurrency``) with embedded beat, and ``manage.py connectors_run``. Seeded through the services:
one random forest on 10 features (``x0``…``x9``), registered online with alias ``production``; one deployment
per device (``device_ids=[Rnnn]``), each publishing its estimates to ``<prefix>/out/{device_id}/{observed_property}``
on the same broker; one MQTT data source mapping ``<prefix>/in/{device_id}/{observed_property}``.

Before publishing, 16 predicts go through the web processes, so their sandboxed runtimes are running (as on a
site that has been up), and the first estimates measure the pipeline rather than a runtime's start.

Load: a publisher process sends, every second, one JSON message per tag and device (value and the second's
timestamp; devices spread over the second), QoS 1: ``devices × tags`` messages/s for ``--duration`` s. A
collector process subscribes to the estimates. Per snapshot (device, second):

- publish → stored estimate: the ``finished_at`` of the pipeline run that stored it (set in the transaction that
  writes the prediction) minus the moment its last tag was handed to the broker;
- publish → estimate back: the collector's receive time minus the same moment.

Also: messages in vs raw points stored, snapshots vs estimates stored vs estimates received, latency in the
first and last third (backlog growth), and per process tree the mean CPU (100 % = one core) while publishing
(web, worker, connectors, Mosquitto, PostgreSQL, Redis, the load generator and the whole machine), to say which
saturates first. Targets: p95 publish → estimate back ≤ 1 s, no backlog growth. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.pipeline_latency import PYTHON, Bench, free_port, wait_port  # noqa: E402

FEATURES = [f"x{i}" for i in range(10)]

SEED = """
import io, json, pickle, secrets
import numpy as np
from sklearn.ensemble import RandomForestRegressor
from django.contrib.auth import get_user_model
from apps.accounts.services import api_token_create, roles_ensure
from apps.audit.services import SignatureInput
from apps.connectors.services import data_source_create, publication_create
from apps.orchestrator.services import deployment_create, service_account_ensure
from apps.registry.descriptors import parse_descriptor
from apps.registry.project_info import parse_project_info
from apps.registry.selectors import version_sha256
from apps.registry.services import ArtifactInput, alias_move, model_version_register, project_upsert
from tests.orchestrator.helpers import PROJECT_INFO, descriptor_document

FEATURES = [f"x{i}" for i in range(10)]
roles_ensure()
password = secrets.token_urlsafe(16)
admin = get_user_model().objects.create_superuser("bench-admin", password=password)
token = api_token_create(user=admin, name="benchmark")[1]
service_account_ensure()
rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 10)); y = X @ rng.normal(size=10) + 20
model = RandomForestRegressor(n_estimators=TREES, max_depth=8, random_state=0, n_jobs=1).fit(X, y)
blob = io.BytesIO(); pickle.dump(model, blob)
info = dict(PROJECT_INFO, variables=[{"name": f, "column_type": "Sensor", "units": "", "renamed_variable": f,
                                      "description": f} for f in FEATURES])
project = project_upsert(info=parse_project_info(info))
version = model_version_register(project=project, descriptor=parse_descriptor(descriptor_document(features=FEATURES)),
    files={"model": ArtifactInput(blob.getvalue(), "0001_[python]_penicillin_RF.pkl")}, user=admin, status="online",
    pickle_approved_by=admin)
alias_move(soft_sensor=version.soft_sensor, name="production", version=version, user=admin, reason="benchmark",
    signature=SignatureInput(password=password, meaning="approved", reason="", sha256=version_sha256(version)))
source = data_source_create(name="bench", kind="mqtt", url="BROKER", client_id="bench-PREFIX",
    rules=[{"pattern": "PREFIX/in/{device_id}/{observed_property}", "project_name": "penicillin", "batch_id": "live"}])
for d in range(DEVICES):
    deployment = deployment_create(user=admin, name=f"bench-R{d:03d}", soft_sensor=version.soft_sensor,
                                   alias="production", device_ids=[f"R{d:03d}"], max_input_age_seconds=600)
    publication_create(deployment=deployment, connection=source, target="PREFIX/out/{device_id}/{observed_property}")
from apps.orchestrator.registry_client import RegistryClient
predict_url = RegistryClient(base_url="", token="").predict_url(
    project_id=project.project_id, model_id=version.soft_sensor.model_id, number=version.number)
print(json.dumps({"token": token, "predict_path": predict_url}))
"""


def publisher(port: int, prefix: str, devices: int, duration: float, start: float, out: str) -> None:
    """Every second, one message per tag and device; devices spread evenly over the second."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{secrets.token_hex(3)}"
    )
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    rng = np.random.default_rng(1)
    done: dict[str, float] = {}
    sent = 0
    for second in range(int(duration)):
        for d in range(devices):
            due = start + second + d / devices
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            stamp = round(due, 3)
            values = rng.normal(size=len(FEATURES))
            for feature, value in zip(FEATURES, values, strict=True):
                body = json.dumps({"value": float(value), "timestamp": stamp})
                client.publish(f"{prefix}/in/R{d:03d}/{feature}", body, qos=1)
                sent += 1
            done[f"R{d:03d}|{stamp}"] = time.time()
    time.sleep(2)
    client.loop_stop()
    Path(out).write_text(json.dumps({"sent": sent, "done": done}))


def collector(port: int, prefix: str, seconds: float, out: str) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    received: list[tuple[str, str, float, str]] = []

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        body = json.loads(message.payload)
        received.append((body["device_id"], body["time"], time.time(), body["quality"]))

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-col-{secrets.token_hex(3)}"
    )
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(f"{prefix}/out/#", qos=1)
    client.loop_start()
    time.sleep(seconds)
    client.loop_stop()
    Path(out).write_text(json.dumps(received))


def cpu_sampler(groups: dict[str, list[int]], stop: Any, out: str) -> None:
    """Mean CPU per process group (children included, 100 % = one core), sampled every second.

    The process trees are walked again every second, so children started during the run count (PostgreSQL
    forks a backend per connection); CPU is the difference of each process's CPU times between samples, and a
    process first seen contributes what it used since it started. ``machine`` is every core's busy share.
    """
    import psutil

    def tree(pids: list[int]) -> list[Any]:
        found = []
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                found += [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return found

    def used(proc: Any) -> float | None:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            return None
        return times.user + times.system

    seen: dict[int, float] = {}
    for plist in (tree(pids) for pids in groups.values()):
        for proc in plist:
            if (value := used(proc)) is not None:
                seen[proc.pid] = value
    samples: dict[str, list[float]] = {name: [] for name in [*groups, "machine"]}
    psutil.cpu_percent(None)
    last = time.perf_counter()
    while not stop.is_set():
        time.sleep(1.0)
        now = time.perf_counter()
        elapsed, last = now - last, now
        for name, pids in groups.items():
            total = 0.0
            for proc in tree(pids):
                value = used(proc)
                if value is None:
                    continue
                total += value - seen.get(proc.pid, 0.0)
                seen[proc.pid] = value
            samples[name].append(100.0 * total / elapsed)
        samples["machine"].append(psutil.cpu_percent(None) * psutil.cpu_count())
    Path(out).write_text(json.dumps({k: round(float(np.mean(v)), 1) if v else 0.0 for k, v in samples.items()}))


def warm_up(predict_url: str, token: str) -> None:
    """Predict through every web process before publishing, as a running site already has.

    A web process's first predict starts its sandboxed runtime and unpickles the forest (seconds on this
    machine); without this the first estimates of the run measure that start, not the steady state.
    """
    from concurrent.futures import ThreadPoolExecutor

    import requests

    body = {"inputs": {name: [0.0] for name in FEATURES}}

    def call(_: int) -> None:
        response = requests.post(predict_url, json=body, headers={"Authorization": f"Token {token}"}, timeout=180)
        response.raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(call, range(16)))


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    arr = np.asarray(values) * 1000
    return {
        "p50": round(float(np.percentile(arr, 50)), 1),
        "p95": round(float(np.percentile(arr, 95)), 1),
        "max": round(float(arr.max()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--trees", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker processes (default 4)")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the backlog after publishing")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/6", help="Celery broker (its own Redis DB)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs) and the PostgreSQL database"
    )
    args = parser.parse_args()
    args.database = "postgres"

    import redis

    redis.Redis.from_url(args.broker).flushdb()
    holder = tempfile.TemporaryDirectory(prefix="stamm-connectors-bench-")
    if args.keep:
        holder.cleanup = lambda: None  # type: ignore[method-assign]
        holder._finalizer.detach()
    with holder as tmp_name:
        tmp = Path(tmp_name)
        print(f"work directory: {tmp}", file=sys.stderr)
        mqtt_port = free_port()
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(mqtt_port)
        bench = Bench(args, tmp)
        bench.env.update({"STAMM_CONNECTORS_STATUS_INTERVAL": "2"})
        prefix = f"bench{secrets.token_hex(3)}"
        try:
            bench.manage("migrate", "--noinput", "-v", "0")
            seed = (
                SEED.replace("TREES", str(args.trees))
                .replace("DEVICES", str(args.devices))
                .replace("BROKER", f"mqtt://127.0.0.1:{mqtt_port}")
                .replace("PREFIX", prefix)
            )
            seeded = bench.shell(seed)
            token = seeded["token"]
            bench.start_web()
            warm_up(f"{bench.url}{seeded['predict_path']}", token)
            bench.start_worker(concurrency=args.concurrency)
            bench.start("connectors", [PYTHON, "manage.py", "connectors_run"])
            deadline = time.time() + 60
            while time.time() < deadline and bench.query("SELECT connected FROM connectors_sourcestatus") != [(True,)]:
                time.sleep(0.5)
            deadline = time.time() + 180  # the worker consumes once beat's first heartbeat task has run
            while time.time() < deadline and not bench.query(
                "SELECT 1 FROM orchestrator_heartbeat WHERE name = 'beat'"
            ):
                time.sleep(0.5)
            rate = args.devices * len(FEATURES)
            print(f"publishing {rate} messages/s for {args.duration:g} s ({args.devices} devices)", file=sys.stderr)
            import psutil

            # The postmaster: the postgres process whose parent is not one (its backends are its children).
            postgres = [
                p.pid
                for p in psutil.process_iter(["name", "ppid"])
                if p.info["name"] == "postgres" and psutil.Process(p.info["ppid"]).name() != "postgres"
            ][:1]
            stop = multiprocessing.Event()
            groups = {name: [proc.pid] for name, proc in bench.procs.items()}
            groups["mosquitto"] = [broker.pid]
            groups["postgres (all)"] = postgres
            redis_pids = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]
            groups["redis (broker)"] = redis_pids
            start = time.time() + 3
            col = multiprocessing.Process(
                target=collector, args=(mqtt_port, prefix, args.duration + args.drain + 8, str(tmp / "received.json"))
            )
            pub = multiprocessing.Process(
                target=publisher, args=(mqtt_port, prefix, args.devices, args.duration, start, str(tmp / "sent.json"))
            )
            col.start()
            time.sleep(1)
            pub.start()
            # The load generator shares the two cores: its share is shown so the table accounts for the machine.
            groups["load generator (publisher, collector)"] = [pub.pid, col.pid]
            sampler = multiprocessing.Process(target=cpu_sampler, args=(groups, stop, str(tmp / "cpu.json")))
            sampler.start()
            pub.join()
            publish_end = time.time()
            stop.set()
            sampler.join()
            points_at_end = bench.query("SELECT COUNT(*) FROM tsdb_rawpoint")[0][0]
            sent = json.loads((tmp / "sent.json").read_text())
            expected = len(sent["done"])
            while time.time() < publish_end + args.drain:
                delivered = bench.query(
                    "SELECT COUNT(DISTINCT (device_id, snapshot_ns)) FROM connectors_delivery"
                    " WHERE status = 'delivered'"
                )[0][0]
                if delivered >= expected:
                    break
                time.sleep(1)
            drained_s = time.time() - publish_end
            col.join()
            received = json.loads((tmp / "received.json").read_text())
            cpu = json.loads((tmp / "cpu.json").read_text())
            points = bench.query("SELECT COUNT(*) FROM tsdb_rawpoint")[0][0]
            estimates_stored = bench.query(
                "SELECT COUNT(*) FROM tsdb_predictionpoint p JOIN tsdb_series s ON s.id = p.series_id"
                " WHERE s.batch_id = 'live'"
            )[0][0]
            runs = bench.query(
                "SELECT device_id, first_snapshot_ns, last_snapshot_ns, EXTRACT(EPOCH FROM finished_at)"
                " FROM orchestrator_pipelinerun WHERE status = 'succeeded' AND first_snapshot_ns IS NOT NULL"
                " ORDER BY finished_at"
            )
            run_count = bench.query("SELECT status, COUNT(*) FROM orchestrator_pipelinerun GROUP BY status")
            run_errors = bench.query(
                "SELECT LEFT(error, 160), COUNT(*) FROM orchestrator_pipelinerun WHERE status IN ('failed', 'stale')"
                " GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
            )
            run_tasks = bench.query(
                "SELECT COUNT(DISTINCT task_id), COUNT(*) FROM orchestrator_pipelinerun WHERE task_id <> ''"
            )[0]
            run_means = bench.query(
                "SELECT AVG(snapshots), AVG(health_ms), AVG(detect_ms), AVG(infer_ms), AVG(store_ms),"
                " AVG(EXTRACT(EPOCH FROM finished_at - started_at) * 1000) FROM orchestrator_pipelinerun"
                " WHERE status = 'succeeded'"
            )[0]
        finally:
            bench.close()
            broker.terminate()
            broker.wait(10)

    done = {tuple(k.split("|")): v for k, v in sent["done"].items()}
    by_device: dict[str, list[tuple[int, int, float]]] = {}
    for device, first, last, finished in runs:
        by_device.setdefault(device, []).append((int(first), int(last), float(finished)))
    to_stored, to_back, third = [], [], {"first": [], "last": []}
    first_back: dict[tuple[str, str], float] = {}
    qualities: dict[str, int] = {}
    for device, moment, at, quality in received:
        key = (device, moment)
        if key not in first_back or at < first_back[key]:
            first_back[key] = at
        qualities[quality] = qualities.get(quality, 0) + 1
    from apps.tsdb.types import from_ns

    for (device, stamp), published in done.items():
        t_ns = int(round(float(stamp) * 1000)) * 1_000_000
        stored_at = next((f for lo, hi, f in by_device.get(device, []) if lo <= t_ns <= hi), None)
        if stored_at is not None:
            to_stored.append(stored_at - published)
        back = first_back.get((device, from_ns(t_ns).isoformat()))
        if back is not None:
            to_back.append(back - published)
            position = (published - start) / max(args.duration, 1)
            if position < 1 / 3:
                third["first"].append(back - published)
            elif position > 2 / 3:
                third["last"].append(back - published)
    result = {
        "devices": args.devices,
        "tags": len(FEATURES),
        "messages_per_second": args.devices * len(FEATURES),
        "duration_s": args.duration,
        "messages_in": sent["sent"],
        "points_stored": points,
        "points_stored_when_publishing_ended": points_at_end,
        "snapshots": len(done),
        "estimates_stored": estimates_stored,
        "estimates_back": len(first_back),
        "estimate_messages_back": len(received),
        "qualities": qualities,
        "publish_to_stored_ms": percentiles(to_stored),
        "publish_to_estimate_back_ms": percentiles(to_back),
        "estimate_back_first_third_ms": percentiles(third["first"]),
        "estimate_back_last_third_ms": percentiles(third["last"]),
        "drain_seconds_after_publishing": round(drained_s, 1),
        "pipeline_runs": dict(run_count),
        "run_errors": dict(run_errors),
        "runs_per_task": round(run_tasks[1] / run_tasks[0], 1) if run_tasks[0] else 0.0,
        "run_means": dict(
            zip(
                ("snapshots", "health_ms", "detect_ms", "infer_ms", "store_ms", "total_ms"),
                (round(float(v or 0), 1) for v in run_means),
                strict=True,
            )
        ),
        "cpu_percent_while_publishing": {k: round(v, 1) for k, v in cpu.items()},
        "worker_concurrency": args.concurrency,
        "load_average": os.getloadavg(),
    }
    print(f"{'figure':44s} value", file=sys.stderr)
    for key, value in result.items():
        print(f"{key:44s} {value}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

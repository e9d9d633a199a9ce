"""A training plan's triggers with a real Celery worker (and beat) on Redis: a scheduled tick and a drift alert
each start exactly one run of the plan, through the same workflow, which records its trigger and batches.

Everything runs in subprocesses sharing one SQLite file (the embedded settings in a temporary
``STAMM_VAR_DIR``): a copy of the run's database with four IndPenSim batches imported; a Django process
(``tests.django_shell``) registers the production model and its deployment and creates the plan (a crontab
once an hour, half an hour from now, whose beat entry last ran two hours ago: overdue, so beat ticks as soon
as it starts and not again during the test); then a worker and beat start. Beat's first tick must start one
run; the same tick delivered again (same message id) must not start another. Then a drift alert opens on
the deployment: one run; the open alert's next verdict, and the signal sent again, start none.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.embedded_db import REPO
from tests.orchestrator.helpers import pickled_rf_file

from . import test_celery_worker
from .test_celery_worker import BROKER, worker_environment

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]
shell = test_celery_worker.shell  # the fixture: the test's database and a Django process on it

#: Run in the Django process with ``MODEL``, the path of the production RF trained and pickled by the test process
#: (``register_rf(pickled=...)``: the Django process then never loads scikit-learn).
SETUP = """
from datetime import timedelta
from pathlib import Path
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from apps.accounts.services import roles_ensure
from apps.orchestrator.services import deployment_create
from apps.training.evaluation import INDPENSIM_ONLINE_INPUTS
from apps.training.services import training_plan_create
from tests.orchestrator.helpers import register_rf
roles_ensure()
owner = get_user_model().objects.create_user("planner", password="planner-password-long")
owner.groups.add(Group.objects.get(name="modeler"))
version, _ = register_rf(user=owner, pickled=Path(MODEL).read_bytes())
deployment = deployment_create(name="live", soft_sensor=version.soft_sensor, alias="production")
training_plan_create(
    user=owner, name="every-minute", project=version.soft_sensor.project, device_id="R1", window_days=3650,
    holdout_newest=1, quiet_seconds=0, schedule=f"{(timezone.now().minute + 30) % 60} * * * *",
    deployment=deployment, on_drift_alert=True,
    config={"target": "penicillin_concentration", "features": list(INDPENSIM_ONLINE_INPUTS),
            "learners": [{"key": "random_forest", "hyperparameters": {"n_estimators": 8, "max_depth": 6}}],
            "gates": {"r2_min": 0.5, "beats_persistence": False}, "alias": "challenger",
            "model_id": "0002_[python]_penicillin_plan"},
)
PeriodicTask.objects.filter(name__startswith="training plan").update(last_run_at=timezone.now() - timedelta(hours=2))
"""
REDELIVER = """
import json
from django_celery_beat.models import PeriodicTask
from apps.training.models import TrainingRun
from stamm_site.celery import app
run = TrainingRun.objects.get(trigger="schedule")
task = PeriodicTask.objects.get(name__startswith="training plan")
# The tick's message again, with its id (what a broker redelivers after a lost acknowledgement).
app.send_task(task.task, kwargs=json.loads(task.kwargs), task_id=run.trigger_key.split(":", 1)[1]).get(timeout=60)
"""
ALERT = """
from django.db import transaction
from apps.drift.models import DriftJob, DriftResult
from apps.drift.services import alert_raise
from apps.orchestrator.models import Deployment
deployment = Deployment.objects.get(name="live")
job = DriftJob.objects.create(name="psi", deployment=deployment, detector="psi", reference={"kind": "training"},
                              test={"kind": "recent"})
for _ in range(2):  # the second verdict updates the open alert: no new trigger
    with transaction.atomic():
        result = DriftResult.objects.create(job=job, deployment=deployment, trigger="manual", detector="psi",
                                            drift=True, score=2.0, threshold=1.0)
        alert = alert_raise(job=job, result=result)
print(alert.pk)
"""
RESEND = """
import sys
from apps.drift.models import Alert
from apps.training.services import plans_on_alert_opened
alert = Alert.objects.get()
plans_on_alert_opened(alert_id=alert.pk, deployment_id=alert.job.deployment_id)
"""
#: The runs, read straight from the SQLite file the processes share (a Django process would compete with the
#: worker for the two cores while it polls).
REPORT = """
SELECT r.trigger, r.trigger_key, r.status, p.name, r.trigger_detail, r.config, v.number
FROM training_trainingrun r
LEFT JOIN training_trainingplan p ON p.id = r.plan_id
LEFT JOIN registry_modelversion v ON v.id = r.promoted_version_id
ORDER BY r.id
"""
FINISHED = ("promoted", "registered", "rejected", "failed", "awaiting_approval")


def report(env) -> list[dict]:
    with sqlite3.connect(Path(env["STAMM_VAR_DIR"]) / "stamm.sqlite3", timeout=30) as conn:
        rows = conn.execute(REPORT).fetchall()
    runs = []
    for trigger, key, status, plan, detail, config, promoted in rows:
        detail, config = json.loads(detail), json.loads(config)
        runs.append({"trigger": trigger, "key": key, "status": status, "plan": plan,
                     "batches": detail.get("batches"), "holdout": detail.get("split", {}).get("holdout"),
                     "alert": detail.get("alert"), "alias": config.get("alias"), "promoted": promoted})
    return runs


def wait_for(env, predicate, *, seconds: float, what: str) -> list[dict]:
    deadline = time.monotonic() + seconds
    runs = report(env)
    while not predicate(runs):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}: {runs}")
        time.sleep(2)
        runs = report(env)
    return runs


def start(env, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "stamm_site", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        return process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


@pytest.fixture
def env(tmp_path):
    """The worker test's environment, models run in process (the plan's runs evaluate them there anyway)."""
    return {**worker_environment(tmp_path), "STAMM_PREDICTOR": "local"}


def test_scheduled_and_drift_triggered_runs_start_exactly_once(env, shell, tmp_path):
    shell.run(f"MODEL = {str(pickled_rf_file(tmp_path / 'rf.pkl'))!r}\n" + SETUP)
    redis.Redis.from_url(BROKER).flushdb()  # no message left by an earlier run
    worker = start(
        env,
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--loglevel",
        "WARNING",
        "--hostname",
        f"plans-{os.getpid()}@%h",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    )
    beat = start(
        env,
        "beat",
        "--scheduler",
        "django_celery_beat.schedulers:DatabaseScheduler",
        "--loglevel",
        "WARNING",
        "--schedule",
        str(tmp_path / "beat-schedule"),
    )
    logs = ""
    try:
        # Beat's first tick (overdue when it starts) starts one run; the next is half an hour away.
        runs = wait_for(env, lambda r: any(x["trigger"] == "schedule" for x in r), seconds=150, what="the tick")
        logs += stop(beat)
        runs = wait_for(env, lambda r: all(x["status"] in FINISHED for x in r), seconds=300, what="the run")
        shell.run(REDELIVER)
        runs = report(env)
        assert [x["trigger"] for x in runs] == ["schedule"], runs
        # A drift alert opens on the deployment: one run; its second verdict and a resent signal start none.
        shell.run(ALERT)
        runs = wait_for(env, lambda r: any(x["trigger"] == "drift_alert" for x in r), seconds=120, what="alert run")
        shell.run(RESEND)
        runs = wait_for(env, lambda r: all(x["status"] in FINISHED for x in r), seconds=300, what="the alert run")
        time.sleep(3)  # a duplicate, if any, would have been picked up by now
        runs = report(env)
        assert worker.poll() is None, "the worker died"
    finally:
        if beat.poll() is None:
            logs += stop(beat)
        logs += stop(worker)
    assert [x["trigger"] for x in runs] == ["schedule", "drift_alert"], (runs, logs)
    scheduled, alerted = runs
    assert scheduled["key"].startswith("schedule:") and alerted["key"] == f"drift_alert:{alerted['alert']}"
    for run in runs:
        assert run["plan"] == "every-minute" and run["status"] == "promoted", (run, logs)
        assert run["batches"] == ["batch_92", "batch_93", "batch_96", "batch_98"] and run["holdout"] == ["batch_98"]
        assert run["alias"] == "challenger"  # a plan promotes a challenger alias by itself, never production
    assert (scheduled["promoted"], alerted["promoted"]) == (1, 2)

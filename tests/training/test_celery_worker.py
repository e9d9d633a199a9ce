"""The training workflow through a real Celery worker on Redis (chain + chord across worker processes).

Everything runs in subprocesses sharing one SQLite file and one media folder (the embedded settings in a
temporary ``STAMM_VAR_DIR``): a copy of the run's database with four IndPenSim batches imported (the
``shell`` fixture), a two-process worker, then ``registry_train --queue`` sends the canvas and follows it
until the run has finished.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.training.evaluation import INDPENSIM_ONLINE_INPUTS
from tests.conftest import INDPENSIM_DIR
from tests.django_shell import DjangoShell
from tests.embedded_db import (
    REPO,
    WORKER_ENVIRONMENT,
    embedded_environment,
    manage,
    migrated_database,
    template,
    var_copied,
)
from tests.services import redis_available, redis_test_url, require

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]
BROKER = os.environ.get("STAMM_TEST_TRAINING_REDIS_URL", redis_test_url(2))

SETUP = """
from apps.registry.project_info import parse_project_info
from apps.registry.services import project_upsert
project_upsert(info=parse_project_info({"project_ID": "P0001", "project_name": "penicillin",
    "description": "IndPenSim", "coordinator": "C", "variables": []}), replace_variables=True)
"""
REPORT = """
import json
from apps.training.models import TrainingRun
run = TrainingRun.objects.get()
print(json.dumps({"status": run.status, "task_id": run.task_id, "error": run.error,
    "steps": {s.name: [s.status, s.attempts] for s in run.steps.all()},
    "versions": sorted(c.version.number for c in run.candidates.all() if c.version_id),
    "alias": run.promoted_version.aliases.get().name if run.promoted_version_id else None}))
"""


@pytest.fixture
def env(tmp_path):
    return worker_environment(tmp_path)


def worker_environment(tmp_path) -> dict[str, str]:
    """Subprocesses on the embedded settings in a temporary var folder, Celery on the test Redis."""
    require(redis_available(), "Redis")
    return {
        **embedded_environment(tmp_path / "var"),
        **WORKER_ENVIRONMENT,
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
        "DJANGO_LOG_LEVEL": "WARNING",
    }


def _import_batches(folder: Path) -> None:
    migrated_database(folder)
    paths = [str(INDPENSIM_DIR / f"batch_{n}.csv") for n in (92, 93, 96, 98)]
    manage(
        embedded_environment(folder),
        "tsdb_import_csv",
        *paths,
        "--project",
        "penicillin",
        "--device",
        "R1",
        "--batch-from-filename",
        "--start",
        "2026-01-05T00:00:00Z",
        "--no-progress",
        "--skip-checks",  # see tests.embedded_db.WORKER_ENVIRONMENT
    )


@pytest.fixture
def shell(env) -> Iterator[DjangoShell]:
    """The test's database, fresh: migrated, batches 92, 93, 96, 98 imported for device R1 (built once per run
    and shared by the worker tests of every xdist worker, copied into the test's var folder); and a Django
    process on it to set up and inspect it."""
    var_copied(template("indpensim-r1", _import_batches), Path(env["STAMM_VAR_DIR"]))
    with DjangoShell(env) as django_shell:
        yield django_shell


def test_training_chain_and_chord_on_a_real_worker(env, shell):
    shell.run(SETUP)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "stamm_site",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"training-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = manage(
            env,
            "registry_train",
            "--skip-checks",  # see tests.embedded_db.WORKER_ENVIRONMENT
            "--project",
            "P0001",
            "--target",
            "penicillin_concentration",
            "--batches",
            "batch_92",
            "batch_93",
            "batch_96",
            "batch_98",
            "--holdout",
            "batch_98",
            "--features",
            *INDPENSIM_ONLINE_INPUTS,
            "--learner",
            "random_forest:n_estimators=30,max_depth=12",
            "--learner",
            "decision_tree:max_depth=8",
            "--r2-min",
            "0.9",
            "--no-persistence-gate",
            "--alias",
            "staging",
            "--queue",
            "--no-progress",
            timeout=400,
        )
        assert worker.poll() is None, "the worker died"
    finally:
        worker.terminate()
        try:
            logs, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            logs, _ = worker.communicate()
    report = json.loads(shell.run(REPORT).strip().splitlines()[-1])
    assert report["status"] == "promoted", (report, out, logs)
    assert report["task_id"]
    assert report["versions"] == [1, 2] and report["alias"] == "staging"
    assert all(status == "succeeded" and attempts == 1 for status, attempts in report["steps"].values()), report[
        "steps"
    ]
    assert set(report["steps"]) >= {"train:random_forest", "train:decision_tree", "evaluate", "promote"}
    assert "random_forest v" in out and "status: promoted" in out

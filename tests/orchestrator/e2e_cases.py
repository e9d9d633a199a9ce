"""End to end with real processes: gunicorn (registry + ingest API), a Celery worker with embedded beat, and
the database they share. Three stacks: a redis-server of the test's own + a SQLite file in WAL mode, Redis +
a throwaway PostgreSQL database, and the embedded default (SQLite + kombu's filesystem broker, no server at
all).

Everything goes through public interfaces: raw points are POSTed to ``/api/v1/tsdb/points``; the worker
calls the registry's REST predict endpoint through a real HTTP proxy in this process (which can delay or
fail requests); results are read from the database the stack writes. Faults: worker SIGKILLed mid-run,
registry answering 500 twice, Redis restarted mid-stream (a redis-server of the test's own, so the shared
one is never touched), late and out-of-order data, a missing input. No fault needs a manual step.

The cases are written once here and run on each stack by ``test_worker_e2e_<stack>.py``: three files, so
pytest-xdist runs the stacks side by side (each file's tests stay on one worker, with its stack booted once).
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from collections.abc import Iterator

import pytest

from tests.services import postgres_available, redis_available, require

from .e2e_stack import BROKER, PrivateRedis, Stack, assert_exactly_once, wait_for
from .helpers import FEATURES, load_batch, train_rf

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]
#: What each ``test_worker_e2e_<stack>.py`` takes with ``import *``: the marks, the fixtures, the cases.
__all__ = [
    "pytestmark",
    "model",
    "frame",
    "stack_fixture",
    "test_replayed_batch_gets_exactly_one_prediction_per_snapshot",
    "test_late_and_out_of_order_data_is_scored",
    "test_a_missing_input_records_skipped_runs_with_the_reason",
    "test_registry_500_twice_then_200_is_retried_and_stored",
    "test_worker_killed_mid_run_is_redone_without_duplicates",
]


@pytest.fixture(scope="module")
def model():
    return train_rf()


@pytest.fixture(scope="module")
def frame():
    return load_batch(93)


def stack_fixture(kind: str):
    """The module's stack: ``sqlite``: production-style on a redis-server of its own (``stack.redis``, which
    the module may restart); ``postgres``: on the shared test Redis; ``embedded``: SQLite + kombu's filesystem
    broker."""

    @pytest.fixture(scope="module")
    def stack(tmp_path_factory) -> Iterator[Stack]:
        private = None
        if kind == "embedded":
            booted = Stack(tmp_path_factory.mktemp("e2e-embedded"), "sqlite", broker="")  # filesystem://
        elif kind == "sqlite":  # the broker's faults are tested on this stack: a Redis of its own
            require(shutil.which("redis-server") is not None, "redis-server")
            private = PrivateRedis(tmp_path_factory.mktemp("private-redis"))
            private.start()
            booted = Stack(tmp_path_factory.mktemp("e2e-sqlite"), "sqlite", broker=private.url)
            booted.redis = private
        else:
            require(redis_available(), "Redis")
            require(postgres_available(), "PostgreSQL")
            import redis

            redis.Redis.from_url(BROKER).flushdb()
            booted = Stack(tmp_path_factory.mktemp(f"e2e-{kind}"), kind)
        try:
            booted.boot()
            yield booted
        finally:
            booted.close()
            if private is not None:
                private.stop()

    return stack


def test_replayed_batch_gets_exactly_one_prediction_per_snapshot(stack, model, frame):
    for start in range(0, 150, 10):  # a replay: 15 ingests of 10 rows
        stack.ingest(frame, batch_id="batch_93", rows=range(start, start + 10))
    assert_exactly_once(stack, "batch_93", list(range(150)), model, frame)
    statuses = {status for _, status, *_ in stack.runs("batch_93")}
    assert statuses <= {"succeeded"}, stack.runs("batch_93")


def test_late_and_out_of_order_data_is_scored(stack, model, frame):
    chunks = [range(s, s + 5) for s in range(0, 60, 5)]
    random.Random(7).shuffle(chunks)
    for rows in chunks:
        stack.ingest(frame, batch_id="batch_ooo", rows=rows)
    assert_exactly_once(stack, "batch_ooo", list(range(60)), model, frame)


def test_a_missing_input_records_skipped_runs_with_the_reason(stack):
    frame = load_batch(93)
    stack.ingest(frame, batch_id="batch_nop", rows=range(0, 8), variables=[v for v in FEATURES if v != "pH"])
    wait_for(lambda: any(r[1] == "skipped" for r in stack.runs("batch_nop")), 60, "a skipped run")
    skipped = [r for r in stack.runs("batch_nop") if r[1] == "skipped"]
    assert sum(r[4] for r in skipped) == 8 and "missing: pH" in skipped[0][5]
    assert stack.predictions("batch_nop") == []


def test_registry_500_twice_then_200_is_retried_and_stored(stack, model, frame):
    stack.proxy.fail_next = 2
    stack.ingest(frame, batch_id="batch_flaky", rows=range(0, 20))
    assert_exactly_once(stack, "batch_flaky", list(range(20)), model, frame)
    assert stack.proxy.failed == 2
    assert any(r[6] == 3 and r[1] == "succeeded" for r in stack.runs("batch_flaky")), stack.runs("batch_flaky")


def test_worker_killed_mid_run_is_redone_without_duplicates(stack, model, frame):
    stack.proxy.delay = 3.0  # every predict call now takes 3 s: plenty of time to kill the worker inside one
    try:
        stack.ingest(frame, batch_id="batch_kill", rows=range(0, 30))
        wait_for(lambda: any(r[1] == "running" for r in stack.runs("batch_kill")), 30, "a running run")
        time.sleep(0.5)
        stack.kill("worker", signal.SIGKILL)
        killed = [r for r in stack.runs("batch_kill") if r[1] == "running"]
        assert killed, "the killed run is left running (its worker died)"
        stack.proxy.delay = 0.0
        stack.ingest(frame, batch_id="batch_kill", rows=range(30, 40))
        stack.start_worker("worker")
        assert_exactly_once(stack, "batch_kill", list(range(40)), model, frame)
        runs = {r[0]: r for r in stack.runs("batch_kill")}
        assert runs[killed[0][0]][1] == "stale", runs
        assert "lease" in runs[killed[0][0]][5]
    finally:
        stack.proxy.delay = 0.0
        if "worker" not in stack.processes:
            stack.start_worker("worker")

"""A task round trip through a real Celery worker process on Redis (not eager)."""
import os
import subprocess
import sys
import time

import pytest
import redis
from celery import Celery

from tests.embedded_db import REPO, WORKER_ENVIRONMENT
from tests.services import REDIS_URL, redis_available, require

pytestmark = pytest.mark.celery_worker


@pytest.fixture
def redis_worker():
    require(redis_available(), "Redis")
    redis.Redis.from_url(REDIS_URL).flushdb()  # nothing an earlier run left queued comes before the ping
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "stamm_site.settings.test",
        **WORKER_ENVIRONMENT,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
    }
    env.pop("DATABASE_URL", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "stamm_site", "worker", "--pool", "solo", "--loglevel", "WARNING",
         "--hostname", f"roundtrip-{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_task_round_trip_through_a_real_worker(redis_worker):
    # Not the current app: shared tasks would then be sent through it (to Redis) by every later test in this
    # process instead of running eagerly on the project's app.
    client = Celery("roundtrip-client", broker=REDIS_URL, backend=REDIS_URL, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
    started = time.perf_counter()
    result = client.send_task("orchestrator.ping", args=["hello"])
    assert result.get(timeout=60) == "pong:hello"
    assert redis_worker.poll() is None, "worker died"
    # A second call measures the warm round trip; it must also come back through the worker.
    assert client.send_task("orchestrator.ping", args=["again"]).get(timeout=10) == "pong:again"
    assert time.perf_counter() - started < 60

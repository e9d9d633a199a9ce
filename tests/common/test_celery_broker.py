"""The two broker settings that keep a worker alive through a Redis restart (stamm_site/celery.py);
the restart itself, with real processes, is ``tests/orchestrator/test_worker_e2e_sqlite.py``."""

from __future__ import annotations

import time

import pytest
from celery.worker.consumer import Consumer
from kombu import Connection
from redis import exceptions as redis_exceptions

from stamm_site.celery import WITHOUT_CLUSTER_STEPS, StammConsumer, app
from tests.services import REDIS_URL, redis_available, require


def test_a_redis_channel_whose_connection_was_collected_reports_a_connection_error():
    """Celery's reconnect path collects the broken connection, then closes it; closing restores the
    unacknowledged messages through the collected transport. kombu raised AttributeError there (a crash);
    ours raises the Redis ConnectionError, which Celery treats as a lost connection."""
    require(redis_available(), "Redis")
    connection = Connection(REDIS_URL, transport="stamm_site.celery:RedisTransport")
    try:
        channel = connection.channel()
        connection.transport.client = None  # what Connection.collect() leaves behind
        with pytest.raises(redis_exceptions.ConnectionError) as error:
            channel._connparams()
        assert isinstance(error.value, connection.connection_errors)
    finally:
        connection.transport.client = connection
        connection.release()


def test_workers_never_run_gossip_mingle_or_heartbeat_whatever_their_command_line(monkeypatch):
    assert app.conf.worker_consumer == "stamm_site.celery:StammConsumer"
    received: dict = {}
    monkeypatch.setattr(Consumer, "__init__", lambda self, *args, worker_options=None, **kwargs: received.update(
        worker_options
    ))
    StammConsumer(lambda *args: None, worker_options={"without_gossip": False, "concurrency": 2})
    assert received == {**WITHOUT_CLUSTER_STEPS, "concurrency": 2}
    assert WITHOUT_CLUSTER_STEPS == {"without_gossip": True, "without_mingle": True, "without_heartbeat": True}


def test_a_worker_keeps_its_database_connection_between_tasks_unless_it_is_old(transactional_db):
    """Celery's Django fixup closed the connection before and after every task (a new PostgreSQL backend per
    pipeline task); with ``CELERY_DB_REUSE_MAX`` it is kept, and our ``task_prerun`` receiver still drops one
    past its age, as Django does between requests."""
    from types import SimpleNamespace

    from celery.fixups.django import DjangoWorkerFixup
    from celery.signals import task_prerun
    from django.db import connection

    fixup = DjangoWorkerFixup(app)
    class Task:
        request = SimpleNamespace(is_eager=False)

    task = Task()
    connection.ensure_connection()
    connection.close_at = time.monotonic() + 60  # a kept connection (tests run with CONN_MAX_AGE 0)
    kept = connection.connection
    for _ in range(5):
        task_prerun.send(sender=task, task_id="t", task=task)
        fixup.on_task_prerun(task)
        fixup.on_task_postrun(task)
    assert connection.connection is kept
    connection.close_at = time.monotonic() - 1
    Task.request.is_eager = True  # run inside its caller: the caller's connection is not touched
    task_prerun.send(sender=task, task_id="t", task=task)
    assert connection.connection is kept
    Task.request.is_eager = False
    task_prerun.send(sender=task, task_id="t", task=task)
    assert connection.connection is None

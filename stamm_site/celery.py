"""The Celery application: configured from Django settings (``CELERY_*``), tasks autodiscovered per app.

Workers survive a Redis restart (``docs/orchestrator.md``, "Broker restarts"). With celery/kombu 5.7 a
worker that loses Redis while it holds an unacknowledged message (late acks: always, here) exits with
``Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")``: Celery's
reconnect path first detaches the broken connection from its transport, then closes it, and closing
the Redis channel restores the unacknowledged messages through that detached transport; an ack of a
task that was running during the outage takes the same path later. kombu reports a missing connection
there as ``AttributeError``, which no caller treats as a connection error. ``RedisTransport`` reports it
as ``redis.ConnectionError`` instead, which Celery already handles: it logs, reconnects and goes on. The
messages that could not be restored or acknowledged are not lost for the pipeline, whose work lives in
the database (pending flags, leases) and is queued again by beat's sweep.

A worker keeps its database connection from task to task (``CELERY_DB_REUSE_MAX``; Celery's Django fixup
would otherwise close it before and after every task, so each pipeline or delivery task paid a new
PostgreSQL connection and backend). Before each task ``close_old_connections`` still drops one that is past
``CONN_MAX_AGE`` or broke (a database restart), exactly as Django does between requests.

Workers also run without gossip, mingle and worker heartbeats (``StammConsumer``), whatever their
command line says: extra broker channels the platform does not use (health reads beat's heartbeat task),
and the usual advice for Redis reconnect trouble (celery/celery#8030).
"""
from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_prerun
from celery.worker.consumer import Consumer
from kombu.transport import redis as kombu_redis
from redis import exceptions as redis_exceptions

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stamm_site.settings.local")

#: Worker options forced on: the bootsteps that do not survive a Redis blip, switched off.
WITHOUT_CLUSTER_STEPS = {"without_gossip": True, "without_mingle": True, "without_heartbeat": True}


class StammConsumer(Consumer):
    """Celery's consumer with gossip, mingle and worker heartbeats always off (see the module docstring)."""

    def __init__(self, *args: Any, worker_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, worker_options={**(worker_options or {}), **WITHOUT_CLUSTER_STEPS}, **kwargs)


class _RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # the connection was closed under us (see the module docstring)
            raise redis_exceptions.ConnectionError("the broker connection is closed; the worker reconnects")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport, with a closed connection reported as a connection error."""

    Channel = _RedisChannel


app = Celery("stamm_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _connections_checked(task: Any = None, **kwargs: Any) -> None:
    """Drop a kept connection that is too old or broken before the task uses it (see the module docstring).
    An eager task (run inside its caller) is left alone: the connection is the caller's, mid-transaction."""
    from django.db import close_old_connections

    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    close_old_connections()

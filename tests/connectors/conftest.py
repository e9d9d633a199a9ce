"""Connectors fixtures: the orchestrator's real RF soft sensor and deployment, peers that skip or fail."""

from __future__ import annotations

import pytest

from tests.orchestrator.conftest import _fresh_process_caches, deployment, registry_url, rf, sent_tasks  # noqa: F401
from tests.services import mosquitto_available, require

from .peers import PrivateBroker, shared_broker


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    """The shared broker (topics prefixed per test)."""
    require(mosquitto_available(), "Mosquitto")
    return shared_broker()


@pytest.fixture
def private_broker(tmp_path):
    require(mosquitto_available(), "Mosquitto")
    broker = PrivateBroker(tmp_path)
    yield broker
    broker.stop()


@pytest.fixture
def runner_threads():
    """Start runners with ``runner_threads(**options)``; every one is stopped at the end, and every database
    connection opened meanwhile by a thread other than the test's must then be closed (an open one is a session
    that outlives the runner; on PostgreSQL it kept the test database from being dropped)."""
    import threading

    from django.db.backends.signals import connection_created

    from .peers import RunnerThread

    started: list[RunnerThread] = []
    opened = []

    def created(sender, connection, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            opened.append((threading.current_thread().name, connection))

    def start(**options):
        thread = RunnerThread(**options)
        started.append(thread)
        return thread

    connection_created.connect(created, weak=False)
    try:
        yield start
        for thread in started:
            thread.stop()
    finally:
        connection_created.disconnect(created)
    left_open = [name for name, connection in opened if connection.connection is not None]
    assert not left_open, f"database connections left open by the runner's threads: {left_open}"

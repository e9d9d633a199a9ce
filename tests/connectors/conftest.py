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
    """Start runners with ``runner_threads(**options)``; every one is stopped at the end."""
    from .peers import RunnerThread

    started: list[RunnerThread] = []

    def start(**options):
        thread = RunnerThread(**options)
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()

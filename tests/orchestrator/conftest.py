"""Orchestrator fixtures: a real RF soft sensor served by the registry over HTTP (live_server)."""

from __future__ import annotations

import pytest

from apps.orchestrator import services

from .helpers import FEATURES, load_batch, register_rf


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Per-process caches (health verdict, registry client, service token) must not leak between tests."""
    services.pipeline_health_forget()
    services.registry_access_reset()
    yield
    services.pipeline_health_forget()
    services.registry_access_reset()


@pytest.fixture
def registry_url(live_server, settings):
    """The pipeline calls the registry of this very server (the default deployment)."""
    settings.STAMM_REGISTRY_URL = live_server.url
    settings.STAMM_PIPELINE_RETRY_BACKOFF_MS = 10
    return live_server.url


@pytest.fixture
def rf(transactional_db, role_users):
    """(version, fitted model): an online random forest on FEATURES with alias ``production``."""
    return register_rf(user=role_users["modeler"])


@pytest.fixture
def deployment(rf, role_users):
    version, _ = rf
    return services.deployment_create(
        user=role_users["modeler"],
        name="penicillin-rf",
        soft_sensor=version.soft_sensor,
        alias="production",
        max_input_age_seconds=600,
    )


@pytest.fixture(scope="session")
def batch92():
    return load_batch(92)


@pytest.fixture
def features():
    return list(FEATURES)


@pytest.fixture
def sent_tasks(monkeypatch):
    """Records the run tasks the pipeline sends (the broker is an in-memory one without a worker here)."""
    from apps.orchestrator import tasks

    sent: list[dict] = []

    def record(args=None, kwargs=None, countdown=None, **options):
        sent.append({"args": list(args or []), "countdown": countdown})

    monkeypatch.setattr(tasks.run_groups, "apply_async", record)
    return sent

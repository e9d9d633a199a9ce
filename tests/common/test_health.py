"""GET /api/v1/health/: 200 when every part is healthy, 503 naming the part that failed and why."""
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from apps.common.health import CheckResult, health_report
from apps.orchestrator.services import heartbeat_record
from stamm_site.celery import app as celery_app

URL = "/api/v1/health/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_heartbeat():
    heartbeat_record(name="beat")


def test_healthy_platform_answers_200(api_client_for, fresh_heartbeat):
    response = api_client_for("operator").get(URL)
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) >= {"database", "broker", "timeseries", "beat"}
    assert all(part["ok"] for part in body["checks"].values())


def test_broken_broker_url_gives_503_naming_the_broker(api_client_for, fresh_heartbeat, monkeypatch):
    # A real connection attempt to a port nothing listens on.
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = api_client_for("operator").get(URL)
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"]["ok"] is False
    detail = body["checks"]["broker"]["detail"].lower()
    assert "refused" in detail or "error" in detail


def test_broken_database_gives_503_naming_the_database(role_users, fresh_heartbeat, monkeypatch):
    from rest_framework.test import APIClient

    def refuse(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    client = APIClient()
    client.force_authenticate(role_users["admin"])  # superuser: no database needed to authorise
    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get(URL)
    body = response.json()
    assert response.status_code == 503
    assert "database" in body["failing"]
    assert "Connection refused" in body["checks"]["database"]["detail"]


def test_stale_heartbeat_fails_the_beat_part(api_client_for):
    heartbeat_record(name="beat", now=timezone.now() - timedelta(minutes=30))
    body = api_client_for("manager").get(URL).json()
    assert body["failing"] == ["beat"]
    assert "more than" in body["checks"]["beat"]["detail"]


def test_missing_heartbeat_fails_the_beat_part(api_client_for):
    response = api_client_for("manager").get(URL)
    assert response.status_code == 503
    assert "no scheduler heartbeat" in response.json()["checks"]["beat"]["detail"]


def test_an_exception_inside_a_check_is_that_part_failing():
    def explode() -> CheckResult:
        raise RuntimeError("disk on fire")

    report = health_report({"ok": lambda: CheckResult(ok=True, detail="fine"), "bad": explode})
    assert report["status"] == "failing"
    assert report["failing"] == ["bad"]
    assert report["checks"]["bad"]["detail"] == "RuntimeError: disk on fire"
    assert report["checks"]["ok"]["ok"] is True

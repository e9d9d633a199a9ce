"""The admin: deployments are created through the same service rules; runs and watermarks are listed."""

from __future__ import annotations

import pytest

from apps.orchestrator.models import Deployment

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_lists_runs_watermarks_and_deployments(client, role_users, deployment):
    client.force_login(role_users["admin"])
    for model in ("deployment", "pipelinerun", "watermark", "heartbeat"):
        response = client.get(f"/admin/orchestrator/{model}/")
        assert response.status_code == 200, model
    assert b"penicillin-rf" in client.get("/admin/orchestrator/deployment/").content


def test_admin_creates_a_deployment_through_the_service(client, role_users, rf):
    client.force_login(role_users["admin"])
    version, _ = rf
    form = {
        "name": "from-admin",
        "description": "",
        "soft_sensor": version.soft_sensor.pk,
        "alias": "production",
        "pinned_version": "",
        "device_ids": "[]",
        "batch_pattern": "batch_9*",
        "input_mapping": "{}",
        "max_input_age_seconds": 900,
        "score_from_0": "",
        "score_from_1": "",
        "enabled": "on",
    }
    response = client.post("/admin/orchestrator/deployment/add/", form)
    assert response.status_code == 302, response.content[:2000]
    created = Deployment.objects.get(name="from-admin")
    assert created.created_by == role_users["admin"] and created.batch_pattern == "batch_9*"


def test_admin_shows_service_rule_violations_as_form_errors(client, role_users, rf):
    client.force_login(role_users["admin"])
    version, _ = rf
    form = {
        "name": "bad",
        "description": "",
        "soft_sensor": version.soft_sensor.pk,
        "alias": "staging",
        "pinned_version": "",
        "device_ids": "[]",
        "batch_pattern": "",
        "input_mapping": "{}",
        "max_input_age_seconds": 900,
        "score_from_0": "",
        "score_from_1": "",
        "enabled": "on",
    }
    response = client.post("/admin/orchestrator/deployment/add/", form)
    assert response.status_code == 200 and b"has no alias" in response.content
    assert not Deployment.objects.filter(name="bad").exists()

"""The connectors API through HTTP: capabilities, shapes, write-only passwords, every problem named."""

from __future__ import annotations

import pytest

from apps.connectors.models import DataSource, Delivery, MappingRule
from tests.conftest import CALLERS

pytestmark = pytest.mark.django_db

SOURCE = {
    "name": "reactor-hall",
    "kind": "mqtt",
    "url": "mqtt://broker.plant:1883",
    "username": "stamm",
    "password": "broker-password-1",
    "rules": [{"pattern": "plant/{device_id}/{observed_property}", "project_name": "penicillin", "batch_id": "live"}],
}
READ = {"anonymous": 401, "outsider": 403, "operator": 200, "modeler": 200, "manager": 200, "admin": 200}
WRITE = {"anonymous": 401, "outsider": 403, "operator": 403, "modeler": 201, "manager": 403, "admin": 201}


@pytest.mark.parametrize("caller", CALLERS)
def test_reading_needs_view_process_and_creating_needs_manage_pipeline(api_client_for, caller):
    client = api_client_for(caller)
    assert client.get("/api/v1/connectors/sources/").status_code == READ[caller]
    assert client.get("/api/v1/connectors/deliveries/").status_code == READ[caller]
    response = client.post("/api/v1/connectors/sources/create/", {**SOURCE, "name": f"s-{caller}"}, format="json")
    assert response.status_code == WRITE[caller], response.content


def test_a_source_is_created_with_its_rules_and_the_password_never_comes_back(api_client_for):
    client = api_client_for("modeler")
    response = client.post("/api/v1/connectors/sources/create/", SOURCE, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert "password" not in body and "password_sealed" not in body and body["has_password"] is True
    assert "broker-password-1" not in response.content.decode()
    assert body["rules"] == [
        {
            "pattern": "plant/{device_id}/{observed_property}",
            "project_name": "penicillin",
            "device_id": "{device_id}",
            "batch_id": "live",
            "source": "sensor",
            "observed_property": "{observed_property}",
            "unit": "",
            "scale": 1.0,
            "offset": 0.0,
            "sampling_interval_ms": 1000,
            "deadband": 0.0,
        }
    ]
    stored = DataSource.objects.get(name="reactor-hall")
    assert "broker-password-1" not in stored.password_sealed
    detail = client.get(f"/api/v1/connectors/sources/{stored.pk}/").json()
    assert detail == client.get("/api/v1/connectors/sources/reactor-hall/").json() and "password" not in detail


def test_an_update_replaces_rules_bumps_the_version_and_keeps_or_clears_the_password(api_client_for):
    client = api_client_for("modeler")
    source_id = client.post("/api/v1/connectors/sources/create/", SOURCE, format="json").json()["id"]
    url = f"/api/v1/connectors/sources/{source_id}/update/"
    body = client.patch(url, {"enabled": False}, format="json").json()
    assert (body["enabled"], body["config_version"], body["has_password"], len(body["rules"])) == (False, 2, True, 1)
    rules = [{"pattern": "a/{device_id}/x", "project_name": "p", "batch_id": "b", "observed_property": "x"}] * 2
    body = client.patch(url, {"rules": rules, "password": ""}, format="json").json()
    assert (body["config_version"], body["has_password"], len(body["rules"])) == (3, False, 2)
    assert MappingRule.objects.filter(data_source_id=source_id).count() == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "http://broker:1883"}, "url"),
        ({"url": "mqtt://"}, "url"),
        ({"kind": "opcua"}, "url"),
        ({"tls_ca_certificate": "x"}, "tls_ca_certificate"),
        ({"client_id": "a b"}, "client_id"),
        ({"rules": [{"pattern": "a/#/b", "project_name": "p", "batch_id": "b"}]}, "rules"),
        ({"rules": [{"pattern": "a/{d}", "project_name": "p", "batch_id": "b"}]}, "rules"),
        (
            {
                "rules": [
                    {
                        "pattern": "a/{device_id}/{observed_property}",
                        "project_name": "p",
                        "batch_id": "b",
                        "source": "lab2",
                    }
                ]
            },
            "rules",
        ),
        ({"rules": [{"pattern": "ns=2;i=5", "project_name": "p", "batch_id": "b"}]}, "rules"),
    ],
)
def test_bad_sources_are_400_naming_the_field_and_save_nothing(api_client_for, change, field):
    response = api_client_for("modeler").post("/api/v1/connectors/sources/create/", {**SOURCE, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]
    assert not DataSource.objects.exists()


def test_a_rule_problem_names_the_rule_and_the_tag(api_client_for):
    rules = [
        SOURCE["rules"][0],
        {"pattern": "x/{unit}", "project_name": "p", "batch_id": "b", "observed_property": "v"},
    ]
    response = api_client_for("modeler").post(
        "/api/v1/connectors/sources/create/", {**SOURCE, "rules": rules}, format="json"
    )
    assert response.json()["error"]["details"]["rules"] == {
        "1": {"device_id": "uses {device_id}, which the pattern does not capture"}
    }


def test_the_status_of_a_source_never_seen_by_a_connectors_process(api_client_for):
    client = api_client_for("modeler")
    source_id = client.post("/api/v1/connectors/sources/create/", SOURCE, format="json").json()["id"]
    body = client.get(f"/api/v1/connectors/sources/{source_id}/status/").json()
    assert body["status"]["reporting"] is False and body["status"]["state"] == "never reported by a connectors process"
    assert body["errors"] == []
    assert client.get("/api/v1/connectors/sources/9999/status/").status_code == 404


def test_health_fails_for_an_enabled_source_no_process_reads(api_client_for):
    client = api_client_for("modeler")
    client.post("/api/v1/connectors/sources/create/", SOURCE, format="json")
    part = client.get("/api/v1/health/").json()["checks"]["connectors"]
    assert part["ok"] is False and "reactor-hall: no report from a connectors process" in part["detail"]
    assert part["sources"][0]["name"] == "reactor-hall"


def test_publications_validate_their_target_and_a_source_in_use_cannot_be_deleted(api_client_for, deployment):
    client = api_client_for("modeler")
    source_id = client.post("/api/v1/connectors/sources/create/", SOURCE, format="json").json()["id"]
    create = "/api/v1/connectors/publications/create/"
    bad = client.post(
        create, {"deployment": deployment.name, "connection": "reactor-hall", "target": "out/+/x"}, format="json"
    )
    assert bad.status_code == 400 and "wildcards" in bad.json()["error"]["details"]["target"]
    bad = client.post(
        create, {"deployment": deployment.name, "connection": "reactor-hall", "target": "out/{unit}"}, format="json"
    )
    assert bad.status_code == 400 and "unknown placeholders" in bad.json()["error"]["details"]["target"]
    assert (
        client.post(
            create, {"deployment": "nope", "connection": "reactor-hall", "target": "x"}, format="json"
        ).status_code
        == 404
    )
    ok = client.post(
        create,
        {"deployment": deployment.name, "connection": "reactor-hall", "target": "out/{device_id}/{observed_property}"},
        format="json",
    )
    assert ok.status_code == 201, ok.content
    assert ok.json()["kind"] == "mqtt" and ok.json()["max_age_seconds"] == 600
    assert client.post(f"/api/v1/connectors/sources/{source_id}/delete/").status_code == 400
    assert (
        api_client_for("operator").post(f"/api/v1/connectors/publications/{ok.json()['id']}/delete/").status_code == 403
    )
    assert client.post(f"/api/v1/connectors/publications/{ok.json()['id']}/delete/").status_code == 204
    assert client.post(f"/api/v1/connectors/sources/{source_id}/delete/").status_code == 204


def test_the_delivery_log_filters_and_refuses_bad_filters(api_client_for):
    client = api_client_for("operator")
    assert client.get("/api/v1/connectors/deliveries/?status=lost").status_code == 400
    assert client.get("/api/v1/connectors/deliveries/?since=yesterday").status_code == 400
    body = client.get("/api/v1/connectors/deliveries/?status=delivered").json()
    assert body["count"] == 0 and not Delivery.objects.exists()


@pytest.mark.parametrize(("caller", "status"), [("operator", 403), ("modeler", 200), ("admin", 200)])
def test_the_page_is_for_modelers_and_admins(client, role_users, caller, status):
    client.force_login(role_users[caller])
    response = client.get("/connectors/")
    assert response.status_code == status
    if status == 200:
        assert b"Plant connectivity" in response.content


def test_the_page_sends_anonymous_visitors_to_the_login(client):
    response = client.get("/connectors/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_shadow_challengers_estimates_are_never_published(api_client_for, deployment):
    """A shadow scores beside its champion for comparison only: a publication on it is refused, and one that was
    made before the deployment became a shadow is not delivered."""
    from apps.connectors.selectors import publications_of
    from apps.orchestrator.services import deployment_create

    client = api_client_for("modeler")
    client.post("/api/v1/connectors/sources/create/", SOURCE, format="json")
    shadow = deployment_create(
        name="challenger", soft_sensor=deployment.soft_sensor, alias=deployment.alias, shadow_of=deployment
    )
    create = "/api/v1/connectors/publications/create/"
    refused = client.post(
        create, {"deployment": shadow.name, "connection": "reactor-hall", "target": "out/x"}, format="json"
    )
    assert refused.status_code == 400 and "shadow challenger" in refused.json()["error"]["details"]["deployment"]
    ok = client.post(
        create, {"deployment": deployment.name, "connection": "reactor-hall", "target": "out/x"}, format="json"
    )
    assert ok.status_code == 201, ok.content
    assert [p.pk for p in publications_of(deployment_ids=[deployment.pk])] == [ok.json()["id"]]
    assert publications_of(deployment_ids=[shadow.pk]) == []

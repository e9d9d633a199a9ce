"""The admin: a source with its rules is added through the services' rules; the password stays write-only."""

from __future__ import annotations

import pytest

from apps.connectors.models import DataSource

pytestmark = pytest.mark.django_db


def _form(**extra):
    data = {
        "name": "hall-2",
        "kind": "mqtt",
        "url": "mqtt://broker.plant:1883",
        "enabled": "on",
        "username": "stamm",
        "password": "admin-typed-secret",
        "tls_ca_certificate": "",
        "client_id": "",
        "session_expiry_seconds": "86400",
        "rules-TOTAL_FORMS": "1",
        "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
        "rules-0-position": "0",
        "rules-0-pattern": "plant/{device_id}/{observed_property}",
        "rules-0-project_name": "penicillin",
        "rules-0-device_id": "{device_id}",
        "rules-0-batch_id": "live",
        "rules-0-source": "sensor",
        "rules-0-observed_property": "{observed_property}",
        "rules-0-unit": "",
        "rules-0-scale": "1.0",
        "rules-0-offset": "0.0",
        "rules-0-sampling_interval_ms": "1000",
        "rules-0-deadband": "0.0",
    }
    data.update(extra)
    return data


def test_the_admin_adds_a_source_with_rules_and_never_shows_the_password(client, role_users):
    client.force_login(role_users["admin"])
    response = client.post("/admin/connectors/datasource/add/", _form())
    assert response.status_code == 302, response.content.decode()[:3000]
    source = DataSource.objects.get(name="hall-2")
    assert source.rules.count() == 1 and source.has_password and "admin-typed-secret" not in source.password_sealed
    page = client.get(f"/admin/connectors/datasource/{source.pk}/change/").content.decode()
    assert "admin-typed-secret" not in page and source.password_sealed not in page
    version = source.config_version
    response = client.post(
        f"/admin/connectors/datasource/{source.pk}/change/",
        _form(
            password="",
            **{
                "rules-INITIAL_FORMS": "1",
                "rules-0-id": str(source.rules.get().pk),
                "rules-0-data_source": str(source.pk),
                "rules-0-batch_id": "live-2",
            },
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    source.refresh_from_db()
    assert source.has_password  # an empty password field keeps the stored one
    assert source.rules.get().batch_id == "live-2" and source.config_version > version


def test_the_admin_names_a_bad_rule_and_saves_nothing(client, role_users):
    client.force_login(role_users["admin"])
    response = client.post("/admin/connectors/datasource/add/", _form(**{"rules-0-device_id": "{unit}"}))
    assert response.status_code == 200
    assert "which the pattern does not capture" in response.content.decode()
    assert not DataSource.objects.exists()

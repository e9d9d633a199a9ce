"""API tokens: kept as digests, shown once, optional expiry, last use, Authorization header only."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import api_token_create, api_token_ensure
from apps.accounts.tokens import key_derive, key_digest
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db


def me(key: str, **extra) -> int:
    return APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}", **extra).status_code


def test_only_the_digest_is_stored_and_the_key_authenticates(role_users):
    token, key = api_token_create(user=role_users["operator"], name="scada")
    stored = ApiToken.objects.values().get(pk=token.pk)
    assert key not in str(stored), "the key itself is nowhere in the row"
    assert stored["digest"] == key_digest(key) and key.startswith(stored["prefix"])
    assert me(key) == 200
    assert me(key[:-1] + ("A" if key[-1] != "A" else "B")) == 401


def test_a_token_records_its_last_use_at_most_once_a_minute(role_users):
    token, key = api_token_create(user=role_users["operator"], name="scada")
    assert token.last_used_at is None
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert me(key) == 200
        first = ApiToken.objects.get(pk=token.pk).last_used_at
        assert first is not None
        clock.shift(timedelta(seconds=30))
        assert me(key) == 200
        assert ApiToken.objects.get(pk=token.pk).last_used_at == first
        clock.shift(timedelta(seconds=31))
        assert me(key) == 200
        assert ApiToken.objects.get(pk=token.pk).last_used_at > first


def test_an_expired_token_is_refused_with_the_reason(role_users):
    _, key = api_token_create(
        user=role_users["operator"], name="short-lived", expires_at=timezone.now() + timedelta(days=1)
    )
    assert me(key) == 200
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


def test_a_token_in_a_query_parameter_is_not_accepted(role_users):
    key = issue_token(role_users["operator"])
    for name in ("p", "token", "key", "auth_token", "access_token"):
        assert APIClient().get(f"/api/v1/me/?{name}={key}").status_code == 401


def test_the_influx_v1_write_alone_takes_the_key_as_p(role_users):
    key = issue_token(role_users["modeler"])
    line = (
        "device_obs,device_id=R1,project_name=penicillin,batch_id=b,source=sensor,observed_property=t "
        "value=1 1767225600000000000\n"
    )
    v1 = APIClient().post(f"/write?db=stamm_raw&u=any&p={key}", data=line, content_type="text/plain")
    assert v1.status_code == 204
    v2 = APIClient().post(f"/api/v2/write?bucket=stamm_raw&p={key}", data=line, content_type="text/plain")
    assert v2.status_code == 401


def test_obtain_issues_a_new_token_each_time_with_an_optional_expiry(role_users):
    client = APIClient()
    body = {"username": "test-operator", "password": "correct-horse-battery", "name": "grafana", "expires_in_days": 7}
    first = client.post("/api/v1/auth/token/", body, format="json").json()
    second = client.post("/api/v1/auth/token/", body, format="json").json()
    assert first["token"] != second["token"] and first["name"] == "grafana" and first["expires_at"]
    assert me(first["token"]) == 200 and me(second["token"]) == 200
    assert ApiToken.objects.filter(user=role_users["operator"], name="grafana").count() == 2


def test_admin_issues_a_token_and_sees_its_key_once(client, role_users):
    client.force_login(role_users["admin"])
    form = {"user": role_users["manager"].pk, "name": "overview screen"}
    response = client.post("/admin/accounts/apitoken/add/", form)
    assert response.status_code == 201
    key = response.content.decode().split('data-testid="admin-api-token">')[1].split("<")[0]
    assert key not in str(dict(client.session)) and not response.cookies.get("messages")
    token = ApiToken.objects.get(name="overview screen")
    assert token.user == role_users["manager"] and token.digest == key_digest(key)
    assert me(key) == 200
    assert key not in client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()


def test_a_derived_key_is_ensured_once_and_replaced_when_the_secret_changes(role_users):
    user = role_users["operator"]
    old = key_derive(secret="a" * 50, purpose="test")
    new = key_derive(secret="b" * 50, purpose="test")
    assert old != new and old == key_derive(secret="a" * 50, purpose="test")
    api_token_ensure(user=user, name="svc", key=old)
    api_token_ensure(user=user, name="svc", key=old)
    assert me(old) == 200
    api_token_ensure(user=user, name="svc", key=new)
    assert me(new) == 200 and me(old) == 401
    assert ApiToken.objects.filter(user=user, name="svc").count() == 1


def test_the_pipeline_service_token_is_derived_not_stored(settings):
    from apps.orchestrator.services import registry_access

    registry_access.registry_access_reset()
    settings.STAMM_REGISTRY_TOKEN = ""
    try:
        key = registry_access.service_token()
        assert key == key_derive(secret=settings.SECRET_KEY, purpose=registry_access.SERVICE_TOKEN_PURPOSE)
        token = ApiToken.objects.get(user__username=settings.STAMM_PIPELINE_SERVICE_USER)
        assert token.digest == key_digest(key)
        capabilities = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}").json()["capabilities"]
        assert capabilities == ["predict"]
    finally:
        registry_access.registry_access_reset()


@pytest.mark.django_db(transaction=True)
def test_migrating_keeps_old_clear_tokens_working_as_digests_and_erases_them(django_user_model):
    """A database from before hashing: DRF's ``authtoken_token`` rows become digests, the clear keys go."""
    from django.db import connection

    from tests.migrating import migrate_to, migrate_to_latest

    user = django_user_model.objects.create_user("legacy", password="x-long-enough-1")
    migrate_to([("accounts", "0001_initial")])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp, user_id integer)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)", ["a" * 40, timezone.now(), user.pk]
        )
    try:
        migrate_to_latest()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM authtoken_token")
            assert cursor.fetchone()[0] == 0
        assert ApiToken.objects.get(user=user).digest == key_digest("a" * 40)
        assert me("a" * 40) == 200
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS authtoken_token")
        migrate_to_latest()

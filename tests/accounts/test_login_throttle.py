"""Sign-in throttling (django-axes): by account and by client address, counted in the database, the
proxy header honoured only when configured, a clear lockout answer, an administrator's unlock."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def sign_in(client: Client, username: str, password: str, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def fail(times: int, username: str = "test-operator", **extra) -> None:
    """``times`` wrong passwords: the form again each time, the lockout answer at the limit."""
    for attempt in range(1, times + 1):
        expected = 429 if attempt >= settings.AXES_FAILURE_LIMIT else 200
        assert sign_in(Client(), username, "wrong-password", **extra).status_code == expected


def test_an_account_is_locked_after_the_limit_with_a_clear_message(role_users):
    fail(settings.AXES_FAILURE_LIMIT, REMOTE_ADDR="10.0.0.1")
    # Even the right password, even from another address: the account is locked.
    response = sign_in(Client(), "test-operator", PASSWORD, REMOTE_ADDR="10.0.0.2")
    assert response.status_code == 429
    page = response.content.decode()
    assert 'data-testid="login-locked"' in page and "locked for 15 minutes" in page
    assert response["Retry-After"] == str(15 * 60)
    assert sign_in(Client(), "test-modeler", PASSWORD, REMOTE_ADDR="10.0.0.3").status_code == 302


def test_an_address_is_locked_whatever_account_it_tries(role_users):
    for name in ("a", "b", "c", "d"):
        assert sign_in(Client(), f"nobody-{name}", "x", REMOTE_ADDR="10.0.0.9").status_code == 200
    assert sign_in(Client(), "nobody-e", "x", REMOTE_ADDR="10.0.0.9").status_code == 429
    assert sign_in(Client(), "test-modeler", PASSWORD, REMOTE_ADDR="10.0.0.9").status_code == 429
    assert sign_in(Client(), "test-modeler", PASSWORD, REMOTE_ADDR="10.0.0.10").status_code == 302


def test_a_forwarded_for_header_is_ignored_unless_proxies_are_configured(role_users, settings):
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), f"nobody-{i}", "x", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    # A new header value does not make a new client: the address behind it is locked.
    response = sign_in(
        Client(), "test-modeler", PASSWORD, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="192.0.2.99"
    )
    assert response.status_code == 429


def test_behind_a_configured_proxy_the_forwarded_client_is_counted(role_users, settings):
    settings.STAMM_TRUSTED_PROXIES = 1
    for i in range(settings.AXES_FAILURE_LIMIT):
        # The client may prepend anything; the proxy appends the address it saw (the last entry).
        sign_in(Client(), f"nobody-{i}", "x", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=f"6.6.6.{i}, 198.51.100.7")
    assert AccessAttempt.objects.filter(ip_address="198.51.100.7").exists()
    locked = sign_in(Client(), "test-modeler", PASSWORD, REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert locked.status_code == 429
    other = sign_in(Client(), "test-modeler", PASSWORD, REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="198.51.100.8")
    assert other.status_code == 302


def test_the_token_endpoint_shares_the_lock_and_answers_429_json(role_users):
    client = APIClient(REMOTE_ADDR="10.0.1.1")
    for attempt in range(1, settings.AXES_FAILURE_LIMIT + 1):
        bad = client.post("/api/v1/auth/token/", {"username": "test-manager", "password": "wrong"}, format="json")
        assert bad.status_code == (429 if attempt == settings.AXES_FAILURE_LIMIT else 400)
    response = client.post("/api/v1/auth/token/", {"username": "test-manager", "password": PASSWORD}, format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "locked_out" and "locked" in response.json()["error"]["message"]
    assert sign_in(Client(), "test-manager", PASSWORD, REMOTE_ADDR="10.0.1.2").status_code == 429


def test_attempts_are_counted_in_the_database_not_in_process_memory(role_users):
    assert settings.AXES_HANDLER == "axes.handlers.database.AxesDatabaseHandler"
    fail(2, REMOTE_ADDR="10.0.2.1")
    attempt = AccessAttempt.objects.get(username="test-operator")
    assert attempt.failures_since_start == 2


def test_an_admin_unlocks_an_account(client, role_users):
    fail(settings.AXES_FAILURE_LIMIT, REMOTE_ADDR="10.0.3.1")
    assert sign_in(Client(), "test-operator", PASSWORD, REMOTE_ADDR="10.0.3.2").status_code == 429
    client.force_login(role_users["admin"])
    changelist = client.get("/admin/axes/accessattempt/")
    assert changelist.status_code == 200 and "test-operator" in changelist.content.decode()
    ids = [str(pk) for pk in AccessAttempt.objects.filter(username="test-operator").values_list("pk", flat=True)]
    response = client.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert response.status_code == 302
    assert sign_in(Client(), "test-operator", PASSWORD, REMOTE_ADDR="10.0.3.2").status_code == 302


def test_the_counted_address_is_always_an_ip_address(settings):
    from django.test import RequestFactory

    from apps.common.client_ip import UNKNOWN_CLIENT, client_ip

    factory = RequestFactory()
    assert client_ip(factory.get("/", REMOTE_ADDR="")) == UNKNOWN_CLIENT
    assert client_ip(factory.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6")) == "10.0.0.1"
    settings.STAMM_TRUSTED_PROXIES = 1
    forged = factory.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="not-an-address")
    assert client_ip(forged) == "10.0.0.1"
    assert client_ip(factory.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 5.6.7.8")) == "5.6.7.8"

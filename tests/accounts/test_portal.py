"""Login portal, role landing, role-checked homes, logout, password change, API token page."""
import pytest

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


@pytest.mark.parametrize("role", ["operator", "modeler", "manager", "admin"])
def test_each_role_lands_on_its_home(client, role_users, role):
    response = client.post("/login/", {"username": f"test-{role}", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == f"/home/{role}/"
    html = response.content.decode()
    assert response.status_code == 200
    assert "home</h1>" in html


def test_home_lists_only_links_that_resolve_and_fit_the_role(client, role_users):
    client.force_login(role_users["operator"])
    html = client.get("/home/operator/").content.decode()
    assert 'data-testid="link-api-docs"' in html
    assert 'data-testid="link-admin-site"' not in html
    client.force_login(role_users["admin"])
    html = client.get("/home/admin/").content.decode()
    assert 'data-testid="link-admin-site"' in html and 'href="/admin/"' in html


def test_wrong_role_home_is_refused(client, role_users):
    client.force_login(role_users["operator"])
    response = client.get("/home/manager/")
    assert response.status_code == 403
    assert "not allowed" in response.content.decode().lower()


def test_outsider_sees_why_there_is_nothing(client, role_users):
    client.force_login(role_users["outsider"])
    response = client.get("/", follow=True)
    assert response.status_code == 403
    assert "no role" in response.content.decode()


def test_anonymous_is_sent_to_login(client):
    response = client.get("/home/operator/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_wrong_password_shows_an_error(client, role_users):
    response = client.post("/login/", {"username": "test-operator", "password": "nope"})
    assert response.status_code == 200
    assert 'data-testid="login-error"' in response.content.decode()


def test_logout_requires_post_and_signs_out(client, role_users):
    client.force_login(role_users["operator"])
    client.post("/logout/")
    assert client.get("/home/operator/").status_code == 302


def test_password_change(client, role_users):
    client.force_login(role_users["manager"])
    response = client.post(
        "/account/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-much-longer-passphrase-42",
            "new_password2": "a-much-longer-passphrase-42",
        },
    )
    assert response.status_code == 302
    role_users["manager"].refresh_from_db()
    assert role_users["manager"].check_password("a-much-longer-passphrase-42")


def test_api_token_page_shows_a_new_key_once_and_stores_only_its_digest(client, role_users):
    from apps.accounts.models import ApiToken
    from apps.accounts.tokens import key_digest

    client.force_login(role_users["operator"])
    assert "no API token yet" in client.get("/account/token/").content.decode()
    response = client.post("/account/token/", {"action": "create", "name": "telegraf", "expires_in_days": "30"})
    assert response.status_code == 201
    page = response.content.decode()
    key = page.split('data-testid="api-token">')[1].split("<")[0]
    assert key not in str(dict(client.session)), "the key is kept nowhere, not even in the session"
    token = ApiToken.objects.get(user=role_users["operator"])
    assert token.digest == key_digest(key) and key not in {token.prefix, token.digest, token.name}
    assert token.expires_at is not None and key.startswith(token.prefix)
    again = client.get("/account/token/").content.decode()
    assert key not in again and token.prefix in again, "the key is shown once, then only its first characters"
    client.post("/account/token/", {"action": "revoke", "token": str(token.pk)})
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_api_token_page_refuses_a_nameless_token(client, role_users):
    client.force_login(role_users["operator"])
    response = client.post("/account/token/", {"action": "create", "name": ""})
    assert response.status_code == 400 and "This field is required" in response.content.decode()

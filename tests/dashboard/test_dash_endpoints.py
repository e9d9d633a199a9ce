"""django-plotly-dash's endpoints behind the platform's door: sign-in, CSRF on callbacks, admin-only
helpers, 4xx (never 500) for malformed requests, and nothing written by anyone who may not."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django_plotly_dash.models import StatelessApp

from .conftest import dash_update

pytestmark = pytest.mark.django_db
BASE = "/django_plotly_dash/app/operator_live"
PROJECT = "..project.options...project.value.."
BOOT = [{"id": "boot", "property": "data", "value": 0}]


def signed_in(role_users, role: str, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(role_users[role])
    return client


def test_a_cross_site_callback_post_riding_the_session_is_refused(role_users):
    attacker_page = signed_in(role_users, "operator", enforce_csrf_checks=True)
    response = dash_update(attacker_page, "operator_live", PROJECT, BOOT)
    assert response.status_code == 403 and b"CSRF" in response.content


def test_the_dash_page_sends_the_csrf_cookie_back_and_the_callback_runs(role_users):
    browser = signed_in(role_users, "operator", enforce_csrf_checks=True)
    page = browser.get("/operator/live/").content.decode()
    assert '"csrf_token_name": "csrftoken"' in page or '"csrf_token_name":"csrftoken"' in page
    token = browser.cookies["csrftoken"].value
    body = {"output": PROJECT, "inputs": BOOT, "state": [], "changedPropIds": []}
    response = browser.post(
        f"{BASE}/_dash-update-component", data=json.dumps(body), content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200, response.content[:300]


@pytest.mark.parametrize(
    "url",
    [
        "/django_plotly_dash/add_stateless_apps",
        f"{BASE}/_dash-routes",
        f"{BASE}/_dash-layout",
        f"{BASE}/_dash-dependencies",
        "/django_plotly_dash/app/no-such-app/_dash-layout",
    ],
)
def test_anonymous_callers_get_403_and_write_nothing(url):
    before = StatelessApp.objects.count()
    assert Client().get(url).status_code == 403
    update = Client().post(f"{BASE}/_dash-update-component", data="{}", content_type="application/json")
    assert update.status_code == 403
    assert StatelessApp.objects.count() == before


@pytest.mark.parametrize("role", ["operator", "modeler", "manager"])
def test_registering_stateless_apps_is_for_administrators_only(role_users, role):
    before = StatelessApp.objects.count()
    assert signed_in(role_users, role).get("/django_plotly_dash/add_stateless_apps").status_code == 403
    assert StatelessApp.objects.count() == before
    admin = signed_in(role_users, "admin").get("/django_plotly_dash/add_stateless_apps")
    assert admin.status_code == 302 and StatelessApp.objects.count() > before


@pytest.mark.parametrize(
    ("url", "status"),
    [
        (f"{BASE}/_dash-routes", 404),
        ("/django_plotly_dash/app/no-such-app/_dash-layout", 404),
        ("/django_plotly_dash/app/no-such-app/_dash-dependencies", 404),
        ("/django_plotly_dash/instance/no-such-instance/_dash-layout", 404),
        (f"{BASE}/_dash-update-component", 405),
        (f"{BASE}/_dash-layout", 200),
        (f"{BASE}/_dash-dependencies", 200),
    ],
)
def test_bad_dash_urls_are_4xx_and_good_ones_work(role_users, url, status):
    assert signed_in(role_users, "operator").get(url).status_code == status


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{}", "output: required"),
        ("[]", "must be a JSON object"),
        ("not json", "not JSON"),
        ('{"output": "nope.children"}', "is not a callback of this page"),
        (json.dumps({"output": PROJECT, "inputs": "x"}), "inputs: must be a list"),
        (json.dumps({"output": PROJECT, "inputs": [1, 2]}), "inputs: each item must be an object"),
        (json.dumps({"output": PROJECT, "inputs": BOOT, "changedPropIds": [1]}), "changedPropIds"),
    ],
)
def test_malformed_callback_bodies_are_400(role_users, body, fragment):
    response = signed_in(role_users, "operator").post(
        f"{BASE}/_dash-update-component", data=body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert fragment in response.json()["error"]["message"]


def test_a_component_script_redirect_may_be_kept_by_the_browser(role_users):
    """The renderer's script URLs redirect to static files; the browser keeps the redirect for a day (its own
    user only), so a page load does not ask again for each script. Signed-out callers still get 403."""
    url = f"{BASE}/_dash-component-suites/dash/deps/react@18.v4_4_0m1.3.1.min.js"
    response = signed_in(role_users, "operator").get(url)
    assert response.status_code == 302 and response["Location"].startswith("/static/"), response
    assert response["Cache-Control"] == "private, max-age=86400"
    refused = Client().get(url)
    assert refused.status_code == 403 and "max-age" not in refused.get("Cache-Control", "")

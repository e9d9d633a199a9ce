"""Role checks on the server: every dashboard page and every Dash callback endpoint, for every caller."""

from __future__ import annotations

import pytest

from apps.dashboard.dash_apps import APP_NAMES
from tests.conftest import CALLERS

from .conftest import dash_update

OPERATOR_OK = {"operator", "modeler", "admin"}
MODELER_OK = {"modeler", "admin"}
MANAGER_OK = {"manager", "admin"}

PAGES = {
    "/operator/live/": OPERATOR_OK,
    "/modeler/data/": MODELER_OK,
    "/modeler/soft-sensors/": MODELER_OK,
    "/modeler/drift/": MODELER_OK,
    "/modeler/divergence/": MODELER_OK,
    "/modeler/simulation/": MODELER_OK,
    "/manager/overview/": MANAGER_OK,
}

BOOT = [{"id": "boot", "property": "data", "value": 0}]
CALLBACKS = {
    "operator_live": ("..project.options...project.value..", BOOT, OPERATOR_OK),
    "modeler_data": ("..project.options...project.value..", BOOT, MODELER_OK),
    "modeler_sensors": ("..project.options...project.value..", BOOT, MODELER_OK),
    "modeler_drift": ("..version.options...version.value...detector.options...detector.value..", BOOT, MODELER_OK),
    "modeler_divergence": ("..versions.options...versions.value...batch.options...batch.value..", BOOT, MODELER_OK),
    "modeler_simulation": ("..version.options...version.value...batch.options...batch.value..", BOOT, MODELER_OK),
    "manager_overview": (
        "overview.children",
        [{"id": "tick", "property": "n_intervals", "value": None},
         {"id": "alert-message", "property": "children", "value": None}],
        MANAGER_OK,
    ),
    "manager_deployment": (
        "detail.children",
        [
            {"id": "url", "property": "pathname", "value": "/manager/deployments/1/"},
            {"id": "tick", "property": "n_intervals", "value": None},
        ],
        MANAGER_OK,
    ),
}


def client_for(client, role_users, caller: str):
    if caller != "anonymous":
        client.force_login(role_users[caller])
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("url", list(PAGES))
def test_page_matrix(client, role_users, caller, url):
    response = client_for(client, role_users, caller).get(url)
    if caller == "anonymous":
        assert response.status_code == 302 and "/login/" in response["Location"]
    elif caller in PAGES[url]:
        assert response.status_code == 200
        assert b'data-testid="page-title"' in response.content
        assert b"DJANGO_PLOTLY_DASH" not in response.content  # header/footer placeholders were filled
    else:
        assert response.status_code == 403
        assert b"Not allowed" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("app", list(CALLBACKS))
def test_callback_matrix(client, role_users, caller, app):
    output, inputs, allowed = CALLBACKS[app]
    response = dash_update(client_for(client, role_users, caller), app, output, inputs)
    assert response.status_code == (200 if caller in allowed else 403), response.content[:300]


def test_every_callback_is_guarded():
    """No Dash callback of the dashboard runs without a capability check."""
    from django_plotly_dash.dash_wrapper import get_local_stateless_by_name

    assert set(CALLBACKS) == set(APP_NAMES)
    for name in APP_NAMES:
        app = get_local_stateless_by_name(name)
        assert app._callback_sets, name
        for _spec, func in app._callback_sets:
            assert getattr(func, "guarded_by", None), f"{name}.{func.__name__} has no role check"


@pytest.mark.django_db
def test_deployment_detail_page(client, role_users):
    client.force_login(role_users["manager"])
    assert client.get("/manager/deployments/999/").status_code == 404
    client.force_login(role_users["operator"])
    assert client.get("/manager/deployments/999/").status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "role,keys",
    [
        ("operator", {"operator-live"}),
        (
            "modeler",
            {
                "operator-live",
                "modeler-data",
                "modeler-sensors",
                "modeler-drift",
                "modeler-divergence",
                "modeler-simulation",
            },
        ),
        ("manager", {"manager-overview"}),
        ("admin", {"manager-overview", "admin-pipeline-runs", "admin-deployments", "admin-flags", "admin-beat"}),
    ],
)
def test_homes_link_the_pages(client, role_users, role, keys):
    client.force_login(role_users[role])
    response = client.get(f"/home/{role}/")
    assert response.status_code == 200
    assert b'data-testid="home-title"' in response.content
    for key in keys:
        assert f'data-testid="link-{key}"'.encode() in response.content, key
    if role == "operator":
        assert b"link-modeler-drift" not in response.content and b"link-manager-overview" not in response.content


@pytest.mark.django_db
def test_malformed_callback_input_is_a_400(client, role_users):
    client.force_login(role_users["operator"])
    response = dash_update(
        client,
        "operator_live",
        "..variables.options...flag-series.options..",
        [{"id": "batch", "property": "value", "value": "no-pipes-here"}],
    )
    assert response.status_code == 400

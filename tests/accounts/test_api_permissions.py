"""Every API endpoint so far × (anonymous, outsider, each role) → the expected status."""
import pytest

from apps.orchestrator.services import heartbeat_record
from tests.conftest import CALLERS

pytestmark = pytest.mark.django_db

# Expected status per caller, in the order of CALLERS: anonymous, outsider, operator, modeler, manager, admin.
MATRIX = {
    "/api/v1/health/": (401, 403, 200, 200, 200, 200),
    "/api/v1/me/": (401, 200, 200, 200, 200, 200),
    "/api/schema/": (401, 200, 200, 200, 200, 200),
}


@pytest.mark.parametrize("url", list(MATRIX))
@pytest.mark.parametrize("caller", CALLERS)
def test_status_matrix(api_client_for, url, caller):
    heartbeat_record(name="beat")
    expected = MATRIX[url][CALLERS.index(caller)]
    response = api_client_for(caller).get(url)
    assert response.status_code == expected, (url, caller, response.content[:300])


def test_errors_share_one_json_body(api_client_for):
    body = api_client_for("anonymous").get("/api/v1/health/").json()
    assert body["error"]["status"] == 401
    assert body["error"]["code"] == "not_authenticated"
    assert body["error"]["message"]
    body = api_client_for("outsider").get("/api/v1/health/").json()
    assert body["error"] == {
        "status": 403,
        "code": "permission_denied",
        "message": "Your account has no role yet; ask an administrator.",
    }


def test_me_reports_roles_and_capabilities(api_client_for):
    body = api_client_for("modeler").get("/api/v1/me/").json()
    assert body["username"] == "test-modeler"
    assert body["roles"] == ["modeler"]
    assert "manage_models" in body["capabilities"] and "administer" not in body["capabilities"]


def test_token_obtain_with_password(role_users, client):
    response = client.post("/api/v1/auth/token/", {"username": "test-operator", "password": "correct-horse-battery"})
    assert response.status_code == 200
    token = response.json()["token"]
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}").json()["roles"] == ["operator"]
    bad = client.post("/api/v1/auth/token/", {"username": "test-operator", "password": "wrong"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"


def test_swagger_ui_is_served_from_local_static_files(role_users, client):
    client.force_login(role_users["operator"])
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower() and "jsdelivr" not in html.lower()

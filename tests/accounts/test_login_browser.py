"""The real login page in Debian's Chromium, driven by Playwright: each role lands on its home. One browser
for the module; each test starts signed out (its cookies cleared)."""
import pytest

from tests.browser import browser_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def shared_page():
    with browser_page() as page:
        yield page


@pytest.fixture
def page(shared_page):
    shared_page.context.clear_cookies()
    return shared_page


@pytest.mark.parametrize("role", ["operator", "modeler", "manager", "admin"])
def test_login_lands_on_role_home(live_server, role_users, role, page):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", f"test-{role}")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/home/{role}/")
    title = page.text_content("[data-testid=home-title]")
    assert title and title.strip().endswith("home")
    assert page.text_content("[data-testid=username]") == f"test-{role}"
    screenshot(page, f"login-{role}-home")


def test_wrong_password_shows_error(live_server, role_users, page):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "test-operator")
    page.fill("#id_password", "not-the-password")
    page.click("button[type=submit]")
    error = page.wait_for_selector("[data-testid=login-error]")
    assert "correct username and password" in error.text_content()
    assert page.url.rstrip("/").endswith("/login")
    screenshot(page, "login-wrong-password")

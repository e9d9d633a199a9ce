"""The operator's, the manager's and the administrator's pages in Debian's Chromium (Playwright) on real IndPenSim
data: charts draw, a flag is saved and listed, the pages refuse the other roles, and no request leaves the
server. The modeler's pages are driven and checked in the layout walk (test_layout_browser.py), which loads
each of them anyway. The test process's one browser page (tests/browser.py); screenshots go to test-artifacts/."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.browser import browser_page, screenshot

from .seed import seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def shared_page():
    with browser_page() as page:
        page.set_default_timeout(30_000)
        yield page


@pytest.fixture
def page(shared_page, live_server):
    """The module's page, signed out, recording every request it makes."""
    shared_page.context.clear_cookies()
    requests: list[str] = []

    def record(request) -> None:
        requests.append(request.url)

    shared_page.on("request", record)
    yield shared_page
    shared_page.remove_listener("request", record)
    host = urlparse(live_server.url).netloc
    outside = [url for url in requests if urlparse(url).scheme in ("http", "https") and urlparse(url).netloc != host]
    assert not outside, f"requests left the server: {outside[:5]}"


@pytest.fixture
def demo(role_users, indpensim_dir):
    return seed_demo()


def login(page, live_server, role: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", f"test-{role}")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/home/{role}/")


def wait_for_plot(page, selector: str = "#chart") -> None:
    """Wait until Plotly has drawn at least one trace with data in ``selector`` (not "Loading…")."""
    page.wait_for_function(
        """sel => { const el = document.querySelector(sel + ' .js-plotly-plot') || document.querySelector(sel);
                    return el && el.data && el.data.some(t => (t.x || []).length > 0); }""",
        arg=selector,
    )


def choose(page, dropdown: str, text: str) -> None:
    """Pick the first option of a Dash dropdown that shows ``text``, as a user does: open it, type to filter,
    press Enter. Each step waits for the one before. In CI (2026-12-05) the operator test once timed out waiting
    for the variable it had typed; the likeliest cause is keys typed before the dropdown had focused its search
    field, which a busy machine delays."""
    page.click(dropdown)
    page.locator(".dash-dropdown-search:focus").wait_for()
    page.keyboard.type(text)
    page.get_by_role("option", name=text).first.wait_for()
    page.keyboard.press("Enter")


def test_operator_live_page(page, live_server, demo):
    login(page, live_server, "operator")
    assert page.locator("[data-testid=link-operator-live]").count() == 1
    page.click("[data-testid=link-operator-live]")
    page.wait_for_url(f"{live_server.url}/operator/live/")
    wait_for_plot(page)
    screenshot(page, "dashboard-operator-initial")
    # The chart opens on the whole batch (a fed-batch reads as one trajectory), not on a fixed window.
    assert page.is_checked("#range input[value=batch]")
    drawn = page.evaluate("() => document.querySelector('#chart .js-plotly-plot').data.map(t => [t.name, t.x.length])")
    names = [name for name, _ in drawn]
    assert any("penicillin_rf" in name for name in names), names
    assert any(name.startswith("lab ") for name in names), names
    assert all(length <= 2000 for _, length in drawn)
    assert "Loading" not in page.inner_text("[data-testid=dash-host]")
    trust = page.locator("[data-testid=trust-panel]")
    trust.locator("[data-testid=latest-estimate]").first.wait_for()
    assert "g/L" in trust.inner_text()
    assert "Pipeline lag" in trust.inner_text()
    assert "No open alert" in trust.locator("[data-testid=drift-status]").inner_text()
    # Whole batch, with a process variable on an extra axis.
    page.click("text=Whole batch")
    choose(page, "#variables", "temperature")
    page.wait_for_function("() => document.querySelector('#chart .js-plotly-plot').data.some(t => t.yaxis === 'y2')")
    screenshot(page, "dashboard-operator-live")
    # Flag a point: pick the lab series, type a time, describe it, save; it appears in the table.
    choose(page, "#flag-series", "lab penicillin")
    page.fill("#flag-time", demo_time(demo))
    page.fill("#flag-description", "Lab value looks transposed")
    page.click("#flag-save")
    page.locator("[data-testid=flag-message] .dash-ok").wait_for()
    page.locator("#flags").get_by_text("Lab value looks transposed").wait_for()
    # The chart marks the flagged point.
    page.wait_for_function("() => (document.querySelector('#chart .js-plotly-plot').layout.shapes || []).length > 0")
    screenshot(page, "dashboard-operator-flagged")
    from apps.dashboard.models import PointFlag

    flag = PointFlag.objects.get()
    assert flag.description == "Lab value looks transposed" and flag.created_by.username == "test-operator"
    # A manager is refused the page.
    page.context.clear_cookies()
    login(page, live_server, "manager")
    response = page.goto(f"{live_server.url}/operator/live/")
    assert response.status == 403


def demo_time(demo) -> str:
    from apps.tsdb.selectors import latest_points
    from apps.tsdb.types import Collection, SeriesFilter

    lab = [
        p for p in latest_points(collection=Collection.RAW, where=SeriesFilter(batch_id=demo.live_batch, source="lab"))
    ]
    return lab[0].time.strftime("%Y-%m-%d %H:%M:%S")


def test_manager_overview_and_details(page, live_server, demo):
    login(page, live_server, "manager")
    page.click("[data-testid=link-manager-overview]")
    row = page.locator(f"[data-testid=deployment-{demo.deployment.name}]")
    row.wait_for()
    assert "g/L" in row.inner_text()
    assert row.locator("[data-testid^=status-]").count() == 1
    assert row.locator("[data-testid=open-alerts]").inner_text() == "0"
    page.wait_for_function("() => document.querySelectorAll('[data-testid=overview] .js-plotly-plot').length > 0")
    screenshot(page, "dashboard-manager-overview")
    row.get_by_role("link", name=demo.deployment.name).click()
    page.wait_for_url(f"{live_server.url}/manager/deployments/{demo.deployment.pk}/")
    page.locator("[data-testid=runs]").wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=deployment-detail] .js-plotly-plot').length > 0"
    )
    screenshot(page, "dashboard-manager-deployment")
    page.context.clear_cookies()
    login(page, live_server, "operator")
    assert page.goto(f"{live_server.url}/manager/overview/").status == 403


def test_admin_home_links(page, live_server, role_users):
    login(page, live_server, "admin")
    for key in ("admin-site", "admin-users", "admin-groups", "admin-beat", "admin-pipeline-runs", "admin-deployments"):
        assert page.locator(f"[data-testid=link-{key}]").count() == 1, key
    screenshot(page, "dashboard-admin-home")
    page.click("[data-testid=link-admin-pipeline-runs]")
    page.wait_for_url(f"{live_server.url}/admin/orchestrator/pipelinerun/")

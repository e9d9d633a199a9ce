"""Acting on a drift alert from the pages, in Debian's Chromium: the operator acknowledges with a note on the
live page (resolve and silence stay disabled for the role), the history shows it, the manager's overview no
longer counts it; a modeler resolves it from the drift page. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from tests.browser import screenshot

from .test_browser import demo, login, page, shared_page  # noqa: F401 - the shared browser and demo fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def live_alert(demo):  # noqa: F811 - demo is the fixture's value
    """A critical alert whose verdict tested the demo's live batch on the version the deployment runs."""
    from apps.drift.models import DriftJob, DriftResult
    from apps.drift.services import alert_raise
    from apps.orchestrator.selectors import deployment_estimator

    version = deployment_estimator(demo.deployment).spec.version_tag
    job = DriftJob.objects.create(name="psi-live", deployment=demo.deployment, detector="psi",
                                  reference={"kind": "training"}, test={"kind": "last_points", "n": 100})
    result = DriftResult.objects.create(
        job=job, deployment=demo.deployment, trigger="beat", detector="psi", drift=True, score=3.0, threshold=1.0,
        version=version, explanation="PSI 3.0 on aeration_rate",
        test_window={"segments": [{"device_id": "R1", "batch_id": demo.live_batch}]})
    return alert_raise(job=job, result=result)


def panel_ready(browser_page, alert_id: int) -> None:
    browser_page.locator("[data-testid=alert-summary]").filter(has_text="raised by psi (job psi-live)").wait_for()
    assert f"#{alert_id} critical" in browser_page.inner_text("[data-testid=alert-panel]")


def test_alerts_are_acted_on_from_the_operator_manager_and_drift_pages(page, live_server, demo):  # noqa: F811
    alert = live_alert(demo)
    login(page, live_server, "manager")
    page.goto(f"{live_server.url}/manager/overview/")
    page.locator("[data-testid=open-alerts]").filter(has_text="1").wait_for()
    assert "Failing" in page.inner_text("[data-testid=overview]")
    assert f"critical: psi (job psi-live) on {demo.live_batch}" in page.inner_text("[data-testid=overview]")
    panel_ready(page, alert.pk)
    screenshot(page, "dashboard-manager-alert-open")

    page.context.clear_cookies()
    login(page, live_server, "operator")
    page.goto(f"{live_server.url}/operator/live/")
    page.locator("[data-testid=drift-status]").filter(has_text="1 open alert").wait_for()
    panel_ready(page, alert.pk)
    assert page.is_disabled("#alert-resolve") and page.is_disabled("#alert-silence")
    page.fill("#alert-note", "aeration checked on the floor")
    page.click("#alert-ack")
    page.locator("[data-testid=alert-message]").filter(has_text=f"Alert #{alert.pk} acknowledged.").wait_for()
    page.locator("#alert-history").filter(has_text="aeration checked on the floor").wait_for()
    # the trust panel follows at once: an acknowledged alert no longer counts
    page.locator("[data-testid=drift-status]").filter(has_text="No open alert").wait_for()
    assert "acknowledged by test-operator" in page.inner_text("[data-testid=drift-status]")
    history = page.inner_text("#alert-history")
    assert "opened" in history and "acknowledged" in history and "test-operator" in history
    screenshot(page, "dashboard-operator-alert-acknowledged")
    alert.refresh_from_db()
    assert alert.state == "acknowledged" and alert.acknowledge_note == "aeration checked on the floor"

    page.context.clear_cookies()
    login(page, live_server, "modeler")
    page.goto(f"{live_server.url}/modeler/drift/")
    panel_ready(page, alert.pk)
    assert page.is_disabled("#alert-ack") and not page.is_disabled("#alert-resolve")
    page.fill("#alert-note", "aeration fault explained; sensor replaced")
    page.click("#alert-resolve")
    page.locator("[data-testid=alert-message]").filter(has_text=f"Alert #{alert.pk} resolved.").wait_for()
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolve_reason == "aeration fault explained; sensor replaced"
    screenshot(page, "dashboard-modeler-alert-resolved")

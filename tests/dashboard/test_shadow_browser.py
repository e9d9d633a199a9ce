"""The live page in Chromium with a shadow deployment: operators never see the challenger's series; modelers
see it as a dashed line, never as the estimate."""

from __future__ import annotations

import pytest

from tests.browser import browser_page, screenshot

from .seed import seed_demo
from .test_browser import PASSWORD, wait_for_plot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TRACES = "() => document.querySelector('#chart .js-plotly-plot').data.map(t => [t.name, (t.line || {}).dash || ''])"


def test_shadow_is_dashed_for_modelers_and_hidden_from_operators(live_server, role_users, indpensim_dir):
    from apps.orchestrator.services import deployment_create

    demo = seed_demo()
    deployment_create(
        name="ridge-shadow", soft_sensor=demo.ridge.soft_sensor, pinned_version=demo.ridge, shadow_of=demo.deployment
    )
    seen = {}
    with browser_page() as page:
        for role in ("operator", "modeler"):
            page.context.clear_cookies()
            page.goto(f"{live_server.url}/login/")
            page.fill("#id_username", f"test-{role}")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_server.url}/home/{role}/")
            page.goto(f"{live_server.url}/operator/live/")
            wait_for_plot(page)
            page.wait_for_function("() => document.querySelector('#chart .js-plotly-plot').data.length > 1")
            seen[role] = page.evaluate(TRACES)
            screenshot(page, f"dashboard-live-shadow-{role}")
    assert not any("ridge" in name for name, _ in seen["operator"]), seen["operator"]
    shadows = [(name, dash) for name, dash in seen["modeler"] if "ridge" in name]
    assert shadows and all(name.startswith("shadow ") and dash == "dash" for name, dash in shadows), seen["modeler"]
    estimates = [name for name, dash in seen["modeler"] if "penicillin_rf" in name and not name.startswith("shadow")]
    assert estimates and all(dash == "" for name, dash in seen["modeler"] if name in estimates)

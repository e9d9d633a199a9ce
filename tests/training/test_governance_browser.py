"""The governance pages in Debian's Chromium: the champion/challenger page (sign a proposal), a training plan,
the audit trail, and the operator's live chart where a modeler sees the shadow dashed."""

from __future__ import annotations

import pytest

from apps.registry.models import Alias
from tests.browser import browser_page, javascript_errors, screenshot, sign_in

from .test_challengers import ledgers
from .test_paired import CHALLENGER, CHAMPION

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_challenger_plan_and_audit_pages(live_server, role_users, settings):
    from apps.orchestrator.services import deployment_create
    from apps.training.services import training_plan_create
    from tests.orchestrator.helpers import register_rf

    settings.STAMM_CHALLENGER_MIN_SAMPLES = 6
    v1, _ = register_rf(user=role_users["modeler"], n_estimators=4)
    v2, _ = register_rf(user=role_users["modeler"], n_estimators=3, alias="challenger")
    live = deployment_create(name="live", soft_sensor=v1.soft_sensor, alias="production")
    shadow = deployment_create(name="challenger", soft_sensor=v2.soft_sensor, alias="challenger", shadow_of=live)
    ledgers(live, CHAMPION * 2, version="1", per_batch=6)
    ledgers(shadow, CHALLENGER * 2, version="2", per_batch=6)
    plan = training_plan_create(
        user=role_users["modeler"],
        name="weekly-r1",
        project=v1.soft_sensor.project,
        device_id="R1",
        schedule="0 3 * * 1",
        deployment=live,
        on_drift_alert=True,
        lab_error_threshold=2.5,
        config={"target": "penicillin_concentration", "learners": ["random_forest"], "alias": "challenger"},
    )
    with browser_page(height=1000) as page, javascript_errors(page) as errors:
        sign_in(page, live_server.url, "test-admin", home="admin")
        page.goto(f"{live_server.url}/training/challengers/{shadow.pk}/")
        page.click("[data-testid=review]")
        page.wait_for_selector("[data-testid=pending]")
        assert "challenger better" in page.text_content("[data-testid=verdict]")
        screenshot(page, "governance-challenger")
        page.fill("input[name=password]", "correct-horse-battery")
        page.fill("input[name=note]", "better on 12 paired lab samples")
        page.click("[data-testid=approve]")
        page.wait_for_selector("text=now points at v2 (signed)")
        assert Alias.objects.get(name="production").version == v2
        screenshot(page, "governance-challenger-signed")
        page.goto(f"{live_server.url}/training/plans/{plan.pk}/")
        page.wait_for_selector("[data-testid=plan-runs]")
        screenshot(page, "governance-plan")
        page.goto(f"{live_server.url}/audit/?model=registry.aliasmove")
        page.wait_for_selector("[data-testid=audit-entries]")
        assert "better on 12 paired lab samples" in page.text_content("[data-testid=audit-entries]")
        screenshot(page, "governance-audit")
        page.goto(f"{live_server.url}/audit/signatures/")
        assert "test-admin" in page.text_content("[data-testid=signatures]")
        screenshot(page, "governance-signatures")
        assert errors == []

"""The Train page in Debian's Chromium: choose data, learners and gates, follow the run, promote."""

from __future__ import annotations

import pytest

from apps.registry.models import Alias, AliasMove
from apps.training.models import RunStatus, TrainingRun
from tests.browser import browser_page, screenshot

from .conftest import EIGHT, ingest_batches, project_create

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_modeler_trains_follows_progress_and_promotes(live_server, role_users, indpensim_dir, eager_celery):
    ingest_batches(indpensim_dir, (92, 96, 98))
    project_create()
    with browser_page(height=1200) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", "test-modeler")
        page.fill("#id_password", "correct-horse-battery")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/home/modeler/")
        page.click("[data-testid=link-training]")
        page.wait_for_url(f"{live_server.url}/training/")
        page.select_option("#project", "P0001")
        page.wait_for_selector("select[data-batch=batch_98]")
        page.select_option("select[data-batch=batch_92]", "T")
        page.select_option("select[data-batch=batch_96]", "T")
        page.select_option("select[data-batch=batch_98]", "H")
        assert page.input_value("#target") == "penicillin_concentration"
        for name in EIGHT:
            page.check(f"input[name=feature][value={name}]")
        page.check("#l-decision_tree")
        page.fill("#r2_min", "0.9")
        page.uncheck("#beats_persistence")
        screenshot(page, "training-form")
        page.click("[data-testid=start]")
        page.wait_for_url(f"{live_server.url}/training/runs/*/")
        page.wait_for_function("document.querySelector('[data-testid=status]').textContent.includes('promoted')")
        rows = page.locator("#results tr")
        assert rows.count() == 2
        text = page.text_content("[data-testid=results]")
        assert "random_forest" in text and "decision_tree" in text and "r2_min: R²" in text
        assert "delayed-lab persistence (4 h" in page.text_content("#baselines")
        screenshot(page, "training-run")
        page.select_option("#promote-alias", "production")
        with page.expect_response(lambda response: "/promote/" in response.url) as promoted:
            page.click("[data-testid=promote]")
        assert promoted.value.status == 200
        assert page.text_content("#action-error") == ""
        assert errors == []
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.PROMOTED
    best = run.best_candidate.version
    assert Alias.objects.get(name="staging").version_id == best.pk
    page_move = AliasMove.objects.get(alias_name="production")
    assert page_move.to_version_id == best.pk and "requested by test-modeler" in page_move.reason

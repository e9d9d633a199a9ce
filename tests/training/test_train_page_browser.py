"""The Train page in Debian's Chromium: choose data, learners and gates, follow the run, promote."""

from __future__ import annotations

import pytest

from apps.registry.models import Alias, AliasMove
from apps.training.models import RunStatus, TrainingRun
from tests.browser import browser_page, javascript_errors, screenshot

from .conftest import EIGHT, ingest_batches, project_create

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_modeler_trains_follows_progress_and_promotes(live_server, role_users, indpensim_dir, eager_celery):
    ingest_batches(indpensim_dir, (92, 96, 98))
    project_create()
    with browser_page(height=1200) as page, javascript_errors(page) as errors:
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
        assert rows.count() == 4  # per candidate: as deployed, then the raw model
        text = page.text_content("[data-testid=results]")
        assert "random_forest" in text and "decision_tree" in text and "r2 min: R²" in text
        assert "as deployed" in text and "raw model" in text
        assert "delayed-lab persistence (4 h" in page.text_content("#baselines")
        # Step outputs read as words, never as JSON; one predicted-vs-lab plot per candidate.
        assert "{" not in page.text_content("[data-testid=steps]")
        assert page.locator("#plots svg").count() == 2
        assert page.locator("#plots svg circle").count() > 20
        assert page.is_hidden("[data-testid=nothing-passed]") and page.is_visible("[data-testid=promote]")
        screenshot(page, "training-run")
        page.select_option("#promote-alias", "production")
        # production needs the modeler's electronic signature: refused without it, nothing moves.
        with page.expect_response(lambda response: "/promote/" in response.url) as refused:
            page.click("[data-testid=promote]")
        assert refused.value.status == 403
        # The page writes the message after it has read the response body: wait for it, not for the response.
        page.wait_for_function(
            "document.querySelector('#action-error').textContent.includes('needs an electronic signature')"
        )
        assert not AliasMove.objects.filter(alias_name="production").exists()
        assert page.text_content("[data-testid=sign-sha256]").startswith("v")
        page.fill("#sign-password", "correct-horse-battery")
        page.fill("#sign-reason", "validated by the lab on batch 98")
        screenshot(page, "training-run-sign")
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
    assert page_move.signature.signer_username == "test-modeler" and page_move.signature.meaning == "approved"
    assert page_move.signature.reason == "validated by the lab on batch 98"


def test_a_rejected_run_page_offers_no_promotion(live_server, role_users, indpensim_dir, eager_celery):
    from apps.training import services

    ingest_batches(indpensim_dir, (92, 96, 98))
    project = project_create()
    run = services.training_run_create(
        user=role_users["modeler"],
        project=project,
        data={
            "target": "penicillin_concentration",
            "batches": ["batch_92", "batch_96", "batch_98"],
            "features": EIGHT,
            "split": {"kind": "batches", "holdout": ["batch_98"]},
            "learners": [{"key": "decision_tree", "hyperparameters": {"max_depth": 3}}],
            "gates": {"r2_min": 0.999},
        },
    )
    run = services.training_run_execute_inline(run_id=run.pk)
    assert run.status == RunStatus.REJECTED
    with browser_page(height=1200) as page:
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", "test-modeler")
        page.fill("#id_password", "correct-horse-battery")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/home/modeler/")
        page.goto(f"{live_server.url}/training/runs/{run.pk}/")
        page.wait_for_selector("#plots svg")
        assert page.is_visible("[data-testid=nothing-passed]")
        assert page.is_hidden("[data-testid=promote]") and page.is_hidden("[data-testid=approve]")
        assert "r2 min" in page.text_content("[data-testid=results]")
        screenshot(page, "training-run-rejected")

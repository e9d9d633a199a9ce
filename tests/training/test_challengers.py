"""Champion and challenger: compared on the lab samples both scored; a better challenger is proposed for
promotion (a pending request and a signal), never promoted until a person signs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.audit.services import SignatureRefused
from apps.registry.models import Alias, SigningPolicy
from apps.training import services
from apps.training.models import PromotionRequest, RequestStatus
from apps.training.signals import promotion_proposed
from tests.signing import signature_for

from .test_paired import CHALLENGER, CHAMPION


@pytest.fixture
def pair(db, role_users, settings):
    """production v1 deployed as "live", v2 (alias challenger) as its shadow, six lab samples both scored (the
    residuals of test_paired) and one only the champion scored."""
    from apps.orchestrator.services import deployment_create
    from tests.orchestrator.helpers import register_rf

    settings.STAMM_CHALLENGER_MIN_SAMPLES = 6
    v1, _ = register_rf(user=role_users["modeler"], n_estimators=4)
    v2, _ = register_rf(user=role_users["modeler"], n_estimators=3, alias="challenger")
    live = deployment_create(name="live", soft_sensor=v1.soft_sensor, alias="production")
    shadow = deployment_create(name="shadow", soft_sensor=v2.soft_sensor, alias="challenger", shadow_of=live)
    ledgers(live, [*CHAMPION, 9.0], version="1")
    ledgers(shadow, CHALLENGER, version="2")
    return live, shadow, v1, v2


def ledgers(deployment, residuals, *, version: str, per_batch: int = 12) -> None:
    """Lab-scoring ledger rows of ``deployment`` with these residuals, one lab sample every 6 h from 3 days ago
    (``per_batch`` samples per batch, from batch_92 on): the samples two deployments share are paired."""
    from apps.drift.models import LabResidual

    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=3)  # the same for both
    LabResidual.objects.bulk_create(
        LabResidual(
            deployment=deployment,
            project_name="penicillin",
            device_id="R1",
            batch_id=f"batch_{92 + i // per_batch}",
            target="penicillin_concentration",
            lab_time=start + timedelta(hours=6 * i),
            prediction_time=start,
            lab_value=20.0,
            predicted_value=20.0 - residual,
            residual=residual,
            model_id="m",
            version=version,
        )
        for i, residual in enumerate(residuals)
    )


def test_the_comparison_pairs_the_samples_both_scored(pair):
    live, shadow, _, _ = pair
    comparison = services.challenger_compare(challenger=shadow)
    assert len(comparison.pairs) == 6  # the seventh sample only the champion scored
    assert [p.champion_residual for p in comparison.pairs] == pytest.approx(CHAMPION)
    assert [p.challenger_residual for p in comparison.pairs] == pytest.approx(CHALLENGER)
    verdict = comparison.verdict
    assert verdict.wilcoxon_statistic == 19 and verdict.wilcoxon_p == pytest.approx(3 / 64)
    assert verdict.challenger_better and comparison.proposable
    assert comparison.champion_label.startswith("live (") and "v1" in comparison.champion_label


def test_a_better_challenger_is_proposed_once_and_only_a_signature_promotes_it(
    pair, role_users, django_capture_on_commit_callbacks
):
    live, shadow, v1, v2 = pair
    heard = []

    def receiver(sender, signal=None, **payload):
        heard.append(payload)

    promotion_proposed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            proposal = services.challenger_review(challenger=shadow, refresh=False)
        with django_capture_on_commit_callbacks(execute=True):
            assert services.challenger_review(challenger=shadow, refresh=False) is None  # already pending
    finally:
        promotion_proposed.disconnect(receiver)
    assert proposal.status == RequestStatus.PENDING and proposal.alias == "production" and proposal.version == v2
    assert proposal.proposed_by is None and proposal.evidence["wilcoxon_p"] == pytest.approx(3 / 64)
    assert heard == [
        {
            "request_id": proposal.pk,
            "champion_id": live.pk,
            "challenger_id": shadow.pk,
            "alias": "production",
            "version": 2,
        }
    ]
    # Proposed, not performed.
    assert Alias.objects.get(name="production").version == v1
    # Without a signature (or by the trainer, under the two-person rule) nothing moves.
    SigningPolicy.objects.create(project=v2.soft_sensor.project, two_person_rule=True)
    with pytest.raises(SignatureRefused):
        services.promotion_request_approve(request=proposal, user=role_users["admin"], signature=None)
    with pytest.raises(SignatureRefused, match="two-person"):
        services.promotion_request_approve(request=proposal, user=role_users["modeler"], signature=signature_for(v2))
    proposal.refresh_from_db()
    assert proposal.status == RequestStatus.PENDING and Alias.objects.get(name="production").version == v1
    approved = services.promotion_request_approve(
        request=proposal, user=role_users["admin"], signature=signature_for(v2), note="lab residuals"
    )
    assert approved.status == RequestStatus.APPROVED and approved.decided_by == role_users["admin"]
    assert Alias.objects.get(name="production").version == v2
    # Now both run v2: nothing more to propose, and the shadow stores nothing of its own.
    assert not services.challenger_compare(challenger=shadow).proposable


def test_a_worse_or_unproven_challenger_is_not_proposed(pair, settings):
    live, shadow, _, _ = pair
    settings.STAMM_CHALLENGER_MIN_SAMPLES = 10
    comparison = services.challenger_compare(challenger=shadow)
    assert not comparison.verdict.challenger_better and "fewer than the 10 required" in comparison.verdict.reason
    assert services.challenger_review(challenger=shadow, refresh=False) is None
    assert not PromotionRequest.objects.exists()


def test_proposals_are_dismissed_with_a_reason(pair, role_users):
    _, shadow, _, _ = pair
    proposal = services.challenger_review(challenger=shadow, refresh=False)
    from apps.common.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        services.promotion_request_dismiss(request=proposal, user=role_users["modeler"], note="")
    dismissed = services.promotion_request_dismiss(
        request=proposal, user=role_users["modeler"], note="the lab changed its method"
    )
    assert dismissed.status == RequestStatus.DISMISSED


def test_the_page_and_the_api(pair, role_users, api_client_for):
    live, shadow, v1, v2 = pair
    client = Client()
    client.force_login(role_users["modeler"])
    listing = client.get("/training/challengers/").content.decode()
    assert "shadow (" in listing and "challenger better" in listing
    client.post(f"/training/challengers/{shadow.pk}/action/", {"action": "review"})
    proposal = PromotionRequest.objects.get()
    page = client.get(f"/training/challengers/{shadow.pk}/").content.decode()
    assert 'data-testid="pending"' in page and 'data-testid="residual-plot"' in page and "W+ = 19" in page
    # Approving on the page without the password: refused, recorded, nothing moves.
    client.post(
        f"/training/challengers/{shadow.pk}/action/",
        {"action": "approve", "request": proposal.pk, "note": "go", "meaning": "approved"},
    )
    assert Alias.objects.get(name="production").version == v1
    from apps.registry.selectors import version_sha256

    client.post(
        f"/training/challengers/{shadow.pk}/action/",
        {
            "action": "approve",
            "request": proposal.pk,
            "note": "go",
            "meaning": "approved",
            "password": "correct-horse-battery",
            "sha256": version_sha256(v2),
        },
    )
    assert Alias.objects.get(name="production").version == v2
    api = api_client_for("modeler")
    detail = api.get(f"/api/v1/training/challengers/{shadow.pk}/").json()
    assert detail["verdict"]["n"] == 6 and len(detail["pairs"]) == 6
    assert api.get(f"/api/v1/training/challengers/{live.pk}/").status_code == 409  # not a shadow
    assert api.get("/api/v1/training/promotions/", {"status": "approved"}).json()[0]["version"] == 2
    assert api_client_for("operator").get("/api/v1/training/challengers/").status_code == 403

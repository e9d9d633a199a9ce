"""Notifications end to end: drift alert events reach subscribers by e-mail (a real SMTP server) and by
signed webhooks (a real HTTP server), retried with backoff and logged per attempt; digests instead of floods;
who hears what; the orchestrator's events; the API and the page."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from apps.drift import services as drift_services
from apps.drift.models import DriftJob, DriftResult
from apps.notifications import channels, services
from apps.notifications.models import Delivery, DeliveryAttempt, Event, Subscription

pytestmark = pytest.mark.django_db
API = "/api/v1/notifications"
ALERT_EVENTS = ["alert_opened", "alert_acknowledged", "alert_resolved"]


def raise_alert(deployment, name: str = "psi-live", batch: str = "batch_98"):
    job = DriftJob.objects.create(name=name, deployment=deployment, detector="psi", reference={"kind": "training"},
                                  test={"kind": "phase", "phase": "log"})
    result = DriftResult.objects.create(
        job=job, deployment=deployment, trigger="beat", detector="psi", drift=True, score=3.0, threshold=1.0,
        version="1", explanation="PSI 3.0 ≥ 1", test_window={"segments": [{"device_id": "R1", "batch_id": batch}]})
    return drift_services.alert_raise(job=job, result=result)


def with_email(user, address: str):
    user.email = address
    user.save(update_fields=["email"])
    return user


def test_alert_lifecycle_reaches_a_subscriber_by_email(smtp_server, deployment, role_users, eager_celery,
                                                       django_capture_on_commit_callbacks):
    operator = with_email(role_users["operator"], "operator@plant.example")
    services.subscription_create(user=operator, events=ALERT_EVENTS, channel="email", deployment=deployment)
    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_alert(deployment)
    with django_capture_on_commit_callbacks(execute=True):
        drift_services.alert_acknowledge(alert=alert, user=operator, note="checking the probe")
    with django_capture_on_commit_callbacks(execute=True):
        drift_services.alert_resolve(alert=alert, user=role_users["modeler"], reason="probe replaced")
    assert smtp_server.subjects() == [
        f"[STAMM] Drift alert #{alert.pk} opened on penicillin-ridge (critical)",
        f"[STAMM] Drift alert #{alert.pk} acknowledged on penicillin-ridge (critical)",
        f"[STAMM] Drift alert #{alert.pk} resolved on penicillin-ridge (critical)",
    ]
    first, second, third = (m.get_payload() for m in smtp_server.messages)
    assert "psi (job psi-live) on batch_98" in first and smtp_server.messages[0]["To"] == "operator@plant.example"
    assert "by test-operator" in second and "Note: checking the probe" in second
    assert "Reason: probe replaced" in third
    assert set(Delivery.objects.values_list("status", "attempts")) == {("sent", 1)}


def test_webhook_is_signed_retried_with_backoff_and_logged(webhook_receiver, deployment, role_users, eager_celery,
                                                           django_capture_on_commit_callbacks):
    subscription = services.subscription_create(user=role_users["modeler"], events=["alert_opened"],
                                                channel="webhook", url=webhook_receiver.url)
    assert len(subscription.secret) == 64
    webhook_receiver.statuses[:] = [500, 503]  # two failures, then 200
    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_alert(deployment)
    delivery = Delivery.objects.get(subscription=subscription)
    assert (delivery.status, delivery.attempts) == ("sent", 3)
    log = list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("number", "ok", "status_code"))
    assert log == [(1, False, 500), (2, False, 503), (3, True, 200)]
    assert len(webhook_receiver.requests) == 3
    headers, body = webhook_receiver.requests[-1]
    assert channels.webhook_verify(secret=subscription.secret, headers=headers, body=body)
    assert not channels.webhook_verify(secret="another secret", headers=headers, body=body)
    assert not channels.webhook_verify(secret=subscription.secret, headers=headers, body=body + b" ")
    stale = int(headers["X-Stamm-Timestamp"]) + channels.DEFAULT_TOLERANCE_SECONDS + 1
    assert not channels.webhook_verify(secret=subscription.secret, headers=headers, body=body, now=stale)
    payload = json.loads(body)
    assert payload["kind"] == "alert_opened" and payload["facts"]["alert_id"] == alert.pk
    assert headers["X-Stamm-Event"] == "alert_opened"
    assert headers["X-Stamm-Signature"] == channels.webhook_signature(
        secret=subscription.secret, timestamp=int(headers["X-Stamm-Timestamp"]), body=body)


def test_a_webhook_that_keeps_failing_is_given_up(webhook_receiver, deployment, role_users, eager_celery, settings,
                                                  django_capture_on_commit_callbacks):
    settings.STAMM_NOTIFY_MAX_ATTEMPTS = 3
    services.subscription_create(user=role_users["modeler"], events=["alert_opened"], channel="webhook",
                                 url=webhook_receiver.url)
    webhook_receiver.statuses[:] = [500] * 10
    with django_capture_on_commit_callbacks(execute=True):
        raise_alert(deployment)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 500 Internal Server Error")
    assert len(webhook_receiver.requests) == 3


def test_backoff_doubles_and_is_capped(settings):
    settings.STAMM_NOTIFY_BACKOFF_SECONDS = 30
    assert [services.retry_delay(n) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert services.retry_delay(20) == 3600.0


def test_many_alerts_at_once_make_one_digest_not_a_flood(smtp_server, deployment, role_users, settings,
                                                         django_capture_on_commit_callbacks):
    from apps.notifications.tasks import deliver, send_digest

    settings.STAMM_NOTIFY_DIGEST_AFTER = 2
    manager = with_email(role_users["manager"], "manager@plant.example")
    subscription = services.subscription_create(user=manager, events=["alert_opened"], channel="email")
    # the deliver tasks go to the test broker (nobody consumes it): they are run below, in order
    with django_capture_on_commit_callbacks(execute=True):
        alerts = [raise_alert(deployment, name=f"job-{i}") for i in range(6)]
    for delivery in Delivery.objects.filter(subscription=subscription).order_by("id"):
        with django_capture_on_commit_callbacks(execute=False) as queued:
            deliver.apply(args=[delivery.pk])
    statuses = list(Delivery.objects.filter(event__isnull=False).order_by("id").values_list("status", flat=True))
    assert statuses == ["sent", "sent", "held", "held", "held", "held"]
    digest = Delivery.objects.get(event__isnull=True)
    assert len(queued) <= 1 and digest.held.count() == 4 and len(smtp_server.messages) == 2
    send_digest.apply(args=[digest.pk])
    assert len(smtp_server.messages) == 3
    message = smtp_server.messages[-1]
    assert message["Subject"] == "[STAMM] digest: 4 notifications"
    for alert in alerts[2:]:
        assert f"Drift alert #{alert.pk} opened" in message.get_payload()
    digest.refresh_from_db()
    assert digest.status == "sent" and all(d.sent_at for d in digest.held.all())


def test_who_hears_what(deployment, role_users, django_capture_on_commit_callbacks):
    from apps.orchestrator.services import deployment_create

    other = deployment_create(user=role_users["modeler"], name="other", soft_sensor=deployment.soft_sensor,
                              alias="production", max_input_age_seconds=900)
    here = services.subscription_create(user=with_email(role_users["operator"], "o@x.example"),
                                        events=["alert_opened"], deployment=deployment)
    elsewhere = services.subscription_create(user=with_email(role_users["manager"], "m@x.example"),
                                             events=["alert_opened"], deployment=other)
    everywhere = services.subscription_create(user=role_users["modeler"], events=["alert_opened"],
                                              channel="webhook", url="http://127.0.0.1:9/none")
    not_this_kind = services.subscription_create(user=with_email(role_users["admin"], "a@x.example"),
                                                 events=["pipeline_failing"])
    paused = services.subscription_create(user=role_users["admin"], events=["alert_opened"], enabled=False)
    outsider = Subscription.objects.create(user=with_email(role_users["outsider"], "x@x.example"),
                                           events=["alert_opened"])  # no role: may not read process data
    with django_capture_on_commit_callbacks(execute=True):  # the receivers run; the sends go to the test broker
        raise_alert(deployment)
    reached = set(Delivery.objects.values_list("subscription_id", flat=True))
    assert reached == {here.pk, everywhere.pk}
    assert not reached & {elsewhere.pk, not_this_kind.pk, paused.pk, outsider.pk}


def test_pipeline_failing_and_validity_bad_come_through_the_orchestrators_signals(deployment, role_users, settings):
    from apps.orchestrator import signals

    settings.STAMM_NOTIFY_REPEAT_SECONDS = 3600
    subscription = services.subscription_create(user=with_email(role_users["operator"], "o@x.example"),
                                                events=["pipeline_failing", "validity_bad"], deployment=deployment)
    facts = {"deployment_id": deployment.pk, "run_id": 7, "project_name": "penicillin", "device_id": "R1",
             "batch_id": "batch_91"}
    signals.pipeline_failing.send(sender=None, error="registry unavailable", failures=1, **facts)
    for _ in range(3):  # every invalid run announces; one notification per batch within the repeat window
        signals.estimates_invalid.send(sender=None, rows=10, invalid=4, verdicts={"ok": 6, "out_of_range": 4},
                                       **facts)
    kinds = list(Event.objects.order_by("id").values_list("kind", "subject"))
    assert kinds == [("pipeline_failing", "Pipeline failing: penicillin-ridge on R1/batch_91"),
                     ("validity_bad", "Estimate validity Bad: penicillin-ridge on R1/batch_91")]
    assert Delivery.objects.filter(subscription=subscription).count() == 2
    assert "4 of 10 estimates" in Event.objects.get(kind="validity_bad").body


def test_a_failed_run_announces_pipeline_failing_once_per_streak(deployment, django_capture_on_commit_callbacks):
    from apps.orchestrator import signals
    from apps.orchestrator.models import RunStatus
    from apps.orchestrator.services.runs import group_claim, run_release, watermarks_ensure
    from apps.tsdb.types import GroupKey

    heard = []
    signals.pipeline_failing.connect(lambda sender, **f: heard.append(f), dispatch_uid="test-failing", weak=False)
    try:
        (watermark,) = watermarks_ensure([(deployment, GroupKey("penicillin", "R1", "batch_91"))])
        for _ in range(2):
            claim = group_claim(watermark_id=watermark.pk, trigger="event", now=timezone.now())
            with django_capture_on_commit_callbacks(execute=True):
                run_release(claim, status=RunStatus.FAILED, error="boom", retry=True)
            watermark.refresh_from_db()
            watermark.lease_token = None
            watermark.retry_after = None
            watermark.save()
    finally:
        signals.pipeline_failing.disconnect(dispatch_uid="test-failing")
    assert [(f["batch_id"], f["error"], f["failures"]) for f in heard] == [("batch_91", "boom", 1)]


def test_subscription_validation_names_the_field(role_users):
    cases = [({"events": []}, "events"), ({"events": ["nope"]}, "events"),
             ({"events": ["alert_opened"], "channel": "webhook", "url": "ftp://x"}, "url"),
             ({"events": ["alert_opened"], "channel": "pigeon"}, "channel"),
             ({"events": ["alert_opened"], "channel": "email"}, "channel")]  # the operator has no e-mail address
    from apps.common.errors import ValidationFailed

    for kwargs, field in cases:
        with pytest.raises(ValidationFailed) as caught:
            services.subscription_create(user=role_users["operator"], **kwargs)
        assert field in caught.value.details, (kwargs, caught.value.details)


def test_api_subscriptions_deliveries_and_roles(api_client_for, role_users, deployment, webhook_receiver,
                                                eager_celery, django_capture_on_commit_callbacks):
    modeler = api_client_for("modeler")
    created = modeler.post(f"{API}/subscriptions/create", {"events": ["alert_opened"], "channel": "webhook",
                                                           "url": webhook_receiver.url,
                                                           "deployment": deployment.name}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["deployment"] == "penicillin-ridge" and len(body["secret"]) == 64
    assert modeler.get(f"{API}/subscriptions").json()["count"] == 1
    assert api_client_for("operator").get(f"{API}/subscriptions").json()["count"] == 0  # only your own
    assert api_client_for("operator").post(f"{API}/subscriptions/{body['id']}/delete").status_code == 404
    bad = modeler.post(f"{API}/subscriptions/create", {"events": ["alert_opened"], "channel": "webhook"},
                       format="json")
    assert bad.status_code == 400 and "url" in bad.json()["error"]["details"]
    rotated = modeler.post(f"{API}/subscriptions/{body['id']}/rotate-secret").json()
    assert rotated["secret"] != body["secret"]
    updated = modeler.post(f"{API}/subscriptions/{body['id']}/update", {"events": ["alert_opened", "alert_resolved"]},
                           format="json").json()
    assert updated["events"] == ["alert_opened", "alert_resolved"] and updated["deployment"] == "penicillin-ridge"
    with django_capture_on_commit_callbacks(execute=True):
        raise_alert(deployment)
    deliveries = modeler.get(f"{API}/deliveries").json()
    assert deliveries["count"] == 1 and deliveries["results"][0]["attempt_log"][0]["status_code"] == 200
    assert modeler.get(f"{API}/events", {"kind": "alert_opened"}).json()["count"] == 1
    for caller, code in (("anonymous", 401), ("outsider", 403)):
        assert api_client_for(caller).get(f"{API}/subscriptions").status_code == code
    assert modeler.post(f"{API}/subscriptions/{body['id']}/delete").status_code == 204
    assert not Subscription.objects.exists()


def test_the_subscription_page(client, role_users, deployment):
    operator = with_email(role_users["operator"], "operator@plant.example")
    client.force_login(operator)
    page = client.get("/notifications/")
    assert page.status_code == 200 and b"subscription-form" in page.content
    made = client.post("/notifications/", {"action": "create", "deployment": str(deployment.pk),
                                           "events": ["alert_opened", "validity_bad"], "channel": "email"})
    assert made.status_code == 302
    subscription = Subscription.objects.get(user=operator)
    assert subscription.deployment == deployment and subscription.events == ["alert_opened", "validity_bad"]
    bad = client.post("/notifications/", {"action": "create", "events": ["alert_opened"], "channel": "webhook"})
    assert bad.status_code == 400
    client.post("/notifications/", {"action": "toggle", "subscription": subscription.pk})
    subscription.refresh_from_db()
    assert not subscription.enabled
    client.force_login(role_users["outsider"])
    assert client.get("/notifications/").status_code == 403

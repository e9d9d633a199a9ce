"""The alert lifecycle (open → acknowledged → resolved, by hand or when a live check clears it), silences,
the status-light rule (only open, unsilenced alerts on what a deployment scores now count; ad hoc runs
never touch live status) and the alert API's roles and shapes."""
from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.common.errors import Conflict, ValidationFailed
from apps.drift import selectors, services
from apps.drift.models import Alert, AlertEvent, AlertSilence, DriftJob, DriftResult

from .test_jobs_indpensim import LOG_PHASE, psi_job

API = "/api/v1/drift"
CALLERS = ("anonymous", "outsider", "operator", "modeler", "manager", "admin")


def history(alert: Alert) -> list[tuple[str, str | None, bool]]:
    return [(e.action, e.by.get_username() if e.by_id else None, e.automatic)
            for e in selectors.alert_history(alert=alert)]


@pytest.mark.django_db
def test_lifecycle_by_hand_with_history_and_audit(deployment, store_batches, role_users,
                                                  django_capture_on_commit_callbacks):
    from apps.audit.models import AuditEntry
    from apps.drift import signals

    heard: list[tuple[str, dict]] = []

    def listener(name: str):
        return lambda sender, **facts: heard.append((name, facts))

    receivers = {name: listener(name) for name in ("alert_opened", "alert_acknowledged", "alert_resolved")}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver, dispatch_uid=f"test-{name}")
    try:
        job = psi_job(deployment, role_users["modeler"], "psi-log-91", "batch_91")
        with django_capture_on_commit_callbacks(execute=True):
            result = services.drift_job_run(job=job)
        alert = Alert.objects.get(job=job)
        assert result.drift and alert.state == "open" and result.version == "1"
        with pytest.raises(ValidationFailed) as missing:  # a resolution needs a reason
            services.alert_resolve(alert=alert, user=role_users["modeler"], reason="  ")
        assert missing.value.details == {"reason": "required"}
        with django_capture_on_commit_callbacks(execute=True):
            services.alert_acknowledge(alert=alert, user=role_users["operator"], note="feed pump checked")
        with django_capture_on_commit_callbacks(execute=True):
            services.alert_resolve(alert=alert, user=role_users["modeler"], reason="sugar feed fault explained")
        alert.refresh_from_db()
        assert alert.state == "resolved" and alert.resolved_by == role_users["modeler"]
        assert alert.resolve_reason == "sugar feed fault explained" and alert.resolved_by_result is None
        with pytest.raises(Conflict):
            services.alert_resolve(alert=alert, user=role_users["modeler"], reason="again")
        with pytest.raises(Conflict):
            services.alert_acknowledge(alert=alert, user=role_users["operator"])
        assert history(alert) == [("opened", None, True), ("acknowledged", "test-operator", False),
                                  ("resolved", "test-modeler", False)]
        assert [e.note for e in selectors.alert_history(alert=alert)][1:] == ["feed pump checked",
                                                                             "sugar feed fault explained"]
        assert [(name, facts["by"], facts["state"]) for name, facts in heard] == [
            ("alert_opened", "", "open"), ("alert_acknowledged", "test-operator", "acknowledged"),
            ("alert_resolved", "test-modeler", "resolved")]
        # the audit trail records each transition of the audited Alert with who did it
        entries = AuditEntry.objects.filter(object_pk=str(alert.pk), content_type__model="alert").order_by("id")
        states = [e.changes.get("state", [None, None])[1] for e in entries if "state" in (e.changes or {})]
        assert states == ["open", "acknowledged", "resolved"]
    finally:
        for name in receivers:
            getattr(signals, name).disconnect(dispatch_uid=f"test-{name}")


@pytest.mark.django_db
def test_the_next_live_check_finding_no_drift_resolves_the_alert(deployment, store_batches, role_users):
    job = psi_job(deployment, role_users["modeler"], "psi-log", "batch_91")
    services.drift_job_run(job=job)
    alert = Alert.objects.get(job=job)
    services.alert_acknowledge(alert=alert, user=role_users["operator"])
    # an ad hoc run finding no drift is not a live check: it resolves nothing
    services.drift_run_ad_hoc(detector="psi", deployment=deployment, reference={"kind": "training"},
                              test={**LOG_PHASE, "batch_id": "batch_98"})
    alert.refresh_from_db()
    assert alert.state == "acknowledged"
    # a failed run knows nothing: nothing resolved
    DriftJob.objects.filter(pk=job.pk).update(test={**LOG_PHASE, "batch_id": "batch_404"})
    job.refresh_from_db()
    assert services.drift_job_run(job=job).status == "failed"
    alert.refresh_from_db()
    assert alert.state == "acknowledged"
    # the condition cleared: the same job now sees a calm batch
    job = services.drift_job_update(job=job, data={"test": {**LOG_PHASE, "batch_id": "batch_98"}})
    calm = services.drift_job_run(job=job)
    alert.refresh_from_db()
    assert not calm.drift and alert.state == "resolved" and alert.resolved_by is None
    assert alert.resolved_by_result == calm and "condition cleared" in alert.resolve_reason
    assert history(alert)[-1] == ("resolved", None, True)


def just_after_the_newest_point():
    from apps.tsdb.selectors import latest_points
    from apps.tsdb.types import SeriesFilter

    return max(p.time for p in latest_points(where=SeriesFilter(project_name="penicillin"))) + timedelta(minutes=10)


def _alert_on(deployment, batch: str, *, name: str = "j", detector: str = "psi", version: str = "1",
              severity: str = "critical", trigger: str = "beat") -> Alert:
    job = DriftJob.objects.create(name=name, deployment=deployment, detector=detector,
                                  reference={"kind": "training"}, test={"kind": "phase", "phase": "log"})
    result = DriftResult.objects.create(
        job=job, deployment=deployment, trigger=trigger, detector=detector, drift=True, score=3.0, threshold=1.0,
        version=version, test_window={"segments": [{"device_id": "R1", "batch_id": batch}]})
    return services.alert_raise(job=job, result=result)


@pytest.mark.django_db
def test_status_rule_counts_only_open_unsilenced_alerts_on_what_the_deployment_scores_now(deployment, role_users):
    live = ("R1/batch_98",)
    counted = _alert_on(deployment, "batch_98", name="live")
    _alert_on(deployment, "batch_100", name="historical")
    _alert_on(deployment, "batch_98", name="older-version", version="0")
    acknowledged = _alert_on(deployment, "batch_98", name="acknowledged", detector="ks")
    services.alert_acknowledge(alert=acknowledged, user=role_users["operator"])

    status = selectors.deployment_alert_status(deployment=deployment, version="1", batches=live)
    assert status.counted == [counted] and status.worst_severity == "critical" and status.light_name == "critical"
    why = {alert.job.name: reason for alert, reason in status.listed}
    assert why["historical"] == "on batch_100, not a batch it scores now"
    assert why["older-version"] == "raised on version 0; the deployment runs 1 now"
    assert why["acknowledged"] == "acknowledged by test-operator"

    # a silence of psi on this deployment keeps psi's alert out of the light, not ks's; ending it brings it back
    until = timezone.now() + timedelta(hours=8)
    silence = services.alert_silence_create(deployment=deployment, detector="psi", until=until,
                                            reason="sensor recalibration", user=role_users["modeler"])
    status = selectors.deployment_alert_status(deployment=deployment, version="1", batches=live)
    assert status.counted == [] and status.light_name == "ok" and status.silences == [silence]
    assert dict((a.job.name, r) for a, r in status.listed)["live"].startswith("silenced until")
    services.alert_silence_end(silence=silence, user=role_users["modeler"])
    assert selectors.deployment_alert_status(deployment=deployment, version="1", batches=live).counted == [counted]
    with pytest.raises(Conflict):
        services.alert_silence_end(silence=silence, user=role_users["modeler"])
    # an expired silence silences nothing
    AlertSilence.objects.create(deployment=deployment, detector="", until=timezone.now() - timedelta(minutes=1),
                                reason="old")
    assert selectors.deployment_alert_status(deployment=deployment, version="1", batches=live).counted == [counted]


@pytest.mark.django_db
def test_ad_hoc_runs_never_touch_live_status_or_the_last_check(deployment, store_batches, role_users):
    job = psi_job(deployment, role_users["modeler"], "psi-log-98", "batch_98")
    calm = services.drift_job_run(job=job)
    now = just_after_the_newest_point()  # batch 98, the newest batch of R1, is live
    assert selectors.live_batches(deployment=deployment, now=now + timedelta(days=1)) == ()  # between batches
    status = selectors.deployment_alert_status(deployment=deployment, now=now)
    assert status.live_batches == ("R1/batch_98",)
    assert status.last_check == calm and status.counted == []
    ad_hoc, stored = services.drift_run_ad_hoc(detector="psi", deployment=deployment, reference={"kind": "training"},
                                               test={**LOG_PHASE, "batch_id": "batch_91"})
    assert stored and ad_hoc.drift and ad_hoc.deployment == deployment
    after = selectors.deployment_alert_status(deployment=deployment, now=now)
    assert after.last_check == calm and after.counted == [] and not Alert.objects.exclude(job=job).exists()


@pytest.mark.django_db
def test_silence_validation_names_the_field(deployment, role_users):
    now = timezone.now()
    cases = [({"reason": "", "until": now + timedelta(hours=1)}, "reason"),
             ({"reason": "r", "until": now - timedelta(hours=1)}, "until"),
             ({"reason": "r", "until": now + timedelta(days=400)}, "until"),
             ({"reason": "r", "until": now + timedelta(hours=1), "detector": "nope"}, "detector")]
    for kwargs, field in cases:
        with pytest.raises(ValidationFailed) as caught:
            services.alert_silence_create(deployment=deployment, user=role_users["modeler"], **kwargs)
        assert field in caught.value.details, (kwargs, caught.value.details)
    assert not AlertSilence.objects.exists()


RESOLVE = {"anonymous": 401, "outsider": 403, "operator": 403, "modeler": 200, "manager": 403, "admin": 200}
SILENCE = {"anonymous": 401, "outsider": 403, "operator": 403, "modeler": 201, "manager": 403, "admin": 201}


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_resolve_and_silence_role_matrix(api_client_for, deployment, caller):
    alert = _alert_on(deployment, "batch_98")
    client = api_client_for(caller)
    assert client.post(f"{API}/alerts/{alert.pk}/resolve", {"reason": "fixed"}, format="json").status_code == \
        RESOLVE[caller]
    until = (timezone.now() + timedelta(hours=2)).isoformat()
    response = client.post(f"{API}/silences/create", {"deployment": deployment.name, "detector": "psi",
                                                      "until": until, "reason": "maintenance"}, format="json")
    assert response.status_code == SILENCE[caller]
    read = 200 if caller not in ("anonymous", "outsider") else (401 if caller == "anonymous" else 403)
    assert client.get(f"{API}/alerts/{alert.pk}/history").status_code == read
    assert client.get(f"{API}/status/{deployment.name}").status_code == read


@pytest.mark.django_db
def test_alert_api_shapes_history_silences_and_status(api_client_for, deployment, store_batches):
    traveller = time_machine.travel(just_after_the_newest_point(), tick=True)  # batch 98 is live
    traveller.start()
    try:
        alert = _alert_on(deployment, "batch_98")
        historical = _alert_on(deployment, "batch_100", name="historical")
        check_api_shapes(api_client_for, deployment, alert, historical)
    finally:
        traveller.stop()


def check_api_shapes(api_client_for, deployment, alert, historical):
    modeler, operator = api_client_for("modeler"), api_client_for("operator")
    status = operator.get(f"{API}/status/{deployment.pk}").json()
    assert status["light"] == "critical" and status["live_batches"] == ["R1/batch_98"]
    assert [a["id"] for a in status["counted"]] == [alert.pk] and status["counted"][0]["batches"] == ["R1/batch_98"]
    assert status["listed"][0]["alert"]["id"] == historical.pk
    assert "not a batch it scores now" in status["listed"][0]["why_not_counted"]

    ack = operator.post(f"{API}/alerts/{alert.pk}/acknowledge", {"note": "on it"}, format="json").json()
    assert ack["state"] == "acknowledged" and ack["acknowledged_by"] == "test-operator"
    missing = modeler.post(f"{API}/alerts/{alert.pk}/resolve", {}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()["error"]["details"]
    done = modeler.post(f"{API}/alerts/{alert.pk}/resolve", {"reason": "explained"}, format="json").json()
    assert (done["state"], done["resolved_by"], done["resolve_reason"]) == ("resolved", "test-modeler", "explained")
    assert modeler.post(f"{API}/alerts/{alert.pk}/resolve", {"reason": "x"}, format="json").status_code == 409
    events = operator.get(f"{API}/alerts/{alert.pk}/history").json()
    assert [(e["action"], e["by"]) for e in events["results"]] == [
        ("opened", None), ("acknowledged", "test-operator"), ("resolved", "test-modeler")]
    assert operator.get(f"{API}/alerts", {"state": "resolved"}).json()["count"] == 1
    assert operator.get(f"{API}/alerts", {"state": "active"}).json()["count"] == 1
    assert operator.get(f"{API}/alerts", {"state": "bogus"}).status_code == 400

    bad = modeler.post(f"{API}/silences/create", {"deployment": "nope", "until": "2030-01-01T00:00:00Z",
                                                  "reason": "r"}, format="json")
    assert bad.status_code == 400 and "deployment" in bad.json()["error"]["message"]
    until = (timezone.now() + timedelta(hours=2)).isoformat()
    silence = modeler.post(f"{API}/silences/create", {"deployment": deployment.name, "until": until,
                                                      "reason": "planned maintenance"}, format="json").json()
    assert silence["detector"] == "" and silence["created_by"] == "test-modeler" and silence["ended_at"] is None
    assert operator.get(f"{API}/silences", {"active": "true"}).json()["count"] == 1
    assert operator.get(f"{API}/status/{deployment.name}").json()["light"] == "ok"  # historical one is silenced too
    ended = modeler.post(f"{API}/silences/{silence['id']}/delete").json()
    assert ended["ended_by"] == "test-modeler"
    assert modeler.post(f"{API}/silences/{silence['id']}/delete").status_code == 409
    assert operator.get(f"{API}/silences", {"active": "false"}).json()["count"] == 1
    assert operator.get(f"{API}/status/nope").status_code == 400
    assert AlertEvent.objects.filter(alert=alert).count() == 3

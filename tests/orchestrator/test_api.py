"""The orchestrator API through HTTP: permissions per role, deployment CRUD, runs with filters, health lag."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.orchestrator import services
from apps.orchestrator.models import Deployment, PipelineRun, RunStatus, Trigger, Watermark
from apps.tsdb.services import points_ingest
from tests.conftest import CALLERS

from .helpers import MODEL_ID, raw_batch

BASE = "/api/v1/orchestrator/"
READERS = {"operator", "modeler", "manager", "admin"}
WRITERS = {"modeler", "admin"}


@pytest.fixture
def body():
    return {
        "name": "rf-live",
        "project_id": "P0001",
        "model_id": MODEL_ID,
        "alias": "production",
        "max_input_age_seconds": 900,
    }


def make_run(deployment, status=RunStatus.SUCCEEDED, trigger=Trigger.EVENT, batch="batch_92", started=None):
    import uuid

    return PipelineRun.objects.create(
        deployment=deployment,
        project_name="penicillin",
        device_id="R1",
        batch_id=batch,
        trigger=trigger,
        status=status,
        lease_token=uuid.uuid4(),
        started_at=started or timezone.now(),
        finished_at=timezone.now(),
        snapshots=3,
        predictions=3 if status == RunStatus.SUCCEEDED else 0,
        skipped_reasons={},
    )


@pytest.mark.parametrize("caller", CALLERS)
def test_reads_need_view_process(caller, api_client_for, deployment):
    for url in (
        f"{BASE}deployments/",
        f"{BASE}runs/",
        f"{BASE}deployments/{deployment.pk}/",
        f"{BASE}deployments/{deployment.pk}/watermarks/",
    ):
        response = api_client_for(caller).get(url)
        expected = 200 if caller in READERS else (401 if caller == "anonymous" else 403)
        assert response.status_code == expected, (url, response.content)


@pytest.mark.parametrize("caller", CALLERS)
def test_writes_need_manage_pipeline(caller, api_client_for, rf, body):
    response = api_client_for(caller).post(f"{BASE}deployments/create/", body, format="json")
    expected = 201 if caller in WRITERS else (401 if caller == "anonymous" else 403)
    assert response.status_code == expected, response.content
    assert Deployment.objects.filter(name="rf-live").exists() == (caller in WRITERS)


def test_deployment_crud(api_client_for, rf, body):
    client = api_client_for("modeler")
    created = client.post(
        f"{BASE}deployments/create/",
        {**body, "device_ids": ["R1"], "batch_pattern": "batch_9*", "input_mapping": {"pH": "ph_probe"}},
        format="json",
    )
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["model_id"] == MODEL_ID and data["alias"] == "production" and data["pinned_version"] is None
    assert data["input_mapping"] == {"pH": "ph_probe"} and data["device_ids"] == ["R1"]
    pk = data["id"]
    updated = client.patch(
        f"{BASE}deployments/{pk}/update/", {"pinned_version": 1, "alias": "", "enabled": False}, format="json"
    )
    assert updated.status_code == 200, updated.content
    assert (
        updated.json()["pinned_version"] == 1 and updated.json()["alias"] == "" and updated.json()["enabled"] is False
    )
    assert [d["name"] for d in client.get(f"{BASE}deployments/").json()] == ["rf-live"]
    assert client.post(f"{BASE}deployments/{pk}/delete/").status_code == 204
    assert client.get(f"{BASE}deployments/{pk}/").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"alias": "staging"}, "alias"),
        ({"alias": "", "pinned_version": None}, "alias"),
        ({"model_id": "0009_[python]_nope"}, "model_id"),
        ({"pinned_version": 7, "alias": ""}, "pinned_version"),
        ({"input_mapping": {"not_a_feature": "x"}}, "input_mapping"),
        ({"max_input_age_seconds": 0}, "max_input_age_seconds"),
        ({"name": "has spaces"}, "name"),
    ],
)
def test_bad_deployments_are_400_naming_the_field(api_client_for, rf, body, change, field):
    response = api_client_for("admin").post(f"{BASE}deployments/create/", {**body, **change}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in str(error["details"]) or field in error["message"], error
    assert not Deployment.objects.exists()


def test_duplicate_name_is_refused(api_client_for, deployment, body):
    response = api_client_for("admin").post(
        f"{BASE}deployments/create/", {**body, "name": deployment.name}, format="json"
    )
    assert response.status_code == 400 and "already exists" in str(response.json()["error"]["details"])


def test_runs_are_listed_newest_first_with_filters_and_pages(api_client_for, deployment):
    now = timezone.now()
    old = make_run(deployment, started=now - timedelta(hours=2))
    failed = make_run(deployment, status=RunStatus.FAILED, started=now - timedelta(minutes=30))
    beat = make_run(deployment, trigger=Trigger.BEAT, batch="batch_93", started=now - timedelta(minutes=5))
    client = api_client_for("operator")
    body = client.get(f"{BASE}runs/").json()
    assert body["count"] == 3 and [r["id"] for r in body["results"]] == [beat.pk, failed.pk, old.pk]
    first = body["results"][0]
    assert (
        first["timings_ms"].keys() == {"health", "detect", "infer", "store"}
        and first["group"] == "penicillin/R1/batch_93"
    )
    assert [r["id"] for r in client.get(f"{BASE}runs/", {"status": "failed"}).json()["results"]] == [failed.pk]
    assert [r["id"] for r in client.get(f"{BASE}runs/", {"trigger": "beat"}).json()["results"]] == [beat.pk]
    since = (now - timedelta(hours=1)).isoformat()
    assert client.get(f"{BASE}runs/", {"since": since}).json()["count"] == 2
    assert client.get(f"{BASE}runs/", {"deployment": deployment.name}).json()["count"] == 3
    assert client.get(f"{BASE}runs/", {"deployment": "other"}).json()["count"] == 0
    page = client.get(f"{BASE}runs/", {"page_size": 2, "page": 2}).json()
    assert [r["id"] for r in page["results"]] == [old.pk]
    bad = client.get(f"{BASE}runs/", {"status": "green"})
    assert bad.status_code == 400 and "status" in str(bad.json()["error"])
    assert client.get(f"{BASE}runs/{failed.pk}/").json()["status"] == "failed"


def test_backfill_and_run_actions_queue_work(api_client_for, deployment, batch92, sent_tasks, monkeypatch):
    from apps.orchestrator import tasks

    queued = []
    monkeypatch.setattr(
        tasks.backfill,
        "apply_async",
        lambda args=None, kwargs=None, task_id=None, **kw: queued.append((list(args), task_id)),
    )
    client = api_client_for("modeler")
    response = client.post(
        f"{BASE}deployments/{deployment.pk}/backfill/",
        {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 202, response.content
    assert queued == [
        ([deployment.pk, "2026-03-01T00:00:00+00:00", "2026-03-02T00:00:00+00:00"], response.json()["task_id"])
    ]
    backwards = client.post(
        f"{BASE}deployments/{deployment.pk}/backfill/",
        {"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        format="json",
    )
    assert backwards.status_code == 400 and "before start" in backwards.json()["error"]["message"]
    from apps.tsdb.backends import get_backend

    get_backend().write(raw_batch(batch92.iloc[:5], batch_id="batch_92"))
    run = client.post(f"{BASE}deployments/{deployment.pk}/run/")
    assert run.status_code == 202 and run.json()["queued"] == 1
    assert sent_tasks[-1]["args"][1] == "manual"
    marks = client.get(f"{BASE}deployments/{deployment.pk}/watermarks/").json()
    assert marks[0]["group"] == "penicillin/R1/batch_92" and marks[0]["pending"] is True


def test_health_reports_the_pipeline_lag_per_deployment(registry_url, api_client_for, deployment, batch92, sent_tasks):
    services.heartbeat_record(name="beat")
    points_ingest(
        batch=raw_batch(batch92.iloc[:10], batch_id="batch_92", start=timezone.now() - timedelta(minutes=20), step_s=60)
    )
    body = api_client_for("operator").get("/api/v1/health/").json()
    pipeline = body["checks"]["pipeline"]
    entry = pipeline["deployments"][0]
    assert entry["deployment"] == deployment.name and entry["online"] is True
    group = entry["groups"][0]
    assert group["newest_prediction"] is None and 1000 < group["waiting_seconds"] < 1300
    assert pipeline["ok"] is False and "waiting" in pipeline["detail"]
    wm = Watermark.objects.get(deployment=deployment)
    assert services.pipeline_group_run(watermark_id=wm.pk, trigger=Trigger.MANUAL).predictions == 10
    body = api_client_for("operator").get("/api/v1/health/").json()
    entry = body["checks"]["pipeline"]["deployments"][0]
    assert entry["lag_seconds"] == 0 and entry["groups"][0]["unscored_age_seconds"] == 0
    assert body["checks"]["pipeline"]["ok"] is True


def test_pipeline_health_probe_is_recorded_and_reported(registry_url, api_client_for, deployment, settings):
    assert services.pipeline_health_record().ok is True
    settings.STAMM_REGISTRY_URL = "http://127.0.0.1:1"
    services.registry_access_reset()
    verdict = services.pipeline_health_record()
    assert verdict.ok is False and "registry" in verdict.reason
    body = api_client_for("operator").get("/api/v1/health/").json()
    assert (
        body["checks"]["pipeline"]["ok"] is False
        and "last pipeline probe failed" in body["checks"]["pipeline"]["detail"]
    )

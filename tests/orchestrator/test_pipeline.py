"""The pipeline at service level: claims, dedup, watermark, idempotency, late data, skips, retries.

The registry is this test server's real predict endpoint (``live_server``); faults come from a real
HTTP proxy in front of it that answers 500 a given number of times.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from apps.orchestrator import services
from apps.orchestrator.models import PipelineRun, RunStatus, Trigger, Watermark
from apps.orchestrator.services import pipeline, runs
from apps.tsdb.backends import get_backend
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, GroupKey, SeriesKey, from_ns, to_ns

from .helpers import FEATURES, MODEL_ID, PROJECT, T0, TARGET, expected_predictions, raw_batch, row_time
from .registry_proxy import RegistryProxy

GROUP = GroupKey(PROJECT, "R1", "batch_92")


def predictions(group: GroupKey = GROUP, version: str = "1"):
    series = SeriesKey(
        group.project_name, group.device_id, group.batch_id, "soft_sensor", TARGET, MODEL_ID.lower(), version
    )
    return get_backend().read(
        collection=Collection.PREDICTIONS, series=series, start=T0 - timedelta(days=1), end=T0 + timedelta(days=30)
    )


def ingest(frame, *, offset_rows=0, batch_id="batch_92", variables=FEATURES, step_s=20.0):
    return points_ingest(
        batch=raw_batch(frame, batch_id=batch_id, offset_rows=offset_rows, variables=variables, step_s=step_s)
    )


def watermark_of(deployment, group: GroupKey = GROUP) -> Watermark:
    return Watermark.objects.get(
        deployment=deployment, project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id
    )


def run_pending(deployment, group: GroupKey = GROUP, trigger=Trigger.EVENT) -> PipelineRun | None:
    return services.pipeline_group_run(watermark_id=watermark_of(deployment, group).pk, trigger=trigger)


# ------------------------------------------------------------------------------------------------ happy path


def test_ingest_event_queues_one_run_and_the_run_scores_every_snapshot(
    registry_url, deployment, rf, batch92, sent_tasks
):
    frame = batch92.iloc[:40]
    ingest(frame)
    wm = watermark_of(deployment)
    assert wm.pending is True and sent_tasks == [{"args": [[wm.pk], "event"], "countdown": None}]
    run = run_pending(deployment)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.snapshots, run.predictions, run.skipped) == (40, 40, 0)
    assert run.trigger == Trigger.EVENT and run.version_label == "1" and run.model_id == MODEL_ID
    assert all(v is not None for v in (run.health_ms, run.detect_ms, run.infer_ms, run.store_ms))
    data = predictions()
    assert len(data) == 40
    assert np.array_equal(data.times_ns, to_ns(T0) + np.arange(40, dtype=np.int64) * 20 * 10**9)
    np.testing.assert_allclose(data.values, expected_predictions(rf[1], frame), rtol=1e-9)
    assert set(data.fields["validity"]) <= {"ok", "out_of_range"}
    wm.refresh_from_db()
    assert wm.watermark_ns == to_ns(row_time(39)) and wm.pending is False and wm.lease_token is None


def test_only_new_snapshots_after_the_watermark_are_scored(registry_url, deployment, batch92):
    ingest(batch92.iloc[:30])
    first = run_pending(deployment)
    ingest(batch92.iloc[30:45], offset_rows=30)
    second = run_pending(deployment)
    assert (first.snapshots, second.snapshots, second.predictions) == (30, 15, 15)
    assert from_ns(second.first_snapshot_ns) == row_time(30)
    assert len(predictions()) == 45


def test_rerunning_a_window_changes_nothing(registry_url, deployment, batch92):
    ingest(batch92.iloc[:25])
    run_pending(deployment)
    before = predictions()
    Watermark.objects.filter(deployment=deployment).update(watermark_ns=None, checkpoints=[])
    again = run_pending(deployment, trigger=Trigger.MANUAL)
    assert again.status == RunStatus.SUCCEEDED and again.predictions == 25
    after = predictions()
    assert len(after) == 25
    assert np.array_equal(before.times_ns, after.times_ns) and np.array_equal(before.values, after.values)


def test_a_burst_of_ingests_leaves_one_pending_run(transactional_db, deployment, batch92, sent_tasks):
    for i in range(5):
        ingest(batch92.iloc[i * 4 : (i + 1) * 4], offset_rows=i * 4)
    assert services.pipeline_groups_notify(groups=[GROUP]) == []
    wm = watermark_of(deployment)
    assert wm.pending is True and len(sent_tasks) == 1
    assert Watermark.objects.filter(deployment=deployment).count() == 1
    # While a run holds the group, new data only sets the flag; the run's end queues exactly one follow-up.
    claim = runs.group_claim(watermark_id=wm.pk, trigger=Trigger.EVENT)
    assert claim is not None and not watermark_of(deployment).pending
    ingest(batch92.iloc[20:24], offset_rows=20)
    ingest(batch92.iloc[24:28], offset_rows=24)
    assert len(sent_tasks) == 1 and watermark_of(deployment).pending
    runs.run_release(claim, status=RunStatus.SUCCEEDED, error="", retry=False)
    assert len(sent_tasks) == 2 and sent_tasks[-1]["args"] == [[wm.pk], "event"]


def test_claim_excludes_a_second_worker_until_the_lease_expires(transactional_db, deployment, settings):
    settings.STAMM_PIPELINE_LEASE_SECONDS = 60
    wm = runs.watermarks_ensure([(deployment, GROUP)])[0]
    with time_machine.travel(T0, tick=False):
        first = runs.group_claim(watermark_id=wm.pk, trigger=Trigger.EVENT)
        assert first is not None
        assert runs.group_claim(watermark_id=wm.pk, trigger=Trigger.BEAT) is None
    with time_machine.travel(T0 + timedelta(seconds=59), tick=False):
        assert runs.group_claim(watermark_id=wm.pk, trigger=Trigger.BEAT) is None
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        second = runs.group_claim(watermark_id=wm.pk, trigger=Trigger.BEAT)
        assert second is not None and second.token != first.token
        first.run.refresh_from_db()
        assert first.run.status == RunStatus.STALE and "lease expired" in first.run.error
        with pytest.raises(runs.LeaseLost):
            runs.lease_renew(first)


def test_a_run_whose_lease_was_taken_over_stores_nothing(registry_url, deployment, batch92, settings, monkeypatch):
    """The slow run loses its lease while inferring: its completion matches no row and rolls back."""
    ingest(batch92.iloc[:10])
    wm = watermark_of(deployment)
    real_score = pipeline.estimates_score_many
    taken = {}

    def infer_then_lose_the_lease(*args, **kwargs):
        result = real_score(*args, **kwargs)
        Watermark.objects.filter(pk=wm.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        taken["claim"] = runs.group_claim(watermark_id=wm.pk, trigger=Trigger.BEAT)
        return result

    monkeypatch.setattr(pipeline, "estimates_score_many", infer_then_lose_the_lease)
    run = run_pending(deployment)
    assert run.status == RunStatus.STALE and taken["claim"] is not None
    assert len(predictions()) == 0  # nothing stored by the loser
    monkeypatch.setattr(pipeline, "estimates_score_many", real_score)
    Watermark.objects.filter(pk=wm.pk).update(lease_token=None, lease_expires_at=None)
    redo = run_pending(deployment)
    assert redo.status == RunStatus.SUCCEEDED and redo.predictions == 10 and len(predictions()) == 10


# ------------------------------------------------------------------------------------------- late data


def test_late_and_out_of_order_points_are_scored(registry_url, deployment, rf, batch92):
    # Rows 0..29 arrive with rows 10..14 missing; rows 30..39 arrive; then rows 10..14 arrive late.
    ingest(batch92.iloc[:10])
    ingest(batch92.iloc[15:30], offset_rows=15)
    run_pending(deployment)
    ingest(batch92.iloc[30:40], offset_rows=30)
    run_pending(deployment)
    assert len(predictions()) == 35
    ingest(batch92.iloc[10:15], offset_rows=10)
    late = run_pending(deployment)
    assert late.status == RunStatus.SUCCEEDED and late.dirty_from_ns is not None
    data = predictions()
    assert len(data) == 40
    np.testing.assert_allclose(data.values, expected_predictions(rf[1], batch92.iloc[:40]), rtol=1e-9)
    # Nothing new: the next run scores nothing (the late-data detector is satisfied).
    quiet = run_pending(deployment)
    assert quiet.snapshots == 0 and quiet.dirty_from_ns is None


def test_tags_of_the_newest_instant_arriving_late_rescore_that_instant_only(registry_url, deployment, rf, batch92):
    # A device's tags for one instant split over two ingests: the first run scores the row with pH's previous
    # value; the rest arriving is late data, bounded by the previous watermark's checkpoint.
    ingest(batch92.iloc[:30])
    run_pending(deployment)
    ingest(batch92.iloc[30:31], offset_rows=30, variables=[v for v in FEATURES if v != "pH"])
    partial = run_pending(deployment)
    assert partial.snapshots == 1 and partial.predictions == 1
    ingest(batch92.iloc[30:31], offset_rows=30, variables=["pH"])
    late = run_pending(deployment)
    assert late.status == RunStatus.SUCCEEDED and late.dirty_from_ns == to_ns(row_time(29)) + 1
    assert late.snapshots == 1 and from_ns(late.first_snapshot_ns) == row_time(30)
    data = predictions()
    assert len(data) == 31
    np.testing.assert_allclose(data.values, expected_predictions(rf[1], batch92.iloc[:31]), rtol=1e-9)
    wm = watermark_of(deployment)
    assert wm.checkpoints[0][0] == to_ns(row_time(30)) and wm.checkpoints[1][0] <= to_ns(row_time(29))
    quiet = run_pending(deployment)
    assert quiet.snapshots == 0 and quiet.dirty_from_ns is None


def test_late_data_older_than_every_checkpoint_rescores_from_the_start(registry_url, deployment, rf, batch92):
    ingest(batch92.iloc[1:20], offset_rows=1)
    run_pending(deployment)
    ingest(batch92.iloc[20:25], offset_rows=20)
    run_pending(deployment)
    assert [c[0] for c in watermark_of(deployment).checkpoints] == [to_ns(row_time(24)), to_ns(row_time(19))]
    ingest(batch92.iloc[:1])  # before the oldest checkpoint
    late = run_pending(deployment)
    assert late.dirty_from_ns == 0 and late.snapshots == 25
    np.testing.assert_allclose(predictions().values, expected_predictions(rf[1], batch92.iloc[:25]), rtol=1e-9)


def test_checkpoints_are_thinned_by_age_and_dropped_where_a_window_rescored():
    from apps.orchestrator.services.late_data import checkpoints_next

    s = 10**9
    old = [[100 * s, 50], [99 * s, 49], [98 * s, 48], [96 * s, 46], [90 * s, 40], [60 * s, 10]]
    # A clean window after the watermark: the new one first, then at most one per power-of-two age in seconds.
    assert checkpoints_next(old, after_ns=100 * s, watermark_ns=101 * s, points=51) == [
        [101 * s, 51], [100 * s, 50], [99 * s, 49], [96 * s, 46], [90 * s, 40], [60 * s, 10],
    ]
    # A rescore after 96 s: the checkpoints after it may count late points, so they go.
    assert checkpoints_next(old, after_ns=96 * s, watermark_ns=100 * s, points=53) == [
        [100 * s, 53], [96 * s, 46], [90 * s, 40], [60 * s, 10],
    ]
    assert checkpoints_next(old, after_ns=None, watermark_ns=100 * s, points=53) == [[100 * s, 53]]
    assert checkpoints_next(old, after_ns=None, watermark_ns=None, points=0) == []


def test_rescoring_a_long_late_window_is_chunked_and_keeps_its_place(registry_url, deployment, batch92, settings):
    settings.STAMM_PIPELINE_CHUNK = 8
    ingest(batch92.iloc[1:20], offset_rows=1)
    while run_pending(deployment).snapshots == 8:
        pass
    assert len(predictions()) == 19
    ingest(batch92.iloc[:1])  # one late point before everything
    runs = [run_pending(deployment) for _ in range(4)]
    assert [r.snapshots for r in runs] == [8, 8, 4, 0]
    assert len(predictions()) == 20


# ---------------------------------------------------------------------------------------- skips, faults


def test_a_missing_input_records_skipped_runs_with_the_reason(registry_url, deployment, batch92):
    ingest(batch92.iloc[:12], variables=[v for v in FEATURES if v != "pH"])
    run = run_pending(deployment)
    assert run.status == RunStatus.SKIPPED
    assert (run.snapshots, run.predictions, run.skipped) == (12, 0, 12)
    assert run.skipped_reasons == {"missing: pH": 12}
    assert "missing: pH" in run.error
    assert len(predictions()) == 0


def test_a_stale_input_is_skipped_by_max_age(registry_url, deployment, batch92):
    ingest(batch92.iloc[:5], step_s=20)
    # pH stops; the others go on for 20 more minutes: beyond max age 600 s the rows are skipped.
    later = batch92.iloc[5:65]
    ingest(later, offset_rows=5, variables=[v for v in FEATURES if v != "pH"])
    run = run_pending(deployment)
    assert run.predictions + run.skipped == run.snapshots == 65
    assert run.skipped_reasons == {"stale: pH": run.skipped} and run.skipped > 0


def test_offline_versions_are_never_called(registry_url, deployment, rf, batch92, role_users):
    from apps.registry.services import model_version_set_status

    model_version_set_status(version=rf[0], status="offline", user=role_users["modeler"])
    ingest(batch92.iloc[:5])
    assert Watermark.objects.filter(deployment=deployment).count() == 0  # no run queued for an offline model
    wm = runs.watermarks_ensure([(deployment, GROUP)])[0]
    run = services.pipeline_group_run(watermark_id=wm.pk, trigger=Trigger.MANUAL)
    assert run.status == RunStatus.SKIPPED and "offline" in run.error and run.registry_attempts == 0
    assert len(predictions()) == 0


def test_registry_500_twice_then_200_is_retried_and_stored(live_server, settings, deployment, batch92):
    settings.STAMM_PIPELINE_RETRY_BACKOFF_MS = 10
    ingest(batch92.iloc[:15])
    with RegistryProxy(live_server.url, failures=2) as proxy:
        settings.STAMM_REGISTRY_URL = proxy.url
        run = run_pending(deployment)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert proxy.posts == 3 and run.registry_attempts == 3
    assert len(predictions()) == 15


def test_registry_down_fails_the_run_then_a_retry_is_scheduled(live_server, settings, deployment, batch92, sent_tasks):
    settings.STAMM_PIPELINE_RETRY_BACKOFF_MS = 1
    settings.STAMM_PIPELINE_RETRIES = 2
    ingest(batch92.iloc[:15])
    with RegistryProxy(live_server.url, failures=100) as proxy:
        settings.STAMM_REGISTRY_URL = proxy.url
        sent_tasks.clear()
        run = run_pending(deployment)
    assert run.status == RunStatus.FAILED and "after 3 attempts" in run.error and "500" in run.error
    wm = watermark_of(deployment)
    assert wm.watermark_ns is None and wm.failures == 1 and wm.pending and wm.retry_after > timezone.now()
    assert sent_tasks == [{"args": [[wm.pk], "event"], "countdown": 2.0}]  # the retry, with backoff
    assert len(predictions()) == 0


def test_a_4xx_fails_the_run_with_the_registry_message(live_server, settings, deployment, batch92):
    body = b'{"error": {"status": 400, "code": "invalid", "message": "Missing input: pH"}}'
    ingest(batch92.iloc[:5])
    with RegistryProxy(live_server.url, failures=100, status=400, body=body) as proxy:
        settings.STAMM_REGISTRY_URL = proxy.url
        run = run_pending(deployment)
    assert run.status == RunStatus.FAILED and proxy.posts == 1
    assert "400" in run.error and "Missing input: pH" in run.error


def test_an_unreachable_registry_fails_the_health_step_with_the_reason(transactional_db, settings, deployment, batch92):
    settings.STAMM_REGISTRY_URL = "http://127.0.0.1:1"
    ingest(batch92.iloc[:5])
    run = run_pending(deployment)
    assert run.status == RunStatus.FAILED and "health check failed" in run.error and "registry" in run.error


# ------------------------------------------------------------------------------------------ beat, backfill


def test_beat_detection_queues_groups_events_missed(registry_url, deployment, batch92, sent_tasks):
    get_backend().write(raw_batch(batch92.iloc[:10], batch_id="batch_93"))  # no signal: bypasses the ingest service
    counts = services.pipeline_detect()
    assert counts["queued"] == 1 and len(sent_tasks) == 1 and sent_tasks[0]["args"][1] == "beat"
    group = GroupKey(PROJECT, "R1", "batch_93")
    assert watermark_of(deployment, group).pending
    assert run_pending(deployment, group, trigger=Trigger.BEAT).predictions == 10
    assert services.pipeline_detect()["queued"] == 0  # caught up


def test_beat_detection_marks_expired_leases_stale_and_requeues(registry_url, deployment, batch92, settings):
    settings.STAMM_PIPELINE_LEASE_SECONDS = 30
    ingest(batch92.iloc[:6])
    wm = watermark_of(deployment)
    with time_machine.travel(T0, tick=False):
        dead = runs.group_claim(watermark_id=wm.pk, trigger=Trigger.EVENT)  # a worker that then dies
    with time_machine.travel(T0 + timedelta(seconds=45), tick=False):
        counts = services.pipeline_detect()
    assert counts["stale"] == 1
    dead.run.refresh_from_db()
    assert dead.run.status == RunStatus.STALE
    redo = run_pending(deployment)
    assert redo.status == RunStatus.SUCCEEDED and redo.predictions == 6


def test_backfill_command_rescoring_is_idempotent(registry_url, deployment, batch92):
    from io import StringIO

    from django.core.management import call_command

    ingest(batch92.iloc[:50])
    ingest(batch92.iloc[:30], batch_id="batch_93")
    args = ["--deployment", deployment.name, "--start", row_time(10).isoformat(), "--end", row_time(39).isoformat()]
    out = StringIO()
    call_command("orchestrator_backfill", *args, "--no-progress", stdout=out)
    assert "2 group(s), 50 snapshots, 50 predictions" in out.getvalue()
    assert len(predictions()) == 30
    call_command("orchestrator_backfill", *args, "--no-progress", stdout=StringIO())
    assert len(predictions()) == 30 and len(predictions(GroupKey(PROJECT, "R1", "batch_93"))) == 20
    runs = PipelineRun.objects.filter(trigger=Trigger.BACKFILL)
    assert runs.count() == 4 and set(runs.values_list("status", flat=True)) == {RunStatus.SUCCEEDED}
    assert Watermark.objects.filter(deployment=deployment, watermark_ns__isnull=False).count() == 0


def test_default_schedules_include_detection_and_health(transactional_db):
    from django_celery_beat.models import PeriodicTask

    services.beat_schedules_ensure()
    tasks = dict(PeriodicTask.objects.values_list("task", "interval__every"))
    assert tasks["orchestrator.detect"] == settings.STAMM_PIPELINE_DETECT_INTERVAL
    assert tasks["orchestrator.health"] == 60
    assert "orchestrator.heartbeat" in tasks


def test_two_deployments_score_the_same_group_each_with_its_version(registry_url, deployment, rf, batch92, role_users):
    from apps.registry.services import alias_move

    version2, model2 = __import__("tests.orchestrator.helpers", fromlist=["register_rf"]).register_rf(
        user=role_users["modeler"], alias=None, n_estimators=4
    )
    alias_move(
        soft_sensor=version2.soft_sensor, name="challenger", version=version2, user=role_users["modeler"], reason="ab"
    )
    services.deployment_create(
        name="challenger", soft_sensor=version2.soft_sensor, alias="challenger", max_input_age_seconds=600
    )
    ingest(batch92.iloc[:20])
    for wm in Watermark.objects.all():
        services.pipeline_group_run(watermark_id=wm.pk, trigger=Trigger.EVENT)
    assert len(predictions(version="1")) == 20 and len(predictions(version="2")) == 20
    np.testing.assert_allclose(
        predictions(version="2").values, expected_predictions(model2, batch92.iloc[:20]), rtol=1e-9
    )


def test_deployment_ensure_is_idempotent(transactional_db, rf):
    version, _ = rf
    first, created = services.deployment_ensure(name="demo", soft_sensor=version.soft_sensor, alias="production")
    again, created_again = services.deployment_ensure(name="demo", soft_sensor=version.soft_sensor, alias="other")
    assert created and not created_again and first.pk == again.pk and again.alias == "production"

"""One pipeline task scores the pending groups of many deployments: one registry call per model version, one
write, and every run's outcome still its own (a skip, a lost lease or a failure ends that run alone).

The registry is this test server's real predict endpoint (``live_server``).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from apps.orchestrator import services
from apps.orchestrator.models import PipelineRun, RunStatus, Trigger, Watermark
from apps.orchestrator.predictors import RestPredictor
from apps.orchestrator.services import pipeline, runs
from apps.tsdb.backends import get_backend
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, GroupKey, PointBatch, SeriesKey

from .helpers import MODEL_ID, PROJECT, T0, TARGET, expected_predictions, load_batch, raw_batch, register_rf

GROUPS = [GroupKey(PROJECT, "R1", "batch_92"), GroupKey(PROJECT, "R2", "batch_93")]


@pytest.fixture
def scene(registry_url, transactional_db, role_users, monkeypatch):
    """Two versions (two deployments, each on both reactors) and 40 rows of data in each group."""
    v1, m1 = register_rf(user=role_users["modeler"], n_estimators=10)
    v2, m2 = register_rf(user=role_users["modeler"], n_estimators=3, alias="challenger")
    frames = {
        group: load_batch(int(group.batch_id.split("_")[1])).iloc[:40].reset_index(drop=True) for group in GROUPS
    }
    deployments = [
        services.deployment_create(
            user=role_users["modeler"], name=name, soft_sensor=v.soft_sensor, alias=alias, max_input_age_seconds=600
        )
        for name, v, alias in (("live", v1, "production"), ("second", v2, "challenger"))
    ]
    calls: list[tuple[int, int]] = []
    real = RestPredictor.predict

    def counted(self, spec, X):
        calls.append((spec.number, int(X.shape[0])))
        return real(self, spec, X)

    monkeypatch.setattr(RestPredictor, "predict", counted)
    for group, frame in frames.items():
        points_ingest(batch=raw_batch(frame, batch_id=group.batch_id, device_id=group.device_id))
    calls.clear()
    return {"models": {1: m1, 2: m2}, "frames": frames, "deployments": deployments, "calls": calls}


def stored(group: GroupKey, version: str) -> np.ndarray:
    series = SeriesKey(
        group.project_name, group.device_id, group.batch_id, "soft_sensor", TARGET, MODEL_ID.lower(), version
    )
    data = get_backend().read(
        collection=Collection.PREDICTIONS, series=series, start=T0 - timedelta(hours=1), end=T0 + timedelta(days=2)
    )
    return np.asarray(data.values)


def test_one_task_scores_every_group_with_one_call_per_version(scene):
    ids = list(Watermark.objects.order_by("pk").values_list("pk", flat=True))
    assert len(ids) == 4  # two deployments × two groups
    done = services.pipeline_groups_run(watermark_ids=ids, trigger=Trigger.EVENT)
    assert [r.status for r in done] == [RunStatus.SUCCEEDED] * 4, [r.error for r in done]
    assert sorted(scene["calls"]) == [(1, 80), (2, 80)]  # both groups of a version in one call
    for group, frame in scene["frames"].items():
        for number, model in scene["models"].items():
            np.testing.assert_allclose(stored(group, str(number)), expected_predictions(model, frame), rtol=1e-9)
    assert all(r.predictions == 40 and r.snapshots == 40 for r in done)
    saved = list(PipelineRun.objects.filter(pk__in=[r.pk for r in done]).values(
        "status", "predictions", "snapshots", "version__number", "finished_at", "lease_expires_at", "skipped_reasons"
    ))
    assert sorted(r["version__number"] for r in saved) == [1, 1, 2, 2]
    assert all(
        r["status"] == RunStatus.SUCCEEDED and r["predictions"] == 40 and r["snapshots"] == 40
        and r["finished_at"] is not None and r["lease_expires_at"] is None and r["skipped_reasons"] == {}
        for r in saved
    )
    for watermark in Watermark.objects.all():
        assert watermark.lease_token is None and watermark.watermark_ns is not None and not watermark.pending
    again = services.pipeline_groups_run(watermark_ids=ids, trigger=Trigger.EVENT)
    assert [r.snapshots for r in again] == [0] * 4 and len(scene["calls"]) == 2  # nothing new: no call


def test_the_windows_of_a_version_are_packed_into_calls_of_at_most_the_chunk(scene, settings):
    settings.STAMM_PIPELINE_CHUNK = 50  # a window is 40 rows: two windows no longer fit in one call
    ids = list(Watermark.objects.order_by("pk").values_list("pk", flat=True))
    done = services.pipeline_groups_run(watermark_ids=ids)
    assert [r.status for r in done] == [RunStatus.SUCCEEDED] * 4
    assert sorted(scene["calls"]) == [(1, 40), (1, 40), (2, 40), (2, 40)]
    for group, frame in scene["frames"].items():
        for number, model in scene["models"].items():
            np.testing.assert_allclose(stored(group, str(number)), expected_predictions(model, frame), rtol=1e-9)


def test_a_skipped_deployment_and_a_lost_lease_end_their_own_runs_only(scene, monkeypatch):
    live, second = scene["deployments"]
    second.enabled = False
    second.save(update_fields=["enabled"])
    ids = list(Watermark.objects.order_by("pk").values_list("pk", flat=True))
    loser = Watermark.objects.get(deployment=live, device_id="R2")
    real = pipeline.estimates_score_many
    taken = {}

    def score_then_lose_one_lease(*args, **kwargs):
        result = real(*args, **kwargs)
        Watermark.objects.filter(pk=loser.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        taken["claim"] = runs.group_claim(watermark_id=loser.pk, trigger=Trigger.BEAT)
        return result

    monkeypatch.setattr(pipeline, "estimates_score_many", score_then_lose_one_lease)
    done = {(r.deployment_id, r.device_id): r for r in services.pipeline_groups_run(watermark_ids=ids)}
    assert taken["claim"] is not None
    assert done[(live.pk, "R1")].status == RunStatus.SUCCEEDED
    assert done[(live.pk, "R2")].status == RunStatus.STALE
    assert {done[(second.pk, d)].status for d in ("R1", "R2")} == {RunStatus.SKIPPED}
    assert done[(second.pk, "R1")].error == "deployment disabled"
    assert len(stored(GROUPS[0], "1")) == 40 and len(stored(GROUPS[1], "1")) == 0  # the loser stored nothing
    assert len(stored(GROUPS[0], "2")) == 0


def test_a_failed_registry_call_fails_that_versions_runs_and_schedules_their_retry(scene, monkeypatch, sent_tasks):
    real = RestPredictor.predict

    def refuse_version_two(self, spec, X):
        if spec.number == 2:
            raise RuntimeError("runtime crashed")
        return real(self, spec, X)

    monkeypatch.setattr(RestPredictor, "predict", refuse_version_two)
    ids = list(Watermark.objects.order_by("pk").values_list("pk", flat=True))
    sent_tasks.clear()
    done = services.pipeline_groups_run(watermark_ids=ids)
    by_version = {}
    for run in done:
        by_version.setdefault(run.deployment.alias, set()).add(run.status)
    assert by_version == {"production": {RunStatus.SUCCEEDED}, "challenger": {RunStatus.FAILED}}
    failed = [r for r in done if r.status == RunStatus.FAILED]
    assert all("RuntimeError: runtime crashed" in r.error for r in failed)
    retried = sorted(wid for task in sent_tasks for wid in task["args"][0])
    assert retried == sorted(r.watermark_id for r in failed) and {t["countdown"] for t in sent_tasks} == {2.0}


def test_runs_are_queued_in_tasks_of_at_most_the_batch_size(transactional_db, settings, sent_tasks):
    from django.db import transaction

    settings.STAMM_PIPELINE_BATCH = 2
    with transaction.atomic():
        runs.runs_enqueue([5, 3, 1, 4, 2, 3], Trigger.BEAT)
    assert [t["args"] for t in sent_tasks] == [[[1, 2], "beat"], [[3, 4], "beat"], [[5], "beat"]]


def test_point_batches_concatenate_with_their_series_merged():
    a, b, c = (SeriesKey(PROJECT, d, "b", "soft_sensor", TARGET, "m", "1") for d in ("R1", "R2", "R3"))
    first = PointBatch(
        Collection.PREDICTIONS, [a, b], np.array([0, 1, 0], dtype=np.int32), np.array([1, 2, 3]),
        np.array([1.0, 2.0, 3.0]), {"validity": np.array(["ok", "ok", "out_of_range"], dtype=object)},
    )
    second = PointBatch(
        Collection.PREDICTIONS, [c, a], np.array([1, 0], dtype=np.int32), np.array([4, 5]), np.array([4.0, 5.0]),
        {"corrected_value": np.array([4.5, 5.5])},
    )
    both = PointBatch.concat([first, second])
    assert both.series == [a, b, c]
    assert [(p.series, p.value) for p in both.points()] == [(a, 1.0), (b, 2.0), (a, 3.0), (a, 4.0), (c, 5.0)]
    assert both.fields["validity"].tolist() == ["ok", "ok", "out_of_range", "", ""]
    np.testing.assert_array_equal(both.fields["corrected_value"], [np.nan, np.nan, np.nan, 4.5, 5.5])
    with pytest.raises(ValueError, match="one collection"):
        PointBatch.concat([first, PointBatch(Collection.RAW, [], np.empty(0, np.int32), np.empty(0), np.empty(0))])


def test_one_claim_takes_the_free_and_expired_leases_each_with_its_own_token(scene, settings):
    settings.STAMM_PIPELINE_LEASE_SECONDS = 60
    free, held, expired, other = Watermark.objects.order_by("pk")
    Watermark.objects.filter(pk__in=[free.pk, other.pk]).update(pending=True, pending_since=timezone.now())
    busy = runs.group_claim(watermark_id=held.pk, trigger=Trigger.EVENT)
    dead = runs.group_claim(watermark_id=expired.pk, trigger=Trigger.EVENT)
    Watermark.objects.filter(pk=expired.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    claims = runs.groups_claim(watermark_ids=[other.pk, free.pk, held.pk, expired.pk, free.pk], trigger=Trigger.BEAT)
    assert [c.watermark.pk for c in claims] == [other.pk, free.pk, expired.pk]
    assert len({c.token for c in claims} | {busy.token}) == 4
    rows = Watermark.objects.in_bulk([free.pk, held.pk, expired.pk, other.pk])
    for claim in claims:
        assert rows[claim.watermark.pk].lease_token == claim.token == claim.run.lease_token
        assert rows[claim.watermark.pk].pending is False and rows[claim.watermark.pk].pending_since is None
    assert rows[held.pk].lease_token == busy.token
    dead.run.refresh_from_db()
    assert dead.run.status == RunStatus.STALE

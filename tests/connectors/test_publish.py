"""Estimates out: the whole chain through the runner, the quality codes, and failed deliveries — against the
real Mosquitto broker, the registry served by this test's live server, and the real pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from apps.connectors import delivery, services
from apps.connectors.models import Delivery, PublicationCursor, SourceStatus
from apps.connectors.publishers import PublishFailed
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, GroupKey, PointBatch, SeriesKey, to_ns
from tests.orchestrator.helpers import FEATURES, MODEL_ID, PROJECT, TARGET, load_batch

from .peers import MqttPeer, topic_prefix, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run_tasks_inline(monkeypatch):
    """Celery tasks run where they are sent (the pipeline's run and the delivery), as a worker would."""
    from apps.connectors import tasks as connector_tasks
    from apps.orchestrator import tasks as orchestrator_tasks

    for task in (orchestrator_tasks.run_groups, connector_tasks.deliver):
        monkeypatch.setattr(task, "apply_async", lambda args=None, countdown=None, _t=task, **kw: _t.apply(args=args))


@pytest.fixture
def plant(mqtt_broker, deployment):
    """A source reading the plant's topics and a publication of the deployment's estimates."""
    prefix = topic_prefix()
    url = f"mqtt://{mqtt_broker[0]}:{mqtt_broker[1]}"
    source = services.data_source_create(
        name="plant",
        kind="mqtt",
        url=url,
        client_id=f"c-{prefix}",
        rules=[
            {
                "pattern": f"{prefix}/in/{{device_id}}/{{observed_property}}",
                "project_name": PROJECT,
                "batch_id": "live-1",
            }
        ],
    )
    publication = services.publication_create(
        deployment=deployment, connection=source, target=f"{prefix}/out/{{device_id}}/{{observed_property}}"
    )
    collector = MqttPeer(*mqtt_broker, subscribe=f"{prefix}/out/#")
    yield {"prefix": prefix, "source": source, "publication": publication, "collector": collector}
    collector.close()


def estimates(collector: MqttPeer) -> list[dict]:
    return [body for _, body, _ in collector.received if isinstance(body, dict)]


def test_values_in_become_estimates_out_with_quality_good(
    registry_url, plant, run_tasks_inline, runner_threads, mqtt_broker
):
    runner_threads()
    wait_for(lambda: SourceStatus.objects.filter(connected=True).exists(), 10, "the connection")
    frame = load_batch(92).iloc[100:104]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    times = [start + timedelta(seconds=10 * i) for i in range(len(frame))]
    peer = MqttPeer(*mqtt_broker)
    for moment, (_, row) in zip(times, frame.iterrows(), strict=True):
        for feature in FEATURES:
            peer.publish(
                f"{plant['prefix']}/in/R1/{feature}", {"value": float(row[feature]), "timestamp": moment.isoformat()}
            )
    got = wait_for(
        lambda: (
            {e["time"] for e in estimates(plant["collector"])} >= {t.isoformat() for t in times[1:]}
            and estimates(plant["collector"])
        ),
        30,
        "the estimates",
    )
    newest = max(got, key=lambda e: e["time"])
    assert newest["time"] == times[-1].isoformat()
    assert newest["quality"] == "good" and newest["status"] == "Good" and newest["status_code"] == 0
    assert newest["model_id"] == MODEL_ID and newest["version"] == 1 and newest["bias"] == 0.0
    assert newest["validity"] in ("ok", "") and newest["device_id"] == "R1" and newest["batch_id"] == "live-1"
    assert newest["observed_property"] == TARGET and newest["value"] == newest["raw_value"]
    topics = {topic for topic, _, _ in plant["collector"].received}
    assert topics == {f"{plant['prefix']}/out/R1/{TARGET}"}
    logged = Delivery.objects.filter(publication=plant["publication"], status="delivered")
    wait_for(lambda: logged.count() == len(got), 10, "the delivery log (written after the broker's PUBACK)")
    assert {d.quality for d in logged} == {"good"}
    peer.close()


def _predict(group: GroupKey, moments: list[datetime], *, validity: str = "ok", value: float = 12.5) -> None:
    """Prediction points as the pipeline stores them (the contract of issue 12's scoring path)."""
    series = SeriesKey(
        group.project_name, group.device_id, group.batch_id, "soft_sensor", TARGET, MODEL_ID.lower(), "1"
    )
    points_ingest(
        batch=PointBatch(
            collection=Collection.PREDICTIONS,
            series=[series],
            series_index=np.zeros(len(moments), dtype=np.int32),
            times_ns=np.array([to_ns(m) for m in moments], dtype=np.int64),
            values=np.full(len(moments), value),
            fields={
                "validity": np.array([validity] * len(moments), dtype=object),
                "corrected_value": np.full(len(moments), value + 0.5),
            },
        )
    )


def _deliver(publication, group: GroupKey) -> int:
    """Notify and deliver one publication's group; returns how many estimates were delivered (a failed send
    raises ``PublishFailed`` with the peer's error, for the tests to match)."""
    delivery.publications_notify([(publication.deployment_id, group)])
    cursor = PublicationCursor.objects.get(publication=publication, batch_id=group.batch_id)
    outcome = delivery.publications_deliver(cursor_ids=[cursor.pk])
    if outcome.failed:
        raise PublishFailed(outcome.failed[cursor.pk])
    return outcome.delivered


def test_quality_codes_follow_the_written_rules(plant, sent_tasks, role_users):
    from apps.connectors.inputs.base import CompiledRule, Incoming
    from apps.connectors.mapping import Pattern, Reading
    from apps.connectors.readings import readings_store

    publication, collector = plant["publication"], plant["collector"]
    group = GroupKey(PROJECT, "R1", "live-2")
    now = datetime.now(UTC).replace(microsecond=0)

    # inputs outside the envelope → Uncertain; the corrected value (raw + bias) is the estimate
    _predict(group, [now - timedelta(seconds=30)], validity="out_of_range")
    assert _deliver(publication, group) == 1
    body = wait_for(lambda: estimates(collector), 10, "the first estimate")[-1]
    assert (body["quality"], body["status"], body["value"], body["raw_value"]) == (
        "uncertain",
        "UncertainEngineeringUnitsExceeded",
        13.0,
        12.5,
    )
    assert body["reasons"] == ["inputs outside the envelope (out_of_range)"]

    # a source reported an input Bad after its last good value → the estimate holds it: Uncertain (stale)
    rule = CompiledRule(Pattern.parse("x"), {}, "", 1.0, 0.0, 1000, 0.0)
    key = SeriesKey(PROJECT, "R1", "live-2", "sensor", "pH")
    readings_store(
        items=[
            Incoming(plant["source"].pk, key, rule, Reading(6.5, now - timedelta(seconds=25)), 0),
            Incoming(
                plant["source"].pk,
                key,
                rule,
                Reading(None, now - timedelta(seconds=22), "bad", 0x808C0000, "BadSensorFailure"),
                0,
            ),
        ]
    )
    _predict(group, [now - timedelta(seconds=20)])
    assert _deliver(publication, group) == 1
    body = wait_for(lambda: len(estimates(collector)) == 2 and estimates(collector)[-1], 10, "the second estimate")
    assert (body["quality"], body["status"]) == ("uncertain", "UncertainLastUsableValue")
    assert body["reasons"] == ["stale inputs: pH"]

    # a good value again, and a drift alert open on the deployment → Uncertain (drift)
    readings_store(items=[Incoming(plant["source"].pk, key, rule, Reading(6.6, now - timedelta(seconds=15)), 0)])
    from apps.drift.models import Alert, DriftJob, DriftResult

    job = DriftJob.objects.create(
        name="psi-live",
        deployment=publication.deployment,
        detector="psi",
        reference={"kind": "training"},
        test={"kind": "phase"},
    )
    result = DriftResult.objects.create(  # a live check on the batch being published: it counts
        job=job, deployment=publication.deployment, trigger="manual", detector="psi", drift=True,
        test_window={"segments": [{"device_id": group.device_id, "batch_id": group.batch_id}]},
    )
    alert = Alert.objects.create(job=job, result=result, last_result=result, severity="warning", message="PSI drift")
    _predict(group, [now - timedelta(seconds=10)])
    assert _deliver(publication, group) == 1
    body = wait_for(lambda: len(estimates(collector)) == 3 and estimates(collector)[-1], 10, "the third estimate")
    assert (body["quality"], body["status"], body["reasons"]) == (
        "uncertain",
        "UncertainSensorNotAccurate",
        ["drift alert open (1)"],
    )

    # acknowledged: Good again
    alert.acknowledged_at, alert.state = now, "acknowledged"
    alert.save()
    _predict(group, [now - timedelta(seconds=5)])
    assert _deliver(publication, group) == 1
    body = wait_for(lambda: len(estimates(collector)) == 4 and estimates(collector)[-1], 10, "the fourth estimate")
    assert (body["quality"], body["reasons"]) == ("good", [])

    # nothing new: nothing sent (at least once, not again and again)
    assert _deliver(publication, group) == 0

    # the pipeline's latest run failed → the last estimate once more, as Bad; only once per failed run
    from apps.orchestrator.models import PipelineRun

    run = PipelineRun.objects.create(
        deployment=publication.deployment,
        project_name=PROJECT,
        device_id="R1",
        batch_id="live-2",
        trigger="event",
        status="failed",
        error="registry: HTTP 500",
        lease_token="00000000-0000-0000-0000-000000000001",
        started_at=now,
        finished_at=now,
    )
    assert run.pk and _deliver(publication, group) == 1
    body = wait_for(lambda: len(estimates(collector)) == 5 and estimates(collector)[-1], 10, "the Bad status")
    assert (body["quality"], body["status"], body["value"]) == ("bad", "BadInternalError", 13.0)
    assert body["reasons"] == ["runtime failure: registry: HTTP 500"]
    assert _deliver(publication, group) == 0
    assert list(Delivery.objects.filter(publication=publication).order_by("id").values_list("quality", flat=True)) == [
        "uncertain",
        "uncertain",
        "uncertain",
        "good",
        "bad",
    ]


def test_estimates_older_than_max_age_are_never_sent(plant, sent_tasks):
    group = GroupKey(PROJECT, "R1", "history")
    _predict(group, [datetime.now(UTC) - timedelta(hours=2)])
    assert _deliver(plant["publication"], group) == 0


def test_a_failed_send_is_logged_and_the_cursor_waits_for_the_retry(plant, sent_tasks, deployment):
    unreachable = services.data_source_create(name="down", kind="mqtt", url="mqtt://127.0.0.1:9")
    publication = services.publication_create(deployment=deployment, connection=unreachable, target="x/{device_id}")
    group = GroupKey(PROJECT, "R1", "live-3")
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    _predict(group, [moment])
    with pytest.raises(PublishFailed, match="cannot reach"):
        _deliver(publication, group)
    failed = Delivery.objects.get(publication=publication)
    assert failed.status == "failed" and "cannot reach" in failed.error and failed.attempt == 1
    cursor = PublicationCursor.objects.get(publication=publication)
    assert cursor.delivered_through_ns is None and cursor.failures == 1
    services.data_source_update(data_source=unreachable, data={"url": plant["source"].url})
    retried = delivery.publications_deliver(cursor_ids=[cursor.pk], attempt=2)  # the retry sends the same estimate
    assert (retried.delivered, retried.failed) == (1, {})
    cursor.refresh_from_db()
    assert cursor.delivered_through_ns == to_ns(moment) and cursor.failures == 0


def test_a_long_backlog_is_sent_oldest_first_in_bounded_pieces(plant, sent_tasks):
    group = GroupKey(PROJECT, "R1", "backlog")
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=500)
    moments = [first + timedelta(milliseconds=20 * i) for i in range(25_000)]  # more than one store read returns
    _predict(group, moments)
    assert _deliver(plant["publication"], group) == delivery.MAX_ESTIMATES
    logged = sorted(Delivery.objects.filter(publication=plant["publication"]).values_list("snapshot_ns", flat=True))
    assert logged == [to_ns(m) for m in moments[: delivery.MAX_ESTIMATES]]  # real points, not bucket means
    cursor = PublicationCursor.objects.get(publication=plant["publication"], batch_id="backlog")
    assert cursor.pending and cursor.delivered_through_ns == logged[-1]  # the rest follows in the next task


# ------------------------------------------------------------------------------------------ batched deliveries


def _cursors_notified(publication, groups: list[GroupKey]) -> list[int]:
    delivery.publications_notify([(publication.deployment_id, group) for group in groups])
    cursors = PublicationCursor.objects.filter(
        publication=publication, device_id__in=[g.device_id for g in groups], batch_id__in=[g.batch_id for g in groups]
    )
    return sorted(cursors.values_list("id", flat=True))


def test_a_batch_costs_a_few_queries_per_cursor(plant, sent_tasks, monkeypatch):
    """Delivering N cursors: a fixed number of queries for the batch (cursors, estimators, failed runs,
    held inputs, drift alerts, units, the log, the cursor moves) plus the store's reads of each cursor's
    estimates; notifying N pairs costs the same whatever N."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.connectors import tasks as connector_tasks

    queued: list[list[int]] = []
    monkeypatch.setattr(connector_tasks.deliver, "apply_async", lambda args=None, **kw: queued.append(args[0]))
    monkeypatch.setattr(delivery.notify, "DELIVER_BATCH", 4)
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    counts: dict[int, tuple[int, int]] = {}
    for n in (1, 2, 10):  # the first warms the process's caches (content types, the store's series ids)
        groups = [GroupKey(PROJECT, f"Q{n}-{i}", "live") for i in range(n)]
        for group in groups:
            _predict(group, [moment])
        queued.clear()
        with CaptureQueriesContext(connection) as notify_queries:
            ids = _cursors_notified(plant["publication"], groups)
        assert sorted(i for chunk in queued for i in chunk) == ids and all(len(c) <= 4 for c in queued)
        with CaptureQueriesContext(connection) as deliver_queries:
            outcome = delivery.publications_deliver(cursor_ids=ids)
        assert (outcome.delivered, outcome.failed) == (n, {})
        counts[n] = (len(notify_queries), len(deliver_queries))
    assert counts[10][0] == counts[2][0], counts  # notifying: the same queries for 10 pairs as for 2
    assert counts[10][1] - counts[2][1] <= 3 * 8, counts  # delivering: the store's 3 reads per cursor, no more
    assert counts[2][1] <= 20, counts


def test_a_failing_connection_holds_back_only_its_own_cursors(plant, sent_tasks, deployment, settings, monkeypatch):
    """One task, six cursors over two connections, one of them down: the reachable connection's cursors are
    delivered, logged and moved once; the other's are logged failed, stay put, and only they are retried,
    with the backoff and the retry limit of one cursor's delivery."""
    from apps.connectors import tasks as connector_tasks

    settings.STAMM_CONNECTORS_PUBLISH_RETRIES = 2
    down = services.data_source_create(name="down", kind="mqtt", url="mqtt://127.0.0.1:9")
    stuck = services.publication_create(deployment=deployment, connection=down, target="x/{device_id}/{batch_id}")
    reachable = plant["publication"]
    moments = [datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=s) for s in (6, 4)]
    groups = [GroupKey(PROJECT, "R1", f"two-{i}") for i in range(3)]
    for group in groups:
        _predict(group, moments)

    queued: list[list[int]] = []
    monkeypatch.setattr(connector_tasks.deliver, "apply_async", lambda args=None, **kw: queued.append(args[0]))
    delivery.publications_notify([(deployment.pk, group) for group in groups])
    cursors = {(c.publication_id, c.batch_id): c.pk for c in PublicationCursor.objects.all()}
    assert queued == [sorted(cursors.values())] and len(cursors) == 6  # one task for the whole burst

    retries: list[tuple[list, float]] = []
    original_retry = connector_tasks.deliver.retry

    def retry(*args, **kwargs):
        retries.append((kwargs["args"], kwargs["countdown"]))
        return original_retry(*args, **kwargs)

    monkeypatch.setattr(connector_tasks.deliver, "retry", retry)
    connector_tasks.deliver.apply(args=[queued[0]])  # eager: each retry runs at once, countdown aside

    stuck_ids = sorted(pk for (publication_id, _), pk in cursors.items() if publication_id == stuck.pk)
    assert retries == [([stuck_ids], 2), ([stuck_ids], 4)]
    newest = to_ns(moments[-1])
    for cursor in PublicationCursor.objects.filter(publication=reachable):
        assert (cursor.delivered_through_ns, cursor.failures, cursor.pending) == (newest, 0, False)
    for cursor in PublicationCursor.objects.filter(publication=stuck):
        assert (cursor.delivered_through_ns, cursor.failures) == (None, 3)
    delivered = Delivery.objects.filter(publication=reachable)
    assert sorted(delivered.values_list("status", "attempt", "batch_id")) == sorted(
        ("delivered", 1, g.batch_id) for g in groups for _ in moments
    )
    failed = Delivery.objects.filter(publication=stuck)
    assert sorted(failed.values_list("status", "attempt", "batch_id")) == sorted(
        ("failed", attempt, g.batch_id) for attempt in (1, 2, 3) for g in groups for _ in moments
    )
    assert {d.error for d in failed} == {f"cannot reach {down.url}: [Errno 111] Connection refused"}
    got = wait_for(lambda: len(estimates(plant["collector"])) == 6 and estimates(plant["collector"]), 10, "estimates")
    assert sorted((e["batch_id"], e["time"]) for e in got) == sorted(
        (g.batch_id, m.isoformat()) for g in groups for m in moments
    )
    assert delivery.publication_sweep()["requeued"] == 3  # failing cursors are the sweep's once retries are spent


def test_only_live_runs_that_stored_estimates_or_failed_are_published(monkeypatch):
    """The ``runs_finished`` receiver: one notification for the whole batch of runs, without backfill runs,
    skipped runs and succeeded runs that stored nothing."""
    from apps.orchestrator.signals import FinishedRun, runs_finished

    notified: list[list] = []
    monkeypatch.setattr(delivery, "publications_notify", lambda pairs: notified.append(list(pairs)))

    def run(run_id: int, *, deployment_id: int = 7, batch_id: str = "b1", **facts) -> FinishedRun:
        values = {"status": "succeeded", "trigger": "event", "predictions": 3, **facts}
        return FinishedRun(run_id, deployment_id, PROJECT, "R1", batch_id, **values)

    runs_finished.send(
        sender=None,
        runs=[
            run(1),
            run(2, trigger="backfill"),
            run(3, status="failed", trigger="backfill", predictions=0),
            run(4, predictions=0, batch_id="b2"),
            run(5, status="skipped", predictions=0, batch_id="b3"),
            run(6, status="failed", predictions=0, deployment_id=8),
            run(7, trigger="beat", predictions=1),  # the same pair as run 1: notified once
            run(8, status="stale", batch_id="b4"),
        ],
    )
    assert notified == [[(7, GroupKey(PROJECT, "R1", "b1")), (8, GroupKey(PROJECT, "R1", "b1"))]]
    runs_finished.send(sender=None, runs=[run(9, trigger="backfill"), run(10, predictions=0)])
    assert len(notified) == 1  # nothing to publish: no notification at all

"""Shadow deployments: scored on the same groups by the same path and stored under their own version, never
published, never shown as the estimate, and never changing the live estimate."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from apps.common.errors import Conflict, ValidationFailed
from apps.orchestrator import services
from apps.orchestrator.models import PipelineRun, RunStatus, Watermark
from apps.orchestrator.selectors import deployment_publishes
from apps.tsdb.backends import get_backend
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, GroupKey, PointBatch, SeriesKey, to_ns

from .helpers import MODEL_ID, PROJECT, T0, TARGET, expected_predictions, load_batch, raw_batch, register_rf

GROUP = GroupKey(PROJECT, "R1", "batch_92")


@pytest.fixture
def frame():
    return load_batch(92).iloc[:90].reset_index(drop=True)


@pytest.fixture
def models(registry_url, transactional_db, role_users):
    """v1 (production) and v2 (challenger) of one soft sensor, served by the registry over HTTP."""
    v1, m1 = register_rf(user=role_users["modeler"], n_estimators=10)
    v2, m2 = register_rf(user=role_users["modeler"], n_estimators=3, alias="challenger")
    assert (v1.number, v2.number) == (1, 2)
    return v1, m1, v2, m2


def stored(version_tag: str) -> tuple[np.ndarray, np.ndarray]:
    series = SeriesKey(PROJECT, "R1", "batch_92", "soft_sensor", TARGET, MODEL_ID.lower(), version_tag)
    data = get_backend().read(
        collection=Collection.PREDICTIONS, series=series, start=T0 - timedelta(hours=1), end=T0 + timedelta(days=2)
    )
    return np.asarray(data.times_ns), np.asarray(data.values)


def run_all() -> list[PipelineRun]:
    services.pipeline_groups_notify(groups=[GROUP])
    return [services.pipeline_group_run(watermark_id=w.pk) for w in Watermark.objects.order_by("pk")]


def test_a_shadow_stores_its_own_estimates_and_never_changes_the_live_one(models, frame, role_users):
    v1, m1, v2, m2 = models
    points_ingest(batch=raw_batch(frame, batch_id="batch_92"))
    champion = services.deployment_create(
        user=role_users["modeler"],
        name="live",
        soft_sensor=v1.soft_sensor,
        alias="production",
        max_input_age_seconds=600,
        device_ids=["R1"],
    )
    (first,) = run_all()
    assert first.status == RunStatus.SUCCEEDED, first.error
    live_times, live_values = stored("1")
    assert len(live_values) == len(frame)

    shadow = services.deployment_create(
        user=role_users["modeler"],
        name="challenger",
        soft_sensor=v2.soft_sensor,
        alias="challenger",
        max_input_age_seconds=600,
        shadow_of=champion,
    )
    assert shadow.is_shadow and shadow.device_ids == ["R1"]  # the champion's scope
    runs = run_all()
    shadow_run = next(r for r in runs if r is not None and r.deployment_id == shadow.pk)
    assert shadow_run.status == RunStatus.SUCCEEDED and shadow_run.version_label == "2"
    times, values = stored("2")
    np.testing.assert_allclose(values, expected_predictions(m2, frame), rtol=1e-9)
    # The live estimate is exactly what it was: same points, same values, no point of the shadow among them.
    again_times, again_values = stored("1")
    np.testing.assert_array_equal(again_times, live_times)
    np.testing.assert_array_equal(again_values, live_values)
    np.testing.assert_allclose(live_values, expected_predictions(m1, frame), rtol=1e-9)
    assert not np.allclose(values, live_values)

    # More data: both score it, the live series still only holds v1's estimates.
    more = load_batch(92).iloc[90:120].reset_index(drop=True)
    points_ingest(batch=raw_batch(more, batch_id="batch_92", offset_rows=90))
    run_all()
    assert len(stored("1")[1]) == len(stored("2")[1]) == 120
    np.testing.assert_allclose(stored("1")[1][90:], expected_predictions(m1, more), rtol=1e-9)

    # Never published (the connectors read this rule), never in the manager's overview.
    assert deployment_publishes(champion) and not deployment_publishes(shadow)
    from apps.dashboard.overview import deployment_overview

    assert [row.deployment.name for row in deployment_overview(with_trend=False)] == ["live"]


def test_the_pages_never_show_a_shadow_as_the_estimate(models, frame, role_users):
    v1, _, v2, _ = models
    points_ingest(batch=raw_batch(frame, batch_id="batch_92"))
    champion = services.deployment_create(name="live", soft_sensor=v1.soft_sensor, alias="production")
    services.deployment_create(name="challenger", soft_sensor=v2.soft_sensor, alias="challenger", shadow_of=champion)
    run_all()
    from apps.dashboard import selectors as pages

    chart = pages.live_chart(group=GROUP, range_key="batch")
    assert [t.series.version for t in chart.estimates] == ["1"] and chart.shadows == []
    modeler_chart = pages.live_chart(group=GROUP, range_key="batch", shadows=True)
    assert [t.series.version for t in modeler_chart.estimates] == ["1"]
    assert [(t.series.version, t.kind) for t in modeler_chart.shadows] == [("2", "shadow")]
    panel = pages.trust_panel(group=GROUP)
    assert [e.label for e in panel.estimates] == [f"{TARGET} · {MODEL_ID.lower()} v1"]
    assert panel.lag_deployments == ["live"]
    from apps.dashboard.dash_apps.operator import chart_figure

    figure = chart_figure(modeler_chart)
    dashed = [t for t in figure["data"] if t.get("line", {}).get("dash") == "dash"]
    assert [t["name"] for t in dashed] == [f"shadow {TARGET} · {MODEL_ID.lower()} v2"]


def test_a_shadow_running_its_champions_version_stores_nothing(models, frame):
    v1, _, _, _ = models
    points_ingest(batch=raw_batch(frame, batch_id="batch_92"))
    champion = services.deployment_create(name="live", soft_sensor=v1.soft_sensor, alias="production")
    shadow = services.deployment_create(name="same", soft_sensor=v1.soft_sensor, alias="production", shadow_of=champion)
    services.pipeline_groups_notify(groups=[GROUP])
    assert not Watermark.objects.filter(deployment=shadow).exists()  # not even queued
    watermark = Watermark.objects.create(deployment=shadow, project_name=PROJECT, device_id="R1", batch_id="batch_92")
    run = services.pipeline_group_run(watermark_id=watermark.pk)
    assert run.status == RunStatus.SKIPPED and "same version as its champion" in run.error


def test_shadow_rules(models, role_users):
    v1, _, v2, _ = models
    champion = services.deployment_create(
        name="live", soft_sensor=v1.soft_sensor, alias="production", device_ids=["R1"], batch_pattern="batch_9*"
    )
    shadow = services.deployment_create(
        name="challenger", soft_sensor=v2.soft_sensor, alias="challenger", shadow_of=champion, device_ids=["R2"]
    )
    assert (shadow.device_ids, shadow.batch_pattern) == (["R1"], "batch_9*")
    services.deployment_update(deployment=champion, data={"batch_pattern": "batch_1*"})
    shadow.refresh_from_db()
    assert shadow.batch_pattern == "batch_1*"
    with pytest.raises(ValidationFailed) as chained:
        services.deployment_create(name="shadow2", soft_sensor=v2.soft_sensor, alias="challenger", shadow_of=shadow)
    assert "itself a shadow" in chained.value.details["shadow_of"]
    with pytest.raises(ValidationFailed):
        services.deployment_update(deployment=champion, data={"shadow_of": champion})
    with pytest.raises(Conflict, match="shadow deployment"):
        services.deployment_delete(deployment=champion)


def test_shadows_over_the_api(models, api_client_for):
    v1, _, _, _ = models
    client = api_client_for("modeler")
    body = {"name": "live", "project_id": "P0001", "model_id": MODEL_ID, "alias": "production"}
    assert client.post("/api/v1/orchestrator/deployments/create/", body, format="json").status_code == 201
    shadow = client.post(
        "/api/v1/orchestrator/deployments/create/",
        {**body, "name": "challenger", "alias": "challenger", "shadow_of": "live"},
        format="json",
    )
    assert shadow.status_code == 201, shadow.content
    assert shadow.json()["shadow_of"] == "live"
    unknown = client.post(
        "/api/v1/orchestrator/deployments/create/",
        {**body, "name": "x", "alias": "challenger", "shadow_of": "nobody"},
        format="json",
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["details"] == {"shadow_of": "nobody"}


def test_each_lab_ledger_reads_its_own_version(models, frame, role_users):
    """A champion and its shadow share a model tag: each ledger pairs lab samples with its own estimates."""
    from apps.drift.models import LabResidual
    from apps.drift.services import lab_ledger_refresh

    v1, m1, v2, m2 = models
    points_ingest(batch=raw_batch(frame, batch_id="batch_92"))
    lab_rows = [10, 40, 70]
    times = np.array([to_ns(T0) + i * 20 * 1_000_000_000 for i in lab_rows], dtype=np.int64)
    points_ingest(
        batch=PointBatch(
            collection=Collection.RAW,
            series=[SeriesKey(PROJECT, "R1", "batch_92", "lab", TARGET)],
            series_index=np.zeros(3, dtype=np.int32),
            times_ns=times,
            values=np.array([5.0, 6.0, 7.0]),
        )
    )
    champion = services.deployment_create(name="live", soft_sensor=v1.soft_sensor, alias="production")
    shadow = services.deployment_create(
        name="challenger", soft_sensor=v2.soft_sensor, alias="challenger", shadow_of=champion
    )
    run_all()
    for deployment in (champion, shadow):
        lab_ledger_refresh(deployment=deployment, groups=[GROUP])
    ours = LabResidual.objects.filter(deployment=champion).order_by("lab_time")
    theirs = LabResidual.objects.filter(deployment=shadow).order_by("lab_time")
    assert {r.version for r in ours} == {"1"} and {r.version for r in theirs} == {"2"}
    expected1 = expected_predictions(m1, frame.iloc[lab_rows])
    expected2 = expected_predictions(m2, frame.iloc[lab_rows])
    np.testing.assert_allclose([r.predicted_value for r in ours], expected1, rtol=1e-9)
    np.testing.assert_allclose([r.predicted_value for r in theirs], expected2, rtol=1e-9)

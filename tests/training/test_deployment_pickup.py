"""A promoted alias is picked up by an orchestrator deployment on its next run (registry over HTTP)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.orchestrator import services as orchestrator
from apps.orchestrator.models import RunStatus as PipelineStatus
from apps.orchestrator.models import Trigger, Watermark
from apps.training import services
from apps.training.models import RunStatus
from apps.tsdb.csv_import import wide_csv_parse
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, GroupKey, SeriesFilter

from .conftest import DEVICE, EIGHT, PROJECT, T0, ingest_batches, project_create, run_config

GROUP = GroupKey(PROJECT, DEVICE, "batch_98")


@pytest.fixture
def registry_url(live_server, settings):
    settings.STAMM_REGISTRY_URL = live_server.url
    settings.STAMM_PIPELINE_RETRY_BACKOFF_MS = 10

    orchestrator.pipeline_health_forget()
    orchestrator.registry_access_reset()
    yield live_server.url

    orchestrator.pipeline_health_forget()
    orchestrator.registry_access_reset()


def _ingest_98(indpensim_dir, rows: slice) -> None:
    table = wide_csv_parse(indpensim_dir / "batch_98.csv")
    times = table.absolute_times(T0 + timedelta(days=45))
    points_ingest(batch=table.to_batch(group=GROUP, times_ns=times[rows], rows=rows))


@pytest.mark.slow
def test_promoted_alias_is_used_by_the_deployment_on_its_next_run(
    transactional_db, registry_url, role_users, indpensim_dir
):
    ingest_batches(indpensim_dir, (92, 93, 96))
    _ingest_98(indpensim_dir, slice(0, 600))
    project = project_create()
    # Deployments score what they can build from stored variables, so these models use the eight inputs only.
    config = dict(
        run_config(
            batches=["batch_92", "batch_93", "batch_96"],
            split={"kind": "batches", "holdout": ["batch_96"]},
            add_batch_age=False,
            gates={"r2_min": 0.5, "beats_persistence": False},
            alias="staging",
        )
    )
    first = services.training_run_execute_inline(
        run_id=services.training_run_create(user=role_users["modeler"], project=project, data=config).pk
    )
    assert first.status == RunStatus.PROMOTED, first.error
    v1 = first.promoted_version
    deployment = orchestrator.deployment_create(
        user=role_users["modeler"],
        name="pen-staging",
        soft_sensor=v1.soft_sensor,
        alias="staging",
        batch_pattern="batch_98",
        max_input_age_seconds=600,
    )
    orchestrator.pipeline_groups_notify(groups=[GROUP], trigger=Trigger.MANUAL)
    watermark = Watermark.objects.get(deployment=deployment, batch_id="batch_98")
    run = orchestrator.pipeline_group_run(watermark_id=watermark.pk, trigger=Trigger.MANUAL)
    assert run.status == PipelineStatus.SUCCEEDED, run.error
    assert run.version_id == v1.pk and run.predictions == 600

    # A second run promotes a new version to staging; the deployment's next run uses it without any change.
    config["learners"] = [
        {"key": "random_forest", "hyperparameters": {"n_estimators": 30, "max_depth": 10, "random_state": 7}}
    ]
    config["gates"] = {"r2_min": 0.5, "beats_persistence": False, "not_worse_than_production": True}
    second = services.training_run_execute_inline(
        run_id=services.training_run_create(user=role_users["modeler"], project=project, data=config).pk
    )
    assert second.status == RunStatus.PROMOTED, second.error
    v2 = second.promoted_version
    assert v2.number == v1.number + 1
    _ingest_98(indpensim_dir, slice(600, None))
    run = orchestrator.pipeline_group_run(watermark_id=watermark.pk, trigger=Trigger.MANUAL)
    assert run.status == PipelineStatus.SUCCEEDED, run.error
    assert run.version_id == v2.pk and run.predictions == 1150 - 600
    from apps.tsdb.backends import get_backend

    versions = {
        info.series.version: info.point_count
        for info in get_backend().list_series(
            collection=Collection.PREDICTIONS, where=SeriesFilter(batch_id="batch_98")
        )
    }
    assert versions == {str(v1.number): 600, str(v2.number): 550}
    assert EIGHT == [f["name"] for f in v2.descriptor["inputs"]["features"]]

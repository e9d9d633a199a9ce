"""Training fixtures: the IndPenSim batches 92, 93, 96 and 98 in the store (ingested once per module
through the tsdb ingest service), the registry project, and Celery in eager mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.training.evaluation import INDPENSIM_ONLINE_INPUTS, INDPENSIM_PHASES

PROJECT_ID = "P0001"
PROJECT = "penicillin"
DEVICE = "R1"
TARGET = "penicillin_concentration"
BATCHES = (92, 93, 96, 98)
T0 = datetime(2026, 1, 5, tzinfo=UTC)
#: Eight online inputs (plus batch age, added by the run): measured here at R² 0.97 on batch 98.
EIGHT = list(INDPENSIM_ONLINE_INPUTS)


def ingest_batches(indpensim_dir, numbers=BATCHES, *, project: str = PROJECT, device: str = DEVICE) -> None:
    """Each batch through ``wide_csv_parse`` → ``points_ingest``, 15 days apart."""
    from apps.tsdb.csv_import import wide_csv_parse
    from apps.tsdb.services import points_ingest
    from apps.tsdb.types import GroupKey

    for i, number in enumerate(numbers):
        table = wide_csv_parse(indpensim_dir / f"batch_{number}.csv")
        start = T0 + timedelta(days=15 * i)
        group = GroupKey(project, device, f"batch_{number}")
        points_ingest(batch=table.to_batch(group=group, times_ns=table.absolute_times(start)))


def project_create():
    from apps.registry.project_info import parse_project_info
    from apps.registry.services import project_upsert
    from apps.training.services import project_profile_set

    project = project_upsert(
        info=parse_project_info(
            {
                "project_ID": PROJECT_ID,
                "project_name": PROJECT,
                "description": "IndPenSim fed-batch penicillin fermentation.",
                "coordinator": "C. Oordinator",
                "variables": [
                    {
                        "name": "penicillin_concentration",
                        "column_type": "Sensor",
                        "units": "g L-1",
                        "renamed_variable": "penicillin_concentration",
                        "description": "Penicillin concentration (true).",
                    },
                    {
                        "name": "temperature",
                        "column_type": "Sensor",
                        "units": "K",
                        "renamed_variable": "temperature",
                        "description": "Temperature in the bioreactor.",
                    },
                    {
                        "name": "sugar_feed_rate",
                        "column_type": "Actuator",
                        "units": "L/h",
                        "renamed_variable": "sugar_feed_rate",
                        "description": "Sugar feed rate (Fs).",
                    },
                ],
            }
        ),
        replace_variables=True,
    )
    project_profile_set(project=project, lab_delay_seconds=4 * 3600, phases=list(INDPENSIM_PHASES))
    return project


@pytest.fixture(scope="module")
def store(django_db_setup, django_db_blocker, indpensim_dir_module):
    """The four batches, committed once for the module (tests roll back only their own writes)."""
    from apps.tsdb.services import points_delete
    from apps.tsdb.types import Collection, GroupKey

    with django_db_blocker.unblock():
        ingest_batches(indpensim_dir_module)
    yield
    with django_db_blocker.unblock():
        for number in BATCHES:
            for collection in (Collection.RAW, Collection.PREDICTIONS):
                points_delete(collection=collection, group=GroupKey(PROJECT, DEVICE, f"batch_{number}"))


@pytest.fixture(scope="module")
def indpensim_dir_module():
    from tests.conftest import INDPENSIM_DIR

    if not INDPENSIM_DIR.is_dir():
        pytest.fail(f"IndPenSim data not found at {INDPENSIM_DIR}")
    return INDPENSIM_DIR


@pytest.fixture
def project(store, db):
    return project_create()


@pytest.fixture
def eager_celery():
    """Run Celery canvases in-process (chords included). Task errors are not re-raised inside the task, so
    autoretry works as on a worker (the retry runs at once); a chain still stops at a failed task."""
    from stamm_site.celery import app

    saved = {k: app.conf[k] for k in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=False)
    yield app
    app.conf.update(saved)


def run_config(**overrides):
    config = {
        "target": TARGET,
        "device_id": DEVICE,
        "batches": ["batch_92", "batch_93", "batch_96", "batch_98"],
        "features": list(EIGHT),
        "split": {"kind": "batches", "holdout": ["batch_98"]},
        "learners": [{"key": "random_forest", "hyperparameters": {"n_estimators": 30, "max_depth": 12}}],
        "gates": {"r2_min": 0.95, "beats_persistence": True, "not_worse_than_production": True},
        "alias": "staging",
    }
    config.update(overrides)
    return config

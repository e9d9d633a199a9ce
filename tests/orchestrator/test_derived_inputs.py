"""A model trained with batch age (a derived input) is scored with the same batch age at inference."""
from __future__ import annotations

import io
import pickle
from datetime import timedelta

import numpy as np
from sklearn.linear_model import LinearRegression

from apps.orchestrator import services
from apps.orchestrator.models import RunStatus, Watermark
from apps.tsdb.backends import get_backend
from apps.tsdb.derived import BATCH_AGE
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, SeriesKey
from tests.conftest import pickle_approver

from .helpers import FEATURES, PROJECT, PROJECT_INFO, T0, TARGET, descriptor_document, load_batch, raw_batch

MODEL_ID = "0007_[python]_penicillin_age"


def test_batch_age_is_computed_for_every_snapshot(registry_url, transactional_db, role_users):
    from apps.registry.descriptors import parse_descriptor
    from apps.registry.project_info import parse_project_info
    from apps.registry.services import ArtifactInput, model_version_register, project_upsert
    from tests.signing import move_signed

    features = [*FEATURES, BATCH_AGE]
    frame = load_batch(93).iloc[:120].reset_index(drop=True)
    ages_h = np.arange(len(frame)) * 20.0 / 3600.0  # raw_batch puts row i at T0 + 20 s · i
    X = np.column_stack([frame[FEATURES].to_numpy(dtype=float), ages_h])
    model = LinearRegression().fit(X, frame[TARGET].to_numpy(dtype=float) + 3.0 * ages_h)
    blob = io.BytesIO()
    pickle.dump(model, blob)
    project = project_upsert(info=parse_project_info(PROJECT_INFO))
    version = model_version_register(
        project=project,
        descriptor=parse_descriptor(descriptor_document(model_id=MODEL_ID, features=features)),
        files={"model": ArtifactInput(blob.getvalue(), f"{MODEL_ID}.pkl")},
        user=role_users["modeler"],
        status="online",
        pickle_approved_by=pickle_approver(),
    )
    move_signed(version, reason="test")
    deployment = services.deployment_create(
        name="age-aware", soft_sensor=version.soft_sensor, alias="production", max_input_age_seconds=600
    )

    points_ingest(batch=raw_batch(frame, batch_id="batch_93"))
    watermark = Watermark.objects.get(deployment=deployment, batch_id="batch_93")
    run = services.pipeline_group_run(watermark_id=watermark.pk)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.snapshots == len(frame) and run.predictions == len(frame) and run.skipped == 0
    series = SeriesKey(PROJECT, "R1", "batch_93", "soft_sensor", TARGET, MODEL_ID.lower(), str(version.number))
    stored = get_backend().read(
        collection=Collection.PREDICTIONS, series=series, start=T0 - timedelta(hours=1), end=T0 + timedelta(days=1)
    )
    np.testing.assert_allclose(stored.values, model.predict(X), rtol=1e-9, atol=1e-9)

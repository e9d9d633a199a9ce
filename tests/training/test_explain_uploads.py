"""An uploaded version is explained on the training experiments its descriptor declares (it has no holdout);
the registry announces the registration, the training app measures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.registry.models import VersionExplanation
from apps.registry.signals import version_registered
from apps.training.services import version_explain_on_experiments
from tests.dashboard.seed import FEATURES, ingest_batch, register_model

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_an_uploaded_version_is_explained_on_its_declared_experiments(
    indpensim_dir, django_capture_on_commit_callbacks
):
    ingest_batch(93, start=T0)
    ingest_batch(96, start=T0 + timedelta(days=20))
    heard = []

    def hear(sender, *, version_id, source, **_):
        heard.append((version_id, source))

    version_registered.connect(hear, dispatch_uid="test-hear")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            version = register_model(model_id="0005_[python]_penicillin_upload", learner="ridge", experiments=[93, 96])
    finally:
        version_registered.disconnect(dispatch_uid="test-hear")
    assert (version.pk, "upload") in heard
    VersionExplanation.objects.filter(version_id=version.pk).delete()  # the seed measured one on batch 96

    done = version_explain_on_experiments(version_id=version.pk)
    assert done["explained"] and done["batches"] == ["batch_93", "batch_96"] and done["rows"] >= 20
    stored = VersionExplanation.objects.get(version_id=version.pk)
    assert "batch_93, batch_96" in stored.source and "no holdout" in stored.source
    assert {row["feature"] for row in stored.data["importance"]} == set(FEATURES)
    assert stored.data["partial_dependence"] and stored.data["background"]
    assert version_explain_on_experiments(version_id=version.pk) == {
        "explained": False, "reason": "the version already has an explanation"
    }


def test_a_version_whose_experiments_are_not_stored_is_left_alone(indpensim_dir):
    ingest_batch(93, start=T0)
    version = register_model(model_id="0006_[python]_penicillin_upload", learner="ridge", experiments=[92])
    VersionExplanation.objects.filter(version_id=version.pk).delete()
    assert version_explain_on_experiments(version_id=version.pk) == {
        "explained": False, "reason": "none of its training experiments is in the store"
    }
    assert not VersionExplanation.objects.filter(version_id=version.pk).exists()

"""Bias update on stored predictions of a deployment: versioned config, corrected_value beside the raw value."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse

from apps.orchestrator.models import BiasCorrection
from apps.orchestrator.services import bias_correction_apply
from apps.training import services
from apps.training.evaluation import metrics
from apps.tsdb import selectors as tsdb
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, PointBatch, SeriesFilter, SeriesKey, from_ns, to_ns
from tests.conftest import INDPENSIM_DIR

from .conftest import DEVICE, PROJECT, T0, TARGET, run_config

pytestmark = pytest.mark.django_db
H = 3600 * 1_000_000_000


@pytest.fixture
def deployed(project, role_users):
    """A trained random forest (inline run, alias production) with a deployment and its predictions of batch 98."""
    from apps.orchestrator.services import deployment_create
    from tests.predicting import predict_matrix

    run = services.training_run_create(
        user=role_users["modeler"],
        project=project,
        data=run_config(gates={"r2_min": 0.9, "beats_persistence": False}, alias="production"),
    )
    run = services.training_run_execute_inline(run_id=run.pk)
    from tests.signing import signature_for, signer

    # production waits for an electronic signature: a second modeler signs it.
    candidate = run.candidates.get(pk=run.best_candidate_id)
    run = services.training_run_approve(run=run, user=signer(), signature=signature_for(candidate.version))
    version = run.promoted_version
    deployment = deployment_create(
        user=role_users["modeler"],
        name="pen-rf",
        soft_sensor=version.soft_sensor,
        alias="production",
        max_input_age_seconds=600,
    )
    frame = pd.read_csv(INDPENSIM_DIR / "batch_98.csv")
    start = to_ns(T0 + timedelta(days=45))
    names = [f["name"] for f in version.descriptor["inputs"]["features"]]
    columns = {
        "ph": "pH",
        "co2_percent_in_off_gas": "CO2_percent_in_off_gas",
        "oxygen_in_percent_in_off_gas": "oxygen_in_percent_in_off_gas",
    }
    X = np.column_stack([frame["time"] - 0.2 if n == "batch_age" else frame[columns.get(n, n)] for n in names]).astype(
        float
    )
    predicted = predict_matrix(version, X).predictions.reshape(-1)
    times = start + np.round(frame["time"].to_numpy() * H).astype(np.int64)
    key = SeriesKey(
        PROJECT, DEVICE, "batch_98", "soft_sensor", TARGET, version.soft_sensor.model_id.lower(), str(version.number)
    )
    points_ingest(
        batch=PointBatch(
            collection=Collection.PREDICTIONS,
            series=[key],
            series_index=np.zeros(len(times), dtype=np.int32),
            times_ns=times,
            values=predicted,
            fields={"validity": np.full(len(times), "ok", dtype=object)},
        )
    )
    return deployment, key, times, predicted, frame["penicillin_concentration"].to_numpy(float)


def _stored(key, times):
    data = tsdb.series_read(
        collection=Collection.PREDICTIONS, series=key, start=from_ns(times[0]), end=from_ns(times[-1])
    )
    assert data.downsampled is None
    return data


def test_bias_correction_helps_on_batch_98_and_keeps_the_raw_output(deployed, role_users):
    deployment, key, times, predicted, truth = deployed
    # Without a configuration of its own the deployment runs the bias update its version was evaluated with.
    trained = bias_correction_apply(deployment=deployment)
    assert trained["applied"] and trained["source"] == "trained with the version" and trained["version"] is None
    (series,) = trained["series"].values()
    assert series["used"] == 21 and series["bias"] > 0
    config = services.bias_correction_configure(
        deployment=deployment,
        user=role_users["modeler"],
        data={"alpha": 0.5, "max_lab_age_seconds": 8 * 3600, "lab_min": 0, "lab_max": 60, "reason": "lab every 12 h"},
    )
    assert config.number == 1 and config.lab_delay_seconds == 4 * 3600  # the project's lab delay
    result = bias_correction_apply(deployment=deployment)
    assert result["applied"] and result["points"] == len(times)
    stored = _stored(key, times)
    np.testing.assert_allclose(stored.values, predicted)  # raw model output untouched
    assert set(stored.fields["validity"].tolist()) == {"ok"}  # verdicts kept
    corrected = stored.fields["corrected_value"]
    assert np.isfinite(corrected).all()
    raw_rmse, corrected_rmse = metrics(truth, predicted)["rmse"], metrics(truth, corrected)["rmse"]
    assert corrected_rmse < raw_rmse  # the forest under-estimates batch 98; lab samples pull it back
    (state,) = BiasCorrection.objects.get(pk=config.pk).state.values()
    assert state["used"] == 21 and state["bias"] > 0
    # No correction before the first lab result is known (sample at 0.2 h + 4 h delay).
    early = stored.times_ns < stored.times_ns[0] + 4 * H
    np.testing.assert_allclose(corrected[early], predicted[early])
    # Idempotent: applying again rewrites the same values and adds no point.
    count = tsdb.series_list(collection=Collection.PREDICTIONS, where=SeriesFilter(batch_id="batch_98"))[0].point_count
    bias_correction_apply(deployment=deployment)
    again = _stored(key, times)
    np.testing.assert_allclose(again.fields["corrected_value"], corrected)
    assert again.times_ns.shape[0] == count == len(times)


def test_bias_configuration_is_versioned_and_validated_over_http(deployed, api_client_for):
    deployment = deployed[0]
    client = api_client_for("modeler")
    url = reverse("api:training-bias-configure", args=[deployment.pk])
    bad = client.post(url, {"alpha": 1.5}, format="json")
    assert bad.status_code == 400 and "alpha" in bad.json()["error"]["details"]
    assert client.post(url, {"alpha": 0.3, "lab_min": 10, "lab_max": 5}, format="json").status_code == 400
    assert client.post(url, {"alpha": 0.3}, format="json").status_code == 201
    second = client.post(url, {"alpha": 0.6, "reason": "trust the lab more"}, format="json")
    assert second.status_code == 201 and second.json()["number"] == 2
    assert api_client_for("operator").post(url, {"alpha": 0.3}, format="json").status_code == 403
    listing = client.get(reverse("api:training-bias-list", args=[deployment.pk])).json()["results"]
    assert [(c["number"], c["alpha"]) for c in listing] == [(2, 0.6), (1, 0.3)]
    applied = client.post(reverse("api:training-bias-apply", args=[deployment.pk]), {}, format="json")
    assert applied.status_code == 200 and applied.json()["version"] == 2


def test_periodic_update_replays_recent_batches_of_enabled_deployments(deployed, role_users, settings):
    from django_celery_beat.models import PeriodicTask

    from apps.training.tasks import bias_apply_recent

    deployment, key, times, predicted, truth = deployed
    task = PeriodicTask.objects.get(name="training-bias-update")  # created on migrate
    assert task.task == "training.bias_apply_recent" and task.enabled
    assert bias_apply_recent.apply(kwargs={"window_seconds": 3600}).get() == {}  # nothing configured yet
    services.bias_correction_configure(deployment=deployment, user=role_users["modeler"], data={"alpha": 0.5})
    # The predictions of batch 98 are dated from T0 + 45 days, far outside a one-hour window...
    assert bias_apply_recent.apply(kwargs={"window_seconds": 3600}).get() == {"pen-rf": {"points": 0, "series": 0}}
    # ...and inside a window that reaches back to them.
    window = int(
        (np.datetime64("now") - np.datetime64(from_ns(int(times[0])).replace(tzinfo=None))) / np.timedelta64(1, "s")
    )
    result = bias_apply_recent.apply(kwargs={"window_seconds": window + 3600}).get()
    assert result == {"pen-rf": {"points": len(times), "series": 1}}
    services.bias_correction_configure(
        deployment=deployment, user=role_users["modeler"], data={"alpha": 0.5, "enabled": False}
    )
    assert bias_apply_recent.apply(kwargs={"window_seconds": window + 3600}).get() == {}

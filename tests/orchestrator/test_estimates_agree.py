"""One deployment, one batch, five ways to get its estimates, one answer.

The live pipeline (chunk by chunk, through the registry's REST endpoint, the bias memo kept on the
watermark), a backfill (its own chunks, scored in a thread while the previous chunk is stored), the
simulation page's callback, the divergence page's callback and the simulation API must give identical
estimates for the same rows: the raw model output, the bias in force, the corrected estimate and the
validity verdict. The model is the demo's kind: it takes ``batch_age``, an input the platform computes, and
carries the bias update it was trained with. The batch has an input mapping to honour, a gap that makes
some snapshots stale (skipped everywhere alike), inputs outside the training envelope, and lab samples that
fall between the pipeline's chunks.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from apps.orchestrator import services
from apps.orchestrator.models import RunStatus, Watermark
from apps.tsdb.backends import get_backend
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, GroupKey, SeriesKey, to_ns
from tests.dashboard.conftest import dash_update, response_json

from .helpers import (
    AGE_MODEL_ID,
    FEATURES,
    PROJECT,
    T0,
    TARGET,
    lab_points,
    raw_batch,
    register_age_model,
    row_time,
)

ROWS = 240
CHUNK = 50
BATCH = "b1"
GROUP = GroupKey(PROJECT, "R1", BATCH)


def stored_estimates(version_number: int):
    """The deployment's stored estimates of the batch: times, raw, corrected, validity."""
    series = SeriesKey(PROJECT, "R1", BATCH, "soft_sensor", TARGET, AGE_MODEL_ID.lower(), str(version_number))
    data = get_backend().read(
        collection=Collection.PREDICTIONS, series=series, start=T0 - timedelta(hours=1), end=T0 + timedelta(days=1)
    )
    return (
        np.asarray(data.times_ns, dtype=np.int64),
        np.asarray(data.values, dtype=float),
        np.asarray(data.fields["corrected_value"], dtype=float),
        [str(v) for v in data.fields["validity"]],
    )


@pytest.fixture
def scene(registry_url, transactional_db, role_users, batch92, settings, sent_tasks):
    """The batch in the store (pH arrives as ``ph_probe``; aeration stops for 41 rows), its lab samples, the
    batch-age model with its trained bias update, a deployment mapping pH → ph_probe, and a challenger."""
    settings.STAMM_PIPELINE_CHUNK = CHUNK
    frame = batch92.iloc[:ROWS].reset_index(drop=True).rename(columns={"pH": "ph_probe"})
    variables = [("ph_probe" if f == "pH" else f) for f in FEATURES]
    low, high = frame["temperature"].quantile([0.1, 0.9])
    version, _ = register_age_model(
        frame=batch92.iloc[:ROWS].reset_index(drop=True),
        user=role_users["modeler"],
        envelope={"temperature": {"min": float(low), "max": float(high)}},
    )
    challenger, _ = register_age_model(frame=batch92.iloc[: ROWS // 2].reset_index(drop=True), alias=None)
    deployment = services.deployment_create(
        user=role_users["modeler"],
        name="age-live",
        soft_sensor=version.soft_sensor,
        alias="production",
        max_input_age_seconds=600,
        input_mapping={"pH": "ph_probe"},
    )
    # Lab results first (a later result would only change rows scored after it arrived): 7 s after rows 49,
    # 99 and 149 (between two of the pipeline's chunks), and at row 205.
    lab_rows = [49, 99, 149, 205]
    times = [row_time(i) + timedelta(seconds=7 if i != 205 else 0) for i in lab_rows]
    points_ingest(batch=lab_points(times, [float(frame[TARGET].iloc[i]) + 1.5 for i in lab_rows], batch_id=BATCH))
    without_air = [v for v in variables if v != "aeration_rate"]
    points_ingest(batch=raw_batch(frame.iloc[:100], batch_id=BATCH, variables=variables))
    points_ingest(batch=raw_batch(frame.iloc[100:141], batch_id=BATCH, variables=without_air, offset_rows=100))
    points_ingest(batch=raw_batch(frame.iloc[141:], batch_id=BATCH, variables=variables, offset_rows=141))
    return version, challenger, deployment


def test_pipeline_backfill_simulation_divergence_and_api_agree(scene, client, role_users, api_client_for, settings):
    version, challenger, deployment = scene

    # 1. The live pipeline, a chunk per run, over REST.
    watermark = Watermark.objects.get(deployment=deployment, batch_id=BATCH)
    runs = []
    while not runs or runs[-1].snapshots == CHUNK:
        runs.append(services.pipeline_group_run(watermark_id=watermark.pk))
        assert runs[-1].status == RunStatus.SUCCEEDED, runs[-1].error
    assert len(runs) == 5 and sum(r.snapshots for r in runs) == ROWS
    skipped = sum(r.skipped for r in runs)
    assert skipped == 11  # aeration older than 600 s at rows 130–140
    times, raw, corrected, validity = stored_estimates(version.number)
    assert times.size == ROWS - skipped
    bias = corrected - raw
    assert np.count_nonzero(np.abs(np.diff(bias)) > 1e-9) == 4 and bias[0] == 0.0  # one step per lab result
    assert 0 < validity.count("out_of_range") < times.size

    # 2. A backfill over the whole batch, into an empty predictions collection.
    get_backend().delete(collection=Collection.PREDICTIONS, group=GROUP)
    services.pipeline_backfill(deployment=deployment, start=T0 - timedelta(minutes=1), end=T0 + timedelta(hours=2))
    b_times, b_raw, b_corrected, b_validity = stored_estimates(version.number)
    np.testing.assert_array_equal(b_times, times)
    np.testing.assert_array_equal(b_raw, raw)
    np.testing.assert_array_equal(b_corrected, corrected)
    assert b_validity == validity

    # 3. The simulation page's callback (as a modeler), with the bias update, reading the batch in one chunk.
    settings.STAMM_PIPELINE_CHUNK = 5000
    client.force_login(role_users["modeler"])
    out = response_json(
        dash_update(
            client,
            "modeler_simulation",
            "..rows.data...summary.children...table.columns...export.children...flag-message.children..",
            [
                {"id": "run", "property": "n_clicks", "value": 1},
                {"id": "flag-save", "property": "n_clicks", "value": 0},
            ],
            [
                {"id": "version", "property": "value", "value": version.pk},
                {"id": "batch", "property": "value", "value": f"{PROJECT}|R1|{BATCH}"},
                {"id": "bias", "property": "value", "value": "on"},
                {"id": "table", "property": "selected_rows", "value": []},
                {"id": "table", "property": "data", "value": []},
                {"id": "flag-level", "property": "value", "value": "warning"},
                {"id": "flag-type", "property": "value", "value": "model_error"},
                {"id": "flag-description", "property": "value", "value": ""},
            ],
            changed=["run.n_clicks"],
        )
    )
    rows = out["rows"]["data"]
    assert [to_ns_text(r["time"]) for r in rows] == times.tolist()
    assert [r["validity"] for r in rows] == validity
    figure = find_figure(out["summary"]["children"])
    traces = {t["name"]: t for t in figure["data"]}
    assert traces[f"{TARGET} (estimate)"]["y"] == corrected.tolist()
    assert traces[f"{TARGET} (raw model)"]["y"] == raw.tolist()
    np.testing.assert_allclose([r[f"bias:{TARGET}"] for r in rows], bias, atol=1e-4)  # the table rounds to 4

    # 4. The divergence page's callback: the deployed version beside a challenger.
    out = response_json(
        dash_update(
            client,
            "modeler_divergence",
            "result.children",
            [{"id": "run", "property": "n_clicks", "value": 1}],
            [
                {"id": "versions", "property": "value", "value": [version.pk, challenger.pk]},
                {"id": "batch", "property": "value", "value": f"{PROJECT}|R1|{BATCH}"},
                {"id": "bias", "property": "value", "value": "on"},
            ],
        )
    )
    figure = find_figure(out["result"]["children"])
    trace = next(t for t in figure["data"] if t["name"] == f"{AGE_MODEL_ID} v{version.number}")
    assert trace["y"] == corrected.tolist()
    assert [to_ns_text(x) for x in trace["x"]] == times.tolist()

    # 5. The simulation API.
    response = api_client_for("modeler").post(
        "/api/v1/orchestrator/simulations/",
        {"project_id": "P0001", "model_id": AGE_MODEL_ID, "alias": "production", "device_id": "R1", "batch_id": BATCH},
        format="json",
    )
    assert response.status_code == 200, response.content[:300]
    result = response.json()
    assert result["configuration"]["deployment"] == deployment.name
    assert result["configuration"]["input_mapping"]["pH"] == "ph_probe"
    assert result["skipped"] == {"stale: aeration_rate": skipped}
    assert [r["corrected"][TARGET] for r in result["estimates"]] == corrected.tolist()
    assert [r["raw"][TARGET] for r in result["estimates"]] == raw.tolist()
    assert [r["validity"] for r in result["estimates"]] == validity


def to_ns_text(text: str) -> int:
    """A time as the pages write it (``2026-03-01 00:00:20`` or ISO) → epoch nanoseconds."""
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(text.replace(" ", "T"))
    return to_ns(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def find_figure(children) -> dict:
    """The first Plotly figure in a Dash component tree (as the callback endpoint returns it)."""
    stack = [children]
    while stack:
        node = stack.pop(0)
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            props = node.get("props") or {}
            if isinstance(props.get("figure"), dict):
                return props["figure"]
            stack.append(props.get("children"))
    raise AssertionError("no figure in the callback's answer")

"""The lab bias update applied live by the pipeline, chunk by chunk, equals one pass over the whole batch.

The pipeline scores a group a chunk at a time and remembers, on the watermark, the raw estimate in force at
each lab sample it has seen; the bias in force at every row must nevertheless be what scoring the whole batch
at once gives (the simulation's view), and a lab result entered late is folded in from the next run on and
fully by the replay.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from apps.orchestrator import services
from apps.orchestrator.predictors import LocalPredictor
from apps.orchestrator.scoring import estimates_score
from apps.orchestrator.selectors import deployment_estimator
from apps.tsdb.services import points_ingest
from apps.tsdb.types import Collection, PointBatch, SeriesKey, to_ns

from .helpers import TARGET, row_time
from .test_pipeline import GROUP, ingest, predictions, watermark_of

H = 3600 * 10**9
ROWS = 300  # 20 s apart: 100 minutes of batch 92


def lab_points(frame, rows: list[int]) -> PointBatch:
    """Lab samples of the target at these rows' times, valued as the batch's true concentration there."""
    key = SeriesKey(GROUP.project_name, GROUP.device_id, GROUP.batch_id, "lab", TARGET)
    return PointBatch(
        collection=Collection.RAW,
        series=[key],
        series_index=np.zeros(len(rows), dtype=np.int32),
        times_ns=np.array([to_ns(row_time(r)) for r in rows], dtype=np.int64),
        values=frame[TARGET].to_numpy(float)[rows] + 0.5,  # the forest's truth plus an offset the bias must learn
    )


def run_until_caught_up(deployment) -> int:
    runs = 0
    while True:
        run = services.pipeline_group_run(watermark_id=watermark_of(deployment).pk, trigger="manual")
        runs += 1
        assert run.status in ("succeeded", "skipped"), run.error
        if not watermark_of(deployment).pending or runs > 50:
            return runs


@pytest.fixture
def biased(deployment, role_users):
    services.bias_correction_configure(
        deployment=deployment,
        user=role_users["modeler"],
        data={"alpha": 0.6, "lab_delay_seconds": 600, "max_lab_age_seconds": 3600},
    )
    return deployment


def test_chunked_live_scoring_gives_the_bias_of_one_pass(registry_url, biased, batch92, settings, sent_tasks):
    settings.STAMM_PIPELINE_CHUNK = 40
    frame = batch92.iloc[:ROWS]
    ingest(frame)
    points_ingest(batch=lab_points(frame, [10, 70, 95, 160, 230]))
    assert run_until_caught_up(biased) >= ROWS // 40
    stored = predictions()
    assert len(stored) == ROWS
    whole = estimates_score(estimator=deployment_estimator(biased), group=GROUP, predictor=LocalPredictor())
    np.testing.assert_array_equal(stored.times_ns, whole.times_ns)
    np.testing.assert_allclose(stored.values, whole.raw[:, 0], rtol=1e-12)
    np.testing.assert_allclose(stored.fields["corrected_value"], whole.corrected[:, 0], rtol=1e-12)
    bias = stored.fields["corrected_value"] - stored.values
    # No bias before the first result is known (sample at row 10 + 10 minutes); five updates afterwards.
    known = to_ns(row_time(10)) + 600 * 10**9
    assert np.all(bias[stored.times_ns < known] == 0) and np.all(bias[stored.times_ns >= known] != 0)
    assert whole.bias_report[TARGET].used == 5
    # The watermark remembers the raw estimate at each sample, for the next window.
    memo = watermark_of(biased).bias_state
    assert memo["version"] == deployment_estimator(biased).spec.version_id and len(memo["outputs"][TARGET]) == 5


def test_a_late_lab_result_counts_from_the_next_run_and_the_replay_rewrites_the_past(
    registry_url, biased, batch92, settings, sent_tasks
):
    settings.STAMM_PIPELINE_CHUNK = 5000
    frame = batch92.iloc[:ROWS]
    ingest(frame.iloc[:200])
    points_ingest(batch=lab_points(frame, [10]))
    run_until_caught_up(biased)
    # A result sampled at row 40 is entered only now (known since row 40 + 10 min = row 70).
    points_ingest(batch=lab_points(frame, [40]))
    ingest(frame.iloc[200:], offset_rows=200)
    run_until_caught_up(biased)
    stored = predictions()
    whole = estimates_score(estimator=deployment_estimator(biased), group=GROUP, predictor=LocalPredictor())
    late_known = to_ns(row_time(40)) + 600 * 10**9
    before_late = (stored.times_ns >= late_known) & (stored.times_ns < to_ns(row_time(200)))
    after = stored.times_ns >= to_ns(row_time(200))
    # Rows scored after the late result arrived use it; rows scored before could not.
    np.testing.assert_allclose(stored.fields["corrected_value"][after], whole.corrected[after, 0], rtol=1e-12)
    assert not np.allclose(stored.fields["corrected_value"][before_late], whole.corrected[before_late, 0])
    replay = services.bias_correction_apply(deployment=biased)
    assert replay["applied"] and replay["points"] == ROWS
    np.testing.assert_allclose(predictions().fields["corrected_value"], whole.corrected[:, 0], rtol=1e-12)


def test_a_rescore_from_the_start_forgets_the_memo(registry_url, biased, batch92, settings, sent_tasks):
    frame = batch92.iloc[:120]
    ingest(frame)
    points_ingest(batch=lab_points(frame, [5, 60]))
    run_until_caught_up(biased)
    wm = watermark_of(biased)
    sample = str(to_ns(row_time(5)))
    wm.bias_state = {**wm.bias_state, "outputs": {TARGET: {**wm.bias_state["outputs"][TARGET], sample: 999.0}}}
    wm.save(update_fields=["bias_state"])
    # A late input point before the watermark makes the next run rescore the group from its start.
    key = SeriesKey(GROUP.project_name, GROUP.device_id, GROUP.batch_id, "sensor", "temperature")
    late = to_ns(row_time(3)) + 10 * 10**9
    points_ingest(
        batch=PointBatch(
            collection=Collection.RAW,
            series=[key],
            series_index=np.zeros(1, dtype=np.int32),
            times_ns=np.array([late], dtype=np.int64),
            values=np.array([float(frame["temperature"].iloc[3])]),
        )
    )
    run = services.pipeline_group_run(watermark_id=wm.pk, trigger="manual")
    assert run.dirty_from_ns is not None, "the late point should have made the run rescore from the start"
    whole = estimates_score(estimator=deployment_estimator(biased), group=GROUP, predictor=LocalPredictor())
    np.testing.assert_allclose(predictions().fields["corrected_value"], whole.corrected[:, 0], rtol=1e-12)
    assert watermark_of(biased).bias_state["outputs"][TARGET][sample] != 999.0


def test_the_lab_delay_is_respected_to_the_nanosecond():
    """Guard of the rule in one line: a result is in force from sample time + delay, not before."""
    from apps.orchestrator.bias import BiasParams, bias_trace

    times = np.arange(0, 6, dtype=np.int64) * H
    trace = bias_trace(
        times, np.zeros(6), np.array([H]), np.array([2.0]), BiasParams(alpha=1.0, lab_delay_ns=2 * H, max_age_ns=3 * H)
    )
    assert trace.bias.tolist() == [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]
    assert timedelta(hours=3) == timedelta(microseconds=int(times[3]) // 1000)

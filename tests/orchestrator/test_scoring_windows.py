"""The scoring path over consecutive windows gives what it gives over the whole window at once.

The live pipeline scores a group a chunk at a time and carries the bias update's memo from one chunk to
the next; a simulation or a drift window scores it in one go (or in its own chunks, storing nothing). A
lab sample whose time falls between the last row of one chunk and the first row of the next must find
the same raw estimate in force either way, even when nothing was stored.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from apps.orchestrator.predictors import LocalPredictor
from apps.orchestrator.scoring import BiasSettings, estimates_score, estimator_for_spec
from apps.registry.selectors import version_spec
from apps.tsdb.services import points_ingest
from apps.tsdb.types import GroupKey

from .helpers import PROJECT, TARGET, lab_points, raw_batch, register_rf, row_time

BIAS = BiasSettings(alpha=0.5, lab_delay_seconds=60, max_lab_age_seconds=3600)


@pytest.mark.django_db
def test_chunked_windows_give_the_bias_of_the_whole_window(role_users, batch92):
    version, _ = register_rf(user=role_users["modeler"], alias=None)
    frame = batch92.iloc[:100].reset_index(drop=True)
    points_ingest(batch=raw_batch(frame, batch_id="b1"))
    # Lab samples 7 s after rows 19, 39, 59 and 79: each between the last row of one 20-row chunk and the
    # first row of the next. Their values sit 2 g/L above the truth, so the bias moves.
    rows = [19, 39, 59, 79]
    times = [row_time(i) + timedelta(seconds=7) for i in rows]
    points_ingest(batch=lab_points(times, [float(frame[TARGET].iloc[i]) + 2.0 for i in rows], batch_id="b1"))
    estimator = estimator_for_spec(version_spec(version), max_input_age_seconds=600, bias=BIAS)
    group = GroupKey(PROJECT, "R1", "b1")
    predictor = LocalPredictor()

    whole = estimates_score(estimator=estimator, group=group, predictor=predictor)
    assert whole.rows == 100 and whole.bias_report[TARGET].used == 4

    parts, after, memo = [], None, {}
    while True:
        part = estimates_score(
            estimator=estimator, group=group, after_ns=after, limit=20, bias_memo=memo, predictor=predictor
        )
        if not part.rows:
            break
        parts.append(part)
        after, memo = int(part.times_ns[-1]), part.bias_memo
    assert [p.rows for p in parts] == [20] * 5
    np.testing.assert_array_equal(np.concatenate([p.times_ns for p in parts]), whole.times_ns)
    np.testing.assert_allclose(np.concatenate([p.raw for p in parts]), whole.raw)
    np.testing.assert_allclose(np.concatenate([p.bias for p in parts]), whole.bias)
    assert parts[-1].bias_report[TARGET].final == pytest.approx(whole.bias_report[TARGET].final)
    assert np.count_nonzero(np.diff(whole.bias[:, 0])) == 4  # one step per lab result, 60 s after the sample


@pytest.mark.django_db
def test_a_simulation_window_joins_its_chunks_and_says_when_it_was_cut(role_users, batch92, settings):
    from apps.orchestrator.simulation import estimates_window

    version, _ = register_rf(user=role_users["modeler"], alias=None)
    frame = batch92.iloc[:60].reset_index(drop=True)
    points_ingest(batch=raw_batch(frame, batch_id="b2"))
    points_ingest(batch=lab_points([row_time(10), row_time(30)], [1.0, 2.0], batch_id="b2"))
    estimator = estimator_for_spec(version_spec(version), max_input_age_seconds=600, bias=BIAS)
    group = GroupKey(PROJECT, "R1", "b2")
    whole = estimates_score(estimator=estimator, group=group, predictor=LocalPredictor())
    settings.STAMM_PIPELINE_CHUNK = 7

    window = estimates_window(estimator=estimator, group=group, predictor=LocalPredictor())
    assert not window.truncated and window.estimates.rows == 60
    np.testing.assert_allclose(window.estimates.corrected, whole.corrected)
    assert window.estimates.validity == whole.validity

    # A later part: scored from the group's start (the bias needs every lab result), returned from the part on.
    part = estimates_window(
        estimator=estimator, group=group, after_ns=int(whole.times_ns[39]), predictor=LocalPredictor()
    )
    np.testing.assert_array_equal(part.estimates.times_ns, whole.times_ns[40:])
    np.testing.assert_allclose(part.estimates.bias, whole.bias[40:])
    assert part.estimates.bias[0, 0] != 0.0  # both lab results were folded in before row 40

    cut = estimates_window(estimator=estimator, group=group, max_rows=25, predictor=LocalPredictor())
    assert cut.truncated and cut.estimates.rows == 25
    np.testing.assert_allclose(cut.estimates.corrected, whole.corrected[:25])


@pytest.mark.django_db
def test_the_in_process_predictor_answers_to_the_last_bit_whatever_the_matrix_layout(role_users, batch92):
    """Snapshot columns picked by fancy indexing are column-major; the REST endpoint always builds a row-major
    matrix. A linear model's BLAS product differs in the last bits between the two layouts, so the in-process
    predictor must use the REST one's layout for the two predictors to agree exactly."""
    from .helpers import register_age_model

    version, _ = register_age_model(frame=batch92.iloc[:120].reset_index(drop=True), alias=None, bias=None)
    spec = version_spec(version)
    rng = np.random.default_rng(3)
    wide = rng.normal(size=(64, 12)) * rng.uniform(0.1, 1e4, size=12)
    column_major = wide[:, [2, 5, 7, 1, 9, 0, 11]]
    assert column_major.flags["F_CONTIGUOUS"] and not column_major.flags["C_CONTIGUOUS"]
    row_major = np.column_stack([column_major[:, j].tolist() for j in range(7)])  # as the registry parses a body
    predictor = LocalPredictor()
    assert np.array_equal(predictor.predict(spec, column_major).values, predictor.predict(spec, row_major).values)

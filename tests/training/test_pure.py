"""Framework-free parts: splits, metrics, baselines, gates and the filtered bias update."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from apps.common.errors import ValidationFailed
from apps.orchestrator.bias import BiasParams, bias_trace
from apps.training import evaluation, gates, splits

H = 3600 * 1_000_000_000


@pytest.mark.parametrize("kind", ["random", "shuffle", "kfold"])
def test_random_row_splits_are_refused_with_the_reason(kind):
    with pytest.raises(ValidationFailed) as caught:
        splits.split_validate({"kind": kind}, batches=["b1", "b2"])
    assert caught.value.code == "random_split_refused"
    assert "leaks test rows into training" in caught.value.message
    assert caught.value.details == {"split.kind": kind}


def test_split_validation_names_the_field():
    with pytest.raises(ValidationFailed, match="split.holdout: b9 not among"):
        splits.split_validate({"kind": "batches", "holdout": ["b9"]}, batches=["b1", "b2"])
    with pytest.raises(ValidationFailed, match="keep at least one batch for training"):
        splits.split_validate({"kind": "batches", "holdout": ["b1", "b2"]}, batches=["b1", "b2"])
    with pytest.raises(ValidationFailed, match="split.cut_fraction: must be between 0 and 1"):
        splits.split_validate({"kind": "chronological", "cut_fraction": 1.5}, batches=["b1", "b2"])
    with pytest.raises(ValidationFailed, match="give a time zone"):
        splits.split_validate({"kind": "chronological", "cut_time": "2026-01-01T00:00:00"}, batches=["b1", "b2"])


def test_batch_and_chronological_masks():
    times = np.arange(10, dtype=np.int64) * H
    batch = np.array([0] * 5 + [1] * 5, dtype=np.int32)
    train, test, described = splits.split_masks(
        splits.split_validate({"kind": "batches", "holdout": ["b2"]}, batches=["b1", "b2"]),
        times_ns=times,
        batch_index=batch,
        batch_ids=["b1", "b2"],
    )
    assert test.tolist() == [False] * 5 + [True] * 5 and described["train_batches"] == ["b1"]
    train, test, described = splits.split_masks(
        splits.split_validate({"kind": "chronological", "cut_fraction": 0.3}, batches=["b1", "b2"]),
        times_ns=times,
        batch_index=batch,
        batch_ids=["b1", "b2"],
    )
    assert described["holdout_rows"] == 3 and test[-3:].all() and not test[:-3].any()
    assert times[train].max() < times[test].min()  # nothing after the cut is trained on


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.normal(10, 3, 200)
    p = y + rng.normal(0.5, 1, 200)
    m = evaluation.metrics(y, p)
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)), abs=1e-6)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p), abs=1e-6)
    assert m["r2"] == pytest.approx(r2_score(y, p), abs=1e-6)
    assert m["bias"] == pytest.approx(np.mean(p - y), abs=1e-6)
    assert evaluation.metrics(np.ones(3), np.ones(3))["r2"] is None  # constant truth: R² undefined


def test_persistence_uses_only_lab_values_already_known():
    times = np.array([0, 1, 2, 3, 4, 5, 6], dtype=np.int64) * H
    labs = [(np.array([0, 3], dtype=np.int64) * H, np.array([1.0, 4.0]))]
    got = evaluation.persistence_predictions(times, np.zeros(7, dtype=np.int32), labs, lab_delay_ns=2 * H)
    # sample at 0 h known at 2 h; sample at 3 h known at 5 h
    assert np.isnan(got[:2]).all()
    assert got[2:].tolist() == [1.0, 1.0, 1.0, 4.0, 4.0]


def test_phases_split_on_batch_age():
    masks = evaluation.phase_masks(np.array([0.0, 29.9, 30.0, 150.0, 250.0]), evaluation.INDPENSIM_PHASES)
    assert {k: v.tolist() for k, v in masks.items()} == {
        "lag": [True, True, False, False, False],
        "log": [False, False, True, False, False],
        "stationary": [False, False, False, True, False],
        "death": [False, False, False, False, True],
    }


def test_gate_verdicts_say_which_gate_failed_by_how_much():
    candidate = {
        "as_deployed": {"overall": {"r2": 0.93, "rmse": 2.0}},
        "on_persistence_rows": {"as_deployed": {"n": 100, "rmse": 2.1}, "persistence": {"n": 100, "rmse": 1.8}},
    }
    verdicts = gates.gate_verdicts(
        gates=gates.gates_validate({"r2_min": 0.95, "production_tolerance": 0.1}),
        candidate=candidate,
        production={"version": 3, "rmse": 1.5, "candidate_rmse": 2.0, "rows": 100},
    )
    by = {v["gate"]: v for v in verdicts}
    assert by["r2_min"]["passed"] is False and by["r2_min"]["margin"] == pytest.approx(-0.02)
    assert by["beats_persistence"]["passed"] is False and by["beats_persistence"]["margin"] == pytest.approx(-0.3)
    assert by["not_worse_than_production"]["passed"] is False
    assert by["not_worse_than_production"]["margin"] == pytest.approx(1.65 - 2.0)
    assert "production v3" in by["not_worse_than_production"]["message"]
    assert not gates.overall_pass(verdicts)
    # A gate that cannot be evaluated is reported and does not block.
    no_lab = {**candidate, "on_persistence_rows": {"as_deployed": {"n": 0}, "persistence": {"n": 0}}}
    unknown = gates.gate_verdicts(
        gates=gates.gates_validate({"r2_min": None}),
        candidate=no_lab,
        production={"version": 1, "error": "R missing"},
    )
    assert [v["passed"] for v in unknown] == [None, None] and gates.overall_pass(unknown)
    with pytest.raises(ValidationFailed, match="unknown gate"):
        gates.gates_validate({"r2_max": 1})


def _judge(raw: np.ndarray, truth: np.ndarray, lab_t: np.ndarray, lab_v: np.ndarray) -> dict:
    """One batch judged as the evaluate step does: bias update (α 0.5, 1 h delay), persistence, report."""
    times = np.arange(truth.shape[0], dtype=np.int64) * H
    trace = bias_trace(times, raw, lab_t, lab_v, BiasParams(alpha=0.5, lab_delay_ns=H, max_age_ns=8 * H))
    persistence = evaluation.persistence_predictions(
        times, np.zeros(times.shape[0], dtype=np.int32), [(lab_t, lab_v)], lab_delay_ns=H
    )
    return evaluation.estimator_report(
        y_true=truth,
        raw=raw,
        corrected=trace.corrected,
        persistence=persistence,
        train_mean=0.0,
        batch_age_h=times / H,
        phases=[],
    )


def test_raw_model_loses_to_persistence_and_its_bias_update_wins():
    # Truth rises 10, 11, ..., 17; the model is right in shape but 3 low; labs at 0 h and 2 h, known 1 h later.
    truth = np.arange(10.0, 18.0)
    raw = truth - 3.0
    report = _judge(raw, truth, np.array([0, 2], dtype=np.int64) * H, np.array([10.0, 12.0]))
    # Bias: 0 until 1 h; 0.5·3 = 1.5 from 1 h; 0.5·1.5 + 0.5·3 = 2.25 from 3 h. Corrected errors on the rows
    # persistence covers (1 h … 7 h): −1.5, −1.5, −0.75 × 5. Persistence: 10 at 1–2 h, 12 from 3 h on, so its
    # errors are −1, −2, −1, −2, −3, −4, −5.
    same = report["on_persistence_rows"]
    assert same["raw"]["rmse"] == pytest.approx(3.0)
    assert same["as_deployed"]["rmse"] == pytest.approx(np.sqrt((2 * 1.5**2 + 5 * 0.75**2) / 7), abs=1e-6)
    assert same["persistence"]["rmse"] == pytest.approx(np.sqrt((1 + 4 + 1 + 4 + 9 + 16 + 25) / 7), abs=1e-6)
    assert same["raw"]["rmse"] > same["persistence"]["rmse"] > same["as_deployed"]["rmse"]
    assert report["beats_persistence"] is True
    assert report["rows"] == {"holdout": 8, "scored": 8, "with_persistence": 7}


def test_a_bias_update_cannot_rescue_a_model_that_swings_against_the_lab():
    # Truth is flat at 10 and the lab says so; the model alternates 14 and 6: the bias can only average it out.
    truth = np.full(8, 10.0)
    raw = np.where(np.arange(8) % 2 == 0, 14.0, 6.0)
    report = _judge(raw, truth, np.array([0, 2], dtype=np.int64) * H, np.array([10.0, 10.0]))
    # Residuals at 0 h and 2 h are both −4: bias −2 from 1 h, −3 from 3 h. Persistence is exact (10).
    same = report["on_persistence_rows"]
    deployed_errors = np.array([-6.0, 2.0, -7.0, 1.0, -7.0, 1.0, -7.0])  # rows 1–7: raw + bias − truth
    assert same["as_deployed"]["rmse"] == pytest.approx(np.sqrt(np.mean(deployed_errors**2)), abs=1e-6)
    assert same["persistence"]["rmse"] == pytest.approx(0.0)
    assert report["beats_persistence"] is False


def test_bias_update_worked_example():
    # Predictions every hour at 10; lab samples at 1 h (12), 3 h (13), 4 h (99: above lab_max), delay 1 h, alpha 0.5.
    times = np.arange(0, 8, dtype=np.int64) * H
    preds = np.full(8, 10.0)
    lab_t = np.array([1, 3, 4], dtype=np.int64) * H
    lab_v = np.array([12.0, 13.0, 99.0])
    trace = bias_trace(times, preds, lab_t, lab_v, BiasParams(alpha=0.5, lab_delay_ns=H, max_age_ns=8 * H, lab_max=50))
    # bias: 0 until 2 h, then 0.5·2 = 1; at 4 h: 0.5·1 + 0.5·3 = 2; the 99 sample is rejected
    assert trace.bias.tolist() == [0, 0, 1, 1, 2, 2, 2, 2]
    assert trace.corrected.tolist() == [10, 10, 11, 11, 12, 12, 12, 12]
    assert trace.used == 2 and trace.rejected == {"lab value outside [min, max]": 1}
    assert trace.final_bias == 2.0
    # Too old when known: with a 3 h delay and a 2 h maximum age every sample is refused.
    stale = bias_trace(times, preds, lab_t, lab_v, BiasParams(alpha=0.5, lab_delay_ns=3 * H, max_age_ns=2 * H))
    assert (
        stale.used == 0 and stale.bias.tolist() == [0.0] * 8 and stale.rejected == {"older than max age when known": 3}
    )


def test_alignment_records_what_was_dropped_and_forward_fill_keeps_it():
    from apps.training.dataset import BATCH_AGE, GroupData, dataset_align
    from apps.tsdb.types import GroupKey

    step = H // 5  # 12 minutes
    t = np.arange(50, dtype=np.int64) * step  # 10 h of target points
    y = np.linspace(0, 10, 50)
    a_keep = (t < 2 * H) | (t >= 5 * H)  # input a: a 3 h gap from 2 h to 5 h
    b_t = t[t >= H]  # input b: starts 1 h into the batch
    group = GroupData(
        group=GroupKey("p", "R1", "b1"),
        start_ns=0,
        series={"y": (t, y), "a": (t[a_keep], t[a_keep] / H), "b": (b_t, np.ones(b_t.shape[0]))},
        lab=(np.empty(0, dtype=np.int64), np.empty(0)),
    )
    strict = dataset_align([group], target="y", features=["a", "b", BATCH_AGE], max_input_age_ns=H, gaps="drop")
    stale = int(((t >= 2 * H) & (t < 5 * H) & (t - (2 * H - step) > H)).sum())  # older than 1 h in the gap
    missing = int((t < H).sum())
    assert strict.summary["dropped"] == {"stale: a": stale, "missing: b": missing}
    assert strict.X.shape == (50 - stale - missing, 3)
    np.testing.assert_allclose(strict.X[:, 2], strict.times_ns / H)  # batch age in hours
    assert strict.summary["per_batch"]["b1"] == {
        "target_rows": 50,
        "kept": 50 - stale - missing,
        "dropped": stale + missing,
    }
    filled = dataset_align([group], target="y", features=["a", "b", BATCH_AGE], max_input_age_ns=H, gaps="ffill")
    assert filled.summary["dropped"] == {"missing: b": missing}  # nothing earlier to fill from
    assert filled.summary["per_batch"]["b1"]["rows_forward_filled"] == stale
    assert filled.X.shape[0] == 50 - missing

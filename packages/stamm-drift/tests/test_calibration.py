"""The reference-calibrated verdict rule."""
from __future__ import annotations

import numpy as np
import pytest
from stamm_drift import DataError, build_detector
from stamm_drift.calibration import (
    CalibrationRule,
    apply_calibration,
    block_bootstrap_indices,
    calibrate,
    calibrated_detect,
)
from stamm_drift.psi import psi_value


def batches(seed: int = 0, n: int = 300) -> dict[str, np.ndarray]:
    """Three in-control 'batches' that differ from each other by a small offset (between-batch variation)."""
    rng = np.random.default_rng(seed)
    return {str(b): rng.normal(size=(n, 2)) + rng.normal(0, 0.3, size=2) for b in (1, 2, 3)}


def test_leave_one_batch_out_without_bootstrap_is_the_largest_score_plus_margin():
    data = batches()
    psi = build_detector("psi")
    cal = calibrate(psi, data, rule=CalibrationRule(bootstrap=0, margin=0.5), components=("a", "b"))
    expected = np.zeros(2)
    for held in data:
        pooled = np.vstack([v for k, v in data.items() if k != held])
        scores = [psi_value(pooled[:, j], data[held][:, j], 10)[0] for j in range(2)]
        expected = np.maximum(expected, scores)
    assert cal.thresholds == pytest.approx(1.5 * expected)
    assert cal.comparisons == ("1 vs 2,3", "2 vs 1,3", "3 vs 1,2")
    assert cal.to_dict()["leave_one_batch_out"]["2 vs 1,3"] == pytest.approx(
        [psi_value(np.vstack([data["1"], data["3"]])[:, j], data["2"][:, j], 10)[0] for j in range(2)])


def test_bootstrap_median_per_held_out_batch():
    data = batches()
    cal = calibrate(build_detector("ks"), data, rule=CalibrationRule(bootstrap=15, quantile=0.5, margin=0.25))
    assert cal.scores.shape == (3 * 16, 2)
    held = np.array(cal.held_out)
    medians = np.vstack([np.median(cal.scores[held == b], axis=0) for b in data])
    assert cal.thresholds == pytest.approx(1.25 * medians.max(axis=0))


def test_streaming_detectors_are_not_bootstrapped():
    cal = calibrate(build_detector("page_hinkley"), batches(n=120), rule=CalibrationRule(bootstrap=10))
    assert len(cal.comparisons) == 3 and "bootstrap" not in " ".join(cal.comparisons)


def test_local_block_bootstrap_stays_near_each_rows_position():
    rng = np.random.default_rng(0)
    idx = block_bootstrap_indices(200, replicates=50, block_fraction=0.1, rng=rng)
    assert idx.shape == (50, 200) and idx.min() >= 0 and idx.max() < 200
    # every row comes from within two block lengths of its own position: the trajectory is kept
    assert np.abs(idx - np.arange(200)[None, :]).max() <= 40
    blocks = idx.reshape(50, 10, 20)
    assert (np.diff(blocks, axis=2) == 1).all()  # contiguous blocks


def test_calibrated_verdict_flags_a_batch_beyond_the_between_batch_variation():
    data = batches(seed=1)
    reference = np.vstack(list(data.values()))
    psi = build_detector("psi")
    cal = calibrate(psi, data, components=("a", "b"))
    rng = np.random.default_rng(9)
    in_control = rng.normal(size=(300, 2)) + [0.1, -0.1]
    shifted = rng.normal(size=(300, 2)) + [1.5, 0.0]
    quiet = calibrated_detect(psi, cal, reference, in_control, variables=["a", "b"])
    loud = calibrated_detect(psi, cal, reference, shifted, variables=["a", "b"])
    assert not quiet.drift and loud.drift
    assert loud.details["flagged_components"] == ["a"] and loud.threshold == 1.0 and loud.score > 1
    assert loud.details["nominal"]["drift"] is True and loud.details["verdict_rule"] == "reference-calibrated"
    assert loud.details["calibration"]["rule"] == CalibrationRule().to_dict()
    assert "a's score" in loud.explanation and "calibrated threshold" in loud.explanation
    assert loud.to_dict()["details"]["calibration"]["components"] == ["a", "b"]


def test_the_nominal_threshold_is_a_floor():
    # identical reference batches → calibration scores of 0; the detector's own threshold still applies
    same = np.tile(np.arange(100.0)[:, None], (1, 1))
    psi = build_detector("psi")
    cal = calibrate(psi, {"a": same, "b": same.copy()}, rule=CalibrationRule(bootstrap=0))
    assert cal.thresholds.tolist() == [0.0]
    barely = psi.detect(same, same + 1.0)  # PSI ≈ 0.0 … below 0.1
    result = apply_calibration(barely, cal, np.array([barely.score]))
    assert result.details["components"][0]["threshold"] == pytest.approx(0.1)
    assert result.drift == (barely.score > 0.1)


def test_calibration_needs_two_batches_and_matching_components():
    with pytest.raises(DataError, match="two reference batches"):
        calibrate(build_detector("psi"), {"a": np.ones((10, 1))})
    cal = calibrate(build_detector("mmd", {"permutations": 0}), batches(n=60), rule=CalibrationRule(bootstrap=2))
    with pytest.raises(DataError, match="calibrated components"):
        apply_calibration(build_detector("psi").detect(np.ones((5, 2)), np.ones((5, 2))), cal, np.ones(2))


def test_rule_validation():
    for kwargs in ({"margin": -0.1}, {"quantile": 0}, {"bootstrap": -1}, {"block_fraction": 0}):
        with pytest.raises(ValueError):
            CalibrationRule(**kwargs)

"""stamm_drift.compat on the IndPenSim log-phase windows equals the package's own detectors, detector by
detector; and, where drift_detectors_pack's formula is the same (KS on one variable: scipy's ks_2samp;
ADWIN: river's; Page-Hinkley without forgetting: the clamped CUSUM), equals that formula too.

Reference: in-control batches 92 and 93; test: the eight other batches; inputs: the eight online
signals of the platform's study; 30–120 h.
"""
from __future__ import annotations

import numpy as np
import pytest
import stamm_drift.compat as dd
from _support import INPUTS, indpensim_batch, require
from scipy import stats
from stamm_drift import build_detector, residual_events, residual_sigma
from stamm_drift.adwin import adwin_run
from stamm_drift.eddm import eddm_run
from stamm_drift.hddm_a import hddm_a_run
from stamm_drift.page_hinkley import page_hinkley_run

REFERENCE = (92, 93)
TEST = (91, 94, 95, 96, 97, 98, 99, 100)
D = len(INPUTS)


@pytest.fixture(scope="module")
def windows() -> dict[int, np.ndarray]:
    """Log-phase rows of every batch: the eight inputs, then penicillin."""
    return {b: indpensim_batch(b) for b in (*REFERENCE, *TEST)}


@pytest.fixture(scope="module")
def reference(windows) -> np.ndarray:
    return np.vstack([windows[b][:, :D] for b in REFERENCE])


def same(got: dd.ScoreDriftResult, key: str, params: dict, reference: np.ndarray, test: np.ndarray) -> None:
    want = build_detector(key, params).detect(reference, test)
    assert got.score == want.score and got.drift == want.drift, key
    assert got.details["threshold"] == want.threshold and got.details["p_value"] == want.p_value
    assert got.result.explanation == want.explanation


@pytest.mark.parametrize("batch", TEST)
def test_batch_detectors_equal_the_package(windows, reference, batch):
    test = windows[batch][:, :D]
    same(dd.PSI().calculate(test, reference), "psi", {}, reference, test)
    same(dd.PSI(threshold=0.2).calculate(test, reference, bins=20, epsilon=1e-6), "psi",
         {"threshold": 0.2, "bins": 20, "epsilon": 1e-6}, reference, test)
    same(dd.KSDetector(alpha=0.01).calculate(test, reference), "ks", {"alpha": 0.01}, reference, test)
    same(dd.MMDDetector(gamma="median").calculate(test, reference), "mmd", {"gamma": "median"}, reference, test)
    same(dd.MMDDetector().calculate(test, reference, threshold=0.02), "mmd", {"threshold": 0.02}, reference, test)
    same(dd.PCA_CD(n_components=3).calculate(test, reference), "pca_cd", {"n_components": 3}, reference, test)
    same(dd.KDQTree(k_neighbors=25, alpha=0.01).calculate(test, reference), "kdq_tree", {"alpha": 0.01},
         reference, test)


@pytest.mark.parametrize("batch", TEST)
def test_one_variable_ks_is_scipys_two_sample_test_and_psi_the_packages_per_variable_score(windows, reference, batch):
    test = windows[batch][:, :D]
    per_variable = build_detector("psi").detect(reference, test).details["per_variable"]
    for j in range(D):
        expected = stats.ks_2samp(reference[:, j], test[:, j])  # drift_detectors_pack's KS formula
        got = dd.KSDetector().calculate(test[:, j], reference[:, j])
        assert got.score == expected.statistic and got.details["p_value"] == expected.pvalue
        assert got.drift == (expected.pvalue < 0.05)
        assert dd.PSI().calculate(test[:, j], reference[:, j]).score == per_variable[j]["score"]


def test_streaming_detectors_equal_the_packages_streams_and_river(windows):
    river_drift = require("river.drift")
    for batch in TEST:
        for j in range(D):
            values = windows[batch][:, j]
            adwin = dd.Adwin(delta=0.01).calculate(values)
            assert adwin.details["detections"] == adwin_run(values, delta=0.01)[0]
            river = river_drift.ADWIN(delta=0.01)  # what drift_detectors_pack's Adwin runs
            assert adwin.details["detections"] == [i for i, x in enumerate(values.tolist())
                                                   if (river.update(x), river.drift_detected)[1]]
            ph = dd.PageHinkley(lambda_=5.0).calculate(values)
            expected, _ = page_hinkley_run(values, delta=0.005, threshold=5.0, alpha=1 - 1e-4, direction="up")
            assert ph.details["detections"] == expected
            assert ph.last_index == (expected[-1] if expected else -1) and ph.drift == bool(expected)


def clamped_cusum(values: np.ndarray, *, delta: float, lam: float) -> list[int]:
    """Page's one-sided CUSUM on the deviation from the running mean, S = max(0, S + x − mean − δ),
    restarted after each detection: drift_detectors_pack's Page-Hinkley without forgetting."""
    out, n, mean, s = [], 0, 0.0, 0.0
    for i, x in enumerate(values.tolist()):
        n += 1
        mean += (x - mean) / n
        s = max(0.0, s + x - mean - delta)
        if s > lam:
            out.append(i)
            n, mean, s = 0, 0.0, 0.0
    return out


def test_page_hinkley_without_forgetting_is_the_clamped_cusum(windows):
    for batch in TEST:
        for j in range(D):
            values = windows[batch][:, j]
            lam = 2.0 * float(values.std())
            got = dd.PageHinkley(lambda_=lam, alpha=1.0, min_instances=1).calculate(values)
            assert got.details["detections"] == clamped_cusum(values, delta=0.005, lam=lam), (batch, INPUTS[j])


@pytest.fixture(scope="module")
def soft_sensors(windows):
    """Three least-squares penicillin soft sensors (all inputs, the first four, the last four) trained on
    the reference batches: their predictions per batch, and the first one's 0/1 residual events."""
    subsets = (list(range(D)), [0, 1, 2, 3], [4, 5, 6, 7])
    train = np.vstack([windows[b] for b in REFERENCE])

    def design(x, cols):
        return np.column_stack([x[:, cols], np.ones(len(x))])

    coefs = [np.linalg.lstsq(design(train, c), train[:, D], rcond=None)[0] for c in subsets]
    predictions = {b: np.column_stack([design(w, c) @ k for c, k in zip(subsets, coefs, strict=True)])
                   for b, w in windows.items()}
    sigma = residual_sigma(np.concatenate([windows[b][:, D] - predictions[b][:, 0] for b in REFERENCE]))
    events = {b: residual_events(windows[b][:, D] - predictions[b][:, 0], sigma=sigma, k=2.0) for b in windows}
    return predictions, events


def test_model_disagreement_equals_the_package(soft_sensors):
    predictions, _ = soft_sensors
    reference = np.vstack([predictions[b] for b in REFERENCE])
    for batch in TEST:
        test = predictions[batch]
        got = dd.ModelDisagreementMetric().calculate(predictions=list(test.T), reference_data=list(reference.T))
        want = build_detector("model_disagreement").detect(reference, test)
        assert got.score == pytest.approx(want.score, rel=1e-12) and got.drift == want.drift
        assert got.details["scale_from"] == "reference_data"
        for metric, cls in (("pearson", dd.PearsonDisagreement), ("spearman", dd.SpearmanDisagreement)):
            one = dd.ModelDisagreementMetric(metrics=[cls()]).calculate(predictions=list(test.T))
            assert one.score == build_detector("model_disagreement", {"metric": metric}).detect(reference, test).score


def test_event_detectors_equal_the_package(soft_sensors):
    _, events = soft_sensors
    reference = np.concatenate([events[b] for b in REFERENCE]).astype(float)
    for batch in TEST:
        test = events[batch].astype(float)
        stream = np.concatenate([reference, test])
        hddm = dd.HDDM_A().calculate(stream)
        assert hddm.details["detections"] == hddm_a_run(stream, drift_confidence=0.001, warning_confidence=0.005,
                                                        two_sided=True)[0]
        eddm = dd.EDDM(min_n_errors=5).calculate(stream)
        assert eddm.details["detections"] == eddm_run(stream, warning_level=0.95, drift_level=0.9, min_errors=5)[0]
        # online: the reference warms the stream up, then the test window's detections are the detector's
        for compat, key, params in ((dd.HDDM_A(online=True), "hddm_a", {}),
                                    (dd.EDDM(min_n_errors=5, online=True), "eddm", {"min_errors": 5})):
            compat.calculate(reference)
            got = compat.calculate(test)
            want = build_detector(key, params).detect(reference, test)
            assert got.details["detections"] == want.details["detections"], (batch, key)
            assert got.drift == want.drift


def test_online_adwin_after_the_reference_equals_the_packages_adwin_detector(windows, reference):
    for batch in (91, 98, 100):
        test = windows[batch][:, :D]
        want = build_detector("adwin", {"standardise": False}).detect(reference, test).details["per_variable"]
        for j in range(D):
            adwin = dd.Adwin(online=True)
            adwin.calculate(reference[:, j])
            assert adwin.calculate(test[:, j]).details["detections"] == want[j]["detections"]

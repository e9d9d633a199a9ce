"""Exact values against independent references: scipy, river, worked examples."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from _support import require
from scipy import stats
from stamm_drift import build_detector
from stamm_drift.adwin import adwin_run
from stamm_drift.disagreement import disagreement_estimators
from stamm_drift.eddm import eddm_run
from stamm_drift.hddm_a import hddm_a_run
from stamm_drift.kdq_tree import KdqTree, bootstrap_counts, kl_divergence
from stamm_drift.ks import ks_statistic
from stamm_drift.mmd import median_gamma, mmd2_unbiased_many, sq_distances
from stamm_drift.page_hinkley import page_hinkley_run
from stamm_drift.pca_cd import kde_on_grid
from stamm_drift.psi import psi_value

river_drift = require("river.drift")  # the independent reference of the stream state machines
river_binary = require("river.drift.binary")


def river_indices(detector, stream) -> list[int]:
    out = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            out.append(i)
    return out


def streams():
    rng = np.random.default_rng(42)
    yield np.concatenate([rng.normal(0, 1, 600), rng.normal(1.5, 1, 600), rng.normal(-1, 2, 600)])
    yield np.concatenate([rng.uniform(0, 1, 1000), rng.uniform(4, 8, 1000)])  # river's docstring example shape
    yield np.cumsum(rng.normal(0, 0.3, 1500))  # a random walk: many detections


# -- KS --------------------------------------------------------------------------------------------

def test_ks_matches_scipy_for_one_variable():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(0.2, 1.1, size=250)
    result = build_detector("ks").detect(a, b)
    ref = stats.ks_2samp(a, b)
    assert result.score == pytest.approx(ref.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert result.drift == (ref.pvalue < 0.05)


def test_ks_bonferroni_over_variables_and_vectorised_statistic():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 3))
    b = rng.normal(size=(180, 3)) + [0.0, 0.4, 0.0]
    result = build_detector("ks", {"alpha": 0.01}).detect(a, b, variables=["u", "v", "w"])
    refs = [stats.ks_2samp(a[:, j], b[:, j]) for j in range(3)]
    assert np.allclose(ks_statistic(a, b), [r.statistic for r in refs], atol=1e-12)
    assert result.p_value == pytest.approx(min(1.0, 3 * min(r.pvalue for r in refs)))
    assert result.details["worst_variable"] == "v"
    # the reported threshold is the asymptotic critical value at alpha / 3
    critical = math.sqrt(-math.log(0.01 / 3 / 2) / 2) * math.sqrt((200 + 180) / (200 * 180))
    assert result.threshold == pytest.approx(critical)


# -- PSI worked by hand --------------------------------------------------------------------------

def test_psi_worked_example():
    # Reference 1..10, two bins: edge at the median 5.5 → shares (0.5, 0.5).
    # Test: 1,2,3,7,8,9,10,10,10,10 → 3 below 5.5, 7 above → shares (0.3, 0.7).
    # PSI = (0.3 − 0.5)·ln(0.3/0.5) + (0.7 − 0.5)·ln(0.7/0.5)
    reference = np.arange(1.0, 11.0)
    test = np.array([1, 2, 3, 7, 8, 9, 10, 10, 10, 10], dtype=float)
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    value, r, t = psi_value(reference, test, bins=2)
    assert value == pytest.approx(expected, abs=1e-12)  # 0.1689…
    assert r.tolist() == [0.5, 0.5] and t.tolist() == pytest.approx([0.3, 0.7])
    result = build_detector("psi", {"bins": 2}).detect(reference, test)
    assert result.score == pytest.approx(expected) and result.drift  # 0.169 > 0.1


def test_psi_empty_bin_uses_the_floor():
    # All test values above the reference: shares (0, 1) vs (0.5, 0.5); 0 is floored at 1e-4.
    value, _, _ = psi_value(np.arange(1.0, 11.0), np.full(10, 20.0), bins=2)
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert value == pytest.approx(expected)


# -- streaming detectors against river -----------------------------------------------------------

@pytest.mark.parametrize("stream", list(streams()), ids=["steps", "river-example", "random-walk"])
def test_adwin_indices_match_river(stream):
    indices, shifts = adwin_run(stream, delta=0.002)
    assert indices == river_indices(river_drift.ADWIN(delta=0.002), stream.tolist())
    assert len(indices) >= 1 and all(s > 0 for s in shifts)


@pytest.mark.parametrize("stream", list(streams()), ids=["steps", "river-example", "random-walk"])
@pytest.mark.parametrize("direction", ["both", "up", "down"])
def test_page_hinkley_indices_match_river(stream, direction):
    indices, statistic = page_hinkley_run(stream, delta=0.005, threshold=50.0, alpha=1 - 1e-4,
                                          min_instances=30, direction=direction)
    expected = river_indices(river_drift.PageHinkley(mode=direction), stream.tolist())
    assert indices == expected
    assert all(statistic[i] > 50.0 for i in indices)


def test_page_hinkley_detector_without_standardising_equals_river_on_the_joined_stream():
    rng = np.random.default_rng(5)
    reference, test = rng.uniform(0, 1, 800), rng.uniform(4, 8, 400)
    result = build_detector("page_hinkley", {"standardise": False}).detect(reference, test)
    expected = [i - 800 for i in river_indices(river_drift.PageHinkley(), np.concatenate([reference, test]).tolist())
                if i >= 800]
    assert result.details["per_variable"][0]["detections"] == expected
    assert result.detection_index == expected[0]


def event_streams():
    rng = np.random.default_rng(9)
    yield (rng.random(3000) < 0.1).astype(int)
    yield np.concatenate([(rng.random(1500) < 0.05), (rng.random(1500) < 0.3)]).astype(int)
    yield np.concatenate([(rng.random(1500) < 0.4), (rng.random(1500) < 0.02)]).astype(int)


@pytest.mark.parametrize("events", list(event_streams()), ids=["stationary", "up", "down"])
def test_eddm_matches_river(events):
    drifts, warnings, _ = eddm_run(events, warning_level=0.95, drift_level=0.9, min_errors=30)
    assert drifts == river_indices(river_binary.EDDM(), events.tolist())


@pytest.mark.parametrize("events", list(event_streams()), ids=["stationary", "up", "down"])
@pytest.mark.parametrize("two_sided", [True, False])
def test_hddm_a_matches_river(events, two_sided):
    drifts, _ = hddm_a_run(events, drift_confidence=0.001, warning_confidence=0.005, two_sided=two_sided)
    assert drifts == river_indices(river_binary.HDDMA(two_sided_test=two_sided), events.tolist())


def test_hddm_a_detects_the_decrease_only_when_two_sided():
    events = list(event_streams())[2]
    one, _ = hddm_a_run(events, drift_confidence=0.001, warning_confidence=0.005, two_sided=False)
    two, _ = hddm_a_run(events, drift_confidence=0.001, warning_confidence=0.005, two_sided=True)
    assert not [i for i in one if i >= 1500] and [i for i in two if i >= 1500]


# -- MMD -------------------------------------------------------------------------------------------

def test_mmd_unbiased_estimate_matches_the_definition():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(15, 2)), rng.normal(0.5, 1, size=(12, 2))
    gamma = 0.7
    k = lambda a, b: math.exp(-gamma * float(np.sum((a - b) ** 2)))  # noqa: E731
    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    kxy = sum(k(a, b) for a in x for b in y) / (n * m)
    expected = kxx + kyy - 2 * kxy
    kernel = np.exp(-gamma * sq_distances(np.vstack([x, y])))
    member = np.zeros((n + m, 1), dtype=bool)
    member[:n] = True
    assert mmd2_unbiased_many(kernel, member)[0] == pytest.approx(expected, rel=1e-10)
    result = build_detector("mmd", {"gamma": gamma, "standardise": False, "permutations": 0}).detect(x, y)
    assert result.score == pytest.approx(expected, rel=1e-10) and result.p_value is None


def test_mmd_median_bandwidth_and_permutation_p_value():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(30, 3))
    d = np.array([[np.sum((a - b) ** 2) for b in z] for a in z])
    assert median_gamma(sq_distances(z)) == pytest.approx(1 / (2 * np.median(d[np.triu_indices(30, 1)])))
    same = build_detector("mmd", {"gamma": "median", "seed": 1}).detect(rng.normal(size=(150, 3)),
                                                                       rng.normal(size=(150, 3)))
    moved = build_detector("mmd", {"gamma": "median", "seed": 1}).detect(rng.normal(size=(150, 3)),
                                                                        rng.normal(size=(150, 3)) + 1)
    assert same.p_value > 0.05 and moved.p_value == pytest.approx(1 / 201)
    assert same.details["gamma"] > 0


# -- PCA-CD, kdq-tree ---------------------------------------------------------------------------------

def test_pca_cd_standardises_with_the_reference_so_units_do_not_matter():
    rng = np.random.default_rng(6)
    reference = rng.normal(size=(300, 4))
    test = rng.normal(size=(300, 4)) + [0, 0.8, 0, 0]
    detector = build_detector("pca_cd")
    scaled = np.array([1e4, 1.0, 1e-3, 50.0])
    assert detector.detect(reference, test).score == pytest.approx(
        detector.detect(reference * scaled + 7, test * scaled + 7).score, rel=1e-9)


def test_kdq_tree_partitions_the_reference():
    rng = np.random.default_rng(8)
    data = rng.normal(size=(500, 3))
    tree = KdqTree.build(data, min_points=40, min_side=0.01)
    cells = tree.cells(data)
    counts = np.bincount(cells, minlength=tree.n_leaves)
    assert counts.sum() == 500 and tree.n_leaves > 8
    assert counts.max() < 40 or tree.n_leaves == 1
    # a point far outside the reference's box still lands in exactly one (edge) cell
    assert tree.cells(np.array([[50.0, -50.0, 0.0]])).shape == (1,)


def test_kdq_kl_divergence_with_half_pseudo_counts():
    ref, test = np.array([6, 2, 0]), np.array([1, 1, 4])
    p = (test + 0.5) / (6 + 1.5)
    q = (ref + 0.5) / (8 + 1.5)
    assert kl_divergence(ref, test)[0] == pytest.approx(float(np.sum(p * np.log(p / q))))


def test_kdq_tree_false_alarm_rate_is_about_alpha():
    detector = build_detector("kdq_tree", {"bootstrap": 100})
    alarms = [detector.detect(np.random.default_rng(s).normal(size=(300, 2)),
                              np.random.default_rng(s + 500).normal(size=(300, 2))).drift for s in range(40)]
    assert sum(alarms) <= 6  # alpha = 0.05 → about 2 of 40


# -- model disagreement estimators ------------------------------------------------------------------

def test_seven_estimators_worked_example():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([1.0, 2.0, 3.0, 6.0])
    out = disagreement_estimators(a, b, scale=2.0)
    v = out["values"]
    assert v["mae"] == pytest.approx(0.5 / 2)  # |diff| = 0,0,0,2 → MAE 0.5
    assert v["rmse"] == pytest.approx(1.0 / 2)  # sqrt(4/4)
    assert v["mse"] == pytest.approx(1.0 / 4)
    assert v["variance_of_differences"] == pytest.approx(np.var([0, 0, 0, -2]) / 4)  # 0.75 / 4
    assert v["pearson_r"] == pytest.approx(stats.pearsonr(a, b).statistic)
    assert v["cosine_similarity"] == pytest.approx(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    assert v["coefficient_of_variation"] == pytest.approx(np.mean([0, 0, 0, 1 / 5]))  # SD 1 / mean 5 on row 4
    assert out["levels"]["mae"] == "high" and out["levels"]["mse"] == "high"
    assert out["verdict"] == "high"
    same = disagreement_estimators(a, a)
    assert same["verdict"] == "low" and set(same["levels"].values()) == {"low"}


def test_model_disagreement_metrics():
    rng = np.random.default_rng(2)
    base = rng.normal(size=300)
    preds = np.column_stack([base, base + 0.1 * rng.normal(size=300), -base])
    for metric, expected in [
        ("pearson", np.mean([1 - stats.pearsonr(preds[:, i], preds[:, j]).statistic
                             for i, j in [(0, 1), (0, 2), (1, 2)]])),
        ("spearman", np.mean([1 - stats.spearmanr(preds[:, i], preds[:, j]).statistic
                              for i, j in [(0, 1), (0, 2), (1, 2)]])),
        ("mse", np.mean([np.mean((preds[:, i] - preds[:, j]) ** 2) for i, j in [(0, 1), (0, 2), (1, 2)]])
         / preds.var()),
    ]:
        result = build_detector("model_disagreement", {"metric": metric}).detect(preds, preds)
        assert result.score == pytest.approx(expected, rel=1e-9), metric


def test_kdq_bootstrap_counts_are_the_plain_resampling_counts():
    """Row by row on int32 indices (bounded memory), yet the same draws as one int64 draw of them all."""
    cells = np.random.default_rng(0).integers(0, 37, size=500)
    counts = bootstrap_counts(cells, np.random.default_rng(9), replicates=30, size=400, n_cells=37)
    idx = np.random.default_rng(9).integers(0, 500, size=(30, 400))
    assert (counts == np.vstack([np.bincount(cells[row], minlength=37) for row in idx])).all()
    assert (counts.sum(axis=1) == 400).all()


def test_pca_cd_kde_in_blocks_equals_the_whole_kernel_matrix():
    rng = np.random.default_rng(5)
    grid = np.linspace(-4, 4, 128)
    for n in (50, 8192, 20000):  # one block (bit for bit), exactly one, several
        x = rng.normal(size=n)
        h = max(x.std(ddof=1) * n ** (-1 / 5), grid[1] - grid[0])
        whole = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / h) ** 2).sum(axis=1)
        assert kde_on_grid(x, grid) == pytest.approx(whole / whole.sum(), rel=1e-12, abs=1e-300)

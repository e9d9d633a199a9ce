"""stamm_drift.compat keeps drift_detectors_pack 0.4's names, signatures, results, modes and metadata."""
from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import stamm_drift.compat as dd
from stamm_drift import DataError, ParameterError, build_detector

#: drift_detectors_pack 0.4's public names (its ``__all__``).
UPSTREAM_NAMES = [
    "DriftDetector", "get_metadata", "ScoreDriftResult", "StreamingDriftResult", "PointwiseDriftResult",
    "PSI", "KSDetector", "Adwin", "PageHinkley", "HDDM_A", "EDDM", "MMDDetector", "PCA_CD", "KDQTree",
    "ModelDisagreementMetric", "DisagreementMetric", "MSEDisagreement", "PearsonDisagreement",
    "SpearmanDisagreement",
]
#: Upstream's constructor and calculate() parameters, in order, per class.
UPSTREAM_SIGNATURES = {
    "PSI": (["reference_data", "online", "threshold"], ["test_data", "reference_data", "bins", "epsilon"]),
    "KSDetector": (["reference_data", "alpha", "online"], ["test_data", "reference_data", "alpha"]),
    "Adwin": (["delta", "online"], ["test_data", "delta"]),
    "PageHinkley": (["delta", "lambda_", "alpha", "online"], ["test_data", "delta", "lambda_"]),
    "HDDM_A": (["drift_confidence", "warning_confidence", "two_sided", "online"],
               ["test_data", "drift_confidence", "warning_confidence"]),
    "EDDM": (["warning_level", "drift_level", "min_n_errors", "min_consecutive_drift_signals", "online"],
             ["test_data", "warning_level", "drift_level"]),
    "MMDDetector": (["reference_data", "gamma", "threshold", "online"],
                    ["test_data", "reference_data", "gamma", "threshold"]),
    "PCA_CD": (["reference_data", "n_components", "csd_threshold", "kl_threshold", "online"],
               ["test_data", "reference_data", "csd_threshold", "kl_threshold"]),
    "KDQTree": (["reference_data", "k_neighbors", "ks_method", "alpha", "score_threshold", "use_fisher", "online"],
                ["test_data", "reference_data", "alpha"]),
    "ModelDisagreementMetric": (["metrics", "threshold", "online", "models"],
                                ["test_data", "reference_data", "predictions", "threshold"]),
}


def positional(func) -> list[str]:
    return [p.name for p in inspect.signature(func).parameters.values()
            if p.name != "self" and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def test_every_upstream_name_is_there():
    assert set(UPSTREAM_NAMES) <= set(dd.__all__)
    for name in UPSTREAM_NAMES:
        assert getattr(dd, name)


@pytest.mark.parametrize("name", sorted(UPSTREAM_SIGNATURES))
def test_signatures_keep_upstreams_positional_order(name):
    cls = getattr(dd, name)
    init, calculate = UPSTREAM_SIGNATURES[name]
    assert positional(cls.__init__) == init
    assert positional(cls.calculate) == calculate
    assert "Differences from drift_detectors_pack" in cls.__doc__ and cls.differences


def rng_windows(shift=0.0, d=1, n=600, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, d)) if d > 1 else rng.normal(size=n)
    test = (rng.normal(size=(n, d)) if d > 1 else rng.normal(size=n)) + shift
    return ref, test


def test_reference_from_constructor_setter_or_call():
    ref, test = rng_windows(0.5)
    other, _ = rng_windows(3.0, seed=1)
    psi = dd.PSI(reference_data=ref)
    first = psi.calculate(test)
    assert first.score == dd.PSI().calculate(test, ref).score
    assert psi.calculate(test, reference_data=other).score != first.score  # a per-call override
    psi.set_reference_data(other)
    assert psi.calculate(test).score != first.score
    with pytest.raises(DataError, match="Reference data must be provided"):
        dd.KSDetector().calculate(test)
    assert isinstance(DataError("x"), ValueError)  # upstream raised ValueError: still caught as one


def test_online_batch_detectors_accumulate_the_test_window():
    ref, test = rng_windows(0.5)
    psi = dd.PSI(reference_data=ref, online=True)
    for i, chunk in enumerate(np.array_split(test, 5)):
        result = psi.calculate(chunk)
        assert result.details["test_size"] == sum(len(c) for c in np.array_split(test, 5)[: i + 1])
        assert result.details["mode"] == "online"
    assert result.score == dd.PSI().calculate(test, ref).score
    assert dd.PSI().calculate(test, ref).details["mode"] == "offline"
    mv = dd.MMDDetector(reference_data=np.ones((10, 2)), online=True)
    mv.calculate(np.ones((3, 2)))
    with pytest.raises(DataError, match="accumulated test window has 2"):
        mv.calculate(np.ones((3, 3)))


def test_short_windows_are_not_ready_where_upstream_says_so():
    ref, _ = rng_windows(d=3)
    result = dd.KDQTree(reference_data=ref, online=True).calculate(np.zeros((1, 3)))
    assert result.score is None and result.drift is False and result.details["status"] == "not_ready"
    assert result.details["test_size"] == 1
    with pytest.raises(DataError, match="at least 2 rows"):
        dd.PSI().calculate([1.0], ref[:, 0])


def test_streaming_offline_is_fresh_each_call_online_keeps_the_stream():
    rng = np.random.default_rng(3)
    stream = np.concatenate([rng.normal(0, 1, 400), rng.normal(4, 1, 400)])
    whole = dd.PageHinkley().calculate(stream)
    assert whole.drift and whole.details["detections"][0] >= 400 and whole.details["n_observations"] == 800
    online = dd.PageHinkley(online=True)
    offsets = [i for i, x in enumerate(stream) if online.calculate([x]).drift]
    assert offsets == whole.details["detections"]
    offline = dd.PageHinkley()
    assert not any(offline.calculate([x]).drift for x in stream)  # one value per fresh test: nothing to see
    online.reset()
    assert online.calculate(stream[:400]).drift is False


def test_per_call_overrides_apply_to_that_call_only():
    rng = np.random.default_rng(4)
    stream = np.concatenate([rng.normal(0, 1, 300), rng.normal(1.5, 1, 300)])
    ph = dd.PageHinkley(lambda_=1000.0)
    assert ph.calculate(stream, lambda_=10.0).drift and ph.calculate(stream).drift is False
    assert ph.calculate(stream, lambda_=10.0).details["lambda"] == 10.0
    with pytest.raises(ParameterError, match="threshold"):
        ph.calculate(stream, lambda_=-1.0)
    adwin = dd.Adwin(online=True)
    adwin.calculate(stream[:300])
    assert adwin.calculate(stream[300:], delta=0.1).details["delta"] == 0.1  # upstream: replaces and restarts
    assert adwin.calculate([0.0]).details["delta"] == 0.1


@pytest.mark.parametrize(
    ("build", "parameter"),
    [
        (lambda: dd.PCA_CD(csd_threshold=0.2), "csd_threshold"),
        (lambda: dd.PCA_CD().calculate(np.ones((5, 2)), np.ones((5, 2)), kl_threshold=0.1), "kl_threshold"),
        (lambda: dd.KDQTree(k_neighbors=10), "k_neighbors"),
        (lambda: dd.KDQTree(use_fisher=False), "use_fisher"),
        (lambda: dd.EDDM(min_consecutive_drift_signals=1), "min_consecutive_drift_signals"),
        (lambda: dd.PSI(threshold=-1).calculate([1.0, 2.0], [1.0, 2.0]), "threshold"),
        (lambda: dd.MMDDetector(gamma="mean").calculate(np.ones((5, 2)), np.ones((5, 2))), "gamma"),
    ],
)
def test_arguments_without_a_stamm_meaning_or_out_of_bounds_are_refused_by_name(build, parameter):
    with pytest.raises(ParameterError) as info:
        build()
    assert info.value.parameter == parameter
    upstream_only = parameter in ("csd_threshold", "kl_threshold", "k_neighbors", "use_fisher",
                                  "min_consecutive_drift_signals")
    assert isinstance(info.value, dd.UnsupportedArgument) == upstream_only
    assert isinstance(info.value, ValueError)


def test_upstream_defaults_spelled_out_are_accepted():
    ref, test = rng_windows(d=3)
    dd.KDQTree(k_neighbors=25, ks_method="asymp", score_threshold=0.25, use_fisher=True).calculate(test, ref)
    dd.PCA_CD(csd_threshold=0.1, kl_threshold=0.05).calculate(test, ref)
    dd.EDDM(min_consecutive_drift_signals=3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dd.HDDM_A().calculate([0.2, 3.0]), r"\[0, 1\]"),
        (lambda: dd.EDDM().calculate([0, 1, 0.5]), "0/1 events"),
        (lambda: dd.Adwin().calculate([]), "empty"),
        (lambda: dd.PageHinkley().calculate([1.0, np.nan]), "non-finite"),
        (lambda: dd.Adwin().calculate(["a"]), "not numeric"),
        (lambda: dd.KSDetector().calculate([1.0, np.nan], [1.0, 2.0]), "non-finite"),
    ],
)
def test_bad_values_get_a_clear_error(call, message):
    with pytest.raises(DataError, match=message):
        call()


def test_model_disagreement_call_shapes():
    rng = np.random.default_rng(0)
    y = np.linspace(0, 10, 200)
    close, far = y + 0.1 * rng.normal(size=200), 1.5 * y + 2 + 2 * rng.normal(size=200)
    mdm = dd.ModelDisagreementMetric()
    assert mdm.metric_names == ["mse", "pearson", "spearman"]
    same = mdm.calculate(predictions=[y, y.copy(), y.copy()])
    assert same.score == 0.0 and same.drift is False
    small = mdm.calculate(predictions=[y, close]).score
    large = mdm.calculate(predictions=[y, far])
    assert large.score > small and large.drift
    assert set(large.details["score_by_kind"]) == {"error", "correlation"}
    assert large.score == large.details["score_by_kind"]["error"] == large.details["metric_means"]["mse"]
    four = mdm.calculate(predictions=[y, close, far, -y])
    for matrix in four.details["pairwise"].values():
        assert np.allclose(matrix, np.asarray(matrix).T) and np.asarray(matrix).shape == (4, 4)
    assert four.details["estimators"]["verdict"] in ("low", "moderate", "high")
    with pytest.raises(DataError, match="predictions="):
        mdm.calculate(test_data=np.zeros(10))
    with pytest.raises(DataError, match="two models"):
        mdm.calculate(predictions=[y])
    with pytest.raises(DataError, match="differ in length"):
        mdm.calculate(predictions=[y, y[:10]])
    assert mdm.calculate(predictions=[[1.0], [2.0]]).details["status"] == "not_enough_samples"


def test_model_disagreement_pluggable_metrics_and_models():
    class MeanAbsDiff(dd.DisagreementMetric):
        name, kind = "mean_abs", "error"

        def pair(self, a, b, *, scale=1.0):
            return float(np.mean(np.abs(a - b)) / scale)

    y = np.linspace(0, 10, 100)
    mdm = dd.ModelDisagreementMetric(metrics=[MeanAbsDiff()])
    result = mdm.calculate(predictions=[y, y + 1.0])
    assert result.score == pytest.approx(1.0 / np.std(np.r_[y, y + 1.0]))  # scale = SD of the predictions
    mdm.add_metric(dd.PearsonDisagreement())
    assert mdm.metric_names == ["mean_abs", "pearson"]
    only_correlation = dd.ModelDisagreementMetric(metrics=[dd.SpearmanDisagreement()])
    assert only_correlation.calculate(predictions=[y, -y]).score == pytest.approx(2.0)
    x = np.linspace(0, 1, 50)[:, None]
    by_models = dd.ModelDisagreementMetric(models=[lambda X: X[:, 0], lambda X: 2 * X[:, 0]]).calculate(x)
    assert by_models.score == dd.ModelDisagreementMetric().calculate(predictions=[x[:, 0], 2 * x[:, 0]]).score


def test_metadata_has_upstreams_schema_and_comes_from_the_catalogue():
    meta = dd.get_metadata()
    assert set(meta) == {"psi", "ks", "adwin", "page_hinkley", "hddm_a", "eddm", "mmd", "pca_cd", "kdq_tree",
                         "model_disagreement", "disagreement_metrics"}
    for cls in dd.DETECTORS:
        doc = meta[cls.folder]
        assert {"name", "acronym", "version", "type", "mode", "description", "inputs", "parameters", "output",
                "references"} <= set(doc)
        assert doc["mode"] == build_detector(cls.stamm_key).mode
        assert set(positional(cls.__init__)) <= set(doc["parameters"])
        assert all(p["description"] for p in doc["parameters"].values()), cls.__name__
        assert doc["stamm"]["differences"] == list(cls.differences)
    assert dd.PageHinkley().metadata["acronym"] == "PH" and dd.PSI().metadata == meta["psi"]
    assert meta["psi"]["parameters"]["bins"]["description"].startswith("Number of quantile bins")
    assert meta["page_hinkley"]["parameters"]["lambda_"]["description"].startswith("Detection threshold")
    assert "no counterpart" not in meta["kdq_tree"]["parameters"]["alpha"]["description"]
    assert "without a STAMM counterpart" in meta["kdq_tree"]["parameters"]["k_neighbors"]["description"]
    assert meta["mmd"]["output"]["fields"]["score"] and meta["adwin"]["output"]["fields"]["last_index"]


def test_a_users_own_detector_subclass_works():
    class MeanShift(dd.DriftDetector):
        def calculate(self, test_data, reference_data=None):
            ref = self._reference_data if reference_data is None else reference_data
            score = abs(float(np.mean(test_data)) - float(np.mean(ref)))
            return dd.ScoreDriftResult(score=score, drift=score > 1.0)

    detector = MeanShift(reference_data=[0.0, 0.1])
    assert detector.metadata == {} and detector.calculate([2.0, 2.2]).drift
    with pytest.raises(TypeError):
        dd.DriftDetector()


UPSTREAM_SCRIPT = '''
import numpy as np
from drift_detectors import (PSI, KSDetector, MMDDetector, PCA_CD, KDQTree, PageHinkley, HDDM_A, Adwin,
                             ModelDisagreementMetric, get_metadata)

rng = np.random.default_rng(0)
ref, test = rng.normal(0.0, 1.0, 1000), rng.normal(0.3, 1.0, 1000)
res = PSI().calculate(test, ref)
print("psi", round(float(res.score), 4), res.drift, res.details["bins"])
print("ks", KSDetector().calculate(test_data=test, reference_data=ref).details["p_value"] < 0.05)
ref_mv, test_mv = rng.normal(0.0, 1.0, size=(500, 4)), rng.normal(0.4, 1.0, size=(500, 4))
print("mmd", MMDDetector(gamma="median").calculate(test_mv, ref_mv).score > 0)
print("pca", PCA_CD().calculate(test_mv, ref_mv).drift, KDQTree(k_neighbors=25).calculate(test_mv, ref_mv).drift)
ph, hd = PageHinkley(online=True), HDDM_A(online=True)
stream = np.concatenate([rng.normal(0, 1, 300), rng.normal(4, 1, 300)])
print("ph", next(i for i, x in enumerate(stream) if ph.calculate([x]).drift) >= 300)
print("hd", hd.calculate([0, 0, 1]).last_index, Adwin().calculate(stream).drift)
mdm = ModelDisagreementMetric(threshold=0.10).calculate(predictions=[test, test + 0.05, test * 1.5])
print("mdm", sorted(mdm.details["score_by_kind"]), sorted(mdm.details["metric_means"]))
print("meta", sorted(get_metadata())[:3])
'''


def test_an_upstream_script_runs_by_changing_one_import(tmp_path):
    script = UPSTREAM_SCRIPT.replace("from drift_detectors import", "from stamm_drift.compat import")
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["psi"].endswith("True 10") and lines["ks"] == "True" and lines["mmd"] == "True"
    assert lines["ph"] == "True" and lines["hd"] == "-1 True"
    assert lines["mdm"] == "['correlation', 'error'] ['mse', 'pearson', 'spearman']"
    assert lines["meta"] == "['adwin', 'disagreement_metrics', 'eddm']"

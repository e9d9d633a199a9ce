"""The detector contract: parameter validation from the signature, schema, errors, result type."""
from __future__ import annotations

import json
import math
from typing import Annotated, Literal

import numpy as np
import pytest
from stamm_drift import (
    DataError,
    DriftResult,
    ParameterError,
    UnknownDetector,
    build_detector,
    catalogue,
    detector_class,
)
from stamm_drift.base import Detector, register
from stamm_drift.params import Bounds, parse_docstring_parameters


@pytest.mark.parametrize(
    ("key", "params", "parameter", "fragment"),
    [
        ("psi", {"bins": "ten"}, "bins", "expected integer"),
        ("psi", {"bins": 1}, "bins", "≥ 2"),
        ("psi", {"bins": 2.5}, "bins", "expected integer"),
        ("psi", {"threshold": True}, "threshold", "expected number"),
        ("psi", {"threshold": 0}, "threshold", "> 0"),
        ("psi", {"threshold": float("nan")}, "threshold", "finite"),
        ("psi", {"treshold": 0.2}, "treshold", "unknown parameter"),
        ("psi", {"epsilon": 0}, "epsilon", "> 0"),
        ("ks", {"alpha": 1.5}, "alpha", "< 1"),
        ("mmd", {"gamma": "mean"}, "gamma", "'median'"),
        ("mmd", {"gamma": -1.0}, "gamma", "> 0"),
        ("model_disagreement", {"metric": "kendall"}, "metric", "'spearman'"),
        ("eddm", {"drift_level": 0.97}, "drift_level", "must not exceed warning_level"),
        ("page_hinkley", {"direction": "sideways"}, "direction", "'both'"),
        ("adwin", {"standardise": "yes"}, "standardise", "expected boolean"),
    ],
)
def test_bad_parameters_name_the_parameter(key, params, parameter, fragment):
    with pytest.raises(ParameterError) as info:
        build_detector(key, params)
    assert info.value.parameter == parameter
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{parameter}:")


def test_good_parameters_are_coerced():
    assert build_detector("psi", {"bins": 20.0, "threshold": 1}).get_params() == {
        "bins": 20, "threshold": 1.0, "epsilon": 1e-4}
    assert build_detector("mmd", {"gamma": "median"}).gamma == "median"
    assert build_detector("mmd", {"gamma": 2}).gamma == 2.0


def test_unknown_detector():
    with pytest.raises(UnknownDetector) as info:
        detector_class("cusum")
    assert info.value.key == "cusum" and "psi" in str(info.value)


def test_schema_of_a_union_and_a_choice():
    props = detector_class("mmd").json_schema()["properties"]
    assert props["gamma"]["anyOf"] == [{"type": "number", "exclusiveMinimum": 0}, {"enum": ["median"]}]
    assert props["kernel"]["enum"] == ["rbf"] and props["kernel"]["default"] == "rbf"
    assert props["permutations"] == {
        "type": "integer", "minimum": 0, "maximum": 10000, "title": "Permutations", "default": 200,
        "description": props["permutations"]["description"],
    }
    assert "label permutations" in props["permutations"]["description"]


def test_catalogue_is_json_and_carries_stamm_defaults():
    entries = {e["key"]: e for e in json.loads(json.dumps(catalogue()))}
    defaults = {k: {p["name"]: p["default"] for p in e["parameters"]} for k, e in entries.items()}
    assert defaults["psi"] == {"threshold": 0.1, "bins": 10, "epsilon": 1e-4}
    assert defaults["ks"] == {"alpha": 0.05}
    assert defaults["adwin"]["delta"] == 0.002
    assert {k: defaults["page_hinkley"][k] for k in ("delta", "threshold", "alpha")} == {
        "delta": 0.005, "threshold": 50.0, "alpha": 1 - 1e-4}
    assert defaults["hddm_a"] == {"drift_confidence": 0.001, "warning_confidence": 0.005, "two_sided": True}
    assert defaults["eddm"] == {"warning_level": 0.95, "drift_level": 0.90, "min_errors": 30}
    assert {k: defaults["mmd"][k] for k in ("kernel", "gamma", "threshold")} == {
        "kernel": "rbf", "gamma": 1.0, "threshold": 0.05}
    assert defaults["pca_cd"] == {"n_components": 2, "threshold": 0.1, "warning_threshold": 0.05}
    assert defaults["model_disagreement"] == {"metric": "mse", "threshold": 0.25}
    assert entries["eddm"]["kind"] == "model-based" and entries["eddm"]["input"] == "events"
    assert entries["adwin"]["mode"] == "streaming" and entries["mmd"]["kind"] == "multivariate"


def test_register_refuses_a_detector_whose_parameters_are_declared_badly():
    with pytest.raises(TypeError, match="keyword-only"):
        @register
        class Positional(Detector):
            """Parameters
            ----------
            x
                A value.
            """

            key, label, kind, mode, description, references = "pos", "P", "univariate", "batch", "d", ("r",)

            def __init__(self, x: float = 1.0) -> None:
                self.x = x

    with pytest.raises(TypeError, match="document parameters"):
        @register
        class Undocumented(Detector):
            key, label, kind, mode, description, references = "undoc", "U", "univariate", "batch", "d", ("r",)

            def __init__(self, *, x: Annotated[float, Bounds(gt=0)] = 1.0, y: Literal["a", "b"] = "a") -> None:
                self.x, self.y = x, y


def test_docstring_parameters_parser_stops_at_the_next_section():
    doc = """Summary.

    Parameters
    ----------
    alpha
        First line
        second line.
    beta
        Beta.

    Examples
    --------
    gamma
        Not a parameter.
    """
    assert parse_docstring_parameters(doc) == {"alpha": "First line second line.", "beta": "Beta."}


@pytest.mark.parametrize(
    ("reference", "test", "message"),
    [
        (np.ones((10, 2)), np.ones((10, 3)), "columns"),
        (np.array([[1.0, np.nan]] * 5), np.ones((5, 2)), "non-finite"),
        (np.ones((0, 2)), np.ones((5, 2)), "empty"),
        (np.ones((1, 2)), np.ones((5, 2)), "at least 2 rows"),
        ([["a", "b"]] * 3, np.ones((3, 2)), "not numeric"),
    ],
)
def test_bad_data_is_refused_with_a_message(reference, test, message):
    with pytest.raises(DataError, match=message):
        build_detector("psi").detect(reference, test)


def test_event_detectors_refuse_non_binary_streams():
    with pytest.raises(DataError, match="0/1 events"):
        build_detector("eddm").detect(np.ones(50), np.full(50, 0.5))


def test_disagreement_needs_two_models():
    with pytest.raises(DataError, match="at least two models"):
        build_detector("model_disagreement").detect(np.ones((20, 1)), np.ones((20, 1)))


def test_dataframe_columns_name_the_variables():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"aeration_rate": rng.normal(size=200), "pH": rng.normal(size=200)})
    test = pd.DataFrame({"aeration_rate": rng.normal(3, 1, size=200), "pH": rng.normal(size=200)})
    result = build_detector("psi").detect(ref, test)
    assert result.variables == ("aeration_rate", "pH")
    assert "aeration_rate" in result.explanation and "reference SD" in result.explanation


def test_result_to_dict_is_plain_json():
    result = DriftResult(detector="x", drift=np.bool_(True), score=np.float64(0.5), threshold=math.inf,
                         p_value=None, detection_index=-1, variables=("a",),
                         details={"arr": np.arange(3), "nested": {"v": np.float32(1.5)}})
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["threshold"] is None and data["details"]["arr"] == [0, 1, 2] and data["drift"] is True

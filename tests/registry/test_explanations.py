"""Explanations: exact values of the model-agnostic Shapley, importance and partial-dependence code; TreeSHAP
computed in the runtime worker; contributions that add up to the estimate minus the base value; the API."""

from __future__ import annotations

import numpy as np
import pytest

from apps.registry import explanations

from .conftest import FEATURES, TARGET

WEIGHTS = np.array([2.0, -1.0, 0.5, 0.0])


def linear(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=float) @ WEIGHTS + 3.0


def test_exact_shapley_of_a_linear_model_is_weight_times_distance_to_the_background_mean():
    rng = np.random.default_rng(1)
    background = rng.normal(size=(7, 4))
    x = np.array([1.0, 2.0, -3.0, 5.0])
    result = explanations.shapley_values(linear, x, background)
    assert result.method == "exact_shapley"
    np.testing.assert_allclose(result.contributions, WEIGHTS * (x - background.mean(axis=0)), atol=1e-12)
    assert result.base == pytest.approx(float(linear(background).mean()))
    assert result.base + result.contributions.sum() == pytest.approx(float(linear(x[None, :])[0]))


def test_sampled_shapley_adds_up_exactly_and_is_exact_for_additive_models():
    def interacting(X):  # not additive: sampled values still telescope to f(x) − base
        return X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + X[:, 3:].sum(axis=1)

    rng = np.random.default_rng(2)
    background = rng.normal(size=(5, 12))
    x = rng.normal(size=12)
    result = explanations.shapley_values(interacting, x, background, exact_max_features=4, permutations=16)
    assert result.method == "sampled_shapley"
    assert result.base + result.contributions.sum() == pytest.approx(float(interacting(x[None, :])[0]), abs=1e-9)
    additive = explanations.shapley_values(lambda X: X @ np.arange(12.0), x, background, exact_max_features=4)
    np.testing.assert_allclose(additive.contributions, np.arange(12.0) * (x - background.mean(axis=0)), atol=1e-9)


def test_permutation_importance_ranks_used_inputs_and_leaves_the_ignored_one_at_zero():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    y = linear(X)
    reference, rows = explanations.permutation_importance(linear, X, y, ["a", "b", "c", "unused"])
    assert reference == pytest.approx(0.0)
    assert [row["feature"] for row in rows][:3] == ["a", "b", "c"]
    assert next(row for row in rows if row["feature"] == "unused")["mean"] == pytest.approx(0.0)


def test_partial_dependence_of_a_linear_model_has_its_slope():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(250, 4))
    grid, average = explanations.partial_dependence(linear, X, 0)
    assert len(grid) == explanations.PDP_GRID_POINTS
    np.testing.assert_allclose(np.diff(average) / np.diff(grid), WEIGHTS[0])


def test_outside_envelope_names_the_bound_crossed():
    low, high = np.array([0.0, np.nan, 1.0]), np.array([1.0, 5.0, np.nan])
    found = explanations.outside_envelope(np.array([2.0, 9.0, 0.5]), ["a", "b", "c"], low, high)
    assert found == [
        {"feature": "a", "value": 2.0, "bound": "max", "limit": 1.0},
        {"feature": "b", "value": 9.0, "bound": "max", "limit": 5.0},
        {"feature": "c", "value": 0.5, "bound": "min", "limit": 1.0},
    ]


# --------------------------------------------------------------------------------- through the runtime


@pytest.fixture
def online(register):
    """``online(kind)`` → (spec, fitted) of a registered, online version."""
    from apps.registry.selectors import spec_for_version

    def build(kind: str, **options):
        version, fitted = register(kind, fmt=".skops", **options)
        spec = spec_for_version(version_id=version.pk)
        assert spec.online, spec.status_description
        return spec, fitted

    return build


def _rows(test_frame, n=5):
    return test_frame[FEATURES].to_numpy(dtype=float)[:n]


@pytest.mark.parametrize("kind", ["rf", "gb", "svr"])
def test_tree_models_get_treeshap_from_the_worker_and_the_contributions_add_up(online, test_frame, kind):
    """TreeSHAP runs inside the worker (also behind element-wise scalers); an SVR falls back to Shapley values
    through predict. Either way base + contributions == the raw estimate the version predicts."""
    from apps.registry.services import estimate_explain, version_predict

    spec, fitted = online(kind)
    for x in _rows(test_frame, 3):
        explained = estimate_explain(spec=spec, x=x)
        assert explained.method == ("exact_shapley" if kind == "svr" else "tree_shap")
        predicted = float(version_predict(spec=spec, X=x[None, :]).predictions.reshape(-1)[0])
        total = explained.base_value + sum(item["contribution"] for item in explained.features)
        assert total == pytest.approx(predicted, rel=1e-5, abs=1e-6)
        assert explained.raw_estimate == pytest.approx(predicted, rel=1e-9, abs=1e-9)
        assert {item["feature"] for item in explained.features} == set(FEATURES)


def test_treeshap_matches_shap_run_in_process(online, test_frame):
    import shap

    spec, fitted = online("rf")
    x = _rows(test_frame, 1)
    explained = estimate_explain_dict(spec, x[0])
    expected = shap.TreeExplainer(fitted["model"]).shap_values(x)[0]
    got = np.array([explained[name] for name in FEATURES])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def estimate_explain_dict(spec, x) -> dict[str, float]:
    from apps.registry.services import estimate_explain

    return {item["feature"]: item["contribution"] for item in estimate_explain(spec=spec, x=x).features}


def test_version_explanation_is_built_stored_and_used_as_the_background(online, test_frame):
    from apps.registry.selectors import version_explanation_get
    from apps.registry.services import estimate_explain, model_version_explanation_build

    spec, _ = online("pipeline")
    X = test_frame[FEATURES].to_numpy(dtype=float)
    y = test_frame[TARGET].to_numpy(dtype=float)
    model_version_explanation_build(spec=spec, X=X, y=y, source="batch 96")
    stored = version_explanation_get(version_id=spec.version_id)
    assert stored is not None and stored.source == "batch 96"
    data = stored.data
    assert [row["feature"] for row in data["importance"]] and len(data["importance"]) == len(FEATURES)
    assert data["importance"][0]["mean"] > 0
    assert [curve["feature"] for curve in data["partial_dependence"]] == [
        row["feature"] for row in data["importance"][:3]
    ]
    assert len(data["background"]) == explanations.MAX_BACKGROUND
    explained = estimate_explain(spec=spec, x=X[0])
    assert explained.method == "exact_shapley" and "holdout rows (batch 96)" in explained.background
    total = explained.base_value + sum(item["contribution"] for item in explained.features)
    assert total == pytest.approx(explained.raw_estimate, rel=1e-9)


def test_an_input_outside_the_envelope_is_named(online, test_frame):
    from apps.registry.services import estimate_explain

    spec, _ = online("rf")
    x = _rows(test_frame, 1)[0].copy()
    x[FEATURES.index("temperature")] = 1e6
    outside = estimate_explain(spec=spec, x=x).outside_envelope
    assert [item["feature"] for item in outside] == ["temperature"] and outside[0]["bound"] == "max"


def test_explanation_apis_are_role_checked_and_answer(online, test_frame, api_client_for):
    from apps.registry.services import model_version_explanation_build

    spec, _ = online("rf")
    X = test_frame[FEATURES].to_numpy(dtype=float)
    model_version_explanation_build(spec=spec, X=X, y=test_frame[TARGET].to_numpy(dtype=float), source="batch 96")
    base = f"/api/v1/registry/projects/{spec.project_id}/soft-sensors/{spec.model_id}/versions/{spec.number}/"
    url = base + "explanation/"
    assert api_client_for("outsider").get(url).status_code == 403
    body = api_client_for("operator").get(url).json()
    assert body["version_id"] == spec.version_id and body["importance"] and body["partial_dependence"]
    assert "background" not in body  # the rows stay server-side

    explain_url = base + "explain/"
    inputs = dict(zip(FEATURES, X[0].tolist(), strict=True))
    assert api_client_for("outsider").post(explain_url, {"inputs": inputs}, format="json").status_code == 403
    answer = api_client_for("operator").post(explain_url, {"inputs": inputs}, format="json")
    assert answer.status_code == 200, answer.content
    data = answer.json()
    total = data["base_value"] + sum(item["contribution"] for item in data["contributions"])
    assert total == pytest.approx(data["raw_estimate"], rel=1e-6)
    missing = api_client_for("operator").post(explain_url, {"inputs": {"temperature": 1.0}}, format="json")
    assert missing.status_code == 400 and "sugar_feed_rate" in missing.json()["error"]["message"]

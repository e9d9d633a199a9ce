"""The simulation API through HTTP: who may call it, what it returns, and a 400 naming the field for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from apps.orchestrator import services
from apps.tsdb.services import points_ingest
from tests.conftest import CALLERS

from .helpers import AGE_MODEL_ID, FEATURES, TARGET, TRAINED_BIAS, lab_points, raw_batch, register_age_model, row_time

URL = "/api/v1/orchestrator/simulations/"
ROWS = 90


@pytest.fixture
def stored(db, role_users, batch92):
    """Batch ``b1`` (90 rows, 20 s apart) with three lab samples, and the batch-age model trained on it."""
    frame = batch92.iloc[:ROWS].reset_index(drop=True)
    low, high = frame["temperature"].quantile([0.2, 0.8])
    version, model = register_age_model(
        frame=frame, user=role_users["modeler"], envelope={"temperature": {"min": float(low), "max": float(high)}}
    )
    points_ingest(batch=raw_batch(frame, batch_id="b1"))
    lab_rows = [10, 40, 70]
    points_ingest(
        batch=lab_points(
            [row_time(i) for i in lab_rows], [frame[TARGET].iloc[i] + 1.5 for i in lab_rows], batch_id="b1"
        )
    )
    ages_h = np.arange(ROWS) * 20.0 / 3600.0
    expected = model.predict(np.column_stack([frame[FEATURES].to_numpy(dtype=float), ages_h]))
    return version, expected, frame


def body(**changes):
    base = {"project_id": "P0001", "model_id": AGE_MODEL_ID, "version": 1, "device_id": "R1", "batch_id": "b1"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


@pytest.mark.parametrize("caller", CALLERS)
def test_modelers_and_admins_may_simulate(caller, api_client_for, stored):
    response = api_client_for(caller).post(URL, body(), format="json")
    expected = {"anonymous": 401, "outsider": 403, "operator": 403, "manager": 403, "modeler": 200, "admin": 200}
    assert response.status_code == expected[caller], response.content[:300]


def test_a_simulation_returns_raw_bias_corrected_and_validity(api_client_for, stored):
    _, expected, _ = stored
    response = api_client_for("modeler").post(URL, body(), format="json")
    assert response.status_code == 200, response.content[:500]
    result = response.json()
    assert result["version"] == {"project_id": "P0001", "model_id": AGE_MODEL_ID, "number": 1, "status": "online"}
    assert result["features"][-1] == "batch_age" and result["outputs"] == [TARGET]
    assert result["configuration"] == {
        "deployment": None,
        "input_mapping": {f: f for f in result["features"]},
        "max_input_age_seconds": 3600,
        "bias_update": {**TRAINED_BIAS, "reset_each_batch": True, "source": "trained with the version"},
    }
    assert (result["snapshots"], result["rows"], result["skipped"], result["truncated"]) == (ROWS, ROWS, {}, False)
    rows = result["estimates"]
    raw = np.array([r["raw"][TARGET] for r in rows])
    bias = np.array([r["bias"][TARGET] for r in rows])
    corrected = np.array([r["corrected"][TARGET] for r in rows])
    np.testing.assert_allclose(raw, expected, rtol=1e-9)  # batch age computed as in training
    np.testing.assert_allclose(corrected, raw + bias)
    assert bias[0] == 0 and bias[-1] != 0 and result["bias_report"][TARGET]["used"] == 3
    assert rows[0]["time"].startswith(row_time(0).strftime("%Y-%m-%dT%H:%M:%S"))
    # The training envelope holds the middle 60 % of the temperatures: the other rows are out of range.
    out = [r for r in rows if r["validity"] == "out_of_range"]
    assert 0 < len(out) < ROWS and all(r["out_of_range_inputs"] == ["temperature"] for r in out)


def test_alias_without_bias_update_and_with_a_deployments_configuration(api_client_for, stored, role_users):
    services.deployment_create(
        user=role_users["modeler"],
        name="age-live",
        soft_sensor=stored[0].soft_sensor,
        alias="production",
        max_input_age_seconds=600,
    )
    response = api_client_for("admin").post(
        URL, body(version=None, alias="production", bias_update=False), format="json"
    )
    assert response.status_code == 200, response.content[:500]
    result = response.json()
    assert result["configuration"]["deployment"] == "age-live"
    assert result["configuration"]["max_input_age_seconds"] == 600 and result["configuration"]["bias_update"] is None
    assert all(r["bias"][TARGET] == 0 and r["corrected"] == r["raw"] for r in result["estimates"])
    assert result["bias_report"] == {}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"alias": "production"}, "version"),  # both a number and an alias
        ({"version": None}, "version"),  # neither
        ({"version": 0}, "version"),
        ({"version": 9}, "version"),
        ({"version": None, "alias": "staging"}, "alias"),
        ({"model_id": "nope"}, "model_id"),
        ({"project_id": "P9999"}, "project_id"),
        ({"batch_id": "b404"}, "batch_id"),
        ({"device_id": None}, "device_id"),
        ({"bias_update": "perhaps"}, "bias_update"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_client_for, stored, changes, field):
    response = api_client_for("modeler").post(URL, body(**changes), format="json")
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert field in error["details"], error

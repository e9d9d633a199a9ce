"""Charts a process engineer reads at a glance (issue 15): the formatting and range rules, validity drawn as
the card says it, constant variables, the simulation's refused flag, and explanations on the pages and API."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apps.dashboard import formatting
from apps.dashboard.dash_apps.live_figure import validity_markers
from apps.tsdb.types import GroupKey

from .conftest import dash_update, response_json


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.000997, "g/L", "0.000997 g/L"),
        (0.0009995123, "g/L", "0.0009995 g/L"),
        (12.345678, "g/L", "12.35 g/L"),
        (1234.5678, "kg", "1,235 kg"),
        (0.0, "g/L", "0 g/L"),
        (3.2e-6, "g/L", "3.200e-06 g/L"),
        (None, "g/L", "—"),
        (float("nan"), "", "—"),
        (np.float32(2.5), "h", "2.5 h"),
        (7, "", "7"),
    ],
)
def test_numbers_keep_four_significant_digits_whatever_their_size(value, unit, text):
    assert formatting.quantity(value, unit) == text


def test_y_range_is_padded_never_a_noise_magnifier_and_includes_zero_near_it():
    low, high = formatting.y_range([0.000997, 0.000998, 0.001])
    assert high - low >= formatting.MIN_RELATIVE_SPAN * 0.001  # the 0.000997–0.001 g/L axis
    assert low < 0.000997 and high > 0.001
    assert formatting.y_range([0.5, 3.0, 30.0])[0] == 0.0  # values coming from near zero: zero shown
    low, high = formatting.y_range([290.0, 300.0])
    assert 280 < low < 290 and 300 < high < 310  # far from zero: padded around the data only
    assert formatting.y_range([]) is None and formatting.y_range([0.0, 0.0]) == [-1.0, 1.0]
    assert formatting.y_range([-3.0, -0.5])[1] == 0.0


def test_long_text_is_shortened_at_a_word():
    text = formatting.shorten("drift detected in dissolved_oxygen_concentration " * 6, 60)
    assert len(text) <= 60 and text.endswith(" …") and not text.endswith("dissolved_ …")


def test_validity_is_drawn_as_the_card_words_it():
    from apps.dashboard.selectors import Trace

    trace = Trace(
        name="estimate",
        kind="estimate",
        series=None,
        times_ns=np.array([0, 10**9, 2 * 10**9], dtype=np.int64),
        values=[1.0, 2.0, 3.0],
        validity=["out_of_range", "ok", "ok"],
    )
    outside, latest = validity_markers(trace)
    assert outside["name"] == "estimate: inputs outside the training envelope" and outside["y"] == [1.0]
    assert latest["name"] == "latest: valid" and latest["y"] == [3.0]
    card = formatting.validity_style("ok")
    assert latest["marker"]["color"] == card.colour and card.text.startswith("Valid")
    assert formatting.validity_style("out_of_range").legend in outside["name"]


def test_constant_variables_are_named_not_drawn():
    from apps.dashboard.modeling import densities

    reference = np.column_stack([np.full(50, 7.0), np.linspace(0, 1, 50)])
    test = np.column_stack([np.full(40, 7.0), np.linspace(0.2, 1.3, 40)])
    constant, varying = densities(reference, test, ["agitator", "temperature"])
    assert constant == {"variable": "agitator", "constant": True, "reference_value": 7.0, "test_value": 7.0}
    assert varying["constant"] is False and len(varying["grid"]) == len(varying["test"])


def test_operator_chart_axis_follows_the_range_rules(client, demo, role_users):
    client.force_login(role_users["operator"])
    out = response_json(
        dash_update(
            client,
            "operator_live",
            "..chart.figure...chart-status.children..",
            [
                {"id": "batch", "property": "value", "value": f"penicillin|R1|{demo.live_batch}"},
                {"id": "range", "property": "value", "value": "batch"},
                {"id": "variables", "property": "value", "value": ["temperature"]},
                {"id": "tick", "property": "n_intervals", "value": None},
                {"id": "flags", "property": "data", "value": []},
            ],
        )
    )
    layout = out["chart"]["figure"]["layout"]
    values = [v for t in out["chart"]["figure"]["data"] if t.get("yaxis", "y") == "y" for v in t["y"] if v is not None]
    low, high = layout["yaxis"]["range"]
    assert formatting.y_range(values) == [low, high]  # the one rule, applied to what is drawn on the axis
    assert low <= min(values) and high >= max(values)
    assert layout["yaxis"]["automargin"] and layout["yaxis2"]["automargin"] and layout["xaxis"]["automargin"]


def _an_estimate(demo):
    from apps.dashboard import selectors as sel

    chart = sel.live_chart(group=GroupKey("penicillin", "R1", demo.live_batch), range_key="batch", variables=[])
    trace = next(t for t in chart.estimates if "rf" in t.series.model_id)
    return trace, trace.times[len(trace) // 2], trace.values[len(trace) // 2]


def test_clicking_an_estimate_explains_it_and_the_contributions_add_up(client, demo, role_users):
    trace, moment, value = _an_estimate(demo)
    client.force_login(role_users["operator"])
    series = f"predictions|{trace.series.observed_property}|{trace.series.model_id}|{trace.series.version}"
    click = {"points": [{"x": moment, "y": value, "customdata": series}]}
    out = response_json(
        dash_update(
            client,
            "operator_live",
            "explain.children",
            [{"id": "chart", "property": "clickData", "value": click}],
            state=[{"id": "batch", "property": "value", "value": f"penicillin|R1|{demo.live_batch}"}],
        )
    )
    text = json.dumps(out, ensure_ascii=False)
    assert "base value" in text and "TreeSHAP" in text and "raw estimate" in text
    assert "explanation-outside" in text
    # a lab point is not an estimate: the hint stays
    click["points"][0]["customdata"] = "lab|penicillin_concentration||"
    out = response_json(
        dash_update(
            client,
            "operator_live",
            "explain.children",
            [{"id": "chart", "property": "clickData", "value": click}],
            state=[{"id": "batch", "property": "value", "value": f"penicillin|R1|{demo.live_batch}"}],
        )
    )
    assert "Click an estimate" in json.dumps(out)


def test_estimate_explanation_api_adds_up_to_the_stored_estimate(demo, api_client_for):
    trace, moment, value = _an_estimate(demo)
    params = {
        "project": "penicillin",
        "device": "R1",
        "batch": demo.live_batch,
        "model_id": trace.series.model_id,
        "version": trace.series.version,
        "time": moment + "Z",
    }
    url = "/api/v1/orchestrator/estimates/explanation/"
    assert api_client_for("outsider").get(url, params).status_code == 403
    response = api_client_for("manager").get(url, params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["method"] == "tree_shap"
    total = body["base_value"] + sum(item["contribution"] for item in body["contributions"])
    assert total == pytest.approx(body["raw_estimate"], rel=1e-5, abs=1e-9)
    assert body["estimate"] == pytest.approx(value, rel=1e-9)
    assert body["raw_estimate"] + body["bias_update"] == pytest.approx(body["estimate"], rel=1e-9, abs=1e-12)
    missing = api_client_for("manager").get(url, {**params, "time": "2001-01-01T00:00:00Z"})
    assert missing.status_code == 404
    bad = api_client_for("manager").get(url, {**params, "version": "x"})
    assert bad.status_code == 404


def test_soft_sensor_page_shows_importance_and_partial_dependence(client, demo, role_users):
    client.force_login(role_users["modeler"])
    out = response_json(
        dash_update(
            client, "modeler_sensors", "sensors.children", [{"id": "project", "property": "value", "value": "P0001"}]
        )
    )
    text = json.dumps(out, ensure_ascii=False)
    assert "What its estimates depend on" in text and "measured on" in text and "batch_96" in text
    assert '"data-testid": "importance"' in text and '"data-testid": "partial-dependence"' in text


def test_flag_row_without_a_selected_row_keeps_the_simulation(client, demo, role_users):
    from apps.dashboard.soft_sensors import version_options

    client.force_login(role_users["modeler"])
    version = version_options()[0]["value"]
    state = [
        {"id": "version", "property": "value", "value": version},
        {"id": "batch", "property": "value", "value": f"penicillin|R1|{demo.batches[0]}"},
        {"id": "bias", "property": "value", "value": "off"},
        {"id": "table", "property": "selected_rows", "value": []},
        {"id": "table", "property": "data", "value": []},
        {"id": "flag-level", "property": "value", "value": "warning"},
        {"id": "flag-type", "property": "value", "value": "model_error"},
        {"id": "flag-description", "property": "value", "value": ""},
    ]
    output = "..rows.data...summary.children...table.columns...export.children...flag-message.children.."
    response = dash_update(
        client,
        "modeler_simulation",
        output,
        [{"id": "run", "property": "n_clicks", "value": 1}, {"id": "flag-save", "property": "n_clicks", "value": 1}],
        state=state,
        changed=["flag-save.n_clicks"],
    )
    out = response_json(response)
    assert set(out) == {"flag-message"}  # rows, summary, columns and export link untouched
    assert "select a row of the table first" in json.dumps(out)

"""Modeler — drift analysis: model, detector, variables, window; a parameter form generated from the
detector catalogue (tooltips from the detectors' docstrings); verdict, explanation, densities."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from dash import ALL, dcc, html
from dash.dependencies import Input, Output, State

from apps.common.errors import ApplicationError, ValidationFailed

from .. import selectors as sel
from ..access import MODELER_PAGE
from ..formatting import quantity
from ..modeling import batch_hours, drift_analyse, feature_detectors
from ..soft_sensors import input_variables, training_batches, version_options, version_resolve
from .alert_actions import alert_panel, register_alert_callbacks
from .common import PALETTE, base_layout, dash_app, dropdown_control, error_box, guarded_callback

NAME = "modeler_drift"
app = dash_app(NAME)

app.layout = html.Div(
    className="dash-page",
    children=[
        dcc.Store(id="boot", data=0),
        html.Div(
            className="panel",
            children=[
                html.Div(
                    className="controls",
                    children=[
                        dropdown_control("Model (soft-sensor version)", "version", width="wide", clearable=False),
                        dropdown_control("Detector", "detector", clearable=False),
                    ],
                ),
                html.Div(
                    className="controls",
                    children=[
                        dropdown_control("Variables", "variables", width="wide", multi=True),
                    ],
                ),
                html.Div(
                    className="controls",
                    children=[
                        dropdown_control("Reference batches", "reference", width="wide", multi=True),
                        dropdown_control("Test batch", "test", width="wide", clearable=False),
                    ],
                ),
                html.Label("Window (hours since batch start, same window in every batch)"),
                dcc.RangeSlider(
                    id="window",
                    min=0,
                    max=100,
                    value=[0, 100],
                    allowCross=False,
                    tooltip={"placement": "bottom", "always_visible": True},
                ),
                html.Div(id="detector-about", className="muted"),
                html.H2("Parameters"),
                html.Div(id="params", className="param-grid", **{"data-testid": "params"}),
                html.Button("Run drift analysis", id="run", n_clicks=0, className="primary"),
            ],
        ),
        dcc.Loading(html.Div(id="result", **{"data-testid": "drift-result"})),
        alert_panel(intro="Alerts come from drift jobs (live checks); the analysis above is ad hoc and never "
                    "changes a deployment's status."),
    ],
)


_guard = partial(guarded_callback, app, MODELER_PAGE)
register_alert_callbacks(app, MODELER_PAGE, Input("boot", "data"))


@_guard(
    [
        Output("version", "options"),
        Output("version", "value"),
        Output("detector", "options"),
        Output("detector", "value"),
    ],
    [Input("boot", "data")],
)
def load_choices(_boot: Any, *, user: Any) -> tuple:
    versions = version_options()
    detectors = [{"label": f"{d['label']} ({d['mode']})", "value": d["key"]} for d in feature_detectors()]
    default = "ks" if any(d["value"] == "ks" for d in detectors) else (detectors[0]["value"] if detectors else None)
    return versions, (versions[0]["value"] if versions else None), detectors, default


@_guard(
    [
        Output("variables", "options"),
        Output("variables", "value"),
        Output("reference", "options"),
        Output("reference", "value"),
        Output("test", "options"),
        Output("test", "value"),
    ],
    [Input("version", "value")],
)
def load_version(value: Any, *, user: Any) -> tuple:
    if not value:
        return [], [], [], [], [], None
    spec = version_resolve(value)
    groups = sel.group_infos(project_name=spec.project_name)
    options = [
        {"label": f"{g.group.batch_id} ({g.group.device_id})", "value": sel.group_value(g.group)} for g in groups
    ]
    variables = sorted({v for g in groups for v in g.variables})
    chosen = [v for v in input_variables(spec) if v in variables]
    trained = set(training_batches(spec))
    reference = [o["value"] for o in options if sel.parse_group(o["value"]).batch_id in trained]
    test = next((o["value"] for o in options if o["value"] not in reference), None)
    return ([{"label": v, "value": v} for v in variables], chosen, options, reference, options, test)


@_guard([Output("window", "max"), Output("window", "value"), Output("window", "marks")], [Input("test", "value")])
def set_window(test: str | None, *, user: Any) -> tuple:
    hours = math.ceil(batch_hours(group=sel.parse_group(test))) if test else 100
    hours = max(hours, 1)
    step = 25 if hours <= 200 else 50
    marks = {h: f"{h} h" for h in range(0, hours + 1, step)}
    return hours, [0, hours], marks


def param_input(spec: dict[str, Any]) -> html.Div:
    """One form field from a catalogue parameter: its type picks the widget, its docstring the tooltip."""
    pid = {"type": "param", "name": spec["name"]}
    bounds = spec.get("bounds") or {}
    if spec["type"] == "boolean":
        widget = dcc.RadioItems(
            id=pid,
            options=[{"label": "yes", "value": True}, {"label": "no", "value": False}],
            value=spec["default"],
            inline=True,
        )
    elif spec["type"] == "choice":
        widget = dcc.Dropdown(
            id=pid,
            options=[{"label": str(c), "value": c} for c in spec["choices"]],
            value=spec["default"],
            clearable=False,
        )
    elif spec["type"] in ("number", "integer"):
        widget = dcc.Input(
            id=pid,
            type="number",
            value=spec["default"],
            step=1 if spec["type"] == "integer" else "any",
            min=bounds.get("minimum"),
            max=bounds.get("maximum"),
            debounce=True,
        )
    else:  # mixed, e.g. "number | choice" (MMD's gamma: a number or "median")
        hint = " or ".join([*(str(c) for c in spec["choices"]), "a number"])
        widget = dcc.Input(id=pid, type="text", value=str(spec["default"]), placeholder=hint, debounce=True)
    tooltip = spec["description"] or spec["label"]
    return html.Div(
        className="param",
        children=[
            html.Label([spec["label"], html.Span("?", className="tip")], title=tooltip),
            widget,
            html.Div(f"default {spec['default']}", className="help"),
        ],
        title=tooltip,
    )


@_guard([Output("params", "children"), Output("detector-about", "children")], [Input("detector", "value")])
def build_form(key: str | None, *, user: Any) -> tuple:
    entry = next((d for d in feature_detectors() if d["key"] == key), None)
    if entry is None:
        return [], ""
    return [param_input(p) for p in entry["parameters"]], entry["description"]


def coerce(spec: dict[str, Any], raw: Any) -> Any:
    """A form value back to what the detector's signature accepts (validation happens in the detector)."""
    if raw is None or raw == "":
        return spec["default"]
    if isinstance(raw, str) and spec["type"] not in ("choice",):
        if raw in spec["choices"]:
            return raw
        try:
            number = float(raw)
        except ValueError:
            return raw
        return int(number) if number.is_integer() and "integer" in spec["type"] else number
    return raw


def constant_note(item: dict[str, Any], unit: str) -> html.Div:
    """A constant variable in words (a density of a constant is a meaningless spike)."""

    def side(label: str, value: float | None) -> str:
        return f"{label} constant at {quantity(value, unit)}" if value is not None else f"{label} varies"

    return html.Div(
        [
            html.Strong(item["variable"]),
            html.Span(
                f" — constant: {side('reference', item['reference_value'])}; {side('test', item['test_value'])}."
            ),
        ],
        className="panel constant-note",
        **{"data-testid": "constant-variable"},
    )


def density_figure(item: dict[str, Any], unit: str) -> dict[str, Any]:
    title = f"{item['variable']} [{unit}]" if unit else item["variable"]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "reference",
                "x": item["grid"],
                "y": item["reference"],
                "fill": "tozeroy",
                "line": {"color": PALETTE[0], "width": 3},
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "test",
                "x": item["grid"],
                "y": item["test"],
                "fill": "tozeroy",
                "line": {"color": PALETTE[1], "width": 3},
            },
        ],
        "layout": base_layout(
            title={"text": title, "font": {"size": 16}, "x": 0.02},
            xaxis={"title": {"text": ""}},
            yaxis={"title": {"text": "density"}},
            hovermode="closest",
            margin={"l": 60, "r": 20, "t": 40, "b": 40},
            legend={"orientation": "h", "y": 1.0, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        ),
    }


@_guard(
    Output("result", "children"),
    [Input("run", "n_clicks")],
    [
        State("version", "value"),
        State("detector", "value"),
        State("variables", "value"),
        State("reference", "value"),
        State("test", "value"),
        State("window", "value"),
        State({"type": "param", "name": ALL}, "value"),
        State({"type": "param", "name": ALL}, "id"),
    ],
    prevent_initial_call=True,
)
def run(
    _clicks: int,
    version: str | None,
    key: str | None,
    variables: list[str] | None,
    reference: list[str] | None,
    test: str | None,
    window: list[float] | None,
    values: list[Any],
    ids: list[dict],
    *,
    user: Any,
) -> Any:
    try:
        if not key:
            raise ValidationFailed("choose a detector", details={"detector": None})
        if not test:
            raise ValidationFailed("choose a test batch", details={"test": None})
        entry = next((d for d in feature_detectors() if d["key"] == key), None)
        if entry is None:
            raise ValidationFailed(f"unknown detector {key}", details={"detector": key})
        specs = {p["name"]: p for p in entry["parameters"]}
        params = {
            i["name"]: coerce(specs[i["name"]], v) for i, v in zip(ids, values, strict=True) if i["name"] in specs
        }
        analysis = drift_analyse(
            detector_key=key,
            params=params,
            variables=variables or [],
            reference=[sel.parse_group(r) for r in reference or []],
            test=sel.parse_group(test),
            window_h=tuple(window or (0, 0)),
        )
    except ApplicationError as exc:
        return error_box(exc)
    result = analysis.result
    verdict = "DRIFT" if result.drift else "NO DRIFT"
    rule = (
        "calibrated on the reference batches (leave one batch out)"
        if analysis.calibrated
        else "nominal threshold (one reference batch: no calibration)"
    )
    graphs = [
        constant_note(item, analysis.units.get(item["variable"], ""))
        if item["constant"]
        else dcc.Graph(
            figure=density_figure(item, analysis.units.get(item["variable"], "")),
            config={"displaylogo": False},
            style={"height": "300px"},
        )
        for item in analysis.densities
    ]
    return html.Div(
        className="panel",
        children=[
            html.Div(
                verdict, className=f"verdict {'drift' if result.drift else 'nodrift'}", **{"data-testid": "verdict"}
            ),
            html.P(result.explanation, **{"data-testid": "explanation"}),
            html.Table(
                className="kv",
                children=[
                    html.Tbody(
                        [
                            html.Tr([html.Th("Score"), html.Td(f"{result.score:.4g}")]),
                            html.Tr([html.Th("Threshold"), html.Td(f"{result.threshold:.4g}")]),
                            html.Tr(
                                [
                                    html.Th("p-value"),
                                    html.Td("—" if result.p_value is None else f"{result.p_value:.3g}"),
                                ]
                            ),
                            html.Tr([html.Th("Verdict rule"), html.Td(rule)]),
                            html.Tr(
                                [
                                    html.Th("Reference"),
                                    html.Td(
                                        f"{', '.join(analysis.reference_batches)} ({analysis.reference.shape[0]} rows)"
                                    ),
                                ]
                            ),
                            html.Tr(
                                [html.Th("Test"), html.Td(f"{analysis.test_batch} ({analysis.test.shape[0]} rows)")]
                            ),
                            html.Tr(
                                [html.Th("Window"), html.Td(f"{analysis.window_h[0]:g}–{analysis.window_h[1]:g} h")]
                            ),
                        ]
                    )
                ],
            ),
            html.H2("Reference vs test densities"),
            html.Div(graphs, className="two-col"),
        ],
    )

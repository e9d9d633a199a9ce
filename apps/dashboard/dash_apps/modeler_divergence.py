"""Modeler — model divergence: several versions simulated on one batch (each as its soft sensor's deployment
scores it, with or without the bias update), overlaid, and every pair compared with the seven estimators of
``stamm_drift.disagreement``, each cell coloured by its band."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from dash import dcc, html
from dash.dependencies import Input, Output, State

from apps.common.errors import ApplicationError, ValidationFailed
from apps.tsdb.types import from_ns

from .. import selectors as sel
from ..access import MODELER_PAGE
from ..simulation import bias_choice, divergence_run
from ..soft_sensors import version_options, version_resolve
from .common import LEVEL_COLOURS, PALETTE, base_layout, dash_app, dropdown_control, error_box, guarded_callback

NAME = "modeler_divergence"
app = dash_app(NAME)

ESTIMATORS = [
    ("mae", "MAE / SD"),
    ("rmse", "RMSE / SD"),
    ("mse", "MSE / SD²"),
    ("pearson_r", "Pearson r"),
    ("variance_of_differences", "Var(diff) / SD²"),
    ("coefficient_of_variation", "Coeff. of variation"),
    ("cosine_similarity", "Cosine similarity"),
]

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
                        dropdown_control("Versions to compare (two or more)", "versions", width="wide", multi=True),
                        dropdown_control("Batch", "batch", width="wide", clearable=False),
                    ],
                ),
                html.Div(
                    [
                        html.Label("Bias update"),
                        dcc.RadioItems(
                            id="bias",
                            options=[
                                {"label": "With each version's bias update", "value": "on"},
                                {"label": "Raw models only", "value": "off"},
                            ],
                            value="on",
                            inline=True,
                            className="segmented",
                        ),
                    ],
                    className="control wide",
                ),
                html.Button("Compare", id="run", n_clicks=0, className="primary"),
            ],
        ),
        dcc.Loading(html.Div(id="result", **{"data-testid": "divergence-result"})),
    ],
)


_guard = partial(guarded_callback, app, MODELER_PAGE)


@_guard(
    [Output("versions", "options"), Output("versions", "value"), Output("batch", "options"), Output("batch", "value")],
    [Input("boot", "data")],
)
def load_choices(_boot: Any, *, user: Any) -> tuple:
    versions = version_options()
    batches = sel.all_batch_options()
    return (versions, [v["value"] for v in versions[:2]], batches, batches[0]["value"] if batches else None)


def level_cell(value: float, level: str) -> html.Td:
    return html.Td(
        f"{value:.4g}",
        title=level,
        className=f"level-{level}",
        style={"backgroundColor": LEVEL_COLOURS.get(level, "#ffffff"), "fontWeight": 700 if level == "high" else 400},
    )


@_guard(
    Output("result", "children"),
    [Input("run", "n_clicks")],
    [State("versions", "value"), State("batch", "value"), State("bias", "value")],
    prevent_initial_call=True,
)
def compare(_clicks: int, versions: list[Any] | None, batch: str | None, bias: str | None, *, user: Any) -> Any:
    try:
        if not batch:
            raise ValidationFailed("choose a batch", details={"batch": None})
        chosen = [version_resolve(v) for v in versions or []]
        result = divergence_run(specs=chosen, group=sel.parse_group(batch), bias=bias_choice(bias))
    except ApplicationError as exc:
        return error_box(exc)
    times = [from_ns(t) for t in result.times_ns.tolist()]
    step = max(1, math.ceil(len(times) / sel.MAX_TRACE_POINTS))  # at most MAX_TRACE_POINTS per trace
    figure = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": label,
                "x": times[::step],
                "y": result.estimates[::step, i].tolist(),
                "line": {"width": 3, "color": PALETTE[i % len(PALETTE)]},
            }
            for i, label in enumerate(result.labels)
        ],
        "layout": base_layout(
            xaxis={"title": {"text": "time (UTC)"}},
            yaxis={"title": {"text": f"{result.output} [{result.unit}]" if result.unit else result.output}},
        ),
    }
    header = html.Tr([html.Th("Pair"), *[html.Th(label) for _, label in ESTIMATORS], html.Th("Verdict")])
    rows = []
    for pair in result.pairs:
        rows.append(
            html.Tr(
                [
                    html.Td(f"{pair['a']} vs {pair['b']}"),
                    *[level_cell(pair["values"][key], pair["levels"][key]) for key, _ in ESTIMATORS],
                    html.Td(
                        pair["verdict"].upper(),
                        style={"backgroundColor": LEVEL_COLOURS[pair["verdict"]], "fontWeight": 800},
                    ),
                ]
            )
        )
    bands = pairs_bands(result.pairs[0]["bands"]) if result.pairs else []
    return html.Div(
        className="panel",
        children=[
            html.H2(f"{result.output} on {result.group.batch_id} ({len(times):,} common rows)"),
            html.P("Scored: " + "; ".join(result.configurations) + ".", className="muted"),
            dcc.Graph(figure=figure, config={"displaylogo": False}, style={"height": "420px"}),
            html.H2("Pairwise disagreement (seven estimators)"),
            html.Table([html.Thead(header), html.Tbody(rows)], className="overview", **{"data-testid": "pair-matrix"}),
            html.P(
                [
                    "Colours: ",
                    html.Span(" low ", style={"backgroundColor": LEVEL_COLOURS["low"]}),
                    " ",
                    html.Span(" moderate ", style={"backgroundColor": LEVEL_COLOURS["moderate"]}),
                    " ",
                    html.Span(" high ", style={"backgroundColor": LEVEL_COLOURS["high"]}),
                    ". Scale-dependent estimators are divided by the SD of all predictions shown. Bands: ",
                    *bands,
                ],
                className="muted",
            ),
        ],
    )


def pairs_bands(bands: dict[str, dict[str, Any]]) -> list:
    parts = []
    for key, label in ESTIMATORS:
        band = bands[key]
        sign = "≥" if band["higher_is_worse"] else "≤"
        parts.append(f"{label}: moderate {sign} {band['moderate']:g}, high {sign} {band['high']:g}; ")
    return parts

"""Modeler — data source explorer: per-batch statistics with units, duration, points over time."""

from __future__ import annotations

from functools import partial
from typing import Any

from dash import dash_table, dcc, html
from dash.dependencies import Input, Output, State

from apps.common.errors import ApplicationError

from .. import selectors as sel
from ..access import MODELER_PAGE
from .common import base_layout, dash_app, dropdown_control, empty_figure, error_box, guarded_callback, stat_card

NAME = "modeler_data"
app = dash_app(NAME)

COLUMNS = [
    {"name": "Source", "id": "source"},
    {"name": "Variable", "id": "variable"},
    {"name": "Unit", "id": "unit"},
    {"name": "Mean", "id": "mean", "type": "numeric"},
    {"name": "Min", "id": "min", "type": "numeric"},
    {"name": "Max", "id": "max", "type": "numeric"},
    {"name": "Points", "id": "points", "type": "numeric"},
    {"name": "First (UTC)", "id": "first"},
    {"name": "Last (UTC)", "id": "last"},
]

app.layout = html.Div(
    className="dash-page",
    children=[
        dcc.Store(id="boot", data=0),
        html.Div(
            className="controls",
            children=[
                dropdown_control("Project", "project", clearable=False),
                dropdown_control("Batch", "batch", width="wide", clearable=False),
            ],
        ),
        html.Div(id="cards", className="controls", **{"data-testid": "batch-cards"}),
        html.Div(
            className="panel",
            children=[
                html.H2("Data points over time"),
                dcc.Graph(id="counts", config={"displaylogo": False}, style={"height": "260px"}),
            ],
        ),
        html.Div(
            className="panel",
            children=[
                html.H2("Per-variable summary"),
                dash_table.DataTable(
                    id="summary",
                    columns=COLUMNS,
                    data=[],
                    sort_action="native",
                    filter_action="native",
                    page_size=40,
                    style_cell={"fontSize": 15, "textAlign": "left", "padding": "4px 8px"},
                    style_cell_conditional=[
                        {"if": {"column_id": c}, "textAlign": "right"} for c in ("mean", "min", "max", "points")
                    ],
                    style_header={"fontWeight": "bold", "backgroundColor": "#eef2f5"},
                ),
            ],
        ),
    ],
)


_guard = partial(guarded_callback, app, MODELER_PAGE)


@_guard([Output("project", "options"), Output("project", "value")], [Input("boot", "data")])
def load_projects(_boot: Any, *, user: Any) -> tuple:
    names = sel.project_names()
    return [{"label": n, "value": n} for n in names], (names[0] if names else None)


@_guard([Output("batch", "options"), Output("batch", "value")], [Input("project", "value")], [State("batch", "value")])
def load_batches(project: str | None, current: str | None, *, user: Any) -> tuple:
    if not project:
        return [], None
    options = sel.batch_options(project_name=project)
    values = [o["value"] for o in options]
    return options, current if current in values else (values[0] if values else None)


@_guard([Output("summary", "data"), Output("counts", "figure"), Output("cards", "children")], [Input("batch", "value")])
def show_batch(batch: str | None, *, user: Any) -> tuple:
    if not batch:
        return [], empty_figure("Choose a batch"), []
    try:
        summary = sel.batch_summary(group=sel.parse_group(batch))
    except ApplicationError as exc:
        return [], empty_figure(exc.message), [error_box(exc)]
    rows = [
        {
            "source": v.source,
            "variable": v.variable,
            "unit": v.unit or "—",
            "mean": round(v.mean, 4),
            "min": round(v.minimum, 4),
            "max": round(v.maximum, 4),
            "points": v.points,
            "first": f"{v.first:%Y-%m-%d %H:%M}",
            "last": f"{v.last:%Y-%m-%d %H:%M}",
        }
        for v in summary.variables
    ]
    figure = {
        "data": [
            {
                "type": "bar",
                "x": summary.count_times,
                "y": summary.counts,
                "marker": {"color": "#0072B2"},
                "name": "points",
                "hovertemplate": "%{y:,} points<extra></extra>",
            }
        ],
        "layout": base_layout(
            xaxis={"title": {"text": "time (UTC)"}},
            yaxis={"title": {"text": f"points per {sel.duration_text(summary.bin_seconds)}"}},
            bargap=0.05,
            hovermode="closest",
        ),
    }
    cards = [
        stat_card(
            "Duration",
            sel.duration_text(summary.duration_seconds),
            detail=f"{summary.start:%Y-%m-%d %H:%M} → {summary.end:%Y-%m-%d %H:%M} UTC",
            testid="duration",
        ),
        stat_card(
            "Data points", f"{summary.total_points:,}", detail=f"{len(summary.variables)} series", testid="total-points"
        ),
        stat_card(
            "Lab samples",
            f"{sum(v.points for v in summary.variables if v.source == 'lab'):,}",
            detail="offline measurements",
        ),
    ]
    return rows, figure, cards

"""Modeler — simulation assessment: a version run over a stored batch as its deployment runs it (the
orchestrator's simulation, the service behind the simulation API), with or without its bias update; a
filterable table of raw estimate, bias in force, estimate, lab, validity and per-row flags (computed, and
flags people add here), and the Excel export."""

from __future__ import annotations

import math
from functools import partial
from typing import Any
from urllib.parse import urlencode

from dash import dash_table, dcc, html, no_update
from dash.dependencies import Input, Output, State
from django.urls import reverse

from apps.common.errors import ApplicationError, ValidationFailed
from apps.tsdb.types import from_ns

from .. import selectors as sel
from ..access import MODELER_PAGE, has_capabilities
from ..formatting import quantity, value_axis
from ..models import FlagType
from ..services import point_flag_create
from ..simulation import bias_choice, simulation_assess
from ..soft_sensors import version_options, version_resolve
from .common import (
    PALETTE,
    base_layout,
    dash_app,
    dropdown_control,
    error_box,
    flag_level_type_controls,
    guarded_callback,
    stat_card,
)
from .operator import parse_time

NAME = "modeler_simulation"
app = dash_app(NAME)

BIAS_CHOICES = [
    {"label": "With the bias update (when the version or its deployment has one)", "value": "on"},
    {"label": "Raw model only", "value": "off"},
]

SHOW_CHOICES = [
    {"label": "All rows", "value": "all"},
    {"label": "Flagged rows", "value": "flagged"},
    {"label": "Rows with a lab sample", "value": "lab"},
]

app.layout = html.Div(
    className="dash-page",
    children=[
        dcc.Store(id="boot", data=0),
        dcc.Store(id="rows", data=[]),
        html.Div(
            className="panel",
            children=[
                html.Div(
                    className="controls",
                    children=[
                        dropdown_control("Version", "version", width="wide", clearable=False),
                        dropdown_control("Historical batch", "batch", width="wide", clearable=False),
                    ],
                ),
                html.Div(
                    [
                        html.Label("Bias update"),
                        dcc.RadioItems(id="bias", options=BIAS_CHOICES, value="on", inline=True, className="segmented"),
                    ],
                    className="control wide",
                ),
                html.Button("Run simulation", id="run", n_clicks=0, className="primary"),
            ],
        ),
        dcc.Loading(html.Div(id="summary", **{"data-testid": "simulation-summary"})),
        html.Div(
            className="panel",
            children=[
                html.Div(
                    className="controls",
                    children=[
                        html.Div(
                            [
                                html.Label("Show"),
                                dcc.RadioItems(
                                    id="show", options=SHOW_CHOICES, value="all", inline=True, className="segmented"
                                ),
                            ],
                            className="control wide",
                        ),
                        html.Div(id="export", className="control"),
                    ],
                ),
                dash_table.DataTable(
                    id="table",
                    data=[],
                    columns=[],
                    page_size=15,
                    sort_action="native",
                    filter_action="native",
                    row_selectable="single",
                    selected_rows=[],
                    style_table={"overflowX": "auto"},
                    style_cell={
                        "fontSize": 14,
                        "textAlign": "right",
                        "padding": "3px 6px",
                        "minWidth": "64px",
                        "maxWidth": "150px",
                        "whiteSpace": "normal",
                    },
                    style_cell_conditional=[
                        {"if": {"column_id": c}, "textAlign": "left"} for c in ("time", "validity", "flags", "flagged")
                    ]
                    + [{"if": {"column_id": "time"}, "minWidth": "160px"}],
                    style_data_conditional=[
                        {"if": {"filter_query": '{flagged} = "yes"'}, "backgroundColor": "#fdebd0"},
                        {
                            "if": {"filter_query": '{validity} = "out_of_range"', "column_id": "validity"},
                            "color": "#b03a2e",
                            "fontWeight": 700,
                        },
                    ],
                    style_header={
                        "fontWeight": "bold",
                        "backgroundColor": "#eef2f5",
                        "textAlign": "left",
                        "whiteSpace": "normal",
                        "overflowWrap": "anywhere",
                        "height": "auto",
                    },
                ),
                html.H2("Flag the selected row"),
                html.Div(
                    className="controls",
                    children=[
                        *flag_level_type_controls(default_type=FlagType.MODEL_ERROR),
                        html.Div(
                            [
                                html.Label("Description", htmlFor="flag-description"),
                                dcc.Input(id="flag-description", type="text", style={"width": "100%"}),
                            ],
                            className="control wide",
                        ),
                    ],
                ),
                html.Button("Flag row", id="flag-save", n_clicks=0, className="primary"),
                html.Div(id="flag-message", **{"data-testid": "flag-message"}),
            ],
        ),
    ],
)


_guard = partial(guarded_callback, app, MODELER_PAGE)


@_guard(
    [Output("version", "options"), Output("version", "value"), Output("batch", "options"), Output("batch", "value")],
    [Input("boot", "data")],
)
def load_choices(_boot: Any, *, user: Any) -> tuple:
    versions = version_options()
    batches = sel.all_batch_options()
    return versions, (versions[0]["value"] if versions else None), batches, (batches[-1]["value"] if batches else None)


def summary_children(sim: Any, rows: list[dict[str, Any]], figure: dict[str, Any]) -> list:
    stats = sim.summary()
    cards = [
        stat_card("Rows scored", f"{sim.rows:,}", detail=f"{sim.skipped:,} snapshots skipped", testid="rows-scored"),
        stat_card("Flagged rows", f"{sum(1 for r in rows if r['flagged'] == 'yes'):,}", tone="warning"),
    ]
    for name, item in stats.items():
        unit = sim.units.get(name, "")
        cards.append(
            stat_card(
                f"{name}: MAE vs lab",
                quantity(item["mae"], unit),
                detail=f"{item['lab_samples']} lab samples · RMSE {quantity(item['rmse'], unit)}"
                f" · bias {quantity(item['bias'], unit)} · raw model RMSE {quantity(item['raw_rmse'], unit)}",
                testid="lab-mae",
            )
        )
    notes = [html.P(sim.configuration_text(), className="muted", **{"data-testid": "simulation-configuration"})]
    if sim.skipped_reasons:
        reasons = "; ".join(f"{k}: {v:,}" for k, v in sorted(sim.skipped_reasons.items(), key=lambda kv: -kv[1]))
        notes.append(html.P(f"Snapshots skipped — {reasons}.", className="muted"))
    if sim.truncated:
        notes.append(
            html.P(
                f"Stopped after {sim.rows + sim.skipped:,} snapshots (the read limit); the rest of the batch is not"
                " shown.",
                className="dash-error",
            )
        )
    return [
        html.Div(
            className="panel",
            children=[
                html.Div(cards, className="controls"),
                *notes,
                dcc.Graph(figure=figure, config={"displaylogo": False}, style={"height": "360px"}),
            ],
        )
    ]


def simulation_figure(sim: Any) -> dict[str, Any]:
    times = [from_ns(t) for t in sim.times_ns.tolist()]
    step = max(1, math.ceil(len(times) / sel.MAX_TRACE_POINTS))  # at most MAX_TRACE_POINTS per trace
    bias_applied = sim.simulation.bias_update
    data = []
    lines = [("estimate", sim.estimates, {"width": 3})]
    if bias_applied:
        lines.append(("raw model", sim.raw, {"width": 2, "dash": "dot"}))
    for j, name in enumerate(sim.outputs):
        for kind, values, style in lines:
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{name} ({kind})",
                    "x": times[::step],
                    "y": values[::step, j].tolist(),
                    "line": {**style, "color": PALETTE[j]},
                }
            )
        lab_rows = [i for i in range(sim.rows) if math.isfinite(sim.lab[i, j])]
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"lab {name}",
                "x": [times[i] for i in lab_rows],
                "y": [float(sim.lab[i, j]) for i in lab_rows],
                "marker": {"symbol": "diamond", "size": 12, "color": "#000000"},
            }
        )
    unit = sim.units.get(sim.outputs[0], "") if sim.outputs else ""
    return {
        "data": data,
        "layout": base_layout(
            xaxis={"title": {"text": "time (UTC)"}},
            yaxis=value_axis(
                [v for trace in data for v in trace["y"]],
                title=f"{sim.outputs[0]} [{unit}]" if unit else (sim.outputs[0] if sim.outputs else ""),
            ),
        ),
    }


def columns_for(rows: list[dict[str, Any]], units: dict[str, str]) -> list[dict[str, Any]]:
    if not rows:
        return []
    columns = []
    for key in rows[0]:
        kind, _, name = key.partition(":")
        if name:
            label = {
                "raw": "raw model",
                "bias": "bias in force",
                "pred": "estimate",
                "lab": "lab",
                "res": "residual",
                "in": "",
            }[kind]
            unit = units.get(name, "")
            title = f"{label} {name}".strip() + (f" [{unit}]" if unit else "")
        else:
            title = {
                "row": "#",
                "time": "Time (UTC)",
                "elapsed_h": "Elapsed [h]",
                "validity": "Validity",
                "flags": "Flags",
                "flagged": "Flagged",
            }.get(key, key)
        numeric = kind in ("raw", "bias", "pred", "lab", "res", "in") or key in ("row", "elapsed_h")
        columns.append({"name": title, "id": key, "type": "numeric" if numeric else "text"})
    return columns


@_guard(
    [
        Output("rows", "data"),
        Output("summary", "children"),
        Output("table", "columns"),
        Output("export", "children"),
        Output("flag-message", "children"),
    ],
    [Input("run", "n_clicks"), Input("flag-save", "n_clicks")],
    [
        State("version", "value"),
        State("batch", "value"),
        State("bias", "value"),
        State("table", "selected_rows"),
        State("table", "data"),
        State("flag-level", "value"),
        State("flag-type", "value"),
        State("flag-description", "value"),
    ],
    prevent_initial_call=True,
)
def simulate(
    _run: int,
    _flag: int,
    version_value: Any,
    batch: str | None,
    bias: str | None,
    selected: list[int] | None,
    shown: list[dict] | None,
    level: str,
    kind: str,
    description: str | None,
    *,
    user: Any,
    triggered: set[str],
) -> tuple:
    message: Any = ""
    try:
        if not version_value or not batch:
            raise ValidationFailed("choose a version and a batch", details={"version": version_value, "batch": batch})
        spec = version_resolve(version_value)
        group = sel.parse_group(batch)
        with_bias = bias_choice(bias)
    except ApplicationError as exc:
        return [], [error_box(exc)], [], "", ""
    if "flag-save" in triggered:
        try:
            message = _flag_row(spec, group, selected, shown, level, kind, description, user)
        except ApplicationError as exc:  # a refused flag keeps the simulation on screen, with the reason
            return no_update, no_update, no_update, no_update, error_box(exc)
    try:
        sim = simulation_assess(spec=spec, group=group, bias=with_bias)
    except ApplicationError as exc:
        return [], [error_box(exc)], [], "", message or ""
    rows = sim.table_rows()
    link = html.A(
        "Download Excel (Metadata, Simulation, Flagged measurements)",
        href=reverse("dashboard:modeler-simulation-export")
        + "?"
        + urlencode({"version": spec.version_id, "batch": batch, "bias": "on" if with_bias else "off"}),
        className="button",
        **{"data-testid": "export-link"},
    )
    return rows, summary_children(sim, rows, simulation_figure(sim)), columns_for(rows, sim.units), link, message


def _flag_row(
    spec: Any,
    group: Any,
    selected: list[int] | None,
    shown: list[dict] | None,
    level: str,
    kind: str,
    description: str | None,
    user: Any,
) -> Any:
    if not has_capabilities(user, ("flag_points",)):
        raise ValidationFailed("Your role cannot flag points.")
    if not selected or not shown or selected[0] >= len(shown):
        raise ValidationFailed("select a row of the table first", details={"row": None})
    row = shown[selected[0]]
    output = next((k.split(":", 1)[1] for k in row if k.startswith("pred:")), "")
    flag = point_flag_create(
        group=group,
        observed_property=output,
        time=parse_time(row["time"]),
        level=level,
        type=kind,
        description=description or "",
        user=user,
        value=row.get(f"pred:{output}"),
        collection="predictions",
        source="soft_sensor",
        model_id=spec.model_tag,
        version=spec.version_tag,
    )
    return html.Div(
        f"Row {row['row']} flagged ({flag.get_level_display()}, {flag.get_type_display()}).",
        className="dash-ok",
        role="status",
    )


@_guard(Output("table", "data"), [Input("rows", "data"), Input("show", "value")])
def filter_rows(rows: list[dict] | None, show: str, *, user: Any) -> list[dict]:
    rows = rows or []
    if show == "flagged":
        return [r for r in rows if r.get("flagged") == "yes"]
    if show == "lab":
        return [r for r in rows if any(k.startswith("lab:") and r[k] is not None for k in r)]
    return rows

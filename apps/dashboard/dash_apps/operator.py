"""Operator — live process: estimates with lab samples and process variables, the trust panel, flags."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from dash import dash_table, dcc, html
from dash.dependencies import Input, Output, State
from django.utils.dateparse import parse_datetime
from django_plotly_dash import DjangoDash

from apps.common.errors import ApplicationError, ValidationFailed
from apps.tsdb.types import UTC

from .. import selectors as sel
from ..access import OPERATOR_PAGE
from ..models import FlagType
from ..services import point_flag_create
from .common import (
    PALETTE,
    base_layout,
    dropdown_control,
    empty_figure,
    error_box,
    flag_level_type_controls,
    fmt,
    guarded_callback,
    stat_card,
)

NAME = "operator_live"
app = DjangoDash(NAME, serve_locally=True)

REFRESH_CHOICES = [
    {"label": "Off", "value": 0},
    {"label": "10 s", "value": 10},
    {"label": "30 s", "value": 30},
    {"label": "1 min", "value": 60},
]
RANGE_CHOICES = [
    {"label": "1 h", "value": "1h"},
    {"label": "6 h", "value": "6h"},
    {"label": "24 h", "value": "24h"},
    {"label": "Whole batch", "value": "batch"},
]
FLAG_COLUMNS = [
    {"name": "Time (UTC)", "id": "time"},
    {"name": "Series", "id": "series"},
    {"name": "Value", "id": "value"},
    {"name": "Level", "id": "level"},
    {"name": "Type", "id": "type"},
    {"name": "Description", "id": "description"},
    {"name": "By", "id": "by"},
]

app.layout = html.Div(
    className="dash-page",
    children=[
        dcc.Store(id="boot", data=0),
        dcc.Interval(id="tick", interval=30_000, disabled=False),
        html.Div(
            className="controls",
            children=[
                dropdown_control("Project", "project", clearable=False),
                dropdown_control("Device", "device", clearable=False),
                dropdown_control("Batch", "batch", width="wide", clearable=False),
                html.Div(
                    [
                        html.Label("Range"),
                        dcc.RadioItems(
                            id="range", options=RANGE_CHOICES, value="24h", className="segmented", inline=True
                        ),
                    ],
                    className="control auto",
                ),
                dropdown_control(
                    "Refresh", "refresh", width="narrow", options=REFRESH_CHOICES, value=30, clearable=False
                ),
            ],
        ),
        html.Div(
            className="controls",
            children=[
                dropdown_control(
                    "Process variables (extra axes)",
                    "variables",
                    width="wide",
                    multi=True,
                    placeholder="Add process variables…",
                ),
                html.Div(id="chart-status", className="chart-status", **{"data-testid": "chart-status"}),
            ],
        ),
        html.Div(
            className="live-grid",
            children=[
                html.Div(
                    className="panel",
                    children=[
                        dcc.Graph(id="chart", config={"displaylogo": False}, style={"height": "610px"}),
                    ],
                ),
                html.Div(id="trust", className="panel trust", **{"data-testid": "trust-panel"}),
            ],
        ),
        html.Div(
            className="panel",
            children=[
                html.H2("Flag a point"),
                html.P(
                    "Click a point on the chart to pick it, or choose the series and type the time.", className="muted"
                ),
                html.Div(
                    className="controls",
                    children=[
                        dropdown_control("Series", "flag-series", width="wide"),
                        html.Div(
                            [
                                html.Label("Time (UTC)", htmlFor="flag-time"),
                                dcc.Input(id="flag-time", type="text", placeholder="YYYY-MM-DD HH:MM:SS"),
                            ],
                            className="control",
                        ),
                        html.Div(
                            [html.Label("Value", htmlFor="flag-value"), dcc.Input(id="flag-value", type="number")],
                            className="control narrow",
                        ),
                        *flag_level_type_controls(default_type=FlagType.OUTLIER),
                    ],
                ),
                html.Label("Description", htmlFor="flag-description"),
                dcc.Textarea(id="flag-description", style={"width": "100%", "height": "70px"}),
                html.Button("Save flag", id="flag-save", n_clicks=0, className="primary"),
                html.Div(id="flag-message", **{"data-testid": "flag-message"}),
                html.H2("Flagged points in this batch"),
                dash_table.DataTable(
                    id="flags",
                    columns=FLAG_COLUMNS,
                    data=[],
                    page_size=10,
                    style_cell={"fontSize": 15, "textAlign": "left", "whiteSpace": "normal"},
                    style_header={"fontWeight": "bold", "backgroundColor": "#eef2f5"},
                ),
            ],
        ),
    ],
)


_guard = partial(guarded_callback, app, OPERATOR_PAGE)


@_guard([Output("project", "options"), Output("project", "value")], [Input("boot", "data")])
def load_projects(_boot: Any, *, user: Any) -> tuple[list, Any]:
    names = sel.project_names()
    return [{"label": n, "value": n} for n in names], (names[0] if names else None)


@_guard([Output("device", "options"), Output("device", "value")], [Input("project", "value")])
def load_devices(project: str | None, *, user: Any) -> tuple[list, Any]:
    if not project:
        return [], None
    devices = sel.device_ids(project_name=project)
    return [{"label": d, "value": d} for d in devices], (devices[0] if devices else None)


@_guard(
    [Output("batch", "options"), Output("batch", "value")],
    [Input("project", "value"), Input("device", "value"), Input("tick", "n_intervals")],
    [State("batch", "value")],
)
def load_batches(
    project: str | None, device: str | None, _tick: Any, current: str | None, *, user: Any
) -> tuple[list, Any]:
    if not project or not device:
        return [], None
    options = sel.batch_options(project_name=project, device_id=device)
    values = [o["value"] for o in options]
    return options, (current if current in values else (values[0] if values else None))


@_guard([Output("variables", "options"), Output("flag-series", "options")], [Input("batch", "value")])
def load_variables(batch: str | None, *, user: Any) -> tuple[list, list]:
    if not batch:
        return [], []
    contents = sel.group_series(group=sel.parse_group(batch))
    units = sel.variable_units(project_name=contents.group.project_name, device_id=contents.group.device_id)
    variables = [{"label": sel.with_unit(v, units), "value": v} for v in contents.process_variables]
    series = [
        {
            "label": f"estimate {sel.estimate_label(i.series)}",
            "value": f"predictions|{i.series.observed_property}|{i.series.model_id}|{i.series.version}",
        }
        for i in contents.predictions
    ]
    series += [{"label": f"lab {v}", "value": f"lab|{v}||"} for v in contents.lab_variables]
    series += [{"label": v, "value": f"raw|{v}||"} for v in contents.process_variables]
    return variables, series


@_guard([Output("tick", "interval"), Output("tick", "disabled")], [Input("refresh", "value")])
def set_refresh(seconds: int | None, *, user: Any) -> tuple[int, bool]:
    seconds = int(seconds or 0)
    return max(seconds, 1) * 1000, seconds == 0


def chart_figure(chart: sel.LiveChart, flags: list | None = None) -> dict[str, Any]:
    """Estimates and lab samples on the left axis, each process variable on its own right axis, flagged
    points as dashed red lines."""
    flags = flags or []
    data: list[dict[str, Any]] = []
    estimate_unit = next((t.unit for t in chart.estimates if t.unit), "")
    estimate_title = ", ".join(dict.fromkeys(t.series.observed_property for t in chart.estimates)) or "estimate"
    colour = 0
    for trace in chart.estimates:
        data.append(
            {
                "type": "scattergl",
                "mode": "lines",
                "name": trace.name,
                "x": trace.times,
                "y": trace.values,
                "line": {"width": 3, "color": PALETTE[colour % len(PALETTE)]},
                "customdata": [
                    f"predictions|{trace.series.observed_property}|{trace.series.model_id}|{trace.series.version}"
                ]
                * len(trace),
                "hovertemplate": f"%{{y:.3f}} {trace.unit}<extra>{trace.name}</extra>",
            }
        )
        outside = [i for i, v in enumerate(trace.validity) if v == "out_of_range"]
        if outside:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{trace.name} — inputs out of range",
                    "x": [trace.times[i] for i in outside],
                    "y": [trace.values[i] for i in outside],
                    "marker": {"symbol": "x", "size": 9, "color": "#b03a2e"},
                }
            )
        colour += 1
    for trace in chart.lab:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": trace.name,
                "x": trace.times,
                "y": trace.values,
                "marker": {
                    "symbol": "diamond",
                    "size": 13,
                    "color": "#000000",
                    "line": {"color": "#ffffff", "width": 1.5},
                },
                "customdata": [f"lab|{trace.series.observed_property}||"] * len(trace),
                "hovertemplate": f"lab %{{y:.3f}} {trace.unit}<extra></extra>",
            }
        )
    extra = len(chart.process)
    right_edge = 1.0 - 0.07 * max(0, extra - 1)
    layout = base_layout(
        xaxis={"domain": [0, right_edge], "title": {"text": "time (UTC)"}, "gridcolor": "#e5e8eb"},
        yaxis={
            "title": {"text": f"{estimate_title} [{estimate_unit}]" if estimate_unit else estimate_title},
            "gridcolor": "#e5e8eb",
        },
        uirevision=str(chart.group),
        height=600,
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 14}},
        margin={"l": 70, "r": 90 if extra else 30, "t": 20, "b": 50},
        shapes=[
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": sel.plot_time(f.time),
                "x1": sel.plot_time(f.time),
                "y0": 0,
                "y1": 1,
                "line": {"color": "#b03a2e", "width": 2, "dash": "dash"},
            }
            for f in flags
        ],
        annotations=[
            {
                "x": sel.plot_time(f.time),
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": f"⚑ {f.get_type_display()}",
                "showarrow": False,
                "yanchor": "bottom",
                "font": {"color": "#b03a2e", "size": 13},
            }
            for f in flags
        ],
    )
    for index, trace in enumerate(chart.process):
        axis = f"y{index + 2}"
        colour_code = PALETTE[(colour + index) % len(PALETTE)]
        data.append(
            {
                "type": "scattergl",
                "mode": "lines",
                "name": sel.with_unit(trace.name, {trace.name: trace.unit}),
                "x": trace.times,
                "y": trace.values,
                "yaxis": axis,
                "line": {"width": 2, "dash": "dot", "color": colour_code},
                "customdata": [f"raw|{trace.name}||"] * len(trace),
                "hovertemplate": f"%{{y:.3f}} {trace.unit}<extra>{trace.name}</extra>",
            }
        )
        layout[f"yaxis{index + 2}"] = {
            "title": {"text": sel.with_unit(trace.name, {trace.name: trace.unit}), "font": {"color": colour_code}},
            "overlaying": "y",
            "side": "right",
            "anchor": "x" if index == 0 else "free",
            "position": min(1.0, right_edge + 0.07 * index),
            "showgrid": False,
            "tickfont": {"color": colour_code},
            "nticks": 6,
            "tickmode": "auto",
            "automargin": True,
        }
    if not data:
        return empty_figure("No estimates or lab samples in this window")
    return {"data": data, "layout": layout}


@_guard(
    [Output("chart", "figure"), Output("chart-status", "children")],
    [
        Input("batch", "value"),
        Input("range", "value"),
        Input("variables", "value"),
        Input("tick", "n_intervals"),
        Input("flags", "data"),
    ],
)
def update_chart(
    batch: str | None, range_key: str, variables: list[str] | None, _tick: Any, _flags: Any, *, user: Any
) -> tuple:
    if not batch:
        return empty_figure("Choose a batch"), "No batch chosen."
    try:
        chart = sel.live_chart(group=sel.parse_group(batch), range_key=range_key or "24h", variables=variables or [])
    except ApplicationError as exc:
        return empty_figure(exc.message), error_box(exc)
    points = sum(len(t) for t in (*chart.estimates, *chart.lab, *chart.process))
    reduced = [t.name for t in (*chart.estimates, *chart.process) if t.downsampled]
    status = [
        html.Span(f"{chart.start:%Y-%m-%d %H:%M} → {chart.end:%Y-%m-%d %H:%M} UTC"),
        html.Span(f"last data {sel.ago(chart.last_data)}", className="pill"),
        html.Span(f"{points:,} points drawn", className="pill", **{"data-testid": "points-drawn"}),
    ]
    if reduced:
        status.append(html.Span(f"downsampled to ≤ {sel.MAX_TRACE_POINTS:,} per trace", className="pill"))
    flags = list(sel.point_flag_list(group=chart.group, start=chart.start, end=chart.end, limit=50))
    return chart_figure(chart, flags), status


def drift_cards(statuses: list[sel.DriftStatus]) -> list:
    """One card per deployment scoring the batch: open drift alerts, and the latest drift check."""
    if not statuses:
        return [stat_card("Drift", "—", detail="no deployment scores this batch", testid="drift-status")]
    cards = []
    for status in statuses:
        latest = status.latest
        check = (
            f"last check {latest.detector}: {'drift' if latest.drift else 'no drift'} · {sel.ago(latest.created_at)}"
            if latest is not None
            else "no drift check has run yet"
        )
        count = len(status.open_alerts)
        tone = {"critical": "bad", "warning": "warning"}.get(status.worst_severity or "", "ok" if latest else "neutral")
        value = f"{count} open alert{'s' if count != 1 else ''}" if count else "No open alert"
        detail = f"{status.deployment} · {check}"
        if count:
            detail = f"{status.deployment} · {status.open_alerts[0].message[:120]} · {check}"
        cards.append(stat_card("Drift", value, tone=tone, detail=detail, testid="drift-status"))
    return cards


VALIDITY_TEXT = {
    "ok": "Valid: inputs inside the training envelope",
    "out_of_range": "Inputs outside the training envelope",
}


def trust_children(panel: sel.TrustPanel) -> list:
    cards = []
    if not panel.estimates:
        cards.append(html.P("No soft-sensor estimate in this batch yet.", className="muted"))
    for estimate in panel.estimates:
        ok = estimate.validity == "ok"
        cards.append(
            stat_card(
                estimate.label,
                fmt(estimate.value, 3, estimate.unit),
                tone="ok" if ok else "warning" if estimate.validity == "out_of_range" else "neutral",
                detail=f"{VALIDITY_TEXT.get(estimate.validity, 'Validity unknown')} · {sel.ago(estimate.time)}",
                testid="latest-estimate",
            )
        )
        if estimate.residual is not None:
            cards.append(
                stat_card(
                    "Latest lab residual (lab − estimate)",
                    fmt(estimate.residual, 3, estimate.unit),
                    detail=f"lab {fmt(estimate.lab_value, 3, estimate.unit)} at {estimate.lab_time:%Y-%m-%d %H:%M} UTC",
                    testid="lab-residual",
                )
            )
        elif estimate.lab_value is not None:
            cards.append(
                stat_card(
                    "Latest lab sample",
                    fmt(estimate.lab_value, 3, estimate.unit),
                    detail=f"{estimate.lab_time:%Y-%m-%d %H:%M} UTC, no estimate within 30 min",
                )
            )
    if panel.lag_seconds is None:
        cards.append(stat_card("Pipeline lag", "—", detail="no deployment scores this batch", testid="pipeline-lag"))
    else:
        tone = "ok" if panel.lag_seconds <= panel.max_lag_seconds else "bad"
        cards.append(
            stat_card(
                "Pipeline lag",
                sel.duration_text(panel.lag_seconds),
                tone=tone,
                detail=f"{', '.join(panel.lag_deployments)} · limit {panel.max_lag_seconds} s",
                testid="pipeline-lag",
            )
        )
    cards.extend(drift_cards(panel.drift))
    cards.append(
        stat_card(
            "Last process data",
            sel.ago(panel.last_data),
            detail=f"{panel.last_data:%Y-%m-%d %H:%M:%S} UTC" if panel.last_data else "",
        )
    )
    return [html.H2("Can I trust the estimate?"), *cards]


@_guard(Output("trust", "children"), [Input("batch", "value"), Input("tick", "n_intervals")])
def update_trust(batch: str | None, _tick: Any, *, user: Any) -> list:
    if not batch:
        return [html.P("Choose a batch.", className="muted")]
    try:
        return trust_children(sel.trust_panel(group=sel.parse_group(batch)))
    except ApplicationError as exc:
        return [error_box(exc)]


@_guard(
    [Output("flag-series", "value"), Output("flag-time", "value"), Output("flag-value", "value")],
    [Input("chart", "clickData")],
    prevent_initial_call=True,
)
def pick_point(click: dict | None, *, user: Any) -> tuple:
    points = (click or {}).get("points") or []
    if not points:
        return None, None, None
    point = points[0]
    moment = str(point.get("x", ""))
    return point.get("customdata"), moment[:19], point.get("y")


def parse_time(text: str | None) -> datetime:
    moment = parse_datetime(str(text or "").strip().replace("T", " "))
    if moment is None:
        raise ValidationFailed("time: expected YYYY-MM-DD HH:MM:SS (UTC)", details={"time": text})
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@_guard(
    [Output("flags", "data"), Output("flag-message", "children")],
    [Input("batch", "value"), Input("flag-save", "n_clicks")],
    [
        State("flag-series", "value"),
        State("flag-time", "value"),
        State("flag-value", "value"),
        State("flag-level", "value"),
        State("flag-type", "value"),
        State("flag-description", "value"),
    ],
)
def save_and_list_flags(
    batch: str | None,
    _clicks: int,
    series: str | None,
    time_text: str | None,
    value: Any,
    level: str,
    kind: str,
    description: str | None,
    *,
    user: Any,
    triggered: set[str],
) -> tuple:
    if not batch:
        return [], ""
    message: Any = ""
    group = sel.parse_group(batch)
    if "flag-save" in triggered:
        from ..access import has_capabilities

        try:
            if not has_capabilities(user, ("flag_points",)):
                raise ValidationFailed("Your role cannot flag points.")
            parts = str(series or "").split("|")
            if len(parts) != 4:
                raise ValidationFailed("series: choose the series of the point", details={"series": series})
            collection = "predictions" if parts[0] == "predictions" else "raw"
            flag = point_flag_create(
                group=group,
                observed_property=parts[1],
                time=parse_time(time_text),
                level=level,
                type=kind,
                description=description or "",
                user=user,
                value=float(value) if value not in (None, "") else None,
                collection=collection,
                source={"predictions": "soft_sensor", "lab": "lab"}.get(parts[0], ""),
                model_id=parts[2],
                version=parts[3],
            )
            message = html.Div(
                f"Flag saved: {flag.get_level_display()} · {flag.get_type_display()}"
                f" at {flag.time:%Y-%m-%d %H:%M:%S} UTC.",
                className="dash-ok",
                role="status",
            )
        except ApplicationError as exc:
            message = error_box(exc)
    return sel.flag_rows(sel.point_flag_list(group=group)), message

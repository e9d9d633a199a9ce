"""Operator — live process: estimates with lab samples and process variables, the trust panel, flags."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from dash import dash_table, dcc, html
from dash.dependencies import Input, Output, State
from django.utils.dateparse import parse_datetime

from apps.common.errors import ApplicationError, ValidationFailed
from apps.orchestrator.explanations import estimate_explanation
from apps.tsdb.types import UTC

from .. import selectors as sel
from ..access import OPERATOR_PAGE
from ..formatting import quantity, shorten, validity_style
from ..models import FlagType
from ..services import point_flag_create
from .alert_actions import alert_panel, register_alert_callbacks
from .common import (
    dash_app,
    dropdown_control,
    empty_figure,
    error_box,
    flag_level_type_controls,
    guarded_callback,
    stat_card,
)
from .explaining import explanation_children
from .live_figure import chart_figure

NAME = "operator_live"
app = dash_app(NAME)

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
EXPLAIN_HINT = "Click an estimate on the chart: each input's contribution, and which inputs were out of range."
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
                            id="range",
                            options=RANGE_CHOICES,
                            value=sel.DEFAULT_RANGE,
                            className="segmented",
                            inline=True,
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
                        html.H2("Why this estimate?"),
                        dcc.Loading(
                            html.Div(
                                html.P(EXPLAIN_HINT, className="muted"),
                                id="explain",
                                className="explain-panel",
                                **{"data-testid": "estimate-explanation"},
                            )
                        ),
                    ],
                ),
                html.Div(id="trust", className="panel trust", **{"data-testid": "trust-panel"}),
            ],
        ),
        alert_panel(intro="Acknowledge an alert you have looked into (with a note); modelers resolve and silence."),
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
register_alert_callbacks(app, OPERATOR_PAGE, Input("tick", "n_intervals"))


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
        from ..access import has_capabilities

        chart = sel.live_chart(
            group=sel.parse_group(batch),
            range_key=range_key or sel.DEFAULT_RANGE,
            variables=variables or [],
            shadows=has_capabilities(user, ("train_models",)),  # modelers see challengers, dashed
        )
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


def drift_cards(statuses: list[Any]) -> list:
    """One card per deployment scoring the batch, by the status-light rule (``docs/dashboard.md``): the
    alerts that count, which batch and check raised them, and the last live check."""
    from ..alerting import drift_card

    if not statuses:
        return [stat_card("Drift", "—", detail="no deployment scores this batch", testid="drift-status")]
    cards = []
    for status in statuses:
        card = drift_card(status)
        detail = " · ".join(shorten(line, 120) for line in card.lines)  # each line cut at a word, never mid-word
        cards.append(stat_card("Drift", card.value, tone=card.tone, detail=detail, testid="drift-status"))
    return cards


def trust_children(panel: sel.TrustPanel) -> list:
    cards = []
    if not panel.estimates:
        cards.append(html.P("No soft-sensor estimate in this batch yet.", className="muted"))
    for estimate in panel.estimates:
        validity = validity_style(estimate.validity)
        cards.append(
            stat_card(
                estimate.label,
                quantity(estimate.value, estimate.unit),
                tone=validity.tone,
                detail=f"{validity.text} · {sel.ago(estimate.time)}",
                testid="latest-estimate",
            )
        )
        if estimate.residual is not None:
            cards.append(
                stat_card(
                    "Latest lab residual (lab − estimate)",
                    quantity(estimate.residual, estimate.unit),
                    detail=(
                        f"lab {quantity(estimate.lab_value, estimate.unit)}"
                        f" at {estimate.lab_time:%Y-%m-%d %H:%M} UTC"
                    ),
                    testid="lab-residual",
                )
            )
        elif estimate.lab_value is not None:
            cards.append(
                stat_card(
                    "Latest lab sample",
                    quantity(estimate.lab_value, estimate.unit),
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


@_guard(
    Output("trust", "children"),
    [Input("batch", "value"), Input("tick", "n_intervals"), Input("alert-message", "children")],
)
def update_trust(batch: str | None, _tick: Any, _alert_acted: Any, *, user: Any) -> list:
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


@_guard(Output("explain", "children"), [Input("chart", "clickData")], [State("batch", "value")])
def explain_point(click: dict | None, batch: str | None, *, user: Any) -> list:
    """The clicked estimate's explanation (``orchestrator.explanations``); other points say what to click."""
    points = (click or {}).get("points") or []
    parts = str(points[0].get("customdata") or "").split("|") if points else []
    if not batch or len(parts) != 4 or parts[0] != "predictions":
        return [html.P(EXPLAIN_HINT, className="muted")]
    try:
        group = sel.parse_group(batch)
        answer = estimate_explanation(
            group=group,
            model_tag=parts[2],
            version_tag=parts[3],
            time=parse_time(points[0].get("x")),
            output=parts[1],
        )
    except ApplicationError as exc:
        return [error_box(exc)]
    units = sel.variable_units(project_name=group.project_name, device_id=group.device_id)
    return explanation_children(answer, units.get(parts[1], ""))


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

"""Manager — overview of every deployment (status light, latest estimate, last run, lag, lab-error
trend) and one deployment's details (its runs, the groups it scores, estimates against lab samples)."""

from __future__ import annotations

import re
from typing import Any

from dash import dcc, html
from dash.dependencies import Input, Output
from django.urls import reverse

from apps.common.errors import ApplicationError, NotFound

from .. import selectors as sel
from ..access import MANAGER_PAGE
from ..formatting import d3_format, quantity, value_axis
from ..overview import DeploymentRow, deployment_detail, deployment_overview
from .alert_actions import alert_panel, register_alert_callbacks
from .common import PALETTE, STATUS_COLOURS, base_layout, dash_app, error_box, guarded_callback, stat_card
from .live_figure import chart_figure

overview_app = dash_app("manager_overview")
detail_app = dash_app("manager_deployment")

STATUS_TEXT = {"ok": "OK", "warning": "Warning", "failing": "Failing"}

overview_app.layout = html.Div(
    className="dash-page",
    children=[
        dcc.Interval(id="tick", interval=60_000),
        html.Div(id="overview", className="panel", **{"data-testid": "overview"}),
        alert_panel(intro="Acknowledge an alert you have taken up (with a note); modelers resolve and silence."),
    ],
)

detail_app.layout = html.Div(
    className="dash-page",
    children=[
        dcc.Location(id="url", refresh=False),
        dcc.Interval(id="tick", interval=60_000),
        html.Div(id="detail", **{"data-testid": "deployment-detail"}),
    ],
)


def light(status: str) -> html.Span:
    return html.Span(
        [html.Span(className=f"light {status}"), STATUS_TEXT.get(status, status)],
        style={"color": STATUS_COLOURS.get(status), "fontWeight": 800, "fontSize": "1.15rem"},
        **{"data-testid": f"status-{status}"},
    )


def trend_figure(row: DeploymentRow, height: int = 120) -> dict[str, Any]:
    """Mean absolute lab error per batch: a sparkline in the overview (batch labels, three y ticks), a full
    chart on the detail page. Axes follow ``formatting.value_axis`` (padded range including zero)."""
    maes = [t.mae for t in row.lab_trend]
    small = height <= 150
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": [t.batch_id for t in row.lab_trend],
                "y": maes,
                "line": {"color": PALETTE[0], "width": 3},
                "marker": {"size": 8},
                "hovertemplate": f"%{{x}}: MAE %{{y:{d3_format(maes)}}} {row.unit}<extra></extra>",
            }
        ],
        "layout": base_layout(
            height=height,
            margin={"l": 10, "r": 10, "t": 8, "b": 10},
            showlegend=False,
            xaxis={
                "type": "category",
                "showgrid": False,
                "automargin": True,
                "tickfont": {"size": 11 if small else 14},
                "tickangle": 0 if small else "auto",
                "nticks": 6 if small else 20,
            },
            yaxis=value_axis(
                [*maes, 0.0],
                title="" if small else f"MAE [{row.unit}]",
                nticks=3 if small else 7,
                tickfont={"size": 11 if small else 14},
            ),
            hovermode="closest",
        ),
    }


def alerts_cell(row: DeploymentRow) -> html.Div:
    """Alerts that count in the light (the rule of docs/dashboard.md), what raised them, the last live check."""
    from ..alerting import drift_card

    card = drift_card(row.drift)
    colour = {"critical": STATUS_COLOURS["failing"], "warning": STATUS_COLOURS["warning"]}.get(
        row.drift.worst_severity or "", STATUS_COLOURS["ok"]
    )
    return html.Div(
        [
            html.Div(
                str(len(row.drift.counted)),
                className="stat-value",
                style={"color": colour},
                **{"data-testid": "open-alerts"},
            ),
            *[html.Div(line, className="stat-detail") for line in card.lines[1:]],
        ]
    )


register_alert_callbacks(overview_app, MANAGER_PAGE, Input("tick", "n_intervals"))


def last_run_text(run: Any) -> str:
    if run is None:
        return "no run yet"
    return f"{run.status} · {sel.ago(run.finished_at or run.started_at)}"


@guarded_callback(
    overview_app,
    MANAGER_PAGE,
    Output("overview", "children"),
    [Input("tick", "n_intervals"), Input("alert-message", "children")],
)
def show_overview(_tick: Any, _alert_acted: Any, *, user: Any) -> Any:
    try:
        rows = deployment_overview()
    except ApplicationError as exc:
        return error_box(exc)
    if not rows:
        return html.P("No deployment yet: a modeler creates one to put a soft sensor to work.", className="muted")
    header = html.Tr(
        [
            html.Th(h)
            for h in (
                "Status",
                "Deployment",
                "Latest estimate",
                "Last run",
                "Pipeline lag",
                "Drift alerts",
                "Lab error trend (MAE per batch)",
            )
        ]
    )
    body = []
    for row in rows:
        deployment = row.deployment
        latest = (
            html.Div(
                [
                    html.Div(quantity(row.latest_value, row.unit), className="stat-value"),
                    html.Div(
                        f"{row.output} · {row.latest_batch} · {sel.ago(row.latest_time)}", className="stat-detail"
                    ),
                ]
            )
            if row.latest_value is not None
            else html.Span("no estimate yet", className="muted")
        )
        lag = "—" if row.lag_seconds is None else sel.duration_text(row.lag_seconds)
        trend = (
            dcc.Graph(
                figure=trend_figure(row),
                config={"staticPlot": True},
                style={"height": "120px", "width": "100%", "maxWidth": "300px"},
            )
            if row.lab_trend
            else html.Span("no lab samples matched yet", className="muted")
        )
        body.append(
            html.Tr(
                [
                    html.Td([light(row.status), html.Div("; ".join(row.reasons), className="stat-detail")]),
                    html.Td(
                        [
                            html.A(
                                deployment.name,
                                href=reverse("dashboard:manager-deployment", args=[deployment.pk]),
                                style={"fontSize": "1.15rem", "fontWeight": 700},
                            ),
                            html.Div(
                                f"{deployment.soft_sensor.model_id} {deployment.target_label}", className="stat-detail"
                            ),
                        ]
                    ),
                    html.Td(latest),
                    html.Td(last_run_text(row.last_run)),
                    html.Td(lag, className="big"),
                    html.Td(alerts_cell(row)),
                    html.Td(trend),
                ],
                **{"data-testid": f"deployment-{deployment.name}"},
            )
        )
    return html.Table([html.Thead(header), html.Tbody(body)], className="overview")


def deployment_id_from(pathname: str | None) -> int:
    match = re.search(r"/manager/deployments/(\d+)/", pathname or "")
    if not match:
        raise NotFound("No deployment in this address.", details={"path": pathname})
    return int(match.group(1))


@guarded_callback(
    detail_app, MANAGER_PAGE, Output("detail", "children"), [Input("url", "pathname"), Input("tick", "n_intervals")]
)
def show_detail(pathname: str | None, _tick: Any, *, user: Any) -> Any:
    try:
        detail = deployment_detail(deployment_id=deployment_id_from(pathname))
    except ApplicationError as exc:
        return error_box(exc)
    from ..alerting import drift_card

    row: DeploymentRow = detail["row"]
    deployment = detail["deployment"]
    cards = [
        html.Div(
            [
                html.Div("Status", className="stat-label"),
                light(row.status),
                html.Div("; ".join(row.reasons), className="stat-detail"),
            ],
            className=f"stat-card tone-{row.status}",
        ),
        stat_card(
            "Latest estimate",
            quantity(row.latest_value, row.unit),
            detail=f"{row.output} · {row.latest_batch} · {sel.ago(row.latest_time)}" if row.latest_time else "",
        ),
        stat_card("Pipeline lag", "—" if row.lag_seconds is None else sel.duration_text(row.lag_seconds)),
        stat_card("Last run", last_run_text(row.last_run)),
        stat_card(
            "Open drift alerts",
            str(len(row.drift.counted)),
            tone={"critical": "bad", "warning": "warning"}.get(row.drift.worst_severity or "", "ok"),
            detail=" · ".join(drift_card(row.drift).lines[1:]),
        ),
    ]
    children: list[Any] = [html.Div(cards, className="controls")]
    if row.latest_batch:
        device, batch = row.latest_batch.split("/", 1)
        group = sel.GroupKey(deployment.soft_sensor.project.name.lower(), device, batch)
        try:
            model = (row.spec.model_tag, row.spec.version_tag) if row.spec else None
            chart = sel.live_chart(group=group, range_key="batch", model=model)
            children.append(
                html.Div(
                    className="panel",
                    children=[
                        html.H2(f"Estimates and lab samples, {batch}"),
                        dcc.Graph(figure=chart_figure(chart), config={"displaylogo": False}, style={"height": "420px"}),
                    ],
                )
            )
        except ApplicationError as exc:
            children.append(error_box(exc))
    if row.lab_trend:
        children.append(
            html.Div(
                className="panel",
                children=[
                    html.H2("Lab error per batch (mean |lab − estimate|)"),
                    dcc.Graph(
                        figure=trend_figure(row, height=260), config={"displaylogo": False}, style={"height": "260px"}
                    ),
                ],
            )
        )
    children.append(
        html.Div(
            className="panel",
            children=[
                html.H2("Batches scored"),
                html.Table(
                    [
                        html.Thead(
                            html.Tr([html.Th(h) for h in ("Batch", "Newest data", "Newest estimate", "Waiting")])
                        ),
                        html.Tbody(
                            [
                                html.Tr(
                                    [
                                        html.Td(g["group"]),
                                        html.Td(g["newest_raw"][:19].replace("T", " ")),
                                        html.Td((g["newest_prediction"] or "—")[:19].replace("T", " ")),
                                        html.Td(sel.duration_text(g["waiting_seconds"])),
                                    ]
                                )
                                for g in detail["groups"]
                            ]
                        ),
                    ],
                    className="overview",
                )
                if detail["groups"]
                else html.P("No batch in scope has data.", className="muted"),
                html.H2("Recent pipeline runs"),
                html.Table(
                    [
                        html.Thead(
                            html.Tr(
                                [
                                    html.Th(h)
                                    for h in (
                                        "Started (UTC)",
                                        "Batch",
                                        "Trigger",
                                        "Status",
                                        "Predictions",
                                        "Skipped",
                                        "Duration",
                                        "Error",
                                    )
                                ]
                            )
                        ),
                        html.Tbody(
                            [
                                html.Tr(
                                    [
                                        html.Td(f"{r.started_at:%Y-%m-%d %H:%M:%S}"),
                                        html.Td(r.batch_id),
                                        html.Td(r.trigger),
                                        html.Td(
                                            r.status,
                                            style={
                                                "color": STATUS_COLOURS["failing"] if r.status == "failed" else None,
                                                "fontWeight": 700,
                                            },
                                        ),
                                        html.Td(f"{r.predictions:,}"),
                                        html.Td(f"{r.skipped:,}"),
                                        html.Td("—" if r.duration_ms is None else f"{r.duration_ms:,.0f} ms"),
                                        html.Td(r.error[:200] or "—"),
                                    ]
                                )
                                for r in detail["runs"]
                            ]
                        ),
                    ],
                    className="overview",
                    **{"data-testid": "runs"},
                )
                if detail["runs"]
                else html.P("No pipeline run yet.", className="muted"),
            ],
        )
    )
    return children

"""Manager — overview of every deployment (status light, latest estimate, last run, lag, lab-error
trend) and one deployment's details (its runs, the groups it scores, estimates against lab samples)."""

from __future__ import annotations

import re
from typing import Any

from dash import dcc, html
from dash.dependencies import Input, Output
from django.urls import reverse
from django_plotly_dash import DjangoDash

from apps.common.errors import ApplicationError, NotFound

from .. import selectors as sel
from ..access import MANAGER_PAGE
from ..overview import DeploymentRow, deployment_detail, deployment_overview
from .common import PALETTE, STATUS_COLOURS, base_layout, error_box, fmt, guarded_callback, stat_card
from .operator import chart_figure

overview_app = DjangoDash("manager_overview", serve_locally=True)
detail_app = DjangoDash("manager_deployment", serve_locally=True)

STATUS_TEXT = {"ok": "OK", "warning": "Warning", "failing": "Failing"}

overview_app.layout = html.Div(
    className="dash-page",
    children=[
        dcc.Interval(id="tick", interval=60_000),
        html.Div(id="overview", className="panel", **{"data-testid": "overview"}),
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


def trend_figure(row: DeploymentRow, height: int = 70) -> dict[str, Any]:
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": [t.batch_id for t in row.lab_trend],
                "y": [t.mae for t in row.lab_trend],
                "line": {"color": PALETTE[0], "width": 3},
                "marker": {"size": 8},
                "hovertemplate": f"%{{x}}: MAE %{{y:.3f}} {row.unit}<extra></extra>",
            }
        ],
        "layout": base_layout(
            height=height,
            margin={"l": 40, "r": 10, "t": 5, "b": 20},
            showlegend=False,
            xaxis={"showticklabels": height > 100, "showgrid": False},
            yaxis={
                "title": {"text": f"MAE [{row.unit}]" if height > 100 else ""},
                "gridcolor": "#e5e8eb",
                "rangemode": "tozero",
            },
            hovermode="closest",
        ),
    }


def alerts_cell(row: DeploymentRow) -> html.Div:
    status = row.drift
    latest = status.latest
    check = (
        f"last check {latest.detector}: {'drift' if latest.drift else 'no drift'}, {sel.ago(latest.created_at)}"
        if latest is not None
        else "no drift check yet"
    )
    colour = {"critical": STATUS_COLOURS["failing"], "warning": STATUS_COLOURS["warning"]}.get(
        status.worst_severity or "", STATUS_COLOURS["ok"]
    )
    return html.Div(
        [
            html.Div(
                str(len(status.open_alerts)),
                className="stat-value",
                style={"color": colour},
                **{"data-testid": "open-alerts"},
            ),
            html.Div(check, className="stat-detail"),
        ]
    )


def last_run_text(run: Any) -> str:
    if run is None:
        return "no run yet"
    return f"{run.status} · {sel.ago(run.finished_at or run.started_at)}"


@guarded_callback(overview_app, MANAGER_PAGE, Output("overview", "children"), [Input("tick", "n_intervals")])
def show_overview(_tick: Any, *, user: Any) -> Any:
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
                    html.Div(fmt(row.latest_value, 2, row.unit), className="stat-value"),
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
            dcc.Graph(figure=trend_figure(row), config={"staticPlot": True}, style={"height": "70px", "width": "260px"})
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
            fmt(row.latest_value, 2, row.unit),
            detail=f"{row.output} · {row.latest_batch} · {sel.ago(row.latest_time)}" if row.latest_time else "",
        ),
        stat_card("Pipeline lag", "—" if row.lag_seconds is None else sel.duration_text(row.lag_seconds)),
        stat_card("Last run", last_run_text(row.last_run)),
        stat_card(
            "Open drift alerts",
            str(len(row.drift.open_alerts)),
            tone={"critical": "bad", "warning": "warning"}.get(row.drift.worst_severity or "", "ok"),
            detail=row.drift.open_alerts[0].message[:160] if row.drift.open_alerts else "",
        ),
    ]
    children: list[Any] = [html.Div(cards, className="controls")]
    if row.latest_batch:
        device, batch = row.latest_batch.split("/", 1)
        group = sel.GroupKey(deployment.soft_sensor.project.name.lower(), device, batch)
        try:
            model = (row.plan.model_tag, row.plan.version_tag) if row.plan else None
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

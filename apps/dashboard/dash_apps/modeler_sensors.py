"""Modeler — soft sensors: descriptor details, versions, alias history, links to the registry."""

from __future__ import annotations

from functools import partial
from typing import Any

from dash import dcc, html
from dash.dependencies import Input, Output
from django.urls import reverse
from django_plotly_dash import DjangoDash

from apps.common.errors import ApplicationError

from ..access import MODELER_PAGE
from ..modeling import datetime_label, soft_sensor_overview
from .common import dropdown_control, error_box, guarded_callback

NAME = "modeler_sensors"
app = DjangoDash(NAME, serve_locally=True)

app.layout = html.Div(
    className="dash-page",
    children=[
        dcc.Store(id="boot", data=0),
        html.Div(
            className="controls",
            children=[
                dropdown_control("Project", "project", clearable=False),
            ],
        ),
        html.Div(id="sensors", **{"data-testid": "sensors"}),
    ],
)


_guard = partial(guarded_callback, app, MODELER_PAGE)


@_guard([Output("project", "options"), Output("project", "value")], [Input("boot", "data")])
def load_projects(_boot: Any, *, user: Any) -> tuple:
    from apps.registry.selectors import project_list

    projects = list(project_list())
    options = [{"label": f"{p.project_id} · {p.name}", "value": p.project_id} for p in projects]
    return options, (projects[0].project_id if projects else None)


def _table(header: list[str], rows: list[list[Any]], testid: str = "") -> html.Table:
    props = {"data-testid": testid} if testid else {}
    return html.Table(
        className="overview",
        children=[
            html.Thead(html.Tr([html.Th(h) for h in header])),
            html.Tbody([html.Tr([html.Td("—" if c in (None, "") else c) for c in row]) for row in rows]),
        ],
        **props,
    )


def sensor_panel(item: dict[str, Any], *, project_id: str, staff: bool) -> html.Div:
    soft_sensor = item["soft_sensor"]
    links = [
        html.A(
            "Open in the registry",
            href=reverse("registry:model", kwargs={"project_id": project_id, "model_id": soft_sensor.model_id}),
            className="button",
            **{"data-testid": "registry-link"},
        )
    ]
    if staff:
        links.append(
            html.A(
                "Edit in the admin",
                href=reverse("admin:registry_softsensor_change", args=[soft_sensor.pk]),
                className="button",
                style={"marginLeft": "0.6rem"},
            )
        )
    training = item["training"]
    details = html.Table(
        className="kv",
        children=[
            html.Tbody(
                [
                    html.Tr([html.Th("Name"), html.Td(item["name"] or "—")]),
                    html.Tr([html.Th("Learner"), html.Td(f"{item['learner']} ({item['model_type']})")]),
                    html.Tr([html.Th("Language"), html.Td(item["language"] or "—")]),
                    html.Tr([html.Th("Author"), html.Td(item["author"] or "—")]),
                    html.Tr([html.Th("Description"), html.Td(item["description"] or "—")]),
                    html.Tr(
                        [
                            html.Th("Training"),
                            html.Td(
                                f"{training['instances'] or '?'} instances"
                                + f" · experiments {training['experiments'] or '—'}"
                                + (f" · {training['validation']}" if training["validation"] else "")
                            ),
                        ]
                    ),
                ]
            )
        ],
    )
    return html.Div(
        className="panel",
        children=[
            html.H2(soft_sensor.model_id, **{"data-testid": "sensor-title"}),
            details,
            html.Div(links),
            html.H3("Inputs (descriptor order)"),
            _table(
                ["Feature", "Type", "Unit", "Expected min", "Expected max"],
                [[f["name"], f["type"], f["units"], f["min"], f["max"]] for f in item["features"]],
            ),
            html.H3("Outputs"),
            _table(
                ["Output", "Unit", "Expected min", "Expected max"],
                [[o["name"], o["units"], o["min"], o["max"]] for o in item["outputs"]],
            ),
            html.H3("Versions"),
            _table(
                ["Version", "Label", "Status", "Aliases", "Flavor", "Source", "Created", "By"],
                [
                    [
                        f"v{v['number']}" + (" (archived)" if v["archived"] else ""),
                        v["label"],
                        v["status"],
                        v["aliases"],
                        v["flavor"],
                        v["source"],
                        datetime_label(v["created_at"]),
                        v["created_by"],
                    ]
                    for v in item["versions"]
                ],
                testid="versions",
            ),
            html.H3("Alias history"),
            _table(
                ["When (UTC)", "Alias", "From", "To", "By", "Reason"],
                [
                    [
                        datetime_label(m["at"]),
                        m["alias"],
                        f"v{m['from']}" if m["from"] else None,
                        f"v{m['to']}" if m["to"] else None,
                        m["by"],
                        m["reason"],
                    ]
                    for m in item["alias_history"]
                ],
                testid="alias-history",
            )
            if item["alias_history"]
            else html.P("No alias moves yet.", className="muted"),
        ],
    )


@_guard(Output("sensors", "children"), [Input("project", "value")])
def show_sensors(project_id: str | None, *, user: Any) -> list:
    if not project_id:
        return [html.P("No project in the registry yet.", className="muted")]
    try:
        items = soft_sensor_overview(project_id=project_id)
    except ApplicationError as exc:
        return [error_box(exc)]
    if not items:
        return [html.P("This project has no soft sensor yet.", className="muted")]
    return [sensor_panel(item, project_id=project_id, staff=bool(user.is_staff)) for item in items]

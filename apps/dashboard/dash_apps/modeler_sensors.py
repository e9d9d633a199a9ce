"""Modeler — soft sensors: description, inputs and outputs, every version with its training facts and its
evaluation (the estimator as deployed against holding the last lab value), alias history, registry links."""

from __future__ import annotations

from functools import partial
from typing import Any

from dash import dcc, html
from dash.dependencies import Input, Output
from django.urls import reverse

from apps.common.errors import ApplicationError

from ..access import MODELER_PAGE
from ..formatting import number_text
from ..soft_sensors import EvaluationSummary, datetime_label, soft_sensor_overview
from .common import dash_app, dropdown_control, error_box, guarded_callback
from .explaining import explanation_section

NAME = "modeler_sensors"
app = dash_app(NAME)

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


def _bound(value: float | None) -> str | None:
    return None if value is None else number_text(value)


def _kv(rows: list[tuple[str, str]], testid: str = "") -> html.Table:
    props = {"data-testid": testid} if testid else {}
    return html.Table(
        className="kv", children=[html.Tbody([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows])], **props
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
    details = _kv(
        [
            ("Name", item["name"] or "—"),
            ("Learner", f"{item['learner']} ({item['model_type']})"),
            ("Language", item["language"] or "—"),
            ("Author", item["author"] or "—"),
            ("Description", item["description"] or "—"),
        ]
    )
    return html.Div(
        className="panel",
        children=[
            html.H2(soft_sensor.model_id, **{"data-testid": "sensor-title"}),
            details,
            html.Div(links),
            html.H3("Inputs (model order)"),
            _table(
                ["Feature", "Type", "Unit", "Valid from", "Valid to"],
                [[f["name"], f["type"], f["units"], _bound(f["min"]), _bound(f["max"])] for f in item["features"]],
            ),
            html.H3("Outputs"),
            _table(
                ["Output", "Unit", "Declared min", "Declared max"],
                [[o["name"], o["units"], _bound(o["min"]), _bound(o["max"])] for o in item["outputs"]],
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
            *[version_details(v, unfolded=i == 0) for i, v in enumerate(item["versions"])],
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


def evaluation_panel(summary: EvaluationSummary) -> list:
    """The evaluation as a sentence, a small table (as deployed, raw, persistence, training mean) and RMSE per
    phase; the plain sentence is a warning when the estimator as deployed does not beat persistence."""
    tone = {False: "dash-error", True: "dash-ok"}.get(summary.beats_persistence, "muted")
    children: list = [html.P(summary.sentence, className=tone, **{"data-testid": "evaluation-verdict"})]
    children.append(
        _table(
            ["Estimator", "Rows", "Compared on", "RMSE", "MAE", "R²", "Bias (estimate − lab)"],
            [
                [
                    row["estimator"],
                    number_text(int(row["rows"])) if row["rows"] is not None else None,
                    row["covered"],
                    number_text(row["rmse"]),
                    number_text(row["mae"]),
                    number_text(row["r2"]),
                    number_text(row["bias"]),
                ]
                for row in summary.rows
            ],
            testid="evaluation",
        )
    )
    if summary.phases:
        children.append(
            _table(
                ["Phase", "RMSE as deployed", "RMSE raw model", "RMSE persistence"],
                [
                    [p["phase"], number_text(p["as_deployed"]), number_text(p["raw"]), number_text(p["persistence"])]
                    for p in summary.phases
                ],
            )
        )
    if summary.details:
        children.append(_kv(summary.details))
    return children


def version_details(version: dict[str, Any], *, unfolded: bool = False) -> html.Details:
    """One version's training facts and evaluation, folded unless ``unfolded`` (the newest version)."""
    evaluation = version["evaluation"]
    body: list = []
    if evaluation is not None:
        body.append(html.H4("Evaluation on the holdout"))
        body.extend(evaluation_panel(evaluation))
    body.append(html.H4("What its estimates depend on"))
    body.extend(explanation_section(version.get("explanation")))
    body.append(html.H4("Training"))
    body.append(
        _kv(version["training"], testid="training")
        if version["training"]
        else html.P("No training information recorded (an uploaded version).", className="muted")
    )
    summary = f"v{version['number']} — training" + (" and evaluation" if evaluation is not None else "")
    if evaluation is not None and evaluation.beats_persistence is False:
        summary += " (does not beat the last lab value)"
    return html.Details(
        [html.Summary(summary), *body],
        open=unfolded,
        **{"data-testid": f"version-{version['number']}"},
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

"""The alert panel each role acts from (operator live page, manager overview, drift page): pick an alert,
acknowledge it with a note, resolve it with a reason, silence its detector on its deployment until a time,
and read its history.

Dash callbacks carry Django's CSRF token (``common.dash_app``) and are guarded by the page's capabilities;
each action is checked again against the drift app's rule of who may do what (``apps.drift.access``), and
the buttons a role may not use are disabled. The writes are the drift services (audited, with history).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import dash_table, dcc, html
from dash.dependencies import Input, Output, State

from apps.common.errors import ApplicationError, ValidationFailed

from .. import alerting
from .common import dropdown_control, error_box, guarded_callback

HISTORY_COLUMNS = [
    {"name": "When (UTC)", "id": "at"},
    {"name": "What", "id": "action"},
    {"name": "Who", "id": "by"},
    {"name": "Note / reason", "id": "note"},
]
ACTIONS = {"alert-ack": "acknowledge", "alert-resolve": "resolve", "alert-silence": "silence"}


def alert_panel(*, intro: str) -> html.Div:
    """The panel's layout (ids prefixed ``alert-``; one panel per page)."""
    return html.Div(
        className="panel",
        **{"data-testid": "alert-panel"},
        children=[
            html.H2("Drift alerts: acknowledge, resolve, silence"),
            html.P(intro, className="muted"),
            html.Div(className="controls", children=[dropdown_control("Alert", "alert-pick", width="wide")]),
            html.Div(id="alert-summary", className="muted", **{"data-testid": "alert-summary"}),
            html.Label("Note (acknowledge) or reason (resolve, silence)", htmlFor="alert-note"),
            dcc.Textarea(id="alert-note", style={"width": "100%", "height": "60px"}),
            html.Div(
                className="controls",
                children=[
                    html.Div(
                        [
                            html.Label("Silence until (UTC, or 8h / 2d)", htmlFor="alert-until"),
                            dcc.Input(id="alert-until", type="text", value="8h", placeholder="YYYY-MM-DD HH:MM"),
                        ],
                        className="control",
                    ),
                    html.Button("Acknowledge", id="alert-ack", n_clicks=0, className="primary"),
                    html.Button("Resolve", id="alert-resolve", n_clicks=0),
                    html.Button("Silence this detector", id="alert-silence", n_clicks=0),
                ],
            ),
            html.Div(id="alert-message", **{"data-testid": "alert-message"}),
            html.H3("History"),
            dash_table.DataTable(
                id="alert-history",
                columns=HISTORY_COLUMNS,
                data=[],
                page_size=8,
                style_cell={"fontSize": 15, "textAlign": "left", "whiteSpace": "normal"},
                style_header={"fontWeight": "bold", "backgroundColor": "#eef2f5"},
            ),
        ],
    )


def alert_act(*, action: str, alert_id: Any, note: str | None, until: str | None, user: Any) -> str:
    """Do one action on one alert for ``user`` (the rule of ``apps.drift.access`` applies); the message."""
    from apps.drift import services
    from apps.drift.access import alert_action_allowed
    from apps.drift.selectors import alert_get

    if not alert_action_allowed(user, action):
        raise ValidationFailed(f"Your role cannot {action} alerts.")
    if not alert_id:
        raise ValidationFailed("Choose an alert first.", details={"alert": None})
    alert = alert_get(alert_id=int(alert_id))
    if action == "acknowledge":
        services.alert_acknowledge(alert=alert, user=user, note=note or "")
        return f"Alert #{alert.pk} acknowledged."
    if action == "resolve":
        services.alert_resolve(alert=alert, user=user, reason=note or "")
        return f"Alert #{alert.pk} resolved."
    if not alert.job.deployment_id:
        raise ValidationFailed("This alert watches a soft sensor, not a deployment: nothing to silence.")
    silence = services.alert_silence_create(deployment=alert.job.deployment, detector=alert.job.detector,
                                            until=alerting.silence_until_parse(until), reason=note or "", user=user)
    return (f"{alert.job.detector} on {alert.job.deployment.name} silenced until "
            f"{silence.until:%Y-%m-%d %H:%M} UTC.")


def register_alert_callbacks(app: Any, capabilities: Sequence[str], refresh: Input) -> None:
    """The panel's callbacks on ``app``, guarded by the page's ``capabilities``; ``refresh`` reloads the list."""
    guard = guarded_callback

    @guard(app, capabilities, [Output("alert-pick", "options"), Output("alert-pick", "value")],
           [refresh, Input("alert-message", "children")], [State("alert-pick", "value")])
    def load_alerts(_refresh: Any, _message: Any, current: Any, *, user: Any) -> tuple[list, Any]:
        choices = alerting.alert_choices()
        options = [{"label": c.label, "value": c.alert.pk} for c in choices]
        ids = [c.alert.pk for c in choices]
        return options, (current if current in ids else (ids[0] if ids else None))

    @guard(app, capabilities, Output("alert-message", "children"),
           [Input("alert-ack", "n_clicks"), Input("alert-resolve", "n_clicks"), Input("alert-silence", "n_clicks")],
           [State("alert-pick", "value"), State("alert-note", "value"), State("alert-until", "value")],
           prevent_initial_call=True)
    def act(_ack: int, _resolve: int, _silence: int, alert_id: Any, note: str | None, until: str | None, *,
            user: Any, triggered: set[str]) -> Any:
        action = next((ACTIONS[i] for i in triggered if i in ACTIONS), None)
        if action is None:
            return ""
        try:
            text = alert_act(action=action, alert_id=alert_id, note=note, until=until, user=user)
        except ApplicationError as exc:
            return error_box(exc)
        return html.Div(text, className="dash-ok", role="status")

    @guard(app, capabilities,
           [Output("alert-summary", "children"), Output("alert-history", "data"), Output("alert-ack", "disabled"),
            Output("alert-resolve", "disabled"), Output("alert-silence", "disabled")],
           [Input("alert-pick", "value"), Input("alert-message", "children")])
    def show_alert(alert_id: Any, _message: Any, *, user: Any) -> tuple:
        from apps.drift.access import alert_action_allowed

        allowed = {action: alert_action_allowed(user, action) for action in ("acknowledge", "resolve", "silence")}
        if not alert_id:
            return "No drift alert to act on.", [], True, True, True
        try:
            alert, rows = alerting.alert_history_rows(alert_id=int(alert_id))
        except (ApplicationError, ValueError, TypeError) as exc:
            return error_box(exc), [], True, True, True
        summary = f"{alert.message[:300]} · raised by {alerting.alert_origin(alert)} · seen {alert.occurrences}×"
        return (
            summary,
            rows,
            not (allowed["acknowledge"] and alert.state == "open"),
            not (allowed["resolve"] and alert.state != "resolved"),
            not (allowed["silence"] and alert.job.deployment_id is not None),
        )

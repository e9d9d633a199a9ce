"""What every dashboard Dash app shares: the guarded callback, error display, colours, figure defaults."""

from __future__ import annotations

import inspect
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from dash import dcc, html
from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied
from django_plotly_dash import DjangoDash, dash_wrapper

from apps.common.errors import ApplicationError, ValidationFailed

from ..access import has_capabilities

logger = logging.getLogger(__name__)

#: Colour-blind-safe palette (Okabe–Ito), strong enough for a control-room screen.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
STATUS_COLOURS = {"ok": "#1e8449", "warning": "#b9770e", "failing": "#b03a2e", "unknown": "#5d6d7e"}
LEVEL_COLOURS = {"low": "#d4efdf", "moderate": "#fdebd0", "high": "#f5b7b1"}
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 15, "color": "#17202a"}


class _FramesOnlyInspect:
    """``inspect`` for django-plotly-dash's ``DjangoDash.__init__``, whose ``stack()`` skips source lines.

    The constructor calls ``inspect.stack()`` only to learn its caller's module (where the app's assets
    live). The real ``stack()`` reads and searches the source of every frame on the stack: about 0.1 s of
    CPU per app, so 1 s of every process start (the apps are built when Django sets up, in the web process,
    each worker and each ``manage.py`` command). The frames it returns are the same; only their unused
    ``code_context`` is left out. Everything else is the real module.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)

    @staticmethod
    def stack(context: int = 1) -> list[inspect.FrameInfo]:
        frames = []
        frame = sys._getframe(1)  # the caller of stack(): DjangoDash.__init__
        while frame is not None:
            code = frame.f_code
            frames.append(inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name, None, None))
            frame = frame.f_back
        return frames


def dash_app(name: str) -> DjangoDash:
    """A Dash app served from local files whose callbacks carry Django's CSRF token.

    The Dash renderer sends the cookie named ``csrf_token_name`` back as ``X-CSRFToken`` on every
    callback; naming Django's CSRF cookie here is what lets the callback endpoint keep CSRF protection
    (``apps/dashboard/dash_urls.py``). django-plotly-dash warns about any extra Dash argument; this one
    it passes through unchanged, so the warning is silenced for it alone. Its constructor sees
    ``_FramesOnlyInspect`` as ``inspect`` (why: there).
    """
    real = dash_wrapper.inspect
    dash_wrapper.inspect = _FramesOnlyInspect()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="You are passing extra arguments", category=UserWarning)
            return DjangoDash(name, serve_locally=True, csrf_token_name=settings.CSRF_COOKIE_NAME)
    finally:
        dash_wrapper.inspect = real


def guarded_callback(
    app: Any,
    capabilities: Sequence[str],
    outputs: Any,
    inputs: Any,
    state: Any = (),
    prevent_initial_call: bool = False,
) -> Callable:
    """Register a Dash callback that refuses (HTTP 403) callers without ``capabilities``.

    django-plotly-dash hands the request's ``user`` to a callback accepting ``**kwargs``; the wrapper
    checks it before the body runs, then calls the body with the Dash values and ``user=``. Bodies show
    the errors a person can act on in the page; a ``ValidationFailed`` escaping a body comes from input
    the page never sends and becomes HTTP 400 with its message.
    """

    def decorate(body: Callable) -> Callable:
        def callback(*args: Any, **kwargs: Any) -> Any:
            user = kwargs.get("user")
            if user is None and kwargs.get("request") is not None:
                user = kwargs["request"].user
            if not has_capabilities(user, tuple(capabilities)):
                raise PermissionDenied("Your role does not allow this dashboard.")
            try:
                if wants_triggered:
                    return body(*args, user=user, triggered=triggered_ids(kwargs.get("callback_context")))
                return body(*args, user=user)
            except ValidationFailed as exc:  # input the page never sends (a hand-made request): HTTP 400
                raise BadRequest(exc.message) from exc

        wants_triggered = "triggered" in inspect.signature(body).parameters

        callback.guarded_by = tuple(capabilities)  # tests check that every callback carries this
        callback.__name__ = body.__name__
        callback.__qualname__ = body.__qualname__
        app.callback(outputs, list(inputs), list(state), prevent_initial_call=prevent_initial_call)(callback)
        return body

    return decorate


def triggered_ids(context: Any) -> set[str]:
    """Component ids whose change fired the callback (django-plotly-dash's own callback context:
    ``dash.ctx`` is not set when django-plotly-dash dispatches)."""
    triggered = getattr(context, "triggered", None) or []
    return {str(item.get("prop_id", "")).rsplit(".", 1)[0] for item in triggered}


def error_box(exc: Exception) -> html.Div:
    """An application error as a visible message (never a stack trace)."""
    if isinstance(exc, ApplicationError):
        return html.Div(exc.message, className="dash-error", role="alert")
    logger.exception("dashboard callback failed")
    return html.Div(f"Could not load this view: {type(exc).__name__}.", className="dash-error", role="alert")


#: Every axis: margins that grow to fit its labels, plain numbers with thousands separators (no "60μ", "55k").
AXIS_TICKS = {"automargin": True, "exponentformat": "none", "separatethousands": True}


def base_layout(**overrides: Any) -> dict[str, Any]:
    """The layout every figure starts from. Axes grow their margins to fit their tick labels and titles
    (``automargin``), so no label is ever clipped; an axis given in ``overrides`` keeps that property unless
    it says otherwise. Y axes built with ``formatting.value_axis`` also get the shared range rules."""
    layout: dict[str, Any] = {
        "font": FONT,
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "hovermode": "x unified",
        # above the plot: a legend below it would sit on the x axis title
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 14}},
        "xaxis": {"showgrid": True, "gridcolor": "#e5e8eb", "linecolor": "#5d6d7e", **AXIS_TICKS},
        "yaxis": {"showgrid": True, "gridcolor": "#e5e8eb", "linecolor": "#5d6d7e", **AXIS_TICKS},
    }
    for key, value in overrides.items():
        if key in ("xaxis", "yaxis") and isinstance(value, dict):
            layout[key] = {**AXIS_TICKS, **value}
        else:
            layout[key] = value
    return layout


def empty_figure(message: str) -> dict[str, Any]:
    """A figure that says why there is nothing to draw (instead of an empty grid)."""
    return {
        "data": [],
        "layout": base_layout(
            xaxis={"visible": False},
            yaxis={"visible": False},
            annotations=[
                {
                    "text": message,
                    "showarrow": False,
                    "font": {"size": 18, "color": "#5d6d7e"},
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                }
            ],
        ),
    }


def stat_card(label: str, value: str, *, tone: str = "neutral", detail: str = "", testid: str = "") -> html.Div:
    """A big-number card for the trust panel and the overview."""
    children = [html.Div(label, className="stat-label"), html.Div(value, className="stat-value")]
    if detail:
        children.append(html.Div(detail, className="stat-detail"))
    props = {"data-testid": testid} if testid else {}
    return html.Div(children, className=f"stat-card tone-{tone}", **props)


def dropdown_control(label: str, component_id: str, *, width: str = "", **dropdown: Any) -> html.Div:
    """A labelled picker for a ``controls`` row; the label points at the dropdown (screen readers, tests).

    ``width`` is the CSS size class added to ``control`` (``wide``, ``narrow``); ``dropdown`` goes to
    ``dcc.Dropdown`` as is.
    """
    return html.Div(
        [html.Label(label, htmlFor=component_id), dcc.Dropdown(id=component_id, **dropdown)],
        className=f"control {width}" if width else "control",
    )


def flag_level_type_controls(*, default_type: str) -> list:
    """The level and type pickers of a flag form (operator live page, simulation table)."""
    from ..models import FlagLevel, FlagType

    return [
        dropdown_control(
            "Level",
            "flag-level",
            width="narrow",
            options=[{"label": label, "value": value} for value, label in FlagLevel.choices],
            value=FlagLevel.WARNING,
            clearable=False,
        ),
        dropdown_control(
            "Type",
            "flag-type",
            options=[{"label": label, "value": value} for value, label in FlagType.choices],
            value=default_type,
            clearable=False,
        ),
    ]

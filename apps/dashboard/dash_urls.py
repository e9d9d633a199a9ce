"""django-plotly-dash's URLs, closed the way the rest of the platform is.

The library's own URL module serves every Dash endpoint to anyone, exempts the callback endpoint from
CSRF, lets ``add_stateless_apps`` (an admin helper that writes rows) run on an anonymous GET, and answers
500 to ``_dash-routes`` (not implemented), to an unknown app name and to a callback body of the wrong
shape. Here every upstream route is kept (same paths, same names, so the ``plotly_direct`` tag and the
library's redirects work) but each view is wrapped:

- every endpoint needs a signed-in user (403 otherwise); ``add_stateless_apps`` needs an administrator;
- ``_dash-update-component`` is no longer CSRF-exempt: the Dash renderer sends Django's CSRF cookie back
  as ``X-CSRFToken`` (``dash_app`` in ``dash_apps/common.py`` tells it the cookie's name), so a
  cross-site POST riding a user's session is refused by Django's CSRF middleware;
- an unknown app answers 404, ``_dash-routes`` 404, a callback body that is not a Dash callback request
  (not JSON, no known ``output``, inputs that are not ``{id, property, value}`` objects) 400, before
  any library code runs;
- a component script's redirect to its static file may be kept by the browser for a day: a Dash page's load
  made 13 such round trips each time, and makes none once they are known.

Callbacks themselves check capabilities (``guarded_callback``); this module guards the door before them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path
from django_plotly_dash import urls as upstream
from django_plotly_dash.dash_wrapper import get_local_stateless_list
from django_plotly_dash.models import DashApp

from .access import has_capabilities

#: Largest callback request body accepted (Dash sends the inputs and states of one callback).
MAX_UPDATE_BYTES = 2 * 1024 * 1024
#: The routes that redirect a Dash component's script to its static file, and how long a browser may keep the
#: redirect (a day).
COMPONENT_SUITES = "_dash-component-suites"
SUITE_REDIRECT_MAX_AGE = 86_400


def _refuse(status: int, message: str) -> HttpResponse:
    return JsonResponse({"error": {"status": status, "message": message}}, status=status)


def _app_known(ident: str, stateless: bool) -> bool:
    if stateless:
        return ident in get_local_stateless_list()
    return DashApp.objects.filter(slug=ident).exists()


def _update_problem(request: HttpRequest, ident: str, stateless: bool) -> str | None:
    """Why this body is not a Dash callback request this app can answer, or None."""
    if len(request.body) > MAX_UPDATE_BYTES:
        return f"the callback request is over {MAX_UPDATE_BYTES} bytes"
    try:
        body = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "the callback request is not JSON"
    if not isinstance(body, Mapping):
        return "the callback request must be a JSON object"
    output = body.get("output")
    if not isinstance(output, str):
        return "output: required, a string"
    _, app = DashApp.locate_item(ident, stateless)
    if output not in app.callback_map:
        return f"output {output[:200]!r} is not a callback of this page"
    for name in ("inputs", "state"):
        items = body.get(name, [])
        if not isinstance(items, list):
            return f"{name}: must be a list"
        for item in items:
            group = item if isinstance(item, list) else [item]
            if not all(isinstance(one, Mapping) and "id" in one and "property" in one for one in group):
                return f"{name}: each item must be an object with id and property"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(item, str) for item in changed):
        return "changedPropIds: must be a list of strings"
    return None


def _guarded(view: Callable[..., HttpResponse], name: str, url_part: str) -> Callable[..., HttpResponse]:
    def endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return _refuse(403, "Sign in to use the dashboards.")
        if name == "add_stateless_apps":
            if not (request.user.is_staff and has_capabilities(request.user, ("administer",))):
                return _refuse(403, "Only administrators may register Dash apps.")
            return view(request, *args, **kwargs)
        if url_part == "_dash-routes":
            return _refuse(404, "Dash routes are not served here.")
        ident, stateless = kwargs.get("ident", ""), bool(kwargs.get("stateless", False))
        if not _app_known(ident, stateless):
            return _refuse(404, f"No dashboard app named {ident!r}.")
        if url_part == "_dash-update-component":
            if request.method != "POST":
                return _refuse(405, "Dash callbacks are POSTed.")
            problem = _update_problem(request, ident, stateless)
            if problem:
                return _refuse(400, f"Malformed Dash callback request: {problem}.")
        response = view(request, *args, **kwargs)
        if url_part == COMPONENT_SUITES and response.status_code in (301, 302):
            # The redirect's target depends on the URL alone (a component's script and its installed version,
            # which the renderer puts in the name), so the browser may remember it: a page load then skips a dozen
            # round trips.
            response["Cache-Control"] = f"private, max-age={SUITE_REDIRECT_MAX_AGE}"
        return response

    endpoint.__name__ = f"guarded_{getattr(view, '__name__', 'dash_view')}"
    endpoint.__doc__ = view.__doc__
    # Deliberately no csrf_exempt attribute (upstream marks the callback view exempt): CSRF applies.
    return endpoint


def _url_part(pattern: URLPattern) -> str:
    route = str(pattern.pattern)
    for part in ("_dash-update-component", "_dash-routes", "_dash-layout", "_dash-dependencies", COMPONENT_SUITES):
        if part in route:
            return part
    return ""


app_name = upstream.app_name  # the library reverses its URLs in this namespace
urlpatterns = [
    path(str(pattern.pattern), _guarded(pattern.callback, pattern.name or "", _url_part(pattern)),
         pattern.default_args, name=pattern.name)
    for pattern in upstream.urlpatterns
]

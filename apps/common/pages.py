"""Server-side checks of the HTML pages: one decorator every app's pages use, one "not allowed" page.

A page asks for capabilities (``apps.accounts.roles`` maps roles to them) rather than a group name, like the
API does, so a service account or a custom group holding the capability is treated the same everywhere.
Anonymous visitors go to the login page; signed-in users without the capabilities get a 403 page saying
which role (or capability) the page is for. A ``NotFound`` raised by a selector becomes Django's 404 page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.generic import RedirectView

from .errors import NotFound


def has_capabilities(user: Any, capabilities: tuple[str, ...]) -> bool:
    """An active, signed-in user holding every capability."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return all(user.has_perm(f"accounts.{codename}") for codename in capabilities)


def forbidden(request: HttpRequest, *, role: str = "", capabilities: tuple[str, ...] = ()) -> HttpResponse:
    """The 403 page: which role, or else which capability, the page is for."""
    return render(request, "forbidden.html", {"role": role, "capabilities": capabilities}, status=403)


def capability_required(*capabilities: str, role: str = "") -> Callable:
    """Page decorator: anonymous → login page; signed in without the capabilities → 403 page."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_capabilities(request.user, capabilities):
                return forbidden(request, role=role, capabilities=capabilities)
            try:
                return view(request, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from exc

        return wrapper

    return decorate


class FaviconRedirect(RedirectView):
    """Browsers ask for /favicon.ico whatever the page links; the icon lives with the other static files
    (resolved per request, so a hashed name from the manifest storage is followed)."""

    permanent = False

    def get_redirect_url(self, *args: Any, **kwargs: Any) -> str:
        return static("favicon.ico")

"""Server-side role checks for dashboard pages and for every Dash callback behind them.

A page asks for capabilities (``apps.accounts.roles``) rather than a group name, like the API does, so
each role reaches exactly the pages its capabilities allow (administrators reach all of them). The same
capabilities guard the page's Dash callbacks: the callback endpoint is a plain URL anybody can POST to,
so a page check alone would leave the data open.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.selectors import user_roles

#: What each dashboard area requires (every capability listed).
OPERATOR_PAGE = ("view_process", "flag_points")
MODELER_PAGE = ("manage_models", "run_drift")
MANAGER_PAGE = ("view_overview",)


def role_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Refuse (403) a page whose ``role`` URL argument the signed-in user does not hold."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, role: str, **kwargs) -> HttpResponse:
        if role not in user_roles(user=request.user):
            return render(request, "dashboard/forbidden.html", {"role": role}, status=403)
        return view(request, *args, role=role, **kwargs)

    return wrapper


def has_capabilities(user: Any, capabilities: tuple[str, ...]) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return all(user.has_perm(f"accounts.{codename}") for codename in capabilities)


def capability_required(*capabilities: str, role: str) -> Callable:
    """Page decorator: anonymous → login page; signed in without the capabilities → 403 page."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_capabilities(request.user, capabilities):
                return render(request, "dashboard/forbidden.html", {"role": role}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate

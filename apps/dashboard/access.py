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
from django.core.exceptions import PermissionDenied
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


def callback_requires(*capabilities: str) -> Callable:
    """Dash callback decorator: refuse (HTTP 403) unless the caller holds the capabilities.

    django-plotly-dash passes ``request`` and ``user`` to callbacks that accept ``**kwargs``; the
    wrapper takes them from there, so the callback body never runs for a refused caller.
    """

    def decorate(callback: Callable) -> Callable:
        @wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = kwargs.get("user")
            if user is None and kwargs.get("request") is not None:
                user = kwargs["request"].user
            if not has_capabilities(user, capabilities):
                raise PermissionDenied("Your role does not allow this dashboard.")
            return callback(*args, **kwargs)

        return wrapper

    return decorate

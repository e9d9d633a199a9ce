"""Server-side role checks for dashboard pages and for every Dash callback behind them.

A page asks for capabilities (``apps.accounts.roles``) rather than a group name, like the API does, so
each role reaches exactly the pages its capabilities allow (administrators reach all of them). The same
capabilities guard the page's Dash callbacks: the callback endpoint is a plain URL anybody can POST to,
so a page check alone would leave the data open.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse

from apps.accounts.selectors import user_roles
from apps.common.pages import capability_required, forbidden, has_capabilities

__all__ = ["MANAGER_PAGE", "MODELER_PAGE", "OPERATOR_PAGE", "capability_required", "has_capabilities", "role_required"]

#: What each dashboard area requires (every capability listed).
OPERATOR_PAGE = ("view_process", "flag_points")
MODELER_PAGE = ("manage_models", "run_drift")
MANAGER_PAGE = ("view_overview",)


def role_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Refuse (403) a page whose ``role`` URL argument the signed-in user does not hold."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, role: str, **kwargs) -> HttpResponse:
        if role not in user_roles(user=request.user):
            return forbidden(request, role=role)
        return view(request, *args, role=role, **kwargs)

    return wrapper

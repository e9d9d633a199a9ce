"""Server-side role checks for dashboard pages (and, later, their Dash callbacks)."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.selectors import user_roles


def role_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Refuse (403) a page whose ``role`` URL argument the signed-in user does not hold."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, role: str, **kwargs) -> HttpResponse:
        if role not in user_roles(user=request.user):
            return render(request, "dashboard/forbidden.html", {"role": role}, status=403)
        return view(request, *args, role=role, **kwargs)

    return wrapper

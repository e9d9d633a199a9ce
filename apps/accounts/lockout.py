"""What a locked-out login attempt gets back (django-axes' ``AXES_LOCKOUT_CALLABLE``).

The sign-in page shows itself again with the reason and status 429; the API answers the common error
body with 429. Both say for how long, and that an administrator can lift the lock (Django admin,
Axes → Access attempts: delete the entry, or ``manage.py axes_reset_username <name>``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from apps.common.exception_handler import error_body

from .forms import PortalAuthenticationForm


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many failed sign-ins for this account or from this address: sign-in is locked for {minutes} "
        "minutes. An administrator can lift the lock sooner."
    )


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> HttpResponse:
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            error_body(status_code=429, code="locked_out", message=lockout_message()), status=429
        )
    else:
        form = PortalAuthenticationForm(request, initial={"username": request.POST.get("username", "")})
        response = render(
            request, "accounts/login.html", {"form": form, "lockout": lockout_message()}, status=429
        )
    response["Retry-After"] = retry_after
    return response

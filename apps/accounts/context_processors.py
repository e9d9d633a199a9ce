"""Template context: the signed-in user's roles, for the navigation bar."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .roles import ROLE_LABELS
from .selectors import user_roles


def roles(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_roles": [], "primary_role": None, "role_labels": ROLE_LABELS}
    names = user_roles(user=user)
    return {"user_roles": names, "primary_role": names[0] if names else None, "role_labels": ROLE_LABELS}

"""Reads of the accounts app."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from .models import ApiToken
from .roles import ROLE_PRIORITY


def user_roles(*, user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """The user's roles in landing priority order (superusers count as admin)."""
    if not user.is_authenticated:
        return []
    names = set(user.groups.values_list("name", flat=True))
    if user.is_superuser:
        names.add("admin")
    return [role for role in ROLE_PRIORITY if role in names]


def user_primary_role(*, user: AbstractBaseUser | AnonymousUser) -> str | None:
    """The role whose home the user lands on, or None for an account without a role."""
    roles = user_roles(user=user)
    return roles[0] if roles else None


def api_tokens_of(*, user: AbstractBaseUser) -> list[ApiToken]:
    """The user's tokens, newest first (digests only: keys are never stored)."""
    return list(ApiToken.objects.filter(user=user).order_by("-created_at"))

"""Role checks for the API, by capability permission rather than by group name.

A role is a Django group holding capability permissions (see ``apps.accounts.roles``); views ask for the
capability they need, so a service account can be granted one capability without a human role.
"""
from __future__ import annotations

from typing import ClassVar

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class HasCapability(BasePermission):
    """Grants access when the authenticated user holds every capability in ``required``."""

    required: ClassVar[tuple[str, ...]] = ()
    message = "Your role does not allow this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        return all(user.has_perm(f"accounts.{codename}") for codename in self.required)


def capability(*codenames: str) -> type[HasCapability]:
    """A permission class requiring the given capabilities, e.g. ``capability("ingest_data")``."""
    name = "Has_" + "_".join(codenames)
    return type(name, (HasCapability,), {"required": tuple(codenames)})


class AnyRole(BasePermission):
    """Any authenticated user who holds at least one role (outsiders without a group are refused)."""

    message = "Your account has no role yet; ask an administrator."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        return user.is_superuser or user.has_perm("accounts.use_platform")

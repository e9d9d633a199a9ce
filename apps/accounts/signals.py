"""Signal receivers of the accounts app."""
from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def ensure_roles_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    """After migrating, make the role groups match ``roles.ROLE_CAPABILITIES`` (idempotent)."""
    if sender.label != "accounts":
        return
    from .services import roles_ensure

    roles_ensure(using=kwargs.get("using", "default"))

"""Signing ``production`` in tests as a person would: a signer with the capability re-enters their password,
states the meaning and signs the version's sha256 (apps.registry.services.alias_move)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from apps.accounts.roles import MODELER
from apps.audit.services import SignatureInput
from apps.registry.selectors import version_sha256
from apps.registry.services import alias_move

PASSWORD = "correct-horse-battery"
SIGNER = "qa-signer"


def signer() -> Any:
    """A modeler who signs (and never uploads or trains in the tests), created on first use."""
    from tests.conftest import make_user

    User = get_user_model()
    return User.objects.filter(username=SIGNER).first() or make_user(User, SIGNER, MODELER, password=PASSWORD)


def signature_for(
    version: Any, *, password: str = PASSWORD, meaning: str = "approved", reason: str = ""
) -> SignatureInput:
    return SignatureInput(password=password, meaning=meaning, reason=reason, sha256=version_sha256(version))


def signature_body(version: Any, *, password: str = PASSWORD, meaning: str = "approved") -> dict[str, str]:
    """The API's nested ``signature`` object."""
    return {"password": password, "meaning": meaning, "sha256": version_sha256(version)}


def move_signed(version: Any, name: str = "production", *, user: Any = None, reason: str = "approved in tests") -> Any:
    """Move a signed alias (production) to ``version`` with a valid signature of ``user`` (default: the signer)."""
    user = user or signer()
    return alias_move(
        soft_sensor=version.soft_sensor,
        name=name,
        version=version,
        user=user,
        reason=reason,
        signature=signature_for(version),
    )

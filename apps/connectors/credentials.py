"""Connection secrets (passwords) at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256), never shown back.

The key is derived (SHA-256) from ``STAMM_CONNECTORS_SECRET_KEY`` when set, else from ``SECRET_KEY``; the
web process seals what a user types, the connectors process and the workers open it to connect. Rotating
the key material makes stored secrets unreadable: the source then reports "credentials unreadable" until
its password is entered again (``docs/connectors.md``).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class CredentialsUnreadable(ValueError):
    """A stored secret that the current key cannot open (the key material changed)."""


def _fernet() -> Fernet:
    material = getattr(settings, "STAMM_CONNECTORS_SECRET_KEY", "") or settings.SECRET_KEY
    digest = hashlib.sha256(b"stamm-connectors-credentials:" + material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def secret_seal(plain: str) -> str:
    """The stored form of a secret ("" stays "": no secret)."""
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def secret_open(sealed: str) -> str:
    if not sealed:
        return ""
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable(
            "the stored password cannot be decrypted with the current key (enter it again)"
        ) from None

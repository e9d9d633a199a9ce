"""API token keys: how they are made, how they are kept, how a derived one is computed (pure code).

A key is ``stamm_`` plus 43 URL-safe characters (256 random bits). The database keeps only
``key_digest(key)``; nothing can turn a digest back into a key, so a leaked database or backup holds
no usable credential, and a lost key is replaced, never shown again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

KEY_PREFIX = "stamm_"
#: Characters of a key kept in clear to tell tokens apart in lists (the ``stamm_`` part plus six).
SHOWN_CHARACTERS = len(KEY_PREFIX) + 6


def key_generate() -> str:
    """A new random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """What the database stores and looks keys up by: the SHA-256 of the key, in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_shown(key: str) -> str:
    """The first characters of a key, kept in clear (``stamm_ab12cd``)."""
    return key[:SHOWN_CHARACTERS]


def key_derive(*, secret: str, purpose: str) -> str:
    """A key every process holding ``secret`` (the ``SECRET_KEY``) computes alike, for a service account.

    HMAC-SHA256 of ``purpose`` under the secret: without the secret it cannot be computed, and whoever
    holds the secret can already sign sessions, so deriving the key gives nothing away. Rotating the
    secret changes the key; the service account's stored digest is refreshed on next use.
    """
    mac = hmac.new(secret.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).digest()
    return KEY_PREFIX + "svc_" + base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

"""Token authentication for the API: ``Authorization: Token <key>``, looked up by the key's digest.

The only place a request's token is checked. Keys are accepted in the ``Authorization`` header only (a
key in a URL ends up in proxy and server logs); the InfluxDB-compatible ``/write`` endpoint, whose 1.x
clients send ``u``/``p`` query parameters, extracts the key its own way and calls
``authenticate_credentials`` of this class (found through ``DEFAULT_AUTHENTICATION_CLASSES``).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiToken
from .services import api_token_touch
from .tokens import key_digest


class ApiTokenAuthentication(authentication.TokenAuthentication):
    """DRF's token scheme over ``ApiToken``: digests, expiry, last use."""

    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiToken]:
        token = ApiToken.objects.select_related("user").filter(digest=key_digest(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.expires_at is not None and token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed(
                f"Token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC; create a new one at /account/token/."
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        api_token_touch(token=token)
        return token.user, token

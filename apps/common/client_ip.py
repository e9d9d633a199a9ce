"""The client's address, honouring a proxy header only when the operator said proxies are there.

``X-Forwarded-For`` is written by whoever sends the request: trusted blindly, one new header value per
attempt resets any per-address limit. So the address is ``REMOTE_ADDR`` unless ``STAMM_TRUSTED_PROXIES``
says how many reverse proxies (each appending the address it received from) stand in front of the web
server; then it is the entry that many places from the right of ``X-Forwarded-For``, the one the
outermost trusted proxy saw. Login throttling (django-axes) uses this function.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

#: Where requests whose address is missing or not an IP address are counted (all together).
UNKNOWN_CLIENT = "0.0.0.0"  # noqa: S104 - a bucket for unknown clients, not an address to bind


def client_ip(request: HttpRequest) -> str:
    """The address login throttling counts against (always a valid IP address: the database stores it as one)."""
    remote = _valid(request.META.get("REMOTE_ADDR", "")) or UNKNOWN_CLIENT
    proxies = int(getattr(settings, "STAMM_TRUSTED_PROXIES", 0))
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if not forwarded:
        return remote
    return _valid(forwarded[-min(proxies, len(forwarded))]) or remote


def _valid(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None

"""Who is acting: the request (or the command, or the task) every audit row and signature is stamped with.

``AuditMiddleware`` keeps the current request in a context variable. The actor is read when the row is
written, not when the request arrives, because the API authenticates tokens inside DRF's view (after the
middleware ran); DRF hands the authenticated user back to the Django request, where this reads it.
Commands and tasks name their actor with ``acting_as(user, via="system")``; without one a row says
``system``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse


@dataclass(frozen=True)
class Acting:
    request: HttpRequest | None = None
    user: Any = None
    via: str = ""


_current: ContextVar[Acting | None] = ContextVar("stamm_audit_acting", default=None)


def _via_of(request: HttpRequest) -> str:
    path = request.path or ""
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith(("/api/", "/stamm/", "/write")):
        return "api"
    return "ui"


def remote_addr_of(request: HttpRequest | None) -> str | None:
    """The client's address: the first X-Forwarded-For hop when a proxy set one, else REMOTE_ADDR."""
    if request is None:
        return None
    forwarded = request.headers.get("X-Forwarded-For", "")
    address = forwarded.split(",")[0].strip() if forwarded else request.META.get("REMOTE_ADDR")
    if address and address.count(":") == 1 and "." in address:  # IPv4 with a port
        address = address.split(":")[0]
    return address or None


def current() -> Acting:
    """What is acting now: the request's user (via ui, api or admin), a named actor, or the system."""
    acting = _current.get()
    if acting is None:
        return Acting(via="system")
    if acting.request is not None:
        user = getattr(acting.request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return Acting(request=acting.request, user=user, via=acting.via)
        return Acting(request=acting.request, user=None, via=acting.via)
    return acting


def fill_entry(entry: Any) -> None:
    """Stamp an audit entry with the actor (by id and name), the address and the channel."""
    acting = current()
    user = acting.user
    if entry.actor_id is None and user is not None:
        entry.actor = user
    if not entry.actor_username:
        if entry.actor_id:
            entry.actor_username = getattr(entry.actor, "username", "")
        else:  # a request nobody is signed in to (e.g. obtaining a token with a password), or beat/a worker
            entry.actor_username = "anonymous" if acting.request is not None else "system"
    if entry.remote_addr is None:
        entry.remote_addr = remote_addr_of(acting.request)
    entry.via = entry.via or acting.via or "system"


@contextmanager
def acting_as(user: Any = None, *, via: str = "system") -> Iterator[None]:
    """Name the actor of a command or task (audit rows written inside carry it)."""
    token = _current.set(Acting(user=user if getattr(user, "pk", None) else None, via=via))
    try:
        yield
    finally:
        _current.reset(token)


class AuditMiddleware:
    """Keeps the request in context for the audit rows written while it is handled."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current.set(Acting(request=request, via=_via_of(request)))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)

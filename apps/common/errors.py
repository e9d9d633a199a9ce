"""Application errors raised by services and selectors, turned into HTTP responses at the edge.

Services never know about HTTP; they raise these, and the DRF exception handler maps each to one
status code and the common JSON error body.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ApplicationError(Exception):
    """A business-rule failure the caller can act on. ``details`` says what was wrong and where."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class ValidationFailed(ApplicationError):
    """Input that does not satisfy the rules (HTTP 400)."""

    status_code = 400
    code = "invalid"


class Forbidden(ApplicationError):
    """The caller may not do this, whatever the input (HTTP 403)."""

    status_code = 403
    code = "forbidden"


class NotFound(ApplicationError):
    """A named object does not exist (HTTP 404)."""

    status_code = 404
    code = "not_found"


class Conflict(ApplicationError):
    """The request conflicts with the current state (HTTP 409)."""

    status_code = 409
    code = "conflict"


class ServiceUnavailable(ApplicationError):
    """A dependency (database, broker, time-series store, registry) is down (HTTP 503)."""

    status_code = 503
    code = "unavailable"


def reject_unknown_fields(data: Iterable[str], allowed: Iterable[str], *, what: str, prefix: str = "") -> None:
    """Refuse any key of ``data`` outside ``allowed``, naming each one (``details``: ``prefix + name`` →
    "unknown field"). Services take their fields as keyword data from APIs, seeds and forms alike; a
    misspelt field must be an error the caller sees, never a value silently ignored."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationFailed(
            f"Unknown {what} fields: {', '.join(unknown)}.",
            details={f"{prefix}{name}": "unknown field" for name in unknown},
        )

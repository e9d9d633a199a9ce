"""Typed environment readers that fail loudly.

Settings never parse ``os.environ`` by hand: a malformed value must stop the process at start-up
with a message naming the variable, not surface later as a confusing runtime error.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_MISSING = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, default: Any, environ: Mapping[str, str] | None) -> Any:
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    if value is None:
        if default is _MISSING:
            raise ImproperlyConfigured(f"Environment variable {name} is required and not set.")
        return default
    return value


def env_str(name: str, default: Any = _MISSING, *, environ: Mapping[str, str] | None = None) -> str:
    """A string; required when no default is given."""
    value = _raw(name, default, environ)
    if value is not default and value.strip() == "" and default is _MISSING:
        raise ImproperlyConfigured(f"Environment variable {name} is set but empty.")
    return value


def env_bool(name: str, default: Any = _MISSING, *, environ: Mapping[str, str] | None = None) -> bool:
    """A boolean written as 1/0, true/false, yes/no or on/off."""
    value = _raw(name, default, environ)
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not a boolean (use true/false).")


def env_int(
    name: str,
    default: Any = _MISSING,
    *,
    minimum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """An integer, optionally bounded below."""
    value = _raw(name, default, environ)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"Environment variable {name}={number} must be >= {minimum}.")
    return number


def env_float(name: str, default: Any = _MISSING, *, environ: Mapping[str, str] | None = None) -> float:
    """A float."""
    value = _raw(name, default, environ)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not a number.") from None


def env_list(name: str, default: Any = _MISSING, *, environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    value = _raw(name, default, environ)
    if isinstance(value, list):
        return value
    return [item.strip() for item in str(value).split(",") if item.strip()]


def env_choice(
    name: str, choices: tuple[str, ...], default: Any = _MISSING, *, environ: Mapping[str, str] | None = None
) -> str:
    """One of a fixed set of strings."""
    value = _raw(name, default, environ)
    if value not in choices:
        raise ImproperlyConfigured(f"Environment variable {name}={value!r} must be one of {', '.join(choices)}.")
    return value


def database_from_url(url: str, *, name: str = "DATABASE_URL") -> dict[str, Any]:
    """A Django DATABASES entry from a URL; only PostgreSQL and SQLite are supported."""
    import dj_database_url

    if not url.startswith(("postgres://", "postgresql://", "sqlite://")):
        raise ImproperlyConfigured(f"{name} must be a postgresql:// or sqlite:// URL, got {url.split(':', 1)[0]}://")
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None
    return dict(config)

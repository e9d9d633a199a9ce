"""A registry of health checks that apps contribute to, and the report the health API returns.

``apps.common`` must not import domain apps, so each app registers its own check from its
``AppConfig.ready()``; the report runs them all and names every part that failed and why.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """One part's verdict: ``ok``, a human-readable ``detail`` and optional figures."""

    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


HealthCheck = Callable[[], CheckResult]
_CHECKS: dict[str, HealthCheck] = {}


def register_check(name: str) -> Callable[[HealthCheck], HealthCheck]:
    """Decorator: add ``func`` to the report under ``name`` (re-registering replaces it)."""

    def decorator(func: HealthCheck) -> HealthCheck:
        _CHECKS[name] = func
        return func

    return decorator


def registered_checks() -> dict[str, HealthCheck]:
    return dict(_CHECKS)


def health_report(checks: dict[str, HealthCheck] | None = None) -> dict[str, Any]:
    """Run every check; an exception inside one is that part's failure, never the report's."""
    checks = registered_checks() if checks is None else checks
    parts: dict[str, Any] = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            result = check()
        except Exception as exc:  # a broken dependency is a reported failure, not a crash
            result = CheckResult(ok=False, detail=f"{type(exc).__name__}: {exc}")
        parts[name] = {
            "ok": result.ok,
            "detail": result.detail,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            **result.data,
        }
    failing = sorted(name for name, part in parts.items() if not part["ok"])
    return {"status": "ok" if not failing else "failing", "failing": failing, "checks": parts}

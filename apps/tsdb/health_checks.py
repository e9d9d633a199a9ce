"""Health check: the time-series store answers and its three collections exist."""
from __future__ import annotations

from apps.common.health import CheckResult, register_check

from .backends import get_backend


@register_check("timeseries")
def check_timeseries() -> CheckResult:
    backend = get_backend()
    health = backend.ping()
    return CheckResult(
        ok=health.ok, detail=f"{backend.name}: {health.detail}", data={"collections": dict(health.collections)}
    )

"""The pipeline's health verdict: the platform's checks plus the registry probe, cached briefly per process."""

from __future__ import annotations

import time
from dataclasses import dataclass

from apps.common.health import health_report, registered_checks

from .registry_access import registry_client
from .schedules import heartbeat_record

#: Seconds a passing pipeline health verdict is reused inside one worker process (runs stay fast).
HEALTH_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class HealthVerdict:
    ok: bool
    checks: dict[str, tuple[bool, str]]

    @property
    def reason(self) -> str:
        return "; ".join(f"{name}: {detail}" for name, (ok, detail) in self.checks.items() if not ok)

    @property
    def summary(self) -> str:
        return "; ".join(f"{name}: {detail}" for name, (_, detail) in self.checks.items())


_health_cache: dict[str, tuple[float, HealthVerdict]] = {}
#: Checks of apps.common.health the pipeline needs before it runs.
PLATFORM_CHECKS = ("database", "broker", "timeseries")


def pipeline_health_check(*, use_cache: bool = True) -> HealthVerdict:
    """Database, time-series collections, broker, registry; a passing verdict is reused for a few seconds."""
    cached = _health_cache.get("verdict")
    if use_cache and cached and time.monotonic() - cached[0] < HEALTH_CACHE_SECONDS:
        return cached[1]
    # The platform's own checks (apps.common.health: database, broker, time-series store with its
    # collections), plus the one only the pipeline needs: the registry answers and accepts its token.
    report = health_report({name: registered_checks()[name] for name in PLATFORM_CHECKS})
    checks: dict[str, tuple[bool, str]] = {
        name: (part["ok"], part["detail"]) for name, part in report["checks"].items()
    }
    checks["registry"] = registry_client().ping()
    verdict = HealthVerdict(ok=all(ok for ok, _ in checks.values()), checks=checks)
    if verdict.ok:
        _health_cache["verdict"] = (time.monotonic(), verdict)
    else:
        _health_cache.pop("verdict", None)
    return verdict


def pipeline_health_record() -> HealthVerdict:
    """The beat health probe: run every check afresh and keep the verdict for the health endpoint."""
    verdict = pipeline_health_check(use_cache=False)
    heartbeat_record(name="pipeline-health", ok=verdict.ok, detail=verdict.summary[:2000])
    return verdict


def pipeline_health_forget() -> None:
    """Drop this process's cached verdict: the next run probes afresh."""
    _health_cache.clear()

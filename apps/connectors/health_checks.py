"""Health: every enabled data source is read by a running connectors process and connected."""

from __future__ import annotations

from apps.common.health import CheckResult, register_check

from .selectors import source_health


@register_check("connectors")
def check_connectors() -> CheckResult:
    sources = source_health()
    data = {"sources": [s.as_dict() for s in sources]}
    enabled = [s for s in sources if s.enabled]
    if not enabled:
        return CheckResult(ok=True, detail="no enabled data sources", data=data)
    problems = []
    for source in enabled:
        if not source.reporting:
            problems.append(f"{source.name}: no report from a connectors process (is connectors_run running?)")
        elif not source.connected:
            problems.append(f"{source.name}: not connected ({source.last_error or source.state})")
    if problems:
        return CheckResult(ok=False, detail="; ".join(problems), data=data)
    rate = sum(s.messages_per_second for s in enabled)
    return CheckResult(ok=True, detail=f"{len(enabled)} source(s) connected, {rate:.1f} messages/s", data=data)

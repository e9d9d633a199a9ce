"""Health checks: the scheduler heartbeat must be recent; the pipeline must keep up with the raw data."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from apps.common.health import CheckResult, register_check

from .selectors import heartbeat_get, heartbeat_last_seen, pipeline_lag


@register_check("beat")
def check_beat() -> CheckResult:
    last = heartbeat_last_seen(name="beat")
    limit = settings.STAMM_HEARTBEAT_MAX_AGE
    if last is None:
        return CheckResult(ok=False, detail="no scheduler heartbeat recorded yet (is beat running?)")
    age = (timezone.now() - last).total_seconds()
    data = {"last_seen": last.isoformat(), "age_seconds": round(age, 1)}
    if age > limit:
        return CheckResult(ok=False, detail=f"last heartbeat {age:.0f} s ago, more than {limit} s", data=data)
    return CheckResult(ok=True, detail=f"last heartbeat {age:.0f} s ago", data=data)


@register_check("pipeline")
def check_pipeline() -> CheckResult:
    """Lag per deployment (data waiting for a prediction) and the last pipeline health probe's verdict."""
    limit = settings.STAMM_PIPELINE_MAX_LAG
    deployments = pipeline_lag()
    probe = heartbeat_get(name="pipeline-health")
    data = {
        "deployments": deployments,
        "last_probe": None
        if probe is None
        else {"ok": probe.ok, "at": probe.last_seen.isoformat(), "detail": probe.detail},
    }
    problems = [
        f"{d['deployment']} has data waiting {d['lag_seconds']:.0f} s for a prediction (limit {limit} s)"
        for d in deployments
        if d.get("lag_seconds") is not None and d["lag_seconds"] > limit
    ]
    if probe is not None and probe.ok is False:
        problems.append(f"last pipeline probe failed: {probe.detail}")
    if problems:
        return CheckResult(ok=False, detail="; ".join(problems), data=data)
    lags = [d["lag_seconds"] for d in deployments if d.get("lag_seconds") is not None]
    detail = (
        f"{len(deployments)} deployment(s), worst lag {max(lags):.0f} s"
        if lags
        else f"{len(deployments)} deployment(s)"
    )
    return CheckResult(ok=True, detail=detail, data=data)

"""Health check: the scheduler heartbeat must be recent."""
from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from apps.common.health import CheckResult, register_check

from .selectors import heartbeat_last_seen


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

"""The registry's part of the health report: whether model runtime workers can start as configured."""

from __future__ import annotations

from django.db.models import Count

from apps.common.health import CheckResult

from .models import RuntimeEnvironment
from .runtimes import sandbox


def model_runtimes() -> CheckResult:
    """Fails when workers cannot start in the configured sandbox (``REGISTRY_RUNTIME_SANDBOX=bwrap`` without
    bubblewrap); reports the isolation in force and how many declared environments are in each state."""
    isolation = sandbox.describe()
    states = dict(RuntimeEnvironment.objects.values_list("state").annotate(count=Count("id")).order_by())
    data = {"sandbox": isolation["mode"], "environments": states}
    if isolation["problem"]:
        return CheckResult(ok=False, detail=str(isolation["problem"]), data=data)
    return CheckResult(ok=True, detail=f"runtime workers start in {isolation['mode']} mode", data=data)

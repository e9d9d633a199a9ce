"""The bias update seen from training: a deployment's configuration with the project's lab delay, and the beat
schedule of the periodic replay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.common.beat import periodic_task_ensure
from apps.orchestrator.services import bias_correction_configure as deployment_bias_configure

from .config import project_profile


def bias_correction_configure(*, deployment: Any, user: Any, data: Mapping[str, Any]) -> Any:
    """A new version of a deployment's bias update; the lab delay defaults to the project's profile."""
    data = dict(data)
    if data.get("lab_delay_seconds") in (None, ""):
        data["lab_delay_seconds"] = project_profile(deployment.soft_sensor.project).lab_delay_seconds
    return deployment_bias_configure(deployment=deployment, user=user, data=data)


#: Periodic task created on migrate (editable, or disabled, in the admin like every beat schedule).
BIAS_SCHEDULE = ("training-bias-update", "training.bias_apply_recent", 300)


def bias_schedule_ensure(*, using: str = "default") -> bool:
    """Create the periodic bias update if absent (an existing one, maybe edited, is left alone)."""
    name, task, every = BIAS_SCHEDULE
    return periodic_task_ensure(name=name, task=task, every=every, kwargs={"window_seconds": 6 * 3600}, using=using)

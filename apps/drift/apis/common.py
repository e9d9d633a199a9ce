"""What the drift API modules share: permissions, number cleaning, deployment and soft-sensor lookups."""
from __future__ import annotations

import math
from typing import Any

from apps.common.errors import NotFound, ValidationFailed
from apps.common.permissions import capability

CanView = capability("view_process")
CanRun = capability("run_drift")


def finite_or_none(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def deployment_named(value: Any, field: str = "deployment") -> Any:
    from apps.orchestrator.selectors import deployment_get

    try:
        return deployment_get(deployment_id=value)
    except NotFound:
        raise ValidationFailed(f"{field}: no deployment {value!r}", details={field: str(value)}) from None


def soft_sensor_named(project_id: Any, model_id: Any) -> Any:
    from apps.registry.selectors import soft_sensor_get

    if not project_id or not model_id:
        raise ValidationFailed("model_id: give project_id and model_id to name a soft sensor",
                               details={"model_id": "project_id and model_id are both required"})
    try:
        return soft_sensor_get(project_id=str(project_id), model_id=str(model_id))
    except NotFound:
        raise ValidationFailed(f"model_id: no soft sensor {model_id} in project {project_id}",
                               details={"model_id": model_id, "project_id": project_id}) from None


def target_fields(data: dict[str, Any]) -> dict[str, Any]:
    """``deployment`` (id or name) or ``project_id`` + ``model_id`` → model rows (absent keys stay absent)."""
    data = dict(data)
    out: dict[str, Any] = {}
    if "deployment" in data:
        value = data.pop("deployment")
        out["deployment"] = deployment_named(value) if value not in (None, "") else None
    project_id, model_id = data.pop("project_id", None), data.pop("model_id", None)
    if project_id or model_id:
        out["soft_sensor"] = soft_sensor_named(project_id, model_id)
    return {**data, **out}



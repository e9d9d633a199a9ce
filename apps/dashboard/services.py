"""Writes of the dashboard app: flagging points."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.db import transaction

from apps.common.errors import ValidationFailed
from apps.tsdb.types import GroupKey

from .models import FlagLevel, FlagType, PointFlag

MAX_DESCRIPTION = 2000


def point_flag_create(
    *,
    group: GroupKey,
    observed_property: str,
    time: datetime,
    level: str,
    type: str,  # noqa: A002 - the field's name in the issue and the table
    description: str,
    user: Any,
    value: float | None = None,
    collection: str = "raw",
    source: str = "",
    model_id: str = "",
    version: str = "",
) -> PointFlag:
    """Record that a person flagged a point; every problem is named in one 400."""
    problems: dict[str, str] = {}
    if level not in FlagLevel.values:
        problems["level"] = f"must be one of {', '.join(FlagLevel.values)}"
    if type not in FlagType.values:
        problems["type"] = f"must be one of {', '.join(FlagType.values)}"
    description = (description or "").strip()
    if not description:
        problems["description"] = "say what is wrong with the point"
    elif len(description) > MAX_DESCRIPTION:
        problems["description"] = f"at most {MAX_DESCRIPTION} characters"
    if not observed_property:
        problems["series"] = "choose the series the point belongs to"
    if time is None or time.tzinfo is None:
        problems["time"] = "a timezone-aware time is required"
    if value is not None and not math.isfinite(value):
        problems["value"] = "must be a finite number"
    if collection not in ("raw", "predictions"):
        problems["collection"] = "must be raw or predictions"
    if problems:
        raise ValidationFailed(
            "The flag was not saved: " + "; ".join(f"{k} {v}" for k, v in problems.items()), details=problems
        )
    with transaction.atomic():
        return PointFlag.objects.create(
            project_name=group.project_name,
            device_id=group.device_id,
            batch_id=group.batch_id,
            collection=collection,
            source=source,
            observed_property=observed_property,
            model_id=model_id,
            version=version,
            time=time,
            value=value,
            level=level,
            type=type,
            description=description,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )

"""Reads behind the dashboards' pickers and unit labels: which projects, devices and batches hold data, the
``project|device|batch`` values the pickers carry, and each variable's unit (composed from the tsdb and
registry selectors, never their tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.common.errors import ValidationFailed
from apps.tsdb.selectors import (
    groups_list,
    variable_metadata_list,
)
from apps.tsdb.types import (
    Collection,
    GroupInfo,
    GroupKey,
)

from .formatting import ago


def group_value(group: GroupKey) -> str:
    return f"{group.project_name}|{group.device_id}|{group.batch_id}"


def parse_group(value: Any) -> GroupKey:
    """``"project|device|batch"`` (what the pickers carry) → GroupKey; anything else is a 400."""
    parts = str(value or "").split("|")
    if len(parts) != 3 or not all(parts):
        raise ValidationFailed("batch: expected project|device|batch", details={"batch": value})
    return GroupKey(*parts)


# -------------------------------------------------------------------------------------------- pickers


def project_names() -> list[str]:
    """Projects that have raw data, newest activity first."""
    seen: dict[str, None] = {}
    for info in groups_list(collection=Collection.RAW):
        seen.setdefault(info.group.project_name, None)
    return list(seen)


def group_infos(*, project_name: str | None = None, device_id: str | None = None) -> list[GroupInfo]:
    """(project, device, batch) groups with data, most recent first."""
    return groups_list(collection=Collection.RAW, project_name=project_name or None, device_id=device_id or None)


def batch_options(
    *, project_name: str, device_id: str | None = None, now: datetime | None = None
) -> list[dict[str, str]]:
    """Picker options: "batch_91 — last data 4 minutes ago" (most recent first)."""
    now = now or timezone.now()
    return [
        {
            "label": f"{info.group.batch_id} — last data {ago(info.last_time, now=now)}"
            + ("" if device_id else f" ({info.group.device_id})"),
            "value": group_value(info.group),
        }
        for info in group_infos(project_name=project_name, device_id=device_id)
    ]


def all_batch_options() -> list[dict[str, str]]:
    """Picker options for every stored batch of every project: "project / device / batch"."""
    return [
        {"label": f"{g.group.project_name} / {g.group.device_id} / {g.group.batch_id}", "value": group_value(g.group)}
        for g in group_infos()
    ]


def device_ids(*, project_name: str) -> list[str]:
    return sorted({info.group.device_id for info in group_infos(project_name=project_name)})


# ------------------------------------------------------------------------------------------------ units


#: Seconds the units of a project stay cached (they change when a dictionary or descriptor does).
UNITS_CACHE_SECONDS = 60


def variable_units(*, project_name: str, device_id: str | None = None) -> dict[str, str]:
    """Unit of each variable: the store's display metadata first, then the registry dictionary and the
    soft sensors' descriptors (features and outputs). Cached for ``UNITS_CACHE_SECONDS`` in Django's
    cache (per process, or shared when ``CACHES`` names a shared backend): every refresh needs them."""
    from django.core.cache import cache

    key = f"dashboard:units:{project_name}:{device_id or '*'}"
    units = cache.get(key)
    if units is None:
        units = _variable_units(project_name=project_name, device_id=device_id)
        cache.set(key, units, UNITS_CACHE_SECONDS)
    return units


def _variable_units(*, project_name: str, device_id: str | None) -> dict[str, str]:
    from apps.registry.selectors import variable_units_for

    units = variable_units_for(project_name=project_name)
    for meta in variable_metadata_list(project_name=project_name, device_id=device_id):
        if meta.unit:
            units[meta.observed_property] = meta.unit
    return units


def with_unit(name: str, units: dict[str, str]) -> str:
    unit = units.get(name)
    return f"{name} [{unit}]" if unit else name


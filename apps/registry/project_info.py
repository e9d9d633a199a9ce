"""STAMM ``project_info.yaml``: parse, validate and export (framework-free, contracts §2.1).

Errors name the path (``variables[4].column_type: must be one of ...``) and are all reported at once.
Keys the registry does not model (``db_config``, anything new) are kept in ``extra`` so an export gives
back what was imported.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .descriptors import DescriptorError, parse_date
from .yaml_io import dump_yaml, load_yaml

PROJECT_ID_RE = re.compile(r"^P[0-9]{4}$")
COLUMN_TYPES = ("Time", "Actuator", "Sensor", "Soft_sensor", "Computed_variable", "Offline_measurement", "Experiment")
KNOWN_KEYS = (
    "project_ID",
    "project_name",
    "description",
    "coordinator",
    "contributors",
    "start_date",
    "end_date",
    "data_sources",
    "references",
    "variables",
)


class ProjectInfoError(DescriptorError):
    """An invalid project_info document; ``errors`` lists ``path: message`` entries."""


@dataclass(frozen=True)
class VariableInfo:
    name: str
    renamed_variable: str
    column_type: str
    units: str
    description: str
    decimals: int | None = None


@dataclass(frozen=True)
class ProjectInfo:
    project_id: str
    name: str
    description: str
    coordinator: str
    contributors: list[str]
    start_date: dt.date | None
    end_date: dt.date | None
    data_sources: list[dict[str, Any]]
    references: list[dict[str, Any]]
    variables: list[VariableInfo]
    extra: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _canonical_type(value: str) -> str | None:
    for kind in COLUMN_TYPES:
        if kind.lower() == value.strip().lower().replace(" ", "_"):
            return kind
    return None


def parse_project_info(data: Any) -> ProjectInfo:
    """Validate a decoded project_info document. Raises ProjectInfoError listing every problem."""
    if not isinstance(data, Mapping):
        raise ProjectInfoError(["<root>: must be a mapping"])
    errors: list[str] = []
    project_id = _text(data.get("project_ID"))
    if not project_id:
        errors.append("project_ID: is required (P followed by 4 digits)")
    elif not PROJECT_ID_RE.match(project_id):
        errors.append(f"project_ID: must be P followed by 4 digits, got {project_id!r}")
    name = _text(data.get("project_name"))
    if not name:
        errors.append("project_name: is required")
    dates: dict[str, dt.date | None] = {}
    for key in ("start_date", "end_date"):
        raw = data.get(key)
        dates[key] = parse_date(raw)
        if raw not in (None, "") and dates[key] is None:
            errors.append(f"{key}: unrecognised date {raw!r} (expected dd/mm/yyyy)")
    contributors_raw = data.get("contributors") or []
    if isinstance(contributors_raw, str):
        contributors = [part.strip() for part in contributors_raw.split(",") if part.strip()]
    elif isinstance(contributors_raw, list):
        contributors = [_text(item) for item in contributors_raw]
    else:
        errors.append("contributors: must be a list")
        contributors = []

    def mapping_list(key: str) -> list[dict[str, Any]]:
        raw = data.get(key) or []
        if not isinstance(raw, list):
            errors.append(f"{key}: must be a list")
            return []
        result = []
        for index, item in enumerate(raw):
            if not isinstance(item, Mapping):
                errors.append(f"{key}[{index}]: must be a mapping")
            else:
                result.append(dict(item))
        return result

    data_sources = mapping_list("data_sources")
    references = mapping_list("references")
    variables: list[VariableInfo] = []
    raw_names: set[str] = set()
    for index, item in enumerate(mapping_list("variables")):
        path = f"variables[{index}]"
        raw_name = _text(item.get("name"))
        if not raw_name:
            errors.append(f"{path}.name: is required (the raw column header)")
            continue
        if raw_name in raw_names:
            errors.append(f"{path}.name: duplicate variable {raw_name!r}")
        raw_names.add(raw_name)
        kind_raw = _text(item.get("column_type"))
        kind = _canonical_type(kind_raw) if kind_raw else None
        if kind is None:
            errors.append(f"{path}.column_type: must be one of {', '.join(COLUMN_TYPES)}, got {kind_raw!r}")
            continue
        decimals = item.get("decimals")
        if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0):
            errors.append(f"{path}.decimals: must be a non-negative integer")
            decimals = None
        variables.append(
            VariableInfo(
                name=raw_name,
                renamed_variable=_text(item.get("renamed_variable")) or raw_name,
                column_type=kind,
                units=_text(item.get("units")),
                description=_text(item.get("description")),
                decimals=decimals,
            )
        )
    if errors:
        raise ProjectInfoError(errors)
    return ProjectInfo(
        project_id=project_id,
        name=name,
        description=_text(data.get("description")),
        coordinator=_text(data.get("coordinator")),
        contributors=contributors,
        start_date=dates["start_date"],
        end_date=dates["end_date"],
        data_sources=data_sources,
        references=references,
        variables=variables,
        extra={key: value for key, value in data.items() if key not in KNOWN_KEYS},
    )


def parse_project_info_yaml(text: str | bytes) -> ProjectInfo:
    """Decode and validate project_info.yaml text."""
    try:
        data = load_yaml(text)
    except DescriptorError as exc:
        raise ProjectInfoError(exc.errors) from exc
    return parse_project_info(data)


def format_date(value: dt.date | None) -> str | None:
    """STAMM's ``dd/mm/yyyy``."""
    return value.strftime("%d/%m/%Y") if value else None


def project_info_document(info: ProjectInfo) -> dict[str, Any]:
    """The project_info mapping in upstream key order (also the JSON of ``GET …/project_info/``)."""
    document: dict[str, Any] = {
        "project_ID": info.project_id,
        "project_name": info.name,
        "description": info.description,
        "coordinator": info.coordinator,
        "contributors": list(info.contributors),
        "start_date": format_date(info.start_date),
        "end_date": format_date(info.end_date),
        "data_sources": list(info.data_sources),
    }
    document.update(info.extra)
    document["references"] = list(info.references)
    document["variables"] = [
        {
            "name": v.name,
            "column_type": v.column_type,
            "units": v.units,
            "renamed_variable": v.renamed_variable,
            "description": v.description,
            **({"decimals": v.decimals} if v.decimals is not None else {}),
        }
        for v in info.variables
    ]
    return document


def export_project_info_yaml(info: ProjectInfo) -> str:
    return dump_yaml(project_info_document(info))

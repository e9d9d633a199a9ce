"""Projects and their variable dictionaries (``project_info.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from apps.common.errors import ValidationFailed

from ..models import (
    Project,
    Variable,
)
from ..project_info import ProjectInfo, VariableInfo

# -------------------------------------------------------------------------------------------- projects


@transaction.atomic
def project_upsert(*, info: ProjectInfo, replace_variables: bool = True) -> Project:
    """Create or update a project from a ProjectInfo; its variable dictionary is replaced when given."""
    project, _ = Project.objects.update_or_create(
        project_id=info.project_id,
        defaults={
            "name": info.name,
            "description": info.description,
            "coordinator": info.coordinator,
            "contributors": list(info.contributors),
            "start_date": info.start_date,
            "end_date": info.end_date,
            "data_sources": list(info.data_sources),
            "references": list(info.references),
            "extra": dict(info.extra),
        },
    )
    if replace_variables:
        variables_replace(project=project, variables=info.variables)
    return project


@transaction.atomic
def project_update(*, project: Project, data: Mapping[str, Any]) -> Project:
    """Change project fields (name, description, coordinator, contributors, dates, sources, references)."""
    allowed = (
        "name",
        "description",
        "coordinator",
        "contributors",
        "start_date",
        "end_date",
        "data_sources",
        "references",
    )
    for key in allowed:
        if key in data:
            setattr(project, key, data[key])
    project.full_clean()
    project.save()
    return project


@transaction.atomic
def variables_replace(*, project: Project, variables: list[VariableInfo]) -> list[Variable]:
    """Replace the project's variable dictionary in one bulk write (the import maps columns through it)."""
    seen: set[str] = set()
    for index, variable in enumerate(variables):
        if variable.name in seen:
            raise ValidationFailed(
                f"variables[{index}].name: duplicate variable {variable.name!r}", details={"variables": index}
            )
        seen.add(variable.name)
    Variable.objects.filter(project=project).delete()
    rows = [
        Variable(
            project=project,
            position=index,
            raw_name=v.name,
            canonical_name=v.renamed_variable or v.name,
            column_type=v.column_type,
            units=v.units,
            description=v.description,
            display_decimals=2 if v.decimals is None else v.decimals,
        )
        for index, v in enumerate(variables)
    ]
    return Variable.objects.bulk_create(rows)

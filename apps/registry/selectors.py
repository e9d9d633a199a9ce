"""Reads of the registry: projects, dictionaries, soft sensors, versions, aliases (no N+1 queries)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Prefetch, QuerySet

from apps.common.errors import NotFound

from .models import (
    Alias,
    AliasMove,
    DescriptorRevision,
    ModelVersion,
    Project,
    SoftSensor,
    Variable,
    VersionArtifact,
    VersionStatus,
)
from .project_info import ProjectInfo, VariableInfo, project_info_document


def project_list() -> QuerySet[Project]:
    return Project.objects.all()


def project_get(*, project_id: str) -> Project:
    try:
        return Project.objects.get(project_id=project_id)
    except Project.DoesNotExist:
        raise NotFound(f"Project {project_id} does not exist.", details={"project_id": project_id}) from None


def variable_list(*, project: Project) -> QuerySet[Variable]:
    return Variable.objects.filter(project=project).order_by("position", "id")


def variable_mapping(*, project: Project) -> dict[str, tuple[str, str, str]]:
    """``{raw_name: (canonical_name, column_type, units)}``: how a time-series import maps columns."""
    rows = Variable.objects.filter(project=project).values_list("raw_name", "canonical_name", "column_type", "units")
    return {raw: (canonical, kind, units) for raw, canonical, kind, units in rows}


def project_info_for(*, project: Project, variables: list[Variable] | None = None) -> ProjectInfo:
    """The project as a ProjectInfo (what project_info.yaml holds)."""
    rows = variables if variables is not None else list(variable_list(project=project))
    return ProjectInfo(
        project_id=project.project_id,
        name=project.name,
        description=project.description,
        coordinator=project.coordinator,
        contributors=list(project.contributors or []),
        start_date=project.start_date,
        end_date=project.end_date,
        data_sources=list(project.data_sources or []),
        references=list(project.references or []),
        variables=[
            VariableInfo(
                name=v.raw_name,
                renamed_variable=v.canonical_name,
                column_type=v.column_type,
                units=v.units,
                description=v.description,
                decimals=v.display_decimals,
            )
            for v in rows
        ],
        extra=dict(project.extra or {}),
    )


def project_info_json(*, project: Project) -> dict[str, Any]:
    """The whole project_info document as upstream's ``GET …/project_info/`` returns it."""
    return project_info_document(project_info_for(project=project))


def _versions_prefetch() -> Prefetch:
    return Prefetch(
        "versions",
        queryset=ModelVersion.objects.select_related("created_by").prefetch_related("artifacts").order_by("-number"),
    )


def soft_sensor_list(*, project: Project, include_archived: bool = False) -> list[SoftSensor]:
    """Soft sensors of a project with versions (newest first), artefacts and aliases prefetched."""
    queryset = SoftSensor.objects.filter(project=project)
    if not include_archived:
        queryset = queryset.filter(archived_at__isnull=True)
    return list(
        queryset.select_related("project").prefetch_related(
            _versions_prefetch(), Prefetch("aliases", queryset=Alias.objects.select_related("version"))
        )
    )


def soft_sensor_get(*, project_id: str, model_id: str) -> SoftSensor:
    try:
        return (
            SoftSensor.objects.select_related("project")
            .prefetch_related(
                _versions_prefetch(), Prefetch("aliases", queryset=Alias.objects.select_related("version"))
            )
            .get(project__project_id=project_id, model_id=model_id)
        )
    except SoftSensor.DoesNotExist:
        raise NotFound(
            f"Soft sensor {model_id} does not exist in project {project_id}.",
            details={"project_id": project_id, "model_id": model_id},
        ) from None


def current_version(soft_sensor: SoftSensor) -> ModelVersion | None:
    """What upstream calls "the model": the ``production`` alias target, else the newest live version.

    Uses the prefetched ``versions`` and ``aliases`` when present.
    """
    for alias in soft_sensor.aliases.all():
        if alias.name == "production":
            version = next((v for v in soft_sensor.versions.all() if v.pk == alias.version_id), None)
            return version or alias.version
    return next((v for v in soft_sensor.versions.all() if v.archived_at is None), None)


def version_get(*, soft_sensor: SoftSensor, number: int) -> ModelVersion:
    for version in soft_sensor.versions.all():
        if version.number == number:
            return version
    raise NotFound(
        f"{soft_sensor.model_id} has no version {number}.",
        details={"model_id": soft_sensor.model_id, "version": number},
    )


_PREDICT_SQL = """
SELECT v.id, v.number, v.version_label, v.descriptor, v.flavor, v.status, v.status_description,
       v.training_data, v.first_predicted_at, v.archived_at, v.created_at, v.soft_sensor_id, ss.model_id
FROM registry_modelversion v
JOIN registry_softsensor ss ON ss.id = v.soft_sensor_id
JOIN registry_project p ON p.id = ss.project_id
{join}
WHERE p.project_id = %s AND ss.model_id = %s AND {condition}
"""
_BY_ALIAS = _PREDICT_SQL.format(
    join="JOIN registry_alias a ON a.version_id = v.id AND a.soft_sensor_id = ss.id", condition="a.name = %s"
)
_BY_NUMBER = _PREDICT_SQL.format(join="", condition="v.number = %s")


def version_for_predict(
    *, project_id: str, model_id: str, number: int | None = None, alias: str | None = None
) -> ModelVersion:
    """The version to serve, in one parameterised query (this is the hot path of every prediction).

    The ORM would spend more time compiling the join than the database spends running it, so the SQL
    is written once here; the row becomes an unsaved-looking ModelVersion with the fields serving needs.
    Artefact rows are fetched by ``version_artifacts`` (cached per process: a version's files never change).
    """
    sql, params = (
        (_BY_ALIAS, [project_id, model_id, alias])
        if alias is not None
        else (_BY_NUMBER, [project_id, model_id, number])
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        what = f"alias {alias!r}" if alias is not None else f"version {number}"
        raise NotFound(
            f"{model_id} in {project_id} has no {what}.",
            details={"project_id": project_id, "model_id": model_id, "alias" if alias else "version": alias or number},
        )
    (
        pk,
        number_,
        label,
        descriptor,
        flavor,
        status,
        status_description,
        training_data,
        first_predicted_at,
        archived_at,
        created_at,
        soft_sensor_id,
        model_id_,
    ) = row
    json_field = ModelVersion._meta.get_field("descriptor")
    datetime_field = ModelVersion._meta.get_field("created_at")
    version = ModelVersion(
        id=pk,
        number=number_,
        version_label=label,
        flavor=flavor,
        status=status,
        status_description=status_description,
        descriptor=json_field.from_db_value(descriptor, None, connection),
        training_data=json_field.from_db_value(training_data, None, connection),
        first_predicted_at=_as_datetime(datetime_field, first_predicted_at),
        archived_at=_as_datetime(datetime_field, archived_at),
        created_at=_as_datetime(datetime_field, created_at),
        soft_sensor_id=soft_sensor_id,
    )
    version._state.adding = False
    version._state.db = "default"
    version.model_id = model_id_
    return version


def _as_datetime(field, value):
    if value is None or not isinstance(value, str):
        return value
    converters = connection.ops.get_db_converters(field)
    for converter in converters:
        value = converter(value, field, connection)
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime  # noqa: PLC0415

        value = parse_datetime(value)
    return value


_ARTIFACTS: dict[tuple[int, Any], list[VersionArtifact]] = {}


def version_artifacts(version: ModelVersion) -> list[VersionArtifact]:
    """A version's artefact rows, cached per process by (id, created_at): they never change."""
    key = (version.pk, version.created_at)
    cached = _ARTIFACTS.get(key)
    if cached is None:
        cached = list(VersionArtifact.objects.filter(version_id=version.pk))
        if len(_ARTIFACTS) > 1024:
            _ARTIFACTS.clear()
        _ARTIFACTS[key] = cached
    return cached


def online_versions(*, project: Project) -> list[ModelVersion]:
    """The current version of every soft sensor of the project, when it is online (models_full)."""
    result = []
    for soft_sensor in soft_sensor_list(project=project):
        version = current_version(soft_sensor)
        if version is not None and version.status == VersionStatus.ONLINE and version.archived_at is None:
            result.append(version)
    return result


def alias_history(*, soft_sensor: SoftSensor) -> QuerySet[AliasMove]:
    return AliasMove.objects.filter(soft_sensor=soft_sensor).select_related("from_version", "to_version", "moved_by")


def descriptor_history(*, version: ModelVersion) -> QuerySet[DescriptorRevision]:
    return DescriptorRevision.objects.filter(version=version).select_related("changed_by")

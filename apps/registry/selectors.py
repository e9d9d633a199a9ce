"""Reads of the registry: projects, dictionaries, soft sensors, versions, aliases (no N+1 queries)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import Max, Prefetch, Q, QuerySet

from apps.common.errors import NotFound

from .artifact_safety import approval_pending
from .models import (
    Alias,
    AliasMove,
    DescriptorRevision,
    ModelVersion,
    Project,
    RuntimeEnvironment,
    SigningPolicy,
    SoftSensor,
    Variable,
    VersionArtifact,
    VersionExplanation,
    VersionStatus,
)
from .project_info import ProjectInfo, VariableInfo, project_info_document
from .spec import ModelSpec, environment_row, spec_build


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


def projects_by_tag(*, project_name: str) -> QuerySet[Project]:
    """Projects whose time-series tag (``project_name``) is this one, case-insensitively."""
    return Project.objects.filter(name__iexact=project_name).order_by("project_id")


def variable_dictionary_by_tag(project_name: str) -> dict[str, tuple[str, str, str]] | None:
    """The dictionary of the project whose time-series tag is ``project_name`` (the provider the registry
    registers in ``apps.common.dictionaries`` for the store's CSV import); None when there is none."""
    project = projects_by_tag(project_name=project_name).first()
    if project is None:
        return None
    return variable_mapping(project=project) or None


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
        queryset=ModelVersion.objects.select_related("created_by", "environment")
        .prefetch_related(
            # the uploader and the approver are shown with every artefact: fetched with them, not one by one
            Prefetch("artifacts", queryset=VersionArtifact.objects.select_related("trusted_by", "approved_by"))
        )
        .order_by("-number"),
    )


def soft_sensor_list(*, project: Project, include_archived: bool = False) -> list[SoftSensor]:
    """Soft sensors of a project with versions (newest first), artefacts and aliases prefetched."""
    queryset = SoftSensor.objects.filter(project=project)
    if not include_archived:
        queryset = queryset.filter(archived_at__isnull=True)
    return list(
        queryset.select_related("project").prefetch_related(
            _versions_prefetch(), Prefetch("aliases", queryset=Alias.objects.select_related("version__environment"))
        )
    )


def soft_sensor_get(*, project_id: str, model_id: str) -> SoftSensor:
    try:
        return (
            SoftSensor.objects.select_related("project")
            .prefetch_related(
                _versions_prefetch(), Prefetch("aliases", queryset=Alias.objects.select_related("version__environment"))
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


# ------------------------------------------------------------------------------------------------ specs


def version_spec(version: ModelVersion) -> ModelSpec:
    """The spec of a version row (its soft sensor and project are read through the relation; select them
    with ``select_related("soft_sensor__project")`` when building many)."""
    soft_sensor = version.soft_sensor
    return spec_build(
        descriptor=version.descriptor,
        training_data=version.training_data,
        version_id=version.pk,
        soft_sensor_id=version.soft_sensor_id,
        project_id=soft_sensor.project.project_id,
        project_name=soft_sensor.project.name,
        model_id=soft_sensor.model_id,
        number=version.number,
        label=version.version_label,
        status=version.status,
        status_description=version.status_description,
        archived=version.archived_at is not None,
        flavor=version.flavor,
        source=version.source,
        created_at=version.created_at,
        first_predicted_at=version.first_predicted_at,
        environment=_environment_row(version),
    )


def _environment_row(version: ModelVersion):
    if version.environment_id is None:
        return None
    env = version.environment
    return environment_row(env.key, env.state, env.message, env.location, env.variables)


def _versions() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("soft_sensor__project", "environment")


def spec_for_version(*, version_id: int) -> ModelSpec:
    """The spec of one version by its id (404 when it is gone)."""
    version = _versions().filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"Model version {version_id} does not exist.", details={"version_id": version_id})
    return version_spec(version)


def specs_for_versions(*, version_ids: Iterable[int]) -> dict[int, ModelSpec]:
    """Specs by version id, in one query (ids that do not exist are left out)."""
    return {v.pk: version_spec(v) for v in _versions().filter(pk__in=set(version_ids))}


def specs_for_aliases(*, pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], ModelSpec]:
    """``{(soft_sensor_id, alias): spec}`` of the versions the aliases point at now, in one query."""
    pairs = set(pairs)
    if not pairs:
        return {}
    aliases = Alias.objects.filter(
        soft_sensor_id__in={s for s, _ in pairs}, name__in={n for _, n in pairs}
    ).select_related("version__soft_sensor__project", "version__environment")
    return {(a.soft_sensor_id, a.name): version_spec(a.version) for a in aliases if (a.soft_sensor_id, a.name) in pairs}


def spec_for_tags(*, project_name: str, model_tag: str, version_tag: str) -> ModelSpec:
    """The version behind stored predictions tagged ``model_id``/``version`` in a project (404 when none)."""
    try:
        number = int(version_tag)
    except (TypeError, ValueError):
        raise NotFound(
            f"No version {version_tag!r} of model {model_tag!r}.", details={"version": version_tag}
        ) from None
    version = (
        _versions()
        .filter(soft_sensor__project__name=project_name, soft_sensor__model_id__iexact=model_tag, number=number)
        .first()
    )
    if version is None:
        raise NotFound(
            f"No version {version_tag} of model {model_tag} in project {project_name}.",
            details={"project": project_name, "model_id": model_tag, "version": version_tag},
        )
    return version_spec(version)


def version_explanation_get(*, version_id: int) -> VersionExplanation | None:
    """The stored explanation of a version (importance, partial dependence, background), or None."""
    return VersionExplanation.objects.filter(version_id=version_id).first()


def version_explanations(*, version_ids: Iterable[int]) -> dict[int, VersionExplanation]:
    """Stored explanations by version id, in one query (versions without one are left out)."""
    return {e.version_id: e for e in VersionExplanation.objects.filter(version_id__in=set(version_ids))}


def spec_for_alias(*, soft_sensor_id: int, alias: str) -> ModelSpec | None:
    """The spec of the version ``alias`` points at, or None when the soft sensor has no such alias."""
    return specs_for_aliases(pairs=[(soft_sensor_id, alias)]).get((soft_sensor_id, alias))


def spec_current(*, soft_sensor: SoftSensor) -> ModelSpec | None:
    """The spec of what upstream calls "the model" (``current_version``), or None."""
    version = current_version(soft_sensor)
    if version is None:
        return None
    version.soft_sensor = soft_sensor
    return version_spec(version)


def specs_for_project(*, project_id: str, include_archived: bool = False) -> list[ModelSpec]:
    """Every version of every soft sensor of a project (newest version first within a soft sensor)."""
    queryset = _versions().filter(soft_sensor__project__project_id=project_id, soft_sensor__archived_at__isnull=True)
    if not include_archived:
        queryset = queryset.filter(archived_at__isnull=True)
    return [version_spec(v) for v in queryset.order_by("soft_sensor__model_id", "-number")]


def specs_all(*, include_archived: bool = False) -> list[ModelSpec]:
    """Every version of every live soft sensor of every project (for pickers), in one query."""
    queryset = _versions().filter(soft_sensor__archived_at__isnull=True)
    if not include_archived:
        queryset = queryset.filter(archived_at__isnull=True)
    return [
        version_spec(v)
        for v in queryset.order_by("soft_sensor__project__project_id", "soft_sensor__model_id", "-number")
    ]


def alias_names_by_version(*, version_ids: Iterable[int]) -> dict[int, list[str]]:
    """The aliases pointing at each version (for labels such as ``v3 @production``)."""
    result: dict[int, list[str]] = {}
    for version_id, name in Alias.objects.filter(version_id__in=set(version_ids)).values_list("version_id", "name"):
        result.setdefault(version_id, []).append(name)
    return {k: sorted(v) for k, v in result.items()}


_PREDICT_SQL = """
SELECT v.id, v.number, v.version_label, v.descriptor, v.flavor, v.status, v.status_description,
       v.training_data, v.first_predicted_at, v.archived_at, v.created_at, v.source, v.soft_sensor_id,
       ss.model_id, p.project_id, p.name, e.key, e.state, e.message, e.location, e.variables
FROM registry_modelversion v
JOIN registry_softsensor ss ON ss.id = v.soft_sensor_id
JOIN registry_project p ON p.id = ss.project_id
LEFT JOIN registry_runtimeenvironment e ON e.id = v.environment_id
{join}
WHERE p.project_id = %s AND ss.model_id = %s AND {condition}
"""
_BY_ALIAS = _PREDICT_SQL.format(
    join="JOIN registry_alias a ON a.version_id = v.id AND a.soft_sensor_id = ss.id", condition="a.name = %s"
)
_BY_NUMBER = _PREDICT_SQL.format(join="", condition="v.number = %s")


def spec_get(*, project_id: str, model_id: str, number: int | None = None, alias: str | None = None) -> ModelSpec:
    """The spec of a version by number or alias, in one parameterised query (the hot path of every prediction).

    The ORM would spend more time compiling the join than the database spends running it, so the SQL is
    written once here. Artefact rows are fetched by ``version_artifacts`` (cached per process: a version's
    files never change).
    """
    sql, params = (
        (_BY_ALIAS, [project_id, model_id, alias])
        if alias is not None
        else (_BY_NUMBER, [project_id, model_id, number])
    )
    if alias is None and not 0 <= int(number or 0) < 2**31:  # beyond any stored number (and SQLite's integers)
        raise NotFound(f"{model_id} in {project_id} has no version {number}.", details={"version": number})
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
        source,
        soft_sensor_id,
        model_id_,
        project_id_,
        project_name,
        env_key,
        env_state,
        env_message,
        env_location,
        env_variables,
    ) = row
    json_field = ModelVersion._meta.get_field("descriptor")
    datetime_field = ModelVersion._meta.get_field("created_at")
    return spec_build(
        descriptor=json_field.from_db_value(descriptor, None, connection),
        training_data=json_field.from_db_value(training_data, None, connection),
        version_id=pk,
        soft_sensor_id=soft_sensor_id,
        project_id=project_id_,
        project_name=project_name,
        model_id=model_id_,
        number=number_,
        label=label,
        status=status,
        status_description=status_description,
        archived=archived_at is not None,
        flavor=flavor,
        source=source,
        created_at=_as_datetime(datetime_field, created_at),
        first_predicted_at=_as_datetime(datetime_field, first_predicted_at),
        environment=environment_row(
            env_key, env_state, env_message, env_location, json_field.from_db_value(env_variables, None, connection)
        ),
    )


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


def version_artifacts(*, version_id: int, created_at: Any) -> list[VersionArtifact]:
    """A version's artefact rows, cached per process by (id, created_at): they never change, except a
    pickle's approval, so rows still awaiting one are read again every time."""
    key = (version_id, created_at)
    cached = _ARTIFACTS.get(key)
    if cached is None:
        cached = list(VersionArtifact.objects.filter(version_id=version_id))
        if approval_pending(cached):
            return cached
        if len(_ARTIFACTS) > 1024:
            _ARTIFACTS.clear()
        _ARTIFACTS[key] = cached
    return cached


def version_for_spec(*, spec: ModelSpec) -> ModelVersion:
    """The version row a spec was built from (404 when it is gone)."""
    version = _versions().filter(pk=spec.version_id).first()
    if version is None:
        raise NotFound(f"Model version {spec.version_id} does not exist.", details={"version_id": spec.version_id})
    return version


def version_for_lineage(*, training_run_id: str, candidate_id: int) -> ModelVersion | None:
    """The version a training run registered for one of its candidates (its lineage), if any."""
    return (
        ModelVersion.objects.select_related("soft_sensor__project")
        .filter(training_run_id=training_run_id, training_data__candidate_id=candidate_id)
        .first()
    )


def online_versions(*, project: Project) -> list[ModelVersion]:
    """The current version of every soft sensor of the project, when it is online (models_full)."""
    result = []
    for soft_sensor in soft_sensor_list(project=project):
        version = current_version(soft_sensor)
        if version is not None and version.status == VersionStatus.ONLINE and version.archived_at is None:
            result.append(version)
    return result


def environment_list() -> QuerySet[RuntimeEnvironment]:
    return RuntimeEnvironment.objects.all()


def environment_get(*, key: str) -> RuntimeEnvironment:
    """An environment by its key (or a unique prefix of at least 12 characters, as the pages show it)."""
    matches = list(RuntimeEnvironment.objects.filter(key__startswith=key)[:2]) if len(key) >= 12 else []
    if len(matches) != 1:
        raise NotFound(f"Runtime environment {key} does not exist.", details={"key": key})
    return matches[0]


def alias_history(*, soft_sensor: SoftSensor) -> QuerySet[AliasMove]:
    return AliasMove.objects.filter(soft_sensor=soft_sensor).select_related(
        "from_version", "to_version", "moved_by", "signature"
    )


def descriptor_history(*, version: ModelVersion) -> QuerySet[DescriptorRevision]:
    return DescriptorRevision.objects.filter(version=version).select_related("changed_by")


def variable_units_for(*, project_name: str) -> dict[str, str]:
    """Unit of each variable of the project with this time-series tag (``penicillin``): its dictionary's
    canonical names first, then the inputs and outputs of each live soft sensor's newest version. Three
    queries whatever the number of soft sensors."""
    projects = list(Project.objects.filter(name__iexact=project_name).values_list("pk", flat=True))
    units: dict[str, str] = {}
    for name, unit in (
        Variable.objects.filter(project_id__in=projects).exclude(units="").values_list("canonical_name", "units")
    ):
        units.setdefault(name, unit)
    live = ModelVersion.objects.filter(soft_sensor__project_id__in=projects, soft_sensor__archived_at__isnull=True)
    newest = live.values("soft_sensor_id").annotate(number=Max("number"))
    wanted = Q(pk__in=[])
    for row in newest:
        wanted |= Q(soft_sensor_id=row["soft_sensor_id"], number=row["number"])
    for version in _versions().filter(wanted).order_by("soft_sensor__model_id"):
        spec = version_spec(version)
        for item in (*spec.features, *spec.outputs):
            if item.units:
                units.setdefault(item.name, item.units)
    return units


# ------------------------------------------------------------------------------------------------ signing


def signing_policy_of(*, project: Project) -> SigningPolicy:
    """The project's signing policy (an unsaved default, production signed and no two-person rule, if none)."""
    return SigningPolicy.objects.filter(project=project).first() or SigningPolicy(project=project)


def alias_is_signed(*, project: Project, name: str) -> bool:
    """Whether moving or removing alias ``name`` needs an electronic signature."""
    return name in signing_policy_of(project=project).aliases


def version_sha256(version: ModelVersion) -> str:
    """The sha256 a signature binds to: of the version's artefact manifest, one ``role:sha256`` line per file
    in role order (``model``, ``input_scaler``, ``output_scaler``), so it changes if any file of the version
    would. Recompute it with ``printf 'model:<sha>\\n…' | sha256sum``."""
    import hashlib  # noqa: PLC0415

    order = {"model": 0, "input_scaler": 1, "output_scaler": 2}
    files = sorted(version.artifacts.all(), key=lambda a: order.get(a.role, 9))  # prefetched by the list selectors
    manifest = "".join(f"{a.role}:{a.sha256}\n" for a in files)
    return hashlib.sha256(manifest.encode()).hexdigest()

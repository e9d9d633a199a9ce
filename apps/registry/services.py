"""Writes of the registry: projects, variables, versions and their files, status, aliases, imports.

Every write runs in ``transaction.atomic``; files written for a version that then fails to register are
removed, so a rejected upload leaves nothing behind. The training workflow registers versions through
``model_version_register`` too, passing its lineage (parent, training run, training data).
"""

from __future__ import annotations

import io
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.common.errors import Conflict, ValidationFailed

from . import artifacts as store
from .descriptors import (
    Descriptor,
    DescriptorError,
    deep_merge,
    export_descriptor_yaml,
    parse_descriptor_yaml,
    serving_signature,
    validate_config,
    with_status,
)
from .models import (
    Alias,
    AliasMove,
    ArtifactRole,
    DescriptorRevision,
    Flavor,
    ModelVersion,
    Project,
    SoftSensor,
    Variable,
    VersionArtifact,
    VersionStatus,
)
from .project_info import ProjectInfo, ProjectInfoError, VariableInfo, export_project_info_yaml, parse_project_info_yaml
from .runtimes import R_UNAVAILABLE, ArtifactBundle, ArtifactFile, runtime_for
from .selectors import current_version, project_info_for, variable_list
from .serving import load_error, probe_row

#: Source of an artefact: an uploaded file, bytes or a path on disk.
Source = BinaryIO | bytes | Path


@dataclass(frozen=True)
class ArtifactInput:
    source: Source
    name: str


# -------------------------------------------------------------------------------------------- projects


def _descriptor_error(exc: DescriptorError, field_name: str = "descriptor") -> ValidationFailed:
    return ValidationFailed(
        f"{field_name}: {exc.errors[0]}" + (f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""),
        details={field_name: exc.errors},
    )


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


# -------------------------------------------------------------------------------------------- versions


def flavor_for(*, descriptor: Descriptor, file_name: str) -> str:
    """The artefact flavor from the descriptor's language and the model file's extension."""
    ext = store.extension(file_name)
    if descriptor.language == "python":
        if ext in store.PYTHON_SKOPS_EXTENSIONS:
            return Flavor.SKLEARN_SKOPS
        if ext in store.PYTHON_PICKLE_EXTENSIONS:
            return Flavor.SKLEARN_PICKLE
        if ext in (".keras", ".h5"):
            raise ValidationFailed(
                f"model_file: {file_name}: Keras models are not served by this registry (use scikit-learn or R).",
                details={"model_file": "unsupported format"},
            )
    elif descriptor.language == "r":
        if ext in store.R_EXTENSIONS:
            return Flavor.R_RDS
    else:
        raise ValidationFailed(
            f"model_description.language: {descriptor.language!r} models are not supported (python or R).",
            details={"descriptor": ["model_description.language: unsupported language"]},
        )
    raise ValidationFailed(
        f"model_file: {file_name}: unsupported file type {ext or '(none)'} for a {descriptor.language} model.",
        details={"model_file": "unsupported format"},
    )


def _check_files(descriptor: Descriptor, files: Mapping[str, ArtifactInput]) -> dict[str, str]:
    """Which descriptor file name each role is stored under; refuses missing or unexpected files."""
    unknown = set(files) - {role.value for role in ArtifactRole}
    if unknown:
        raise ValidationFailed(
            f"Unknown artefact role(s): {', '.join(sorted(unknown))}.", details={"files": sorted(unknown)}
        )
    if "model" not in files:
        raise ValidationFailed(
            f"missing artefact: the model file {descriptor.model_file} was not given.",
            details={"model_file": "required"},
            code="missing_artifact",
        )
    names = {"model": descriptor.model_file}
    for role, named, path in (
        ("input_scaler", descriptor.input_scaler, "inputs.scaler"),
        ("output_scaler", descriptor.output_scaler, "outputs.scaler"),
    ):
        if named and role not in files:
            raise ValidationFailed(
                f"missing scaler: {path} names {named} but that file was not given.",
                details={role: "required", "descriptor": path},
                code="missing_scaler",
            )
        if role in files and not named:
            raise ValidationFailed(
                f"{role}: a scaler file was given but the descriptor's {path} names none.", details={role: "unexpected"}
            )
        if named:
            names[role] = named
    for role, name in names.items():
        given = files[role].name
        if store.extension(given) != store.extension(name):
            raise ValidationFailed(
                f"{role}: the file {given} does not have the extension of {name} named in the descriptor.",
                details={role: "extension mismatch"},
            )
    return names


def _skops_untrusted(data: bytes, name: str) -> list[str]:
    import skops.io as sio  # noqa: PLC0415

    try:
        return list(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - not a skops archive at all
        raise ValidationFailed(f"{name}: not a valid skops file ({exc}).", details={"file": name}) from exc


def model_version_register(
    *,
    project: Project,
    descriptor: Descriptor,
    files: Mapping[str, ArtifactInput],
    user: Any,
    source: str = "upload",
    parent: ModelVersion | None = None,
    training_run_id: str | None = None,
    training_data: Mapping[str, Any] | None = None,
    status: str | None = None,
    reject_unloadable: bool = False,
    alias: str | None = None,
    alias_reason: str = "",
) -> ModelVersion:
    """Register the next version of the descriptor's soft sensor (created on first use).

    Files are streamed to storage with their sha256 and size, the bundle is loaded once (the load check:
    unloadable → ``load_error`` status, or a ValidationFailed when ``reject_unloadable``), then the rows
    are written. ``status`` defaults to the descriptor's; pickles are recorded as trusted by ``user``.
    """
    if descriptor.language and not descriptor.model_id:
        raise ValidationFailed(
            "model_identification.ID: is required", details={"descriptor": ["model_identification.ID: is required"]}
        )
    names = _check_files(descriptor, files)
    flavor = flavor_for(descriptor=descriptor, file_name=names["model"])
    wanted_status = (status or descriptor.status or VersionStatus.OFFLINE).lower()
    if wanted_status not in (VersionStatus.ONLINE, VersionStatus.OFFLINE):
        raise ValidationFailed(
            f"status: must be online or offline, got {wanted_status!r}", details={"status": wanted_status}
        )
    if parent is not None and parent.soft_sensor.model_id != descriptor.model_id:
        raise ValidationFailed(
            "parent: the parent version belongs to another soft sensor.", details={"parent": parent.pk}
        )

    existing = SoftSensor.objects.filter(project=project, model_id=descriptor.model_id).first()
    last = existing.versions.aggregate(last=Max("number"))["last"] if existing else None
    number = (last or 0) + 1
    # One directory per attempt, so a concurrent upload that loses the race never removes the winner's files.
    base = store.version_dir(project_id=project.project_id, model_id=descriptor.model_id, number=number)
    directory = f"{base}-{secrets.token_hex(4)}"
    try:
        stored: dict[str, store.StoredFile] = {}
        trusted_types: dict[str, list[str]] = {}
        for role, name in names.items():
            item = files[role]
            stored[role] = store.store_file(item.source, directory=directory, original_name=name, field=role)
            if store.extension(name) in store.PYTHON_SKOPS_EXTENSIONS:
                trusted_types[role] = _skops_untrusted(
                    store.read_verified(stored[role].relative_path, stored[role].sha256), name
                )
        bundle = ArtifactBundle(
            flavor=flavor,
            model=_artifact_file(stored["model"], trusted_types.get("model")),
            feature_names=tuple(descriptor.feature_names),
            output_names=tuple(descriptor.output_names),
            input_scaler=_artifact_file(stored["input_scaler"], trusted_types.get("input_scaler"))
            if "input_scaler" in stored
            else None,
            output_scaler=_artifact_file(stored["output_scaler"], trusted_types.get("output_scaler"))
            if "output_scaler" in stored
            else None,
            probe_row=probe_row(descriptor.config, training_data),
        )
        problem = _bundle_load_error(bundle)
        if problem == R_UNAVAILABLE:  # not the artefact's fault: registered, offline until R is here
            problem, wanted_status = None, VersionStatus.OFFLINE
            descriptor = replace(
                descriptor, config=with_status(descriptor.config, status="offline", description=R_UNAVAILABLE)
            )
        if problem is not None and reject_unloadable:
            raise ValidationFailed(
                f"unloadable artefact: {problem}", details={"model_file": problem}, code="unloadable_artifact"
            )
        if problem is not None:
            final_status, description = VersionStatus.LOAD_ERROR, f"Load error: {problem}"
        elif wanted_status == VersionStatus.ONLINE:
            final_status = VersionStatus.ONLINE
            description = (
                descriptor.config.get("model_identification", {}).get("status_description")
                or "Model is loaded and ready for predictions."
            )
        else:
            final_status = VersionStatus.OFFLINE
            description = (
                descriptor.config.get("model_identification", {}).get("status_description") or "Registered offline."
            )
        with transaction.atomic():
            soft_sensor, _ = SoftSensor.objects.get_or_create(project=project, model_id=descriptor.model_id)
            soft_sensor.name = descriptor.name
            soft_sensor.language = descriptor.language
            soft_sensor.predicted_variables = descriptor.output_names
            soft_sensor.archived_at = None
            soft_sensor.save()
            now = timezone.now()
            config = with_status(descriptor.config, status=_descriptor_status(final_status), description=description)
            version = ModelVersion.objects.create(
                soft_sensor=soft_sensor,
                number=number,
                version_label=descriptor.version,
                descriptor=config,
                flavor=flavor,
                status=final_status,
                status_description=description,
                status_changed_at=now,
                created_by=user if getattr(user, "pk", None) else None,
                parent=parent,
                training_run_id=training_run_id,
                training_data=dict(training_data or {}),
                source=source,
            )
            VersionArtifact.objects.bulk_create(
                [
                    VersionArtifact(
                        version=version,
                        role=role,
                        original_name=item.original_name,
                        path=item.relative_path,
                        sha256=item.sha256,
                        size=item.size,
                        trusted_by=version.created_by,
                        trusted_at=now,
                        trusted_types=trusted_types.get(role, []),
                    )
                    for role, item in stored.items()
                ]
            )
            if alias:
                alias_move(
                    soft_sensor=soft_sensor,
                    name=alias,
                    version=version,
                    user=user,
                    reason=alias_reason or "set at registration",
                )
    except IntegrityError as exc:
        store.remove_directory(directory)
        raise Conflict(f"{descriptor.model_id}: version {number} was registered concurrently; retry.") from exc
    except BaseException:
        store.remove_directory(directory)
        raise
    return version


def _artifact_file(item: store.StoredFile, trusted: list[str] | None) -> ArtifactFile:
    return ArtifactFile(store.absolute_path(item.relative_path), item.sha256, item.original_name, tuple(trusted or ()))


def _bundle_load_error(bundle: ArtifactBundle) -> str | None:
    try:
        return runtime_for(bundle.flavor).load_error(bundle)
    except Exception as exc:  # noqa: BLE001 - a failing runtime is a load error, never a crash
        return f"{type(exc).__name__}: {exc}"


def _descriptor_status(status: str) -> str:
    return "online" if status == VersionStatus.ONLINE else "offline"


def parse_descriptor_or_400(text: str | bytes) -> Descriptor:
    """Parse descriptor YAML, turning its path-named errors into a 400."""
    try:
        return parse_descriptor_yaml(text)
    except DescriptorError as exc:
        raise _descriptor_error(exc) from exc


def model_version_register_yaml(
    *, project: Project, descriptor_text: str | bytes, files: Mapping[str, ArtifactInput], user: Any, **options: Any
) -> ModelVersion:
    """``model_version_register`` from descriptor YAML text (the upload path)."""
    descriptor = parse_descriptor_or_400(descriptor_text)
    return model_version_register(project=project, descriptor=descriptor, files=files, user=user, **options)


def _record_revision(
    *, version: ModelVersion, patch: Mapping[str, Any], before: dict, after: dict, user: Any, source: str
) -> DescriptorRevision:
    last = version.revisions.aggregate(last=Max("number"))["last"] or 0
    return DescriptorRevision.objects.create(
        version=version,
        number=last + 1,
        patch=dict(patch),
        before=before,
        after=after,
        changed_by=user if getattr(user, "pk", None) else None,
        source=source,
    )


def model_version_set_status(
    *, version: ModelVersion, status: str, description: str = "", user: Any, source: str = "api"
) -> ModelVersion:
    """Put a version online (only if it loads now) or offline; the descriptor's status follows."""
    status = (status or "").lower()
    if status not in (VersionStatus.ONLINE, VersionStatus.OFFLINE):
        raise ValidationFailed(f"status: must be online or offline, got {status!r}", details={"status": status})
    if version.archived_at is not None:
        raise Conflict(f"{version} is archived; it cannot change status.")
    problem = (
        load_error(version) if status == VersionStatus.ONLINE or version.status == VersionStatus.LOAD_ERROR else None
    )
    if problem == R_UNAVAILABLE:
        new_status, new_description = VersionStatus.OFFLINE, R_UNAVAILABLE
    elif problem is not None:
        new_status, new_description = VersionStatus.LOAD_ERROR, f"Load error: {problem}"
    else:
        new_status = status
        new_description = description or (
            "Model is loaded and ready for predictions." if status == VersionStatus.ONLINE else "Taken offline."
        )
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        before = locked.descriptor
        after = with_status(before, status=_descriptor_status(new_status), description=new_description)
        ModelVersion.objects.filter(pk=version.pk).update(
            status=new_status, status_description=new_description, descriptor=after, status_changed_at=timezone.now()
        )
        if after != before:
            _record_revision(
                version=locked,
                patch={
                    "model_identification": {
                        "status": _descriptor_status(new_status),
                        "status_description": new_description,
                    }
                },
                before=before,
                after=after,
                user=user,
                source=source,
            )
    version.status, version.status_description, version.descriptor = new_status, new_description, after
    if problem is not None and status == VersionStatus.ONLINE:
        raise Conflict(f"{version} cannot go online: {problem}", details={"load_error": problem}, code="load_error")
    return version


def model_version_update_descriptor(
    *, version: ModelVersion, patch: Mapping[str, Any], user: Any, source: str = "api", replace: bool = False
) -> ModelVersion:
    """Deep-merge ``patch`` (upstream ``PUT update``) into the descriptor, keeping the history.

    With ``replace`` the patch is the whole new descriptor (the raw-YAML editor and the admin).
    Documentation, ranges, hyper-parameter notes and status may change; anything that changes what the
    version computes (ID, language, files, features or their order, outputs, scalers) needs a new version.
    """
    if not isinstance(patch, Mapping) or not patch:
        raise ValidationFailed("The update must be a non-empty JSON object.", details={"body": "must be an object"})
    if "ml_model_configuration" in patch and len(patch) == 1 and isinstance(patch["ml_model_configuration"], Mapping):
        patch = patch["ml_model_configuration"]
    if version.archived_at is not None:
        raise Conflict(f"{version} is archived; its descriptor cannot change.")
    merged = dict(patch) if replace else deep_merge(version.descriptor, patch)
    try:
        old = validate_config(version.descriptor)
        new = validate_config(merged)
    except DescriptorError as exc:
        raise _descriptor_error(exc) from exc
    old_sig, new_sig = serving_signature(old), serving_signature(new)
    changed = sorted(key for key in old_sig if old_sig[key] != new_sig[key])
    if changed:
        raise Conflict(
            f"This update changes {', '.join(changed)}, which fixes what the version computes; "
            "register a new version instead.",
            details={"immutable": changed},
            code="immutable",
        )
    requested_status = (
        (patch.get("model_identification") or {}).get("status")
        if isinstance(patch.get("model_identification"), Mapping)
        else None
    )
    if requested_status is not None and str(requested_status).lower() == _descriptor_status(version.status):
        requested_status = None  # unchanged: nothing to (re)check
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        before = locked.descriptor
        after = new.config
        if requested_status is None:  # the status stays the version's own
            description = (after.get("model_identification") or {}).get("status_description") if replace else None
            after = with_status(
                after, status=_descriptor_status(locked.status), description=description or locked.status_description
            )
        ModelVersion.objects.filter(pk=version.pk).update(descriptor=after, version_label=new.version)
        SoftSensor.objects.filter(pk=locked.soft_sensor_id).update(name=new.name)
        _record_revision(version=locked, patch=patch, before=before, after=after, user=user, source=source)
    version.descriptor, version.version_label = after, new.version
    if requested_status is not None:
        description = (patch.get("model_identification") or {}).get("status_description") or ""
        model_version_set_status(
            version=version, status=str(requested_status), description=description, user=user, source=source
        )
    return version


def model_version_mark_predicted(*, version: ModelVersion) -> None:
    """Remember that a version served predictions (one write, the first time only)."""
    if version.first_predicted_at is None:
        now = timezone.now()
        ModelVersion.objects.filter(pk=version.pk, first_predicted_at__isnull=True).update(first_predicted_at=now)
        version.first_predicted_at = now


def model_version_mark_load_error(*, version: ModelVersion, problem: str) -> None:
    """A version whose files stopped loading (changed on disk, runtime gone) leaves service."""
    description = f"Load error: {problem}"
    ModelVersion.objects.filter(pk=version.pk).update(
        status=VersionStatus.LOAD_ERROR,
        status_description=description,
        status_changed_at=timezone.now(),
        descriptor=with_status(version.descriptor, status="offline", description=description),
    )
    version.status, version.status_description = VersionStatus.LOAD_ERROR, description


def _was_used(version: ModelVersion) -> bool:
    return version.first_predicted_at is not None or AliasMove.objects.filter(to_version=version).exists()


@transaction.atomic
def model_version_delete(*, version: ModelVersion, user: Any) -> str:
    """Erase a version never used, or archive one that served predictions or carried an alias.

    Returns ``"deleted"`` or ``"archived"``. A version an alias points at now cannot go: move it first.
    """
    pointing = list(Alias.objects.filter(version=version).values_list("name", flat=True))
    if pointing:
        raise Conflict(
            f"{version} is the target of alias(es) {', '.join(pointing)}; move them first.",
            details={"aliases": pointing},
        )
    if _was_used(version):
        ModelVersion.objects.filter(pk=version.pk).update(
            archived_at=timezone.now(),
            status=VersionStatus.OFFLINE,
            status_description=f"Archived by {getattr(user, 'username', 'system')}.",
        )
        return "archived"
    directories = {str(Path(path).parent) for path in version.artifacts.values_list("path", flat=True)}
    version.delete()
    for directory in directories:
        transaction.on_commit(lambda directory=directory: store.remove_directory(directory))
    return "deleted"


@transaction.atomic
def soft_sensor_delete(*, soft_sensor: SoftSensor, user: Any, reason: str = "soft sensor deleted") -> str:
    """Remove a soft sensor: aliases are dropped (recorded), each version erased or archived."""
    for alias in list(Alias.objects.filter(soft_sensor=soft_sensor)):
        alias_delete(soft_sensor=soft_sensor, name=alias.name, user=user, reason=reason)
    outcomes = [
        model_version_delete(version=v, user=user)
        for v in ModelVersion.objects.filter(soft_sensor=soft_sensor).select_related("soft_sensor__project")
    ]
    if "archived" in outcomes:
        SoftSensor.objects.filter(pk=soft_sensor.pk).update(archived_at=timezone.now())
        return "archived"
    AliasMove.objects.filter(soft_sensor=soft_sensor).delete()
    soft_sensor.delete()
    return "deleted"


# --------------------------------------------------------------------------------------------- aliases


@transaction.atomic
def alias_move(*, soft_sensor: SoftSensor, name: str, version: ModelVersion, user: Any, reason: str) -> Alias:
    """Point ``name`` at ``version`` (creating the alias), recording who, when, from, to and why."""
    from django.utils.text import slugify  # noqa: PLC0415

    if not name or slugify(name) != name:
        raise ValidationFailed(
            f"alias: {name!r} is not a valid alias name (letters, digits, - and _).", details={"alias": name}
        )
    if not (reason or "").strip():
        raise ValidationFailed("reason: say why the alias moves.", details={"reason": "required"})
    if version.soft_sensor_id != soft_sensor.pk:
        raise ValidationFailed("version: belongs to another soft sensor.", details={"version": version.number})
    if version.archived_at is not None:
        raise Conflict(f"{version} is archived; an alias cannot point at it.")
    if version.status == VersionStatus.LOAD_ERROR:
        raise Conflict(f"{version} cannot be loaded ({version.status_description}); an alias cannot point at it.")
    alias = Alias.objects.select_for_update().filter(soft_sensor=soft_sensor, name=name).first()
    previous = alias.version if alias else None
    if alias is None:
        alias = Alias.objects.create(soft_sensor=soft_sensor, name=name, version=version)
    else:
        alias.version = version
        alias.save(update_fields=["version", "updated_at"])
    AliasMove.objects.create(
        soft_sensor=soft_sensor,
        alias_name=name,
        from_version=previous,
        to_version=version,
        moved_by=user if getattr(user, "pk", None) else None,
        reason=reason.strip(),
    )
    return alias


@transaction.atomic
def alias_delete(*, soft_sensor: SoftSensor, name: str, user: Any, reason: str) -> None:
    if not (reason or "").strip():
        raise ValidationFailed("reason: say why the alias is removed.", details={"reason": "required"})
    alias = Alias.objects.select_for_update().filter(soft_sensor=soft_sensor, name=name).first()
    if alias is None:
        from apps.common.errors import NotFound  # noqa: PLC0415

        raise NotFound(f"{soft_sensor.model_id} has no alias {name!r}.")
    AliasMove.objects.create(
        soft_sensor=soft_sensor,
        alias_name=name,
        from_version=alias.version,
        to_version=None,
        moved_by=user if getattr(user, "pk", None) else None,
        reason=reason.strip(),
    )
    alias.delete()


# ------------------------------------------------------------------------------------ import and export


@dataclass
class ImportOutcome:
    name: str
    status: str  # imported | skipped | failed
    reason: str = ""
    version: int | None = None
    directory: str = ""

    def line(self) -> str:
        if self.status == "failed":
            return f"{self.name}: failed: {self.reason}"
        if self.status == "skipped":
            return f"{self.name}: skipped: {self.reason}"
        return (
            f"{self.name}: imported (version {self.version}, {self.reason})"
            if self.reason
            else f"{self.name}: imported"
        )


@dataclass
class ImportReport:
    project: Project | None
    outcomes: list[ImportOutcome] = field(default_factory=list)
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error) or any(o.status == "failed" for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project.project_id if self.project else None,
            "error": self.error or None,
            "models": [
                {"model": o.name, "status": o.status, "reason": o.reason, "version": o.version} for o in self.outcomes
            ],
        }


def _find_artifact(models_dir: Path, name: str) -> Path | None:
    """The file named ``name`` in models/ (exact name first, then case-insensitively)."""
    if not models_dir.is_dir():
        return None
    exact = models_dir / name
    if exact.is_file() and exact.parent == models_dir:
        return exact
    lowered = name.lower()
    return next((p for p in models_dir.iterdir() if p.is_file() and p.name.lower() == lowered), None)


def project_folder_import(
    *, root: Path, user: Any, project: Project | None = None, source: str = "import"
) -> ImportReport:
    """Import a STAMM project folder: project_info.yaml, configs/*.yaml, models/*.

    Each descriptor becomes a soft sensor with version 1 (or the next version when its artefact changed;
    identical artefacts are skipped). One model's failure never stops the others; the report says which
    failed and why (missing artefact, missing scaler, unloadable artefact, invalid descriptor).
    """
    root = Path(root)
    report = ImportReport(project=project)
    info_path = root / "project_info.yaml"
    if info_path.is_file():
        try:
            info = parse_project_info_yaml(info_path.read_bytes())
        except ProjectInfoError as exc:
            report.error = f"project_info.yaml: {exc}"
            return report
        if project is not None and info.project_id != project.project_id:
            report.error = f"project_info.yaml is for {info.project_id}, not {project.project_id}"
            return report
        report.project = project = project_upsert(info=info)
    elif project is None:
        report.error = f"{info_path} not found (a STAMM project folder has project_info.yaml, configs/, models/)"
        return report
    configs = sorted((root / "configs").glob("*.y*ml")) if (root / "configs").is_dir() else []
    if not configs:
        report.error = f"no descriptors found in {root / 'configs'}"
        return report
    models_dir = root / "models"
    for config_path in configs:
        report.outcomes.append(_import_one(config_path, models_dir, project=project, user=user, source=source))
    return report


def _import_one(config_path: Path, models_dir: Path, *, project: Project, user: Any, source: str) -> ImportOutcome:
    name = config_path.stem
    try:
        descriptor = parse_descriptor_yaml(config_path.read_bytes())
    except DescriptorError as exc:
        return ImportOutcome(name, "failed", f"invalid descriptor: {exc}")
    name = descriptor.model_id
    model_path = _find_artifact(models_dir, descriptor.model_file)
    if model_path is None:
        return ImportOutcome(name, "failed", f"missing artefact: models/{descriptor.model_file} not found")
    files = {"model": ArtifactInput(model_path, descriptor.model_file)}
    for role, scaler in (("input_scaler", descriptor.input_scaler), ("output_scaler", descriptor.output_scaler)):
        if scaler:
            scaler_path = _find_artifact(models_dir, scaler)
            if scaler_path is None:
                return ImportOutcome(
                    name, "failed", f"missing scaler: models/{scaler} not found ({role.replace('_', ' ')})"
                )
            files[role] = ArtifactInput(scaler_path, scaler)
    existing = (
        SoftSensor.objects.filter(project=project, model_id=descriptor.model_id)
        .prefetch_related("versions__artifacts", "aliases")
        .first()
    )
    if existing is not None:
        import hashlib  # noqa: PLC0415

        digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
        for version in existing.versions.all():
            if any(a.role == "model" and a.sha256 == digest for a in version.artifacts.all()):
                return ImportOutcome(name, "skipped", f"already imported as version {version.number}", version.number)
    has_production = existing is not None and any(a.name == "production" for a in existing.aliases.all())
    try:
        version = model_version_register(
            project=project,
            descriptor=descriptor,
            files=files,
            user=user,
            source=source,
            reject_unloadable=True,
        )
        if version.status == VersionStatus.ONLINE and not has_production:
            alias_move(
                soft_sensor=version.soft_sensor,
                name="production",
                version=version,
                user=user,
                reason=f"imported from {config_path.parent.parent.name}",
            )
    except ValidationFailed as exc:
        return ImportOutcome(name, "failed", exc.message)
    except Conflict as exc:
        return ImportOutcome(name, "failed", exc.message)
    directory = str(Path(version.artifacts.first().path).parent)
    note = "" if version.number == 1 else "new artefact"
    if descriptor.warnings:
        note = "; ".join(filter(None, [note, *descriptor.warnings]))
    return ImportOutcome(name, "imported", note, version.number, directory)


MAX_ZIP_MEMBERS = 2000


def zip_extract(upload: BinaryIO | bytes | Path, destination: Path) -> Path:
    """Extract a zipped project folder safely and return the folder holding configs/.

    Refuses absolute or ``..`` paths, links, more than 2,000 members and more uncompressed bytes than
    ten times the artefact size limit.
    """
    data: Any = io.BytesIO(upload) if isinstance(upload, bytes) else upload
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValidationFailed(f"bundle: not a zip file ({exc}).", details={"bundle": "not a zip file"}) from exc
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise ValidationFailed(f"bundle: more than {MAX_ZIP_MEMBERS} files.", details={"bundle": "too many files"})
        total = sum(m.file_size for m in members)
        if total > 10 * store.max_artifact_bytes():
            raise ValidationFailed("bundle: uncompressed content too large.", details={"bundle": "too large"})
        base = destination.resolve()
        for member in members:
            name = member.filename
            if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name.split("/")[0]:
                raise ValidationFailed(f"bundle: unsafe path {name!r}.", details={"bundle": name})
            if (member.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValidationFailed(f"bundle: links are not allowed ({name}).", details={"bundle": name})
            if "__MACOSX" in Path(name).parts:
                continue
            target = (base / name).resolve()
            if base not in target.parents and target != base:
                raise ValidationFailed(f"bundle: unsafe path {name!r}.", details={"bundle": name})
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, store.CHUNK)
    candidates = [base, *sorted(p for p in base.iterdir() if p.is_dir())]
    for candidate in candidates:
        if (candidate / "configs").is_dir() or (candidate / "project_info.yaml").is_file():
            return candidate
    raise ValidationFailed(
        "bundle: no configs/ folder or project_info.yaml inside the zip.",
        details={"bundle": "not a STAMM project folder"},
    )


class _ImportRollback(Exception):
    def __init__(self, report: ImportReport) -> None:
        self.report = report


def project_zip_import(*, upload: BinaryIO | bytes | Path, user: Any, project: Project | None = None) -> ImportReport:
    """Import a zipped STAMM project folder, all or nothing (unlike the command, which keeps going).

    When any model fails, nothing is kept and the ValidationFailed details carry the per-model report.
    """
    with tempfile.TemporaryDirectory(prefix="stamm-import-") as tmp:
        root = zip_extract(upload, Path(tmp))
        try:
            with transaction.atomic():
                report = project_folder_import(root=root, user=user, project=project, source="import")
                if report.failed:
                    raise _ImportRollback(report)
        except _ImportRollback as rollback:
            report = rollback.report
            for outcome in report.outcomes:
                if outcome.directory:
                    store.remove_directory(outcome.directory)
            failures = [o.line() for o in report.outcomes if o.status == "failed"]
            message = report.error or f"{len(failures)} model(s) failed, nothing was imported: " + "; ".join(failures)
            raise ValidationFailed(f"bundle: {message}", details=report.as_dict(), code="import_failed") from None
    return report


def _version_files(version: ModelVersion) -> list[tuple[str, bytes]]:
    """(descriptor file name, verified bytes) of each artefact of the version."""
    return [(a.original_name, store.read_verified(a.path, a.sha256)) for a in version.artifacts.all()]


def export_descriptor(version: ModelVersion) -> str:
    return export_descriptor_yaml(version.descriptor)


def project_folder_export(*, project: Project, target: Path, soft_sensors: list[SoftSensor] | None = None) -> list[str]:
    """Write the STAMM layout (project_info.yaml, configs/, models/) of the current versions."""
    from .selectors import soft_sensor_list  # noqa: PLC0415

    target = Path(target)
    (target / "configs").mkdir(parents=True, exist_ok=True)
    (target / "models").mkdir(parents=True, exist_ok=True)
    (target / "project_info.yaml").write_text(
        export_project_info_yaml(project_info_for(project=project)), encoding="utf-8"
    )
    written = []
    for soft_sensor in soft_sensors if soft_sensors is not None else soft_sensor_list(project=project):
        version = current_version(soft_sensor)
        if version is None:
            continue
        config_name = store.sanitize_name(soft_sensor.model_id) if "/" in soft_sensor.model_id else soft_sensor.model_id
        (target / "configs" / f"{config_name}.yaml").write_text(export_descriptor(version), encoding="utf-8")
        for name, data in _version_files(version):
            (target / "models" / Path(name).name).write_bytes(data)
        written.append(soft_sensor.model_id)
    return written


def version_bundle_zip(*, version: ModelVersion) -> bytes:
    """A zip of one version in the STAMM layout (importable again): project_info, config, models."""
    project = version.soft_sensor.project
    buffer = io.BytesIO()
    folder = project.project_id
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            f"{folder}/project_info.yaml",
            export_project_info_yaml(project_info_for(project=project, variables=list(variable_list(project=project)))),
        )
        archive.writestr(f"{folder}/configs/{version.soft_sensor.model_id}.yaml", export_descriptor(version))
        for name, data in _version_files(version):
            archive.writestr(f"{folder}/models/{Path(name).name}", data)
    return buffer.getvalue()

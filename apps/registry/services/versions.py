"""Registering a version: descriptor and files checked, artefacts stored and hashed, the load check."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.common.errors import Conflict, ValidationFailed

from .. import artifacts as store
from ..artifact_safety import (
    UnsafeArtifact,
    is_pickle,
    is_skops,
    pickle_approver_checked,
    pickle_block_reason,
    pickle_loading_allowed,
    skops_types,
)
from ..descriptors import (
    Descriptor,
    DescriptorError,
    parse_descriptor_yaml,
    with_status,
)
from ..models import (
    ArtifactRole,
    EnvironmentState,
    Flavor,
    ModelVersion,
    Project,
    RuntimeEnvironment,
    SoftSensor,
    VersionArtifact,
    VersionStatus,
)
from ..runtimes import ArtifactBundle, ArtifactFile, OfflineReason
from ..runtimes.python import environment_ref
from ..selectors import alias_is_signed
from ..serving import bundle_load_error, declared_r_packages, reference_rows
from ..signals import version_registered
from ..spec import ModelSpec, environment_row, spec_build
from .aliases import alias_move
from .environments import (
    WAITING,
    environment_build,
    environment_ensure,
    environment_queue,
    environment_spec_for,
    environment_usable,
)
from .onnx_conversion import onnx_conversion_check, onnx_convert, onnx_descriptor
from .status import descriptor_status

#: Source of an artefact: an uploaded file, bytes or a path on disk.
Source = BinaryIO | bytes | Path


@dataclass(frozen=True)
class ArtifactInput:
    source: Source
    name: str


#: Upload field → artefact role: the names the API's multipart body and the upload pages use.
UPLOAD_FIELDS: tuple[tuple[str, str], ...] = (
    ("model_file", "model"),
    ("input_scaler", "input_scaler"),
    ("output_scaler", "output_scaler"),
)


def artifact_inputs(uploaded: Mapping[str, Any]) -> dict[str, ArtifactInput]:
    """The artefacts of an upload, each given file under its role (absent or empty fields are left out)."""
    return {
        role: ArtifactInput(uploaded[field], uploaded[field].name)
        for field, role in UPLOAD_FIELDS
        if uploaded.get(field)
    }


# -------------------------------------------------------------------------------------------- versions


def descriptor_error(exc: DescriptorError, field_name: str = "descriptor") -> ValidationFailed:
    """A descriptor's path-named problems as one 400 (the first problem in the message, all in details)."""
    return ValidationFailed(
        f"{field_name}: {exc.errors[0]}" + (f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""),
        details={field_name: exc.errors},
    )


def flavor_for(*, descriptor: Descriptor, file_name: str) -> str:
    """The artefact flavor from the descriptor's language and the model file's extension."""
    ext = store.extension(file_name)
    if descriptor.language == "python":
        if ext in store.PYTHON_SKOPS_EXTENSIONS:
            return Flavor.SKLEARN_SKOPS
        if ext in store.PYTHON_PICKLE_EXTENSIONS:
            return Flavor.SKLEARN_PICKLE
        if ext in store.ONNX_EXTENSIONS:
            return Flavor.ONNX
        if ext in store.KERAS_EXTENSIONS:
            return Flavor.KERAS
        if ext in store.MLFLOW_EXTENSIONS:
            return Flavor.MLFLOW
    elif descriptor.language == "r":
        if ext in store.R_EXTENSIONS:
            return Flavor.R_RDS
    else:
        raise ValidationFailed(
            f"model_description.language: {descriptor.language!r} models are not supported (python or R).",
            details={"descriptor": ["model_description.language: unsupported language"]},
            code="unsupported_format",
        )
    raise ValidationFailed(
        f"model_file: {file_name}: unsupported file type {ext or '(none)'} for a {descriptor.language} model.",
        details={"model_file": "unsupported format"},
        code="unsupported_format",
    )


def _check_files(
    descriptor: Descriptor, files: Mapping[str, ArtifactInput], *, allow_missing: bool = False
) -> dict[str, str]:
    """Which descriptor file name each role is stored under; refuses missing or unexpected files.

    With ``allow_missing`` (a version registered offline because a file is missing) the files that are
    there are kept and the missing ones are left out.
    """
    if allow_missing:
        names = {
            "model": descriptor.model_file,
            "input_scaler": descriptor.input_scaler,
            "output_scaler": descriptor.output_scaler,
        }
        return {role: name for role, name in names.items() if name and role in files}
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


def _skops_types_or_400(data: bytes, name: str, role: str) -> list[str]:
    """The allow-listed types of a skops file, or a 400 naming the refused ones (nothing is loaded)."""
    try:
        return list(skops_types(data, name))
    except UnsafeArtifact as exc:
        raise ValidationFailed(
            str(exc), details={role: list(exc.types) or "not a skops file"}, code="unsafe_artifact"
        ) from exc


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
    requirements: str | None = None,
    offline_reason: str = "",
    build: str = "queue",
    convert_to_onnx: bool = False,
    pickle_approved_by: Any = None,
) -> ModelVersion:
    """Register the next version of the descriptor's soft sensor (created on first use).

    Files are streamed to storage with their sha256 and size, the bundle is loaded once in its runtime
    worker (the load check: unloadable → ``load_error`` status, or a ValidationFailed when
    ``reject_unloadable``), then the rows are written. ``status`` defaults to the descriptor's; pickles are
    recorded as trusted by ``user``.

    A Python version whose packages (or explicit ``requirements``) the platform lacks gets a declared
    environment: when it is not built yet the version is registered offline, waiting for it, and takes its
    status once built (``build="queue"``: a Celery task; ``"inline"``: now, for the import command).
    ``offline_reason`` registers what cannot be served (a missing file) offline with that reason, without a
    load check. ``convert_to_onnx`` serves a scikit-learn upload as ONNX (``onnx_conversion.py``).

    A skops file holding a type outside the allow-list is refused (400). A pickle is loaded (only ever inside
    a runtime worker) once an administrator approved its sha256 (``model_version_approve_pickle``, see
    ``artifact_safety``): until then the version is registered offline, awaiting that approval, with no load
    check — unless ``pickle_approved_by``, an administrator registering files they approve (the import
    command's ``--approve-pickles-as``), is given: the approval is recorded and the load check runs.
    """
    approver = pickle_approver_checked(pickle_approved_by) if pickle_approved_by is not None else None
    if descriptor.language and not descriptor.model_id:
        raise ValidationFailed(
            "model_identification.ID: is required", details={"descriptor": ["model_identification.ID: is required"]}
        )
    names = _check_files(descriptor, files, allow_missing=bool(offline_reason))
    try:
        flavor = flavor_for(descriptor=descriptor, file_name=descriptor.model_file)
    except ValidationFailed:
        if not offline_reason:
            raise
        flavor = ""  # registered offline with its reason; nothing will load it
    if convert_to_onnx:
        onnx_conversion_check(flavor=flavor, roles=names)
    wanted_status = (status or descriptor.status or VersionStatus.OFFLINE).lower()
    if wanted_status not in (VersionStatus.ONLINE, VersionStatus.OFFLINE):
        raise ValidationFailed(
            f"status: must be online or offline, got {wanted_status!r}", details={"status": wanted_status}
        )
    if parent is not None and parent.soft_sensor.model_id != descriptor.model_id:
        raise ValidationFailed(
            "parent: the parent version belongs to another soft sensor.", details={"parent": parent.pk}
        )
    environment_spec = (
        None
        if offline_reason
        else environment_spec_for(
            flavor=flavor,
            packages=descriptor.config.get("model_description", {}).get("packages") or [],
            language_version=descriptor.language_version,
            requirements_text=requirements,
        )
    )

    if alias and alias_is_signed(project=project, name=alias):
        raise ValidationFailed(
            f"alias: {alias} is a signed alias; register the version, then move {alias} with an electronic "
            "signature (docs/governance.md).",
            details={"alias": alias},
            code="signature_required",
        )
    existing = SoftSensor.objects.filter(project=project, model_id=descriptor.model_id).first()
    last = existing.versions.aggregate(last=Max("number"))["last"] if existing else None
    number = (last or 0) + 1
    # One directory per attempt, so a concurrent upload that loses the race never removes the winner's files.
    base = store.version_dir(project_id=project.project_id, model_id=descriptor.model_id, number=number)
    directory = f"{base}-{secrets.token_hex(4)}"
    environment = None
    requested_status = ""
    try:
        stored: dict[str, store.StoredFile] = {}
        trusted_types: dict[str, list[str]] = {}
        for role, name in names.items():
            item = files[role]
            stored[role] = store.store_file(item.source, directory=directory, original_name=name, field=role)
            if is_skops(name):
                trusted_types[role] = _skops_types_or_400(
                    store.read_verified(stored[role].relative_path, stored[role].sha256), name, role
                )
            if store.extension(name) in store.MLFLOW_EXTENSIONS:
                store.check_zip_members(store.absolute_path(stored[role].relative_path), field=role)
        problem: str | None = None
        approved = {
            role: item.sha256 for role, item in stored.items() if approver is not None and is_pickle(item.original_name)
        }
        if not pickle_loading_allowed():
            approved = {}  # an approval this server cannot act on is not recorded
        # Loading a pickle runs its code: not before an administrator approved it (no load check until then).
        waiting = (
            pickle_block_reason(sha256=stored["model"].sha256, approved_sha256=approved.get("model", ""))
            if "model" in stored and any(is_pickle(item.original_name) for item in stored.values())
            else None
        )
        if convert_to_onnx:
            onnx_conversion_check(flavor=flavor, roles=names, awaiting_approval=waiting)
        if environment_spec is not None:
            environment = environment_ensure(spec=environment_spec)
            if build == "inline" and not environment_usable(environment):
                environment = environment_build(environment_id=environment.pk)
        if offline_reason:
            problem = OfflineReason(offline_reason)
        elif waiting:
            problem = OfflineReason(waiting)
        elif environment is not None and not environment_usable(environment):
            requested_status = wanted_status
            problem = OfflineReason(
                f"environment build failed: {environment.message}"
                if environment.state == EnvironmentState.FAILED
                else f"{WAITING} ({', '.join(environment.requirements)})"
            )
        else:
            bundle = _bundle(project, descriptor, flavor, stored, trusted_types, approved, training_data, environment)
            problem = bundle_load_error(bundle)
            if problem is None and convert_to_onnx:
                flavor, stored = onnx_convert(
                    bundle=bundle,
                    stored=stored,
                    directory=directory,
                    reference=reference_rows(_spec(project, descriptor, training_data)),
                )
                environment = None  # ONNX is code-free: it runs in the default runtime
        if problem is not None and reject_unloadable and not isinstance(problem, OfflineReason):
            raise ValidationFailed(
                f"unloadable artefact: {problem}", details={"model_file": problem}, code="unloadable_artifact"
            )
        if isinstance(problem, OfflineReason):
            final_status, description = VersionStatus.OFFLINE, str(problem)
        elif problem is not None:
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
        config = with_status(descriptor.config, status=descriptor_status(final_status), description=description)
        if convert_to_onnx and "original_model" in stored:
            config = onnx_descriptor(config, stored)
        with transaction.atomic():
            soft_sensor, _ = SoftSensor.objects.get_or_create(project=project, model_id=descriptor.model_id)
            soft_sensor.name = descriptor.name
            soft_sensor.language = descriptor.language
            soft_sensor.predicted_variables = descriptor.output_names
            soft_sensor.archived_at = None
            soft_sensor.save()
            now = timezone.now()
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
                environment=environment,
                requested_status=requested_status,
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
                        approved_by=approver if role in approved else None,
                        approved_at=now if role in approved else None,
                        approved_sha256=approved.get(role, ""),
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
            if environment is not None and environment.state == EnvironmentState.BUILDING and build == "queue":
                environment_queue(environment=environment)
    except IntegrityError as exc:
        store.remove_directory(directory)
        raise Conflict(f"{descriptor.model_id}: version {number} was registered concurrently; retry.") from exc
    except BaseException:
        store.remove_directory(directory)
        raise
    version_id = version.pk
    transaction.on_commit(lambda: version_registered.send(sender=ModelVersion, version_id=version_id, source=source))
    return version


def _spec(project: Project, descriptor: Descriptor, training_data: Mapping[str, Any] | None) -> ModelSpec:
    """The spec the version will have (for its probe row and reference rows)."""
    return spec_build(
        descriptor=descriptor.config,
        training_data=training_data,
        version_id=0,
        soft_sensor_id=0,
        project_id=project.project_id,
        project_name=project.name,
        model_id=descriptor.model_id,
        number=0,
    )


def _bundle(
    project: Project,
    descriptor: Descriptor,
    flavor: str,
    stored: Mapping[str, store.StoredFile],
    trusted_types: Mapping[str, list[str]],
    approved: Mapping[str, str],
    training_data: Mapping[str, Any] | None,
    environment: RuntimeEnvironment | None,
) -> ArtifactBundle:
    """The runtime bundle of the files just stored (the load check runs on it)."""
    spec = _spec(project, descriptor, training_data)
    row = (
        environment_row(
            environment.key, environment.state, environment.message, environment.location, environment.variables
        )
        if environment is not None
        else None
    )

    def file(role: str) -> ArtifactFile | None:
        return _artifact_file(stored[role], trusted_types.get(role), approved.get(role, "")) if role in stored else None

    return ArtifactBundle(
        flavor=flavor,
        model=file("model"),
        feature_names=tuple(descriptor.feature_names),
        output_names=tuple(descriptor.output_names),
        input_scaler=file("input_scaler"),
        output_scaler=file("output_scaler"),
        probe_row=spec.probe_row(),
        environment=environment_ref(row),
        packages=declared_r_packages(spec.packages) if flavor == Flavor.R_RDS else (),
    )


def _artifact_file(item: store.StoredFile, trusted: list[str] | None, approved_sha256: str = "") -> ArtifactFile:
    return ArtifactFile(
        store.absolute_path(item.relative_path),
        item.sha256,
        item.original_name,
        tuple(trusted or ()),
        approved_sha256=approved_sha256,
    )


def parse_descriptor_or_400(text: str | bytes) -> Descriptor:
    """Parse descriptor YAML, turning its path-named errors into a 400."""
    try:
        return parse_descriptor_yaml(text)
    except DescriptorError as exc:
        raise descriptor_error(exc) from exc


def model_version_register_yaml(
    *, project: Project, descriptor_text: str | bytes, files: Mapping[str, ArtifactInput], user: Any, **options: Any
) -> ModelVersion:
    """``model_version_register`` from descriptor YAML text (the upload path)."""
    descriptor = parse_descriptor_or_400(descriptor_text)
    return model_version_register(project=project, descriptor=descriptor, files=files, user=user, **options)

"""STAMM project folders and zips in, the STAMM layout out (all-or-nothing for uploads)."""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from django.db import transaction

from apps.common.errors import Conflict, ValidationFailed

from .. import artifacts as store
from ..descriptors import (
    DescriptorError,
    export_descriptor_yaml,
    parse_descriptor_yaml,
)
from ..mlflow_models import MlflowModelError, read_mlflow_zip
from ..models import (
    ModelVersion,
    Project,
    SoftSensor,
    VersionStatus,
)
from ..project_info import ProjectInfoError, export_project_info_yaml, parse_project_info_yaml
from ..selectors import current_version, project_info_for, variable_list
from .projects import project_upsert
from .versions import ArtifactInput, model_version_register

# ------------------------------------------------------------------------------------ import and export


@dataclass
class ImportOutcome:
    """What happened to one descriptor: ``imported`` (with the version's status and reason), ``skipped``
    (an identical artefact is already a version) or ``failed`` (the descriptor itself is invalid)."""

    name: str
    status: str  # imported | skipped | failed
    reason: str = ""
    version: int | None = None
    directory: str = ""
    version_status: str = ""  # online | offline | load_error (imported versions)

    def line(self) -> str:
        if self.status == "failed":
            return f"{self.name}: failed: {self.reason}"
        if self.status == "skipped":
            return f"{self.name}: skipped: {self.reason}"
        if self.version_status and self.version_status != VersionStatus.ONLINE:
            return f"{self.name}: imported as version {self.version}, {self.version_status}: {self.reason}"
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
                {
                    "model": o.name,
                    "status": o.status,
                    "version": o.version,
                    "version_status": o.version_status or None,
                    "reason": o.reason,
                }
                for o in self.outcomes
            ],
        }

    def table(self) -> list[str]:
        """The summary that ends an import: one row per model, its version, status and reason."""
        rows = [("model", "version", "status", "reason")]
        for o in self.outcomes:
            status = o.version_status or o.status
            rows.append((o.name, "" if o.version is None else str(o.version), status, o.reason))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
        lines.insert(1, "-" * min(120, max(len(line) for line in lines)))
        counts: dict[str, int] = {}
        for o in self.outcomes:
            key = o.version_status or o.status
            counts[key] = counts.get(key, 0) + 1
        lines.append(", ".join(f"{count} {key.replace('_', ' ')}" for key, count in sorted(counts.items())))
        return lines


def _find_artifact(models_dir: Path, name: str) -> Path | None:
    """The file (or MLflow model folder) named ``name`` in models/ (exact name first, then case-insensitively)."""
    if not models_dir.is_dir():
        return None
    exact = models_dir / name
    if (exact.is_file() or (exact / "MLmodel").is_file()) and exact.parent == models_dir:
        return exact
    lowered = name.lower()
    return next(
        (p for p in models_dir.iterdir() if p.name.lower() == lowered and (p.is_file() or (p / "MLmodel").is_file())),
        None,
    )


def _artifact_input(path: Path, name: str) -> ArtifactInput:
    """A file as it is; an MLflow model folder zipped (its ``MLmodel`` at the top of the zip)."""
    if path.is_dir():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for item in sorted(path.rglob("*")):
                if item.is_file() and not item.is_symlink():
                    archive.write(item, item.relative_to(path).as_posix())
        return ArtifactInput(buffer.getvalue(), name)
    return ArtifactInput(path, name)


def project_folder_import(
    *,
    root: Path,
    user: Any,
    project: Project | None = None,
    source: str = "import",
    build: str = "inline",
    pickle_approved_by: Any = None,
) -> ImportReport:
    """Import a STAMM project folder: project_info.yaml, configs/*.yaml, models/*.

    Every valid descriptor is registered: what cannot be served (missing artefact or scaler, missing R
    package, unsupported format, environment build failure) offline with its reason, an artefact that does
    not load with status ``load_error``. A changed artefact becomes the next version; identical artefacts are
    skipped. Only an invalid descriptor is ``failed`` (nothing to register). ``build``: how declared
    environments are built ("inline" for the command, "queue" for uploads). Pickles are registered offline
    awaiting an administrator's approval, unless ``pickle_approved_by`` (an administrator) approves them as
    they are imported.
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
        report.outcomes.append(
            _import_one(
                config_path,
                models_dir,
                project=project,
                user=user,
                source=source,
                build=build,
                approver=pickle_approved_by,
            )
        )
    return report


def _missing_files(descriptor, models_dir: Path) -> tuple[dict[str, ArtifactInput], str]:
    """The descriptor's files found in models/, and why the version cannot serve if one is missing."""
    files: dict[str, ArtifactInput] = {}
    reasons = []
    model_path = _find_artifact(models_dir, descriptor.model_file)
    if model_path is None:
        reasons.append(f"missing artefact: models/{descriptor.model_file} not found")
    else:
        files["model"] = _artifact_input(model_path, descriptor.model_file)
    for role, scaler in (("input_scaler", descriptor.input_scaler), ("output_scaler", descriptor.output_scaler)):
        if scaler:
            scaler_path = _find_artifact(models_dir, scaler)
            if scaler_path is None:
                reasons.append(f"missing scaler: models/{scaler} not found ({role.replace('_', ' ')})")
            else:
                files[role] = ArtifactInput(scaler_path, scaler)
    return files, "; ".join(reasons)


def _import_one(
    config_path: Path,
    models_dir: Path,
    *,
    project: Project,
    user: Any,
    source: str,
    build: str,
    approver: Any = None,
) -> ImportOutcome:
    name = config_path.stem
    try:
        descriptor = parse_descriptor_yaml(config_path.read_bytes())
    except DescriptorError as exc:
        return ImportOutcome(name, "failed", f"invalid descriptor: {exc}")
    name = descriptor.model_id
    files, offline_reason = _missing_files(descriptor, models_dir)
    existing = (
        SoftSensor.objects.filter(project=project, model_id=descriptor.model_id)
        .prefetch_related("versions__artifacts", "aliases")
        .first()
    )
    if existing is not None:
        digests = {role: _sha256(item.source) for role, item in files.items()}
        for version in existing.versions.all():
            stored = {a.role: a.sha256 for a in version.artifacts.all() if a.role != "original_model"}
            if stored == digests:  # the same files (a version registered without its missing file included)
                return ImportOutcome(name, "skipped", f"already imported as version {version.number}", version.number)
    options = {
        "project": project,
        "descriptor": descriptor,
        "files": files,
        "user": user,
        "source": source,
        "build": build,
        "pickle_approved_by": approver,
    }
    try:
        try:
            version = model_version_register(**options, offline_reason=offline_reason)
        except ValidationFailed as exc:
            if offline_reason or exc.code not in ("unsupported_format", "invalid_requirements"):
                raise
            version = model_version_register(**options, offline_reason=exc.message)
    except (ValidationFailed, Conflict) as exc:
        return ImportOutcome(name, "failed", exc.message)
    first = version.artifacts.first()
    directory = str(Path(first.path).parent) if first is not None else ""
    notes = [] if version.status == VersionStatus.ONLINE else [version.status_description]
    if version.status == VersionStatus.ONLINE and version.number > 1:
        notes.append("new artefact")
    notes += list(descriptor.warnings)
    return ImportOutcome(name, "imported", "; ".join(filter(None, notes)), version.number, directory, version.status)


def _mlflow_requirements(descriptor, files: dict[str, ArtifactInput]) -> str | None:
    """An MLflow model folder's requirements.txt, when the descriptor declares no packages of its own."""
    model = files.get("model")
    if model is None or not isinstance(model.source, bytes) or descriptor.config["model_description"].get("packages"):
        return None
    try:
        return read_mlflow_zip(model.source).requirements or None
    except MlflowModelError:
        return None  # the worker's load check reports what is wrong with it


def _sha256(source: Any) -> str:
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
    else:
        with Path(source).open("rb") as handle:
            for chunk in iter(lambda: handle.read(store.CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()


def zip_extract(upload: BinaryIO | bytes | Path, destination: Path) -> Path:
    """Extract a zipped project folder safely and return the folder holding configs/.

    Refuses what ``artifacts.zip_members_check`` refuses (unsafe paths, links, too many or too large members).
    """
    data: Any = io.BytesIO(upload) if isinstance(upload, bytes) else upload
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValidationFailed(f"bundle: not a zip file ({exc}).", details={"bundle": "not a zip file"}) from exc
    with archive:
        members = store.zip_members_check(archive, field="bundle")
        base = destination.resolve()
        for member in members:
            name = member.filename
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


def project_zip_import(*, upload: BinaryIO | bytes | Path, user: Any, project: Project | None = None) -> ImportReport:
    """Import a zipped STAMM project folder: every valid descriptor is registered, as the command does.

    Bad input is refused whole (400, nothing written): an unsafe or broken zip, an invalid project_info, an
    invalid descriptor. What cannot be served is registered offline with its reason; declared environments
    are built by a Celery worker after the import.
    """
    with tempfile.TemporaryDirectory(prefix="stamm-import-") as tmp:
        root = zip_extract(upload, Path(tmp))
        with transaction.atomic():
            report = project_folder_import(root=root, user=user, project=project, source="import", build="queue")
            if report.failed:
                transaction.set_rollback(True)
        if report.failed:
            for outcome in report.outcomes:
                if outcome.directory:
                    store.remove_directory(outcome.directory)
            failures = [o.line() for o in report.outcomes if o.status == "failed"]
            message = report.error or f"{len(failures)} descriptor(s) invalid, nothing was imported: " + "; ".join(
                failures
            )
            raise ValidationFailed(f"bundle: {message}", details=report.as_dict(), code="import_failed")
    return report


def _version_files(version: ModelVersion) -> list[tuple[str, bytes]]:
    """(descriptor file name, verified bytes) of each artefact of the version."""
    return [(a.original_name, store.read_verified(a.path, a.sha256)) for a in version.artifacts.all()]


def export_descriptor(version: ModelVersion) -> str:
    return export_descriptor_yaml(version.descriptor)


def project_folder_export(*, project: Project, target: Path, soft_sensors: list[SoftSensor] | None = None) -> list[str]:
    """Write the STAMM layout (project_info.yaml, configs/, models/) of the current versions."""
    from ..selectors import soft_sensor_list  # noqa: PLC0415

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

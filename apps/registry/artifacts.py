"""Artefact storage: files under ``MEDIA_ROOT/registry/<project>/<soft sensor>/v<number>/``.

Names are sanitised (nothing from the caller chooses a directory), sizes are limited while streaming,
and the sha256 recorded at upload is checked every time a file is read back for loading, so a file
changed on disk is refused rather than unpickled.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from apps.common.errors import ValidationFailed

CHUNK = 1024 * 1024
STORAGE_ROOT = "registry"

#: Extensions accepted per flavor (lower case). Scalers use the same formats as models.
PYTHON_PICKLE_EXTENSIONS = (".pkl", ".pickle", ".joblib", ".sav")
PYTHON_SKOPS_EXTENSIONS = (".skops",)
R_EXTENSIONS = (".rds", ".rdata")
ONNX_EXTENSIONS = (".onnx",)
KERAS_EXTENSIONS = (".keras", ".h5")
#: A zipped MLflow model directory (``MLmodel`` at its top); ``.mlflow`` names the zip in a STAMM folder.
MLFLOW_EXTENSIONS = (".mlflow", ".zip")


class ArtifactIntegrityError(Exception):
    """The file on disk is missing or no longer matches its recorded sha256."""


@dataclass(frozen=True)
class StoredFile:
    relative_path: str
    original_name: str
    sha256: str
    size: int


def max_artifact_bytes() -> int:
    """``REGISTRY_MAX_ARTIFACT_BYTES`` (default 200 MiB): the largest single artefact accepted."""
    return int(getattr(settings, "REGISTRY_MAX_ARTIFACT_BYTES", 200 * 1024 * 1024))


def max_upload_bytes() -> int:
    """The largest upload request accepted (a project zip may hold up to ten artefacts' worth); a request
    declaring more is refused before it is read (``apps.common.parsers``)."""
    return 10 * max_artifact_bytes() + 1024 * 1024


def sanitize_name(name: str) -> str:
    """A safe file name: base name only, ``[A-Za-z0-9._-]``, no leading dots, at most 150 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    cleaned = re.sub(r"_+", "_", cleaned)
    if not cleaned:
        raise ValidationFailed(f"File name {name!r} has no usable characters.", details={"file": name})
    stem, dot, ext = cleaned.rpartition(".")
    if dot and len(cleaned) > 150:
        cleaned = stem[: 150 - len(ext) - 1] + "." + ext
    return cleaned[:150]


def extension(name: str) -> str:
    return Path(name).suffix.lower()


def version_dir(*, project_id: str, model_id: str, number: int) -> str:
    """Relative directory of a version's files."""
    return f"{STORAGE_ROOT}/{sanitize_name(project_id)}/{sanitize_name(model_id)}/v{int(number)}"


def absolute_path(relative_path: str) -> Path:
    """The file's absolute path, refusing any path that would leave the registry storage."""
    root = (Path(settings.MEDIA_ROOT) / STORAGE_ROOT).resolve()
    path = (Path(settings.MEDIA_ROOT) / relative_path).resolve()
    if root not in path.parents:
        raise ArtifactIntegrityError(f"{relative_path!r} is outside the registry storage")
    return path


def _chunks(source: BinaryIO | bytes | Path) -> Iterable[bytes]:
    if isinstance(source, bytes):
        for start in range(0, len(source), CHUNK):
            yield source[start : start + CHUNK]
        return
    if isinstance(source, Path):
        with source.open("rb") as handle:
            yield from iter(lambda: handle.read(CHUNK), b"")
        return
    if hasattr(source, "chunks"):  # Django UploadedFile
        source.seek(0)
        yield from source.chunks(CHUNK)
        return
    source.seek(0)
    yield from iter(lambda: source.read(CHUNK), b"")


def store_file(source: BinaryIO | bytes | Path, *, directory: str, original_name: str, field: str) -> StoredFile:
    """Stream ``source`` to ``directory/<sanitised name>``, hashing it and enforcing the size limit."""
    limit = max_artifact_bytes()
    name = sanitize_name(original_name)
    target = absolute_path(f"{directory}/{name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with target.open("wb") as out:
            for chunk in _chunks(source):
                size += len(chunk)
                if size > limit:
                    raise ValidationFailed(
                        f"{field}: {original_name} is larger than the {limit // (1024 * 1024)} MiB limit.",
                        details={field: f"larger than {limit} bytes"},
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if size == 0:
        target.unlink(missing_ok=True)
        raise ValidationFailed(f"{field}: {original_name} is empty.", details={field: "empty file"})
    return StoredFile(f"{directory}/{name}", original_name, digest.hexdigest(), size)


def read_verified(relative_path: str, sha256: str) -> bytes:
    """The file's bytes, after checking them against the recorded sha256 (the same bytes are loaded)."""
    return read_path_verified(absolute_path(relative_path), sha256, label=relative_path)


def read_path_verified(path: Path, sha256: str, *, label: str | None = None) -> bytes:
    """Read ``path`` and check its sha256; the runtimes load exactly these verified bytes."""
    relative_path = label or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactIntegrityError(f"artefact file {relative_path} cannot be read: {exc.strerror or exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ArtifactIntegrityError(
            f"artefact file {relative_path} does not match its recorded sha256 "
            f"(expected {sha256[:12]}…, found {actual[:12]}…)"
        )
    return data


#: Most members a zip may hold (a STAMM project folder, an MLflow model directory).
MAX_ZIP_MEMBERS = 2000


def zip_members_check(archive: zipfile.ZipFile, *, field: str) -> list[zipfile.ZipInfo]:
    """The members of an uploaded zip, refused (400) when unsafe: absolute or ``..`` paths, links, more than
    ``MAX_ZIP_MEMBERS`` members or more uncompressed bytes than ten times the artefact size limit."""
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise ValidationFailed(f"{field}: more than {MAX_ZIP_MEMBERS} files.", details={field: "too many files"})
    if sum(m.file_size for m in members) > 10 * max_artifact_bytes():
        raise ValidationFailed(f"{field}: uncompressed content too large.", details={field: "too large"})
    for member in members:
        name = member.filename
        if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name.split("/")[0]:
            raise ValidationFailed(f"{field}: unsafe path {name!r}.", details={field: name})
        if (member.external_attr >> 16) & 0o170000 == 0o120000:
            raise ValidationFailed(f"{field}: links are not allowed ({name}).", details={field: name})
    return members


def check_zip_members(path: Path, *, field: str) -> None:
    """A stored zip artefact (an MLflow model directory) passes ``zip_members_check``."""
    try:
        with zipfile.ZipFile(path) as archive:
            zip_members_check(archive, field=field)
    except zipfile.BadZipFile as exc:
        raise ValidationFailed(f"{field}: not a zip file ({exc}).", details={field: "not a zip file"}) from exc


def remove_directory(directory: str) -> None:
    """Delete a version's directory (used when registration fails after files were written)."""
    path = absolute_path(f"{directory}/.keep").parent
    shutil.rmtree(path, ignore_errors=True)

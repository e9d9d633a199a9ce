"""A version after registration: status, descriptor revisions, use, deletion and archiving."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.audit.tracking import audited_update
from apps.common.errors import Conflict, ValidationFailed

from .. import artifacts as store
from ..artifact_safety import is_pickle, pickle_approver_checked, pickle_block_reason, pickle_loading_allowed
from ..descriptors import (
    DescriptorError,
    deep_merge,
    serving_signature,
    validate_config,
    with_status,
)
from ..models import (
    Alias,
    AliasMove,
    DescriptorRevision,
    ModelVersion,
    SoftSensor,
    VersionArtifact,
    VersionStatus,
)
from ..runtimes import OfflineReason
from ..selectors import alias_is_signed, version_artifacts, version_spec
from ..serving import load_error
from .aliases import alias_delete
from .status import descriptor_status
from .versions import descriptor_error


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
    """Put a version online (only if it loads now) or offline; the descriptor's status follows.

    Asked online while its environment is being built, it stays offline with the request recorded and goes
    online once the build settles (no error: the request stands); any other reason it cannot load is a 409.
    """
    status = (status or "").lower()
    if status not in (VersionStatus.ONLINE, VersionStatus.OFFLINE):
        raise ValidationFailed(f"status: must be online or offline, got {status!r}", details={"status": status})
    if version.archived_at is not None:
        raise Conflict(f"{version} is archived; it cannot change status.")
    if status == VersionStatus.ONLINE:
        _refuse_unapproved_pickle(version)
    problem = (
        load_error(version_spec(version), version_artifacts(version_id=version.pk, created_at=version.created_at))
        if status == VersionStatus.ONLINE or version.status == VersionStatus.LOAD_ERROR
        else None
    )
    if isinstance(problem, OfflineReason):
        new_status, new_description = VersionStatus.OFFLINE, str(problem)
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
        after = with_status(before, status=descriptor_status(new_status), description=new_description)
        # Asked online while its environment is still being built: it goes online once built (``environment_settle``).
        requested = status if isinstance(problem, OfflineReason) and locked.environment_id else ""
        audited_update(
            ModelVersion.objects.filter(pk=version.pk),
            status=new_status,
            status_description=new_description,
            descriptor=after,
            status_changed_at=timezone.now(),
            requested_status=requested,
        )
        if after != before:
            _record_revision(
                version=locked,
                patch={
                    "model_identification": {
                        "status": descriptor_status(new_status),
                        "status_description": new_description,
                    }
                },
                before=before,
                after=after,
                user=user,
                source=source,
            )
    version.status, version.status_description, version.descriptor = new_status, new_description, after
    version.requested_status = requested
    if problem is not None and status == VersionStatus.ONLINE and not requested:
        raise Conflict(f"{version} cannot go online: {problem}", details={"load_error": problem}, code="load_error")
    return version


def _refuse_unapproved_pickle(version: ModelVersion) -> None:
    """409 for a version with a pickle that may not be loaded now (its status stays as it is)."""
    for artifact in version.artifacts.all():
        if is_pickle(artifact.original_name):
            reason = pickle_block_reason(sha256=artifact.sha256, approved_sha256=artifact.approved_sha256)
            if reason:
                raise Conflict(
                    f"{version} cannot go online: {reason}", details={"pickle": reason}, code="pickle_not_approved"
                )


def model_version_approve_pickle(*, version: ModelVersion, user: Any, sha256: str, online: bool = True) -> ModelVersion:
    """An administrator approves a version's pickle files, then the version is loaded and put online
    (``online=False`` records the approval and leaves it offline, for a later "put online").

    ``sha256`` is the model file's, as the administrator reviewed it: approving says "these bytes may
    run here". Who, when and each pickle file's sha256 are recorded on its artefact row; the loader
    unpickles only a file whose sha256 matches the approved one. Refused (409) on a server where
    ``REGISTRY_ALLOW_PICKLE`` is off, since the approval could not be acted on. Put online only if it
    loads now (else the load error is recorded and 409 says why).
    """
    pickle_approver_checked(user)
    if version.archived_at is not None:
        raise Conflict(f"{version} is archived.")
    pickles = [a for a in version.artifacts.all() if is_pickle(a.original_name)]
    if not pickles:
        raise ValidationFailed(f"{version} has no pickle file to approve.", details={"version": version.number})
    if not pickle_loading_allowed():
        raise Conflict(
            "Pickle loading is disabled on this server (REGISTRY_ALLOW_PICKLE is off): an approval could not be "
            "acted on.",
            code="pickle_disabled",
        )
    model = next((a for a in version.artifacts.all() if a.role == "model"), None)
    if model is None or (sha256 or "").strip().lower() != model.sha256:
        raise ValidationFailed(
            "sha256: must be the model file's sha256 as shown on the version (the bytes you reviewed).",
            details={"sha256": "does not match the model file"},
        )
    now = timezone.now()
    with transaction.atomic():
        for artifact in pickles:
            audited_update(
                VersionArtifact.objects.filter(pk=artifact.pk),
                approved_by=user,
                approved_at=now,
                approved_sha256=artifact.sha256,
            )
    approved = f"Pickle approved by {user.get_username()} on {now:%Y-%m-%d %H:%M} UTC"
    version = ModelVersion.objects.select_related("soft_sensor__project").get(pk=version.pk)  # fresh artefact rows
    return model_version_set_status(
        version=version,
        status=VersionStatus.ONLINE if online else VersionStatus.OFFLINE,
        description=f"{approved}; loaded and ready." if online else f"{approved}; offline.",
        user=user,
        source="approval",
    )


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
        raise descriptor_error(exc) from exc
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
    if requested_status is not None and str(requested_status).lower() == descriptor_status(version.status):
        requested_status = None  # unchanged: nothing to (re)check
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        before = locked.descriptor
        after = new.config
        if requested_status is None:  # the status stays the version's own
            description = (after.get("model_identification") or {}).get("status_description") if replace else None
            after = with_status(
                after, status=descriptor_status(locked.status), description=description or locked.status_description
            )
        audited_update(ModelVersion.objects.filter(pk=version.pk), descriptor=after, version_label=new.version)
        audited_update(SoftSensor.objects.filter(pk=locked.soft_sensor_id), name=new.name)
        _record_revision(version=locked, patch=patch, before=before, after=after, user=user, source=source)
    version.descriptor, version.version_label = after, new.version
    if requested_status is not None:
        description = (patch.get("model_identification") or {}).get("status_description") or ""
        model_version_set_status(
            version=version, status=str(requested_status), description=description, user=user, source=source
        )
    return version


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
        audited_update(
            ModelVersion.objects.filter(pk=version.pk),
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
    """Remove a soft sensor: aliases are dropped (recorded), each version erased or archived. A signed alias
    (production) must be removed first, with its signature."""
    signed = [a.name for a in Alias.objects.filter(soft_sensor=soft_sensor) if alias_is_signed(
        project=soft_sensor.project, name=a.name)]
    if signed:
        raise Conflict(
            f"{soft_sensor.model_id} still has the signed alias(es) {', '.join(signed)}; remove them with an "
            "electronic signature first.",
            details={"aliases": signed},
        )
    for alias in list(Alias.objects.filter(soft_sensor=soft_sensor)):
        alias_delete(soft_sensor=soft_sensor, name=alias.name, user=user, reason=reason)
    outcomes = [
        model_version_delete(version=v, user=user)
        for v in ModelVersion.objects.filter(soft_sensor=soft_sensor).select_related("soft_sensor__project")
    ]
    if "archived" in outcomes:
        audited_update(SoftSensor.objects.filter(pk=soft_sensor.pk), archived_at=timezone.now())
        return "archived"
    AliasMove.objects.filter(soft_sensor=soft_sensor).delete()
    soft_sensor.delete()
    return "deleted"


#: Keys of ``training_data`` the training workflow may record after registration (its verdict on the version).
EVALUATION_KEYS = ("evaluation", "bias")


def model_version_record_evaluation(
    *, version: ModelVersion, training_data: Mapping[str, Any], validation: Mapping[str, Any], user: Any
) -> ModelVersion:
    """Record how the training workflow judged a version: ``training_data`` keys ``evaluation``/``bias`` and
    the descriptor's ``training_information.validation`` (documentation, kept in the revision history)."""
    unknown = sorted(set(training_data) - set(EVALUATION_KEYS))
    if unknown:
        raise ValidationFailed(f"training_data: only {', '.join(EVALUATION_KEYS)} may be recorded", details=unknown)
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        merged = {**(locked.training_data or {}), **dict(training_data)}
        audited_update(ModelVersion.objects.filter(pk=version.pk), training_data=merged)
    version.training_data = merged
    current = (locked.descriptor.get("training_information") or {}).get("validation")
    if current == dict(validation):  # recorded already (a re-run step): no new revision
        return version
    return model_version_update_descriptor(
        version=version,
        patch={"training_information": {"validation": dict(validation)}},
        user=user,
        source="training",
    )

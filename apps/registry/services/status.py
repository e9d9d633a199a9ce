"""Recording a version's status: the row and the descriptor's ``model_identification`` always agree."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.audit.tracking import audited_update

from ..descriptors import with_status
from ..models import ModelVersion, VersionStatus


def descriptor_status(status: str) -> str:
    """The descriptor's status word for a version status (STAMM knows only online and offline)."""
    return "online" if status == VersionStatus.ONLINE else "offline"


@transaction.atomic
def model_version_status_record(
    *, version_id: int, status: str, description: str, requested_status: str | None = None
) -> ModelVersion | None:
    """Record a status the platform found (a load error, a settled environment): row and descriptor agree.

    ``requested_status`` (when given) replaces the status the version waits to take once its environment
    is built ("" when it waits for nothing any more).
    """
    locked = ModelVersion.objects.select_for_update().filter(pk=version_id).first()
    if locked is None:
        return None
    fields = {
        "status": status,
        "status_description": description,
        "status_changed_at": timezone.now(),
        "descriptor": with_status(locked.descriptor, status=descriptor_status(status), description=description),
    }
    if requested_status is not None:
        fields["requested_status"] = requested_status
    audited_update(ModelVersion.objects.filter(pk=version_id), **fields)
    for name, value in fields.items():
        setattr(locked, name, value)
    return locked

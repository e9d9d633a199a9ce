"""Aliases (``production``, ``staging``, ...): every move recorded with who, when and why; signed aliases
(``production`` and those of the project's signing policy) move only with an electronic signature."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.text import slugify

from apps.audit.services import SignatureInput
from apps.common.errors import Conflict, NotFound, ValidationFailed

from ..models import (
    Alias,
    AliasMove,
    ModelVersion,
    SoftSensor,
    VersionStatus,
)
from .signing import alias_signature_check

# --------------------------------------------------------------------------------------------- aliases


def _reason_or_400(reason: str, what: str) -> str:
    if not (reason or "").strip():
        raise ValidationFailed(f"reason: say why the alias {what}.", details={"reason": "required"})
    return reason.strip()


def alias_move(
    *,
    soft_sensor: SoftSensor,
    name: str,
    version: ModelVersion,
    user: Any,
    reason: str,
    signature: SignatureInput | None = None,
) -> Alias:
    """Point ``name`` at ``version`` (creating the alias), recording who, when, from, to and why.

    A signed alias needs ``signature`` (checked before anything is written; a refusal is recorded by the
    audit app and nothing else changes). Call it outside a transaction when a signature may be refused, so
    the refused attempt is kept.
    """
    if not name or slugify(name) != name:
        raise ValidationFailed(
            f"alias: {name!r} is not a valid alias name (letters, digits, - and _).", details={"alias": name}
        )
    reason = _reason_or_400(reason, "moves")
    if version.soft_sensor_id != soft_sensor.pk:
        raise ValidationFailed("version: belongs to another soft sensor.", details={"version": version.number})
    if version.archived_at is not None:
        raise Conflict(f"{version} is archived; an alias cannot point at it.")
    if version.status == VersionStatus.LOAD_ERROR:
        raise Conflict(f"{version} cannot be loaded ({version.status_description}); an alias cannot point at it.")
    signed = alias_signature_check(
        soft_sensor=soft_sensor, name=name, version=version, user=user,
        given=_with_reason(signature, reason), verb="move",
    )
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(soft_sensor=soft_sensor, name=name).first()
        previous = alias.version if alias else None
        if alias is None:
            alias = Alias.objects.create(soft_sensor=soft_sensor, name=name, version=version)
        else:
            alias.version = version
            alias.save(update_fields=["version", "updated_at"])
        if signed is not None:
            signed.save()
        AliasMove.objects.create(
            soft_sensor=soft_sensor,
            alias_name=name,
            from_version=previous,
            to_version=version,
            moved_by=user if getattr(user, "pk", None) else None,
            reason=reason,
            signature=signed,
        )
    return alias


def _with_reason(signature: SignatureInput | None, reason: str) -> SignatureInput | None:
    """The move's reason is the signature's reason unless the signer gave another."""
    if signature is None or (signature.reason or "").strip():
        return signature
    return SignatureInput(password=signature.password, meaning=signature.meaning, reason=reason,
                          sha256=signature.sha256)


def alias_delete(
    *, soft_sensor: SoftSensor, name: str, user: Any, reason: str, signature: SignatureInput | None = None
) -> None:
    """Remove an alias, recorded like a move (to nothing); a signed alias needs ``signature`` here too."""
    reason = _reason_or_400(reason, "is removed")
    alias = Alias.objects.filter(soft_sensor=soft_sensor, name=name).select_related("version").first()
    if alias is None:
        raise NotFound(f"{soft_sensor.model_id} has no alias {name!r}.")
    signed = alias_signature_check(
        soft_sensor=soft_sensor, name=name, version=alias.version, user=user,
        given=_with_reason(signature, reason), verb="remove",
    )
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(pk=alias.pk).first()
        if alias is None:
            raise NotFound(f"{soft_sensor.model_id} has no alias {name!r}.")
        if signed is not None:
            signed.save()
        AliasMove.objects.create(
            soft_sensor=soft_sensor,
            alias_name=name,
            from_version=alias.version,
            to_version=None,
            moved_by=user if getattr(user, "pk", None) else None,
            reason=reason,
            signature=signed,
        )
        alias.delete()

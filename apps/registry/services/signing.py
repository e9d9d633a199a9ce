"""Signed aliases: moving or removing ``production`` (or an alias the project's policy signs) needs an electronic
signature bound to the sha256 of the version it points at, and, under the project's two-person rule, a signer
other than the user who uploaded or trained that version.

``alias_signature_check`` runs before the alias service writes anything: a refused signature is recorded by
``apps.audit`` and nothing else is written; an accepted one comes back unsaved and is saved with the move.
"""

from __future__ import annotations

from typing import Any

from apps.audit.services import SignatureInput, Subject, signature_check

from ..models import ModelVersion, SoftSensor
from ..selectors import signing_policy_of, version_sha256

TWO_PERSON = "the two-person rule: who uploaded or trained a version cannot sign its move"


def alias_signature_check(
    *, soft_sensor: SoftSensor, name: str, version: ModelVersion, user: Any, given: SignatureInput | None, verb: str
) -> Any | None:
    """None when alias ``name`` is not signed; else the accepted signature (unsaved) or ``SignatureRefused``."""
    policy = signing_policy_of(project=soft_sensor.project)
    if name not in policy.aliases:
        return None
    subject = Subject(
        type="registry.modelversion",
        id=str(version.pk),
        label=f"{soft_sensor.model_id} v{version.number}",
        sha256=version_sha256(version),
        action=f"{verb} {name} of {soft_sensor.model_id} (v{version.number})",
    )
    forbidden = [version.created_by] if policy.two_person_rule and version.created_by_id else []
    return signature_check(user=user, given=given, subject=subject, forbidden_signers=forbidden,
                           forbidden_why=TWO_PERSON)

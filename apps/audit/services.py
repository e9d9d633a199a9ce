"""Electronic signatures: a signer re-enters their password, states the meaning and the reason, and signs the
sha256 of what they saw; anything else is refused, and the refused attempt is recorded.

``signature_check`` is called by the service that needs a signature (e.g. the registry's alias move) before
it writes anything. On success it returns the signature row *unsaved*: the caller saves it in the same
transaction as the change it authorises, so a change that fails leaves no signature behind. On refusal it
writes the refused attempt at once (in its own transaction: call it outside any transaction, as the
registry does) and raises ``SignatureRefused`` (HTTP 403), so a refused signature changes nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.common.errors import Forbidden

from .context import current, remote_addr_of
from .models import Meaning, Outcome, Signature

#: The capability a signer must hold (``apps.accounts`` grants it to modelers and administrators).
SIGN_CAPABILITY = "sign_records"
#: Refused password attempts by one signer within the window before further attempts are refused unread.
MAX_FAILED_PASSWORDS = 5
FAILED_WINDOW = timedelta(minutes=15)
WRONG_PASSWORD = "the password is not this signer's"


__all__ = ["Meaning", "SignatureInput", "SignatureRefused", "Subject", "signature_check"]


class SignatureRefused(Forbidden):
    code = "signature_refused"


@dataclass(frozen=True)
class SignatureInput:
    """What the signer gives: their password again, the meaning, the reason, the sha256 they saw."""

    password: str
    meaning: str
    reason: str
    sha256: str


@dataclass(frozen=True)
class Subject:
    """What is signed: the record (type, id, label), the sha256 of its content and the action authorised."""

    type: str
    id: str
    label: str
    sha256: str
    action: str


def _refuse(*, user: Any, given: SignatureInput | None, subject: Subject, why: str) -> None:
    acting = current()
    with transaction.atomic():
        Signature.objects.create(
            signer=user if getattr(user, "pk", None) else None,
            signer_username=getattr(user, "username", "") or "anonymous",
            signer_name=(user.get_full_name() if hasattr(user, "get_full_name") else "")[:300],
            meaning=(given.meaning if given and given.meaning in Meaning.values else ""),
            reason=(given.reason if given else "")[:5000],
            action=subject.action[:300],
            subject_type=subject.type,
            subject_id=subject.id,
            subject_repr=subject.label[:300],
            subject_sha256=((given.sha256 if given else "") or "")[:64],
            outcome=Outcome.REFUSED,
            refusal=why,
            remote_addr=remote_addr_of(acting.request),
            via=acting.via,
        )
    raise SignatureRefused(f"signature refused: {why}", details={"signature": why})


def _recent_wrong_passwords(user: Any) -> int:
    since = timezone.now() - FAILED_WINDOW
    return Signature.objects.filter(
        signer_username=user.username, outcome=Outcome.REFUSED, refusal=WRONG_PASSWORD, signed_at__gte=since
    ).count()


def signature_check(
    *,
    user: Any,
    given: SignatureInput | None,
    subject: Subject,
    meanings: Iterable[str] = (Meaning.APPROVED,),
    forbidden_signers: Iterable[Any] = (),
    forbidden_why: str = "",
) -> Signature:
    """The signature row (unsaved) when every rule holds; else record the refusal and raise ``SignatureRefused``.

    Rules, in order: a signature is given; the signer is signed in, active and holds ``sign_records``; the
    meaning is one this action accepts; a reason is given; fewer than five wrong passwords in 15 minutes;
    the password is the signer's; the sha256 is the subject's now; the signer is none of
    ``forbidden_signers`` (the two-person rule, with ``forbidden_why`` as the refusal).
    """
    meanings = tuple(meanings)
    if given is None:
        _refuse(user=user, given=None, subject=subject, why=f"{subject.action} needs an electronic signature")
    assert given is not None
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        _refuse(user=user, given=given, subject=subject, why="the signer is not signed in")
    if not user.has_perm(f"accounts.{SIGN_CAPABILITY}"):
        _refuse(user=user, given=given, subject=subject, why=f"{user.username} may not sign records")
    if given.meaning not in meanings:
        accepted = " or ".join(meanings)
        _refuse(user=user, given=given, subject=subject, why=f"the meaning must be {accepted}, not {given.meaning!r}")
    if not (given.reason or "").strip():
        _refuse(user=user, given=given, subject=subject, why="a signature needs a reason")
    if _recent_wrong_passwords(user) >= MAX_FAILED_PASSWORDS:
        _refuse(
            user=user,
            given=given,
            subject=subject,
            why=f"{MAX_FAILED_PASSWORDS} wrong passwords in {int(FAILED_WINDOW.total_seconds() // 60)} minutes; "
            "wait before signing again",
        )
    if not user.check_password(given.password or ""):
        _refuse(user=user, given=given, subject=subject, why=WRONG_PASSWORD)
    if (given.sha256 or "").strip().lower() != subject.sha256:
        _refuse(
            user=user,
            given=given,
            subject=subject,
            why=f"the sha256 signed ({given.sha256 or 'none'}) is not the one of {subject.label} ({subject.sha256})",
        )
    if any(getattr(other, "pk", None) == user.pk for other in forbidden_signers):
        _refuse(user=user, given=given, subject=subject, why=forbidden_why or "this signer may not sign this record")
    acting = current()
    return Signature(
        signer=user,
        signer_username=user.username,
        signer_name=user.get_full_name()[:300],
        meaning=given.meaning,
        reason=given.reason.strip(),
        action=subject.action[:300],
        subject_type=subject.type,
        subject_id=subject.id,
        subject_repr=subject.label[:300],
        subject_sha256=subject.sha256,
        outcome=Outcome.ACCEPTED,
        remote_addr=remote_addr_of(acting.request),
        via=acting.via,
    )

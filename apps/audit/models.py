"""The audit trail and electronic signatures: append-only records of who changed what, when, from where.

- ``AuditEntry`` is django-auditlog's log entry (``AUDITLOG_LOGENTRY_MODEL``): one row per create, update
  or delete of an audited model, with the fields that changed (before → after), the actor, the address.
  The actor is also kept by name (``actor_username``) and its foreign key neither cascades nor constrains,
  so deleting a user later changes no audit row.
- ``Signature`` is one electronic signature (21 CFR Part 11 §11.50/§11.70): who signed, the meaning
  (reviewed / approved), the reason, when, bound to the sha256 of what was signed. A refused attempt (wrong
  password, missing capability, two-person rule, stale hash) is a row too, with the refusal.

Both are append-only three times over: the models refuse to save an existing row or delete one, their
querysets refuse ``update``/``delete``, and the migration installs database triggers that abort UPDATE and
DELETE on both tables (see ``guard.py``), so neither the admin, the API nor a shell script edits them.
"""

from __future__ import annotations

from typing import Any

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.conf import settings
from django.db import models


class AppendOnly(Exception):
    """An attempt to change or remove an audit record."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnly(f"{self.model._meta.label} is append-only: rows are never updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnly(f"{self.model._meta.label} is append-only: rows are never deleted")


class AppendOnlyModel(models.Model):
    """A row is written once: saving an existing row or deleting one raises ``AppendOnly``."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise AppendOnly(f"{self._meta.label} {self.pk} is append-only: it cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnly(f"{self._meta.label} {self.pk} is append-only: it cannot be deleted")


def person(**options: Any) -> models.ForeignKey:
    """A user reference that never changes an audit row: no cascade, no constraint (the name is kept beside)."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        **options,
    )


class AuditEntryManager(LogEntryManager.from_queryset(AppendOnlyQuerySet)):  # type: ignore[misc]
    pass


class AuditEntry(AbstractLogEntry, AppendOnlyModel):
    """One change of an audited object (django-auditlog's entry, kept by this app)."""

    content_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    actor = person()
    actor_username = models.CharField(
        max_length=150, blank=True, db_index=True, help_text="Who, by name (kept when the user is deleted)."
    )
    via = models.CharField(
        max_length=16, blank=True, db_index=True, help_text="ui, api, admin, or system (tasks, commands)."
    )

    objects = AuditEntryManager()

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        default_permissions = ("view",)
        indexes = [models.Index(fields=["content_type", "object_pk", "timestamp"], name="audit_entry_object_idx")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        from .context import fill_entry  # noqa: PLC0415 - the request context is read at write time

        if self._state.adding:
            fill_entry(self)
        super().save(*args, **kwargs)


class Meaning(models.TextChoices):
    REVIEWED = "reviewed", "Reviewed"
    APPROVED = "approved", "Approved"


class Outcome(models.TextChoices):
    ACCEPTED = "accepted"
    REFUSED = "refused"


class Signature(AppendOnlyModel):
    """An electronic signature on a record, or a refused attempt at one."""

    signer = person()
    signer_username = models.CharField(max_length=150, db_index=True)
    signer_name = models.CharField(max_length=300, blank=True, help_text="Full name at signing (§11.50).")
    meaning = models.CharField(max_length=16, choices=Meaning.choices, blank=True)
    reason = models.TextField(blank=True)
    action = models.CharField(max_length=300, help_text='What the signature authorises, e.g. "move production to v3".')
    subject_type = models.CharField(max_length=100, help_text="app_label.model of the signed record.")
    subject_id = models.CharField(max_length=64)
    subject_repr = models.CharField(max_length=300)
    subject_sha256 = models.CharField(max_length=64, help_text="The signed content's sha256.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)
    refusal = models.TextField(blank=True, help_text="Why the attempt was refused.")
    signed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    via = models.CharField(max_length=16, blank=True)

    objects = models.Manager.from_queryset(AppendOnlyQuerySet)()

    class Meta:
        ordering = ["-signed_at", "-id"]
        default_permissions = ("view",)
        indexes = [models.Index(fields=["subject_type", "subject_id"], name="audit_signature_subject_idx")]

    def __str__(self) -> str:
        if self.outcome == Outcome.REFUSED:
            return f"refused signature by {self.signer_username}: {self.action}"
        return f"{self.get_meaning_display()} by {self.signer_username}: {self.action}"

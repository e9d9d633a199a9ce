"""Reads of the audit trail and the signatures: filtered, newest first, one query (no N+1)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditlog.models import AbstractLogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import QuerySet

from apps.common.errors import ValidationFailed

from .models import AuditEntry, Outcome, Signature
from .tracking import audited_models

ACTIONS = {"create": AbstractLogEntry.Action.CREATE, "update": AbstractLogEntry.Action.UPDATE,
           "delete": AbstractLogEntry.Action.DELETE}
ACTION_NAMES = {value: name for name, value in ACTIONS.items()}
CHANNELS = ("ui", "api", "admin", "system")


@dataclass(frozen=True)
class AuditedModel:
    key: str  # "app_label.model"
    label: str
    content_type_id: int


def audited_model_list() -> list[AuditedModel]:
    """The audited models (what the model filter offers), by label."""
    types = ContentType.objects.get_for_models(*audited_models())
    return sorted(
        (AuditedModel(f"{m._meta.app_label}.{m._meta.model_name}", label, types[m].pk)
         for m, label in audited_models().items()),
        key=lambda m: m.label,
    )


def _content_type(model_key: str) -> ContentType:
    by_key = {m.key: m for m in audited_model_list()}
    found = by_key.get(model_key.lower())
    if found is None:
        raise ValidationFailed(
            f"model: {model_key!r} is not audited (one of {', '.join(sorted(by_key))})", details={"model": model_key}
        )
    return ContentType.objects.get_for_id(found.content_type_id)


def entry_list(
    *,
    model: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    via: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEntry]:
    """Audit rows, newest first; every filter optional, a bad value is a 400 naming the filter."""
    queryset = AuditEntry.objects.all()
    if model:
        queryset = queryset.filter(content_type=_content_type(model))
    if object_id not in (None, ""):
        if not model:
            raise ValidationFailed("object_id: give the model too", details={"object_id": object_id})
        queryset = queryset.filter(object_pk=str(object_id))
    if actor:
        queryset = queryset.filter(actor_username=actor)
    if action:
        if action not in ACTIONS:
            raise ValidationFailed(f"action: one of {', '.join(ACTIONS)}", details={"action": action})
        queryset = queryset.filter(action=ACTIONS[action])
    if via:
        if via not in CHANNELS:
            raise ValidationFailed(f"via: one of {', '.join(CHANNELS)}", details={"via": via})
        queryset = queryset.filter(via=via)
    if since is not None:
        queryset = queryset.filter(timestamp__gte=since)
    if until is not None:
        queryset = queryset.filter(timestamp__lte=until)
    return queryset.select_related("content_type").order_by("-timestamp", "-id")


def entries_for(instance: models.Model) -> QuerySet[AuditEntry]:
    """The trail of one object, newest first."""
    content_type = ContentType.objects.get_for_model(type(instance))
    return (
        AuditEntry.objects.filter(content_type=content_type, object_pk=str(instance.pk))
        .select_related("content_type")
        .order_by("-timestamp", "-id")
    )


def signature_list(
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    signer: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Signature]:
    queryset = Signature.objects.all()
    if subject_type:
        queryset = queryset.filter(subject_type=subject_type.lower())
    if subject_id not in (None, ""):
        queryset = queryset.filter(subject_id=str(subject_id))
    if signer:
        queryset = queryset.filter(signer_username=signer)
    if outcome:
        if outcome not in Outcome.values:
            raise ValidationFailed(f"outcome: one of {', '.join(Outcome.values)}", details={"outcome": outcome})
        queryset = queryset.filter(outcome=outcome)
    if since is not None:
        queryset = queryset.filter(signed_at__gte=since)
    if until is not None:
        queryset = queryset.filter(signed_at__lte=until)
    return queryset.order_by("-signed_at", "-id")


def change_rows(entry: AuditEntry) -> list[dict[str, Any]]:
    """An entry's changes as rows (field, before, after); a many-to-many change as (field, removed, added)."""
    rows = []
    model = entry.content_type.model_class()
    order = {f.name: i for i, f in enumerate(model._meta.get_fields())} if model is not None else {}
    changes = sorted((entry.changes or {}).items(), key=lambda item: order.get(item[0], len(order)))
    for field, change in changes:
        if isinstance(change, dict) and change.get("type") == "m2m":
            objects = ", ".join(str(o) for o in change.get("objects") or [])
            before, after = (objects, "") if change.get("operation") == "delete" else ("", objects)
            rows.append({"field": field, "before": before, "after": after})
        elif isinstance(change, (list, tuple)) and len(change) == 2:
            rows.append({"field": field, "before": change[0], "after": change[1]})
    return rows


ENTRY_COLUMNS = ("id", "timestamp", "action", "model", "object_id", "object", "actor", "via", "remote_addr",
                 "field", "before", "after")
SIGNATURE_COLUMNS = ("id", "signed_at", "outcome", "signer", "signer_name", "meaning", "reason", "action",
                     "subject_type", "subject_id", "subject", "subject_sha256", "refusal", "via", "remote_addr")


def entry_csv_rows(queryset: QuerySet[AuditEntry]) -> Iterator[list[Any]]:
    """One CSV row per changed field of each entry (an entry without changes is one row), streamed in chunks."""
    for entry in queryset.iterator(chunk_size=500):
        head = [entry.pk, entry.timestamp.isoformat(), ACTION_NAMES.get(entry.action, entry.action),
                f"{entry.content_type.app_label}.{entry.content_type.model}", entry.object_pk, entry.object_repr,
                entry.actor_username, entry.via, entry.remote_addr or ""]
        changes = change_rows(entry)
        if not changes:
            yield [*head, "", "", ""]
        for change in changes:
            yield [*head, change["field"], _cell(change["before"]), _cell(change["after"])]


def signature_csv_rows(queryset: QuerySet[Signature]) -> Iterator[list[Any]]:
    for s in queryset.iterator(chunk_size=500):
        yield [s.pk, s.signed_at.isoformat(), s.outcome, s.signer_username, s.signer_name, s.meaning, s.reason,
               s.action, s.subject_type, s.subject_id, s.subject_repr, s.subject_sha256, s.refusal, s.via,
               s.remote_addr or ""]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        import json  # noqa: PLC0415

        return json.dumps(value, sort_keys=True, default=str)
    return str(value)

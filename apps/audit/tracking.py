"""What is audited, registered by the app that owns each model, and the one way to update audited rows in bulk.

Apps register their models from ``AppConfig.ready()`` with ``audit_register`` (django-auditlog's registry:
a row on every ``save()`` and ``delete()``, with the changed fields before → after). Two things the signals
cannot see are handled here, once:

- ``QuerySet.update()`` sends no signal: services that update audited rows call ``audited_update``, which
  reads the rows, updates them and writes the same diff rows the signals would (``tests/audit`` checks that
  no audited model is updated any other way).
- A model whose primary key is a secret (DRF's API token: the key *is* the pk) must not have it copied into
  the trail: ``audit_register_secret`` records creation and deletion under a harmless label instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from auditlog.diff import model_instance_diff
from auditlog.registry import auditlog
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

#: Fields no audit row carries (timestamps every save moves).
ALWAYS_EXCLUDED = ("updated_at",)
#: What a secret field's value is shown as (the change is recorded, the value never).
SECRET = "(secret)"

_labels: dict[type[models.Model], str] = {}


def mask_secret(value: str) -> str:
    """django-auditlog's mask callable: a secret field changed, its value is not kept."""
    return SECRET


def audit_register(
    model: type[models.Model],
    *,
    exclude: Iterable[str] = (),
    secret: Iterable[str] = (),
    m2m: Iterable[str] = (),
    label: str = "",
) -> None:
    """Audit every create, update and delete of ``model`` (fields in ``exclude`` are not compared; fields in
    ``secret`` are recorded as changed without their value; ``m2m`` names many-to-many fields to follow)."""
    # Reverse relations (a version's "artifacts", "aliases", ...) are other rows, audited as themselves.
    reverse = [f.name for f in model._meta.get_fields() if f.auto_created and not f.concrete]
    auditlog.register(
        model,
        exclude_fields=[*ALWAYS_EXCLUDED, *reverse, *exclude],
        mask_fields=list(secret),
        mask_callable="apps.audit.tracking.mask_secret",
        m2m_fields=set(m2m),
    )
    _labels[model] = label or str(model._meta.verbose_name)


def audit_register_secret(model: type[models.Model], *, describe: Callable[[Any], str], object_id: Callable[[Any], str],
                          label: str = "") -> None:
    """Audit creation and deletion of a model whose key is a secret, under ``describe(instance)`` and
    ``object_id(instance)`` instead of its key."""
    from auditlog.models import AbstractLogEntry  # noqa: PLC0415

    def record(instance: Any, action: int) -> None:
        from .models import AuditEntry  # noqa: PLC0415

        AuditEntry.objects.log_create(
            instance,
            force_log=True,
            action=action,
            object_pk=object_id(instance),
            object_id=None,
            object_repr=describe(instance),
            changes={"key": [SECRET if action == AbstractLogEntry.Action.DELETE else None,
                             None if action == AbstractLogEntry.Action.DELETE else SECRET]},
        )

    def created(sender: Any, instance: Any, created: bool = False, raw: bool = False, **kwargs: Any) -> None:
        if created and not raw:
            record(instance, AbstractLogEntry.Action.CREATE)

    def deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
        record(instance, AbstractLogEntry.Action.DELETE)

    post_save.connect(created, sender=model, weak=False, dispatch_uid=f"audit.secret.create.{model._meta.label}")
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=f"audit.secret.delete.{model._meta.label}")
    _labels[model] = label or str(model._meta.verbose_name)


def audited_models() -> dict[type[models.Model], str]:
    """Every audited model with its label (for the pages, the API's filter and the tests)."""
    return dict(_labels)


def is_audited(model: type[models.Model]) -> bool:
    return model in _labels


def _tracked(model: type[models.Model], changes: dict[str, Any]) -> list[str]:
    """The fields among ``changes`` that the trail compares for ``model``."""
    if not auditlog.contains(model):
        return list(changes)
    fields = auditlog.get_model_fields(model)
    included, excluded = set(fields["include_fields"]), set(fields["exclude_fields"])
    return [name for name in changes if name not in excluded and (not included or name in included)]


def audited_update(queryset: models.QuerySet, **changes: Any) -> int:
    """``queryset.update(**changes)`` for an audited model, writing one audit row per row that changed.

    Rows are read before and after inside one transaction (the caller's, or a new one) and compared the way
    the save signals compare them, so a bulk update leaves the same trail a ``save()`` would.
    """
    from auditlog.models import AbstractLogEntry  # noqa: PLC0415

    from .models import AuditEntry  # noqa: PLC0415

    model = queryset.model
    if model not in _labels or not _tracked(model, changes):
        return queryset.update(**changes)  # nothing the trail records changes: one plain UPDATE
    with transaction.atomic():
        before = {row.pk: row for row in queryset.select_for_update()}
        if not before:
            return 0
        count = model._base_manager.filter(pk__in=list(before)).update(**changes)
        after = model._base_manager.in_bulk(list(before))
        for pk, old in before.items():
            new = after.get(pk)
            if new is None:
                continue
            diff = model_instance_diff(old, new, use_json_for_changes=True)
            if diff:
                AuditEntry.objects.log_create(new, action=AbstractLogEntry.Action.UPDATE, changes=diff)
    return count

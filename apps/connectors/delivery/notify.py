"""Finished runs → pending cursors → queued delivery tasks, in bulk (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.tsdb.types import GroupKey

from .. import selectors
from ..models import PublicationCursor

#: Cursors per delivery task. One task publishes once per connection for all of them, so larger is cheaper
#: per cursor; the cap keeps one task's reads, messages and log rows bounded (and the SQL parameter lists
#: well inside SQLite's limit).
DELIVER_BATCH = 200
#: A pending flag older than this without progress is re-queued by the sweep.
PENDING_GRACE_SECONDS = 60


def _cursors_ensure(keys: Sequence[tuple[int, GroupKey]]) -> list[int]:
    """The cursor ids of these (publication, group) pairs, creating missing ones (concurrency-safe: a
    concurrent insert of the same cursor is ignored and read back). One SELECT when all exist; otherwise
    one bulk INSERT and one more SELECT."""
    publications_of: dict[GroupKey, set[int]] = {}
    for publication_id, group in keys:
        publications_of.setdefault(group, set()).add(publication_id)

    def existing() -> dict[tuple[int, GroupKey], int]:
        where = Q()
        for group, publication_ids in publications_of.items():
            where |= Q(
                publication_id__in=sorted(publication_ids),
                project_name=group.project_name,
                device_id=group.device_id,
                batch_id=group.batch_id,
            )
        rows = PublicationCursor.objects.filter(where).values_list(
            "id", "publication_id", "project_name", "device_id", "batch_id"
        )
        return {(p, GroupKey(project, device, batch)): cursor_id for cursor_id, p, project, device, batch in rows}

    if not publications_of:
        return []
    found = existing()
    missing = [key for key in dict.fromkeys(keys) if key not in found]
    if missing:
        PublicationCursor.objects.bulk_create(
            [
                PublicationCursor(
                    publication_id=p,
                    project_name=group.project_name,
                    device_id=group.device_id,
                    batch_id=group.batch_id,
                )
                for p, group in missing
            ],
            ignore_conflicts=True,
        )
        found = existing()
    return sorted(found.values())


def pending_flip(cursor_ids: Sequence[int], *, now: datetime) -> list[int]:
    """Set ``pending`` where it was False (one UPDATE … RETURNING); the ids returned need a task."""
    if not cursor_ids:
        return []
    table = PublicationCursor._meta.db_table
    placeholders = ", ".join(["%s"] * len(cursor_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET pending = %s, pending_since = %s WHERE id IN ({placeholders}) AND pending = %s"
            " RETURNING id",
            [True, connection.ops.adapt_datetimefield_value(now), *cursor_ids, False],
        )
        return sorted(int(row[0]) for row in cursor.fetchall())


def _chunks(ids: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def deliveries_enqueue(cursor_ids: Sequence[int], countdown: float | None = None) -> None:
    """Queue ``connectors.deliver`` for these cursors, ``DELIVER_BATCH`` per task, after the commit (robust:
    a lost message leaves the cursor pending, and the sweep re-queues it)."""
    if not cursor_ids:
        return
    from ..tasks import deliver

    ids = sorted(set(cursor_ids))

    def send() -> None:
        for chunk in _chunks(ids, DELIVER_BATCH):
            deliver.apply_async(args=[chunk], countdown=countdown)

    transaction.on_commit(send, robust=True)


def publications_notify(pairs: Sequence[tuple[int, GroupKey]]) -> list[int]:
    """Runs of these (deployment, group) pairs committed (estimates or a failure): queue their deliveries.

    Whatever the number of pairs: one query for the publications, one or three for the cursors, one
    conditional UPDATE for the pending flags, and one task per ``DELIVER_BATCH`` cursors flipped. Returns the
    ids of the cursors flipped (those already pending have a task queued or running).
    """
    groups_of: dict[int, set[GroupKey]] = {}
    for deployment_id, group in pairs:
        groups_of.setdefault(deployment_id, set()).add(group)
    publications = selectors.publications_of(deployment_ids=list(groups_of))
    keys = [(p.pk, group) for p in publications for group in sorted(groups_of[p.deployment_id])]
    if not keys:
        return []
    with transaction.atomic():
        flipped = pending_flip(_cursors_ensure(keys), now=timezone.now())
        deliveries_enqueue(flipped)
    return flipped


def publication_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Beat's safety net: re-queue cursors pending too long (a lost task) or left failing; prune the logs."""
    from ..services import connectors_log_prune

    now = now or timezone.now()
    stuck = list(
        PublicationCursor.objects.filter(
            Q(pending=True, pending_since__lt=now - timedelta(seconds=PENDING_GRACE_SECONDS))
            | Q(pending=False, failures__gt=0),
            publication__enabled=True,
        ).values_list("id", flat=True)
    )
    with transaction.atomic():
        PublicationCursor.objects.filter(id__in=stuck).update(pending=False)
        flipped = pending_flip(stuck, now=now)
        deliveries_enqueue(flipped)
    pruned = connectors_log_prune(now=now)
    return {"requeued": len(flipped), **pruned}

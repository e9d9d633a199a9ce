"""Writes to the time-series store: every ingest path (JSON API, CSV import, replay, line protocol,
the pipeline) goes through ``points_ingest`` so validation, atomicity and the after-commit signal are
the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, OperationalError, transaction

from apps.common.errors import ServiceUnavailable, ValidationFailed

from .backends import BackendError, TimeSeriesBackend, get_backend
from .signals import points_committed
from .types import Collection, GroupKey, PointBatch, VariableMetadata
from .validation import InvalidBatch, batch_validate


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What an accepted ingest wrote."""

    collection: Collection
    points: int
    series: int
    groups: tuple[GroupKey, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection.value,
            "points": self.points,
            "series": self.series,
            "groups": [
                {"project_name": g.project_name, "device_id": g.device_id, "batch_id": g.batch_id} for g in self.groups
            ],
        }


def invalid_batch_error(exc: InvalidBatch, *, message: str | None = None) -> ValidationFailed:
    """The HTTP-400 application error for a rejected batch, listing every problem found."""
    return ValidationFailed(message or f"Rejected, nothing written: {exc}", details=[p.as_dict() for p in exc.problems])


def points_ingest(*, batch: PointBatch, user: Any = None, backend: TimeSeriesBackend | None = None) -> IngestResult:
    """Validate and write ``batch`` atomically; after commit, send ``points_committed`` for its groups.

    A batch with any invalid point raises ``ValidationFailed`` and writes nothing. The write joins the
    caller's transaction (SQL backend), so the signal fires only once everything the caller did commits.
    """
    backend = backend or get_backend()
    try:
        batch_validate(batch)
    except InvalidBatch as exc:
        raise invalid_batch_error(exc) from exc
    groups = frozenset(batch.groups())
    try:
        with transaction.atomic():
            written = backend.write(batch)
            if written:
                collection = batch.collection
                transaction.on_commit(
                    lambda: points_committed.send(
                        sender=TimeSeriesBackend, collection=collection, groups=groups, points=written, user=user
                    )
                )
    except InvalidBatch as exc:  # a backend with stricter rules than the shared validation
        raise invalid_batch_error(exc) from exc
    except BackendError as exc:
        raise ServiceUnavailable(f"The time-series store refused the write: {exc}") from exc
    used = {int(i) for i in set(batch.series_index.tolist())} if len(batch) else set()
    return IngestResult(batch.collection, written, len(used), tuple(sorted(groups)))


@contextmanager
def points_stream(
    *, collection: Collection, user: Any = None, backend: TimeSeriesBackend | None = None
) -> Iterator[Callable[[PointBatch], int]]:
    """Write a long ingest in pieces, atomically: ``with points_stream(...) as write: write(batch) ...``.

    For a caller that parses as it reads (the line-protocol endpoint): each batch is validated and
    written at once, in order (a later duplicate replaces an earlier one), all inside one transaction,
    so an error anywhere in the block (a bad line found later, a bad batch) writes nothing. After the
    commit ``points_committed`` is sent once, for every group written. Needs a ``transactional`` backend.
    """
    backend = backend or get_backend()
    if not backend.transactional:
        raise ValueError(f"the {backend.name} backend cannot roll back a write: validate everything, then write")
    written = 0

    def write(batch: PointBatch) -> int:
        nonlocal written
        try:
            count = stream.write(batch)  # validates first, as every backend write does
        except InvalidBatch as exc:
            raise invalid_batch_error(exc) from exc
        written += count
        return count

    using = backend.database_alias or DEFAULT_DB_ALIAS
    try:
        with transaction.atomic(using=using):
            stream = backend.write_stream(collection)
            try:
                yield write
                stream.close()
            except BaseException:
                stream.abort()
                raise
            if written:
                done = (frozenset(stream.groups), written)
                transaction.on_commit(
                    lambda: points_committed.send(
                        sender=TimeSeriesBackend, collection=collection, groups=done[0], points=done[1], user=user
                    ),
                    using=using,
                )
    except InvalidBatch as exc:
        raise invalid_batch_error(exc) from exc
    except BackendError as exc:
        raise ServiceUnavailable(f"The time-series store refused the write: {exc}") from exc
    except OperationalError as exc:
        # A stream holds its series locks for the whole body, so two bodies taking the same series in
        # opposite orders can deadlock; PostgreSQL cancels one. Nothing of it was kept: worth a retry.
        raise ServiceUnavailable(f"The write was cancelled by the database, retry it: {exc}".strip()) from exc


def points_delete(
    *,
    collection: Collection,
    group: GroupKey,
    start: datetime | None = None,
    end: datetime | None = None,
    backend: TimeSeriesBackend | None = None,
) -> int:
    """Delete a batch's points (all, or those in [start, end]); returns the count (-1 when unknown)."""
    if start is not None and end is not None and end < start:
        raise ValidationFailed("end must not be before start", details={"end": "before start"})
    backend = backend or get_backend()
    try:
        with transaction.atomic():
            return backend.delete(collection=collection, group=group, start=start, end=end)
    except BackendError as exc:
        raise ServiceUnavailable(f"The time-series store refused the delete: {exc}") from exc


def variable_metadata_store(*, items: Iterable[VariableMetadata], backend: TimeSeriesBackend | None = None) -> int:
    """Upsert display metadata (unit, display name, decimals) per (project, device, variable)."""
    backend = backend or get_backend()
    try:
        with transaction.atomic():
            return backend.metadata_write(list(items))
    except InvalidBatch as exc:
        raise invalid_batch_error(exc, message=f"Rejected metadata, nothing written: {exc}") from exc
    except BackendError as exc:
        raise ServiceUnavailable(f"The time-series store refused the metadata: {exc}") from exc

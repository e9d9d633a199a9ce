"""Tables of the SQL time-series backend.

Three tables hold the three STAMM collections:

- ``Series``: one row per series (collection + STAMM tags), unique, with a small integer id. Tags are
  stored once here instead of on every point, so the point tables stay narrow. The row also keeps the
  series' first/last time and point count, maintained by each write, for cheap group listings.
- ``RawPoint`` / ``PredictionPoint``: one row per point, primary key ``(series_id, time)``. That btree is
  the only index a range read of one series needs, and the key makes writes idempotent by construction
  (upsert: the last value wins). Raw and prediction points live in separate tables so the raw table,
  by far the largest, carries no prediction-only columns.
- ``VariableMetadata``: display metadata per (project, device, variable): the metadata collection.

``time`` is a ``bigint`` of nanoseconds since the epoch rather than a ``timestamptz``, because:
the backend contract is int64 ns (``PointBatch``/``SeriesData``), so reads and writes go straight
between NumPy arrays and the database without conversions; nanosecond timestamps from line protocol are
kept exactly (timestamptz stops at microseconds); SQLite has no native timestamp type, and one integer
representation makes the SQL (bucket arithmetic is integer division) identical on both databases.
The cost is that TimescaleDB needs an ``integer_now`` function for its policies, which
``SQLBackend.ensure_collections`` installs.

On PostgreSQL the migration adds a BRIN index on ``time`` to each point table (tiny, helps the
cross-series time filters of ``groups(since=...)`` and range deletes); see ``docs/tsdb.md`` for the
measurements behind BRIN + btree rather than native partitioning.
"""

from __future__ import annotations

from django.db import models

from .types import POINT_COLLECTIONS, SERIES_TAGS, SeriesKey
from .validation import MAX_DISPLAY_NAME_LENGTH, MAX_TAG_LENGTH, MAX_UNIT_LENGTH, MAX_VALIDITY_LENGTH

TAG_LENGTH = MAX_TAG_LENGTH


class Series(models.Model):
    """One series: a collection plus its STAMM tag set (``model_id``/``version`` empty for raw points)."""

    COLLECTION_CHOICES = [(c.value, c.value) for c in POINT_COLLECTIONS]

    id = models.BigAutoField(primary_key=True)
    collection = models.CharField(max_length=16, choices=COLLECTION_CHOICES)
    project_name = models.CharField(max_length=TAG_LENGTH)
    device_id = models.CharField(max_length=TAG_LENGTH)
    batch_id = models.CharField(max_length=TAG_LENGTH)
    source = models.CharField(max_length=TAG_LENGTH)
    observed_property = models.CharField(max_length=TAG_LENGTH)
    model_id = models.CharField(max_length=TAG_LENGTH, blank=True, default="")
    version = models.CharField(max_length=TAG_LENGTH, blank=True, default="")
    # Statistics kept by every write (and recomputed after deletes), so group and series listings read
    # this small table instead of counting millions of points.
    first_time = models.BigIntegerField(null=True, blank=True, help_text="Earliest point, ns since the epoch.")
    last_time = models.BigIntegerField(null=True, blank=True, help_text="Latest point, ns since the epoch.")
    point_count = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(
                fields=["collection", *SERIES_TAGS],
                name="tsdb_series_identity",
            )
        ]
        # The unique index above already serves lookups by (collection, project, device, batch, ...).
        indexes = [models.Index(fields=["collection", "observed_property"], name="tsdb_series_property")]

    def __str__(self) -> str:
        tags = ",".join(f"{k}={v}" for k, v in self.key.tags().items())
        return f"{self.collection}:{tags}"

    @property
    def key(self) -> SeriesKey:
        return SeriesKey(
            self.project_name,
            self.device_id,
            self.batch_id,
            self.source,
            self.observed_property,
            self.model_id,
            self.version,
        )


class AbstractPoint(models.Model):
    """What both point tables are: one row per point, primary key ``(series_id, time)``."""

    pk = models.CompositePrimaryKey("series_id", "time")
    # DO_NOTHING: points are deleted in bulk by the backend before their series, never row by row by the ORM.
    # No separate index on series_id: the primary key (series_id, time) starts with it. No database FK
    # constraint either: its per-row deferred checks cost a third of the ingest time, and the backend's
    # series-row lock already keeps series and points consistent (see backends/sql/writes.py).
    series = models.ForeignKey(
        Series, on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )
    time = models.BigIntegerField(help_text="Nanoseconds since 1970-01-01 UTC.")
    value = models.FloatField()

    class Meta:
        abstract = True


class RawPoint(AbstractPoint):
    """A raw measurement (sensor, actuator, computed variable, lab sample)."""

    class Meta:
        verbose_name = "raw point"


class PredictionPoint(AbstractPoint):
    """A soft-sensor output, stored at the time of the snapshot it was computed from."""

    validity = models.CharField(max_length=MAX_VALIDITY_LENGTH, blank=True, default="")
    corrected_value = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name = "prediction point"


class VariableMetadata(models.Model):
    """Display metadata of one variable of one device (STAMM's metadata collection)."""

    project_name = models.CharField(max_length=TAG_LENGTH)
    device_id = models.CharField(max_length=TAG_LENGTH)
    observed_property = models.CharField(max_length=TAG_LENGTH)
    unit = models.CharField(max_length=MAX_UNIT_LENGTH, blank=True, default="")
    display_name = models.CharField(max_length=MAX_DISPLAY_NAME_LENGTH, blank=True, default="")
    decimals = models.PositiveSmallIntegerField(default=2)

    class Meta:
        verbose_name = "variable metadata"
        verbose_name_plural = "variable metadata"
        constraints = [
            models.UniqueConstraint(
                fields=["project_name", "device_id", "observed_property"], name="tsdb_metadata_identity"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project_name}/{self.device_id}/{self.observed_property}"

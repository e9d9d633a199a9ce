"""Dashboard state: points that people flag on a chart, kept in the database for review and export."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class FlagLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class FlagType(models.TextChoices):
    SENSOR_FAULT = "sensor_fault", "Sensor fault"
    OUTLIER = "outlier", "Outlier"
    LAB_ERROR = "lab_error", "Lab sample error"
    PROCESS_EVENT = "process_event", "Process event"
    MODEL_ERROR = "model_error", "Soft-sensor error"
    OTHER = "other", "Other"


class PointFlag(models.Model):
    """One flagged point of one series (a time and, when known, the value the person saw).

    Series identity is the STAMM tag set, kept as plain columns because flags point into the
    time-series store, which is not a Django model (and may be InfluxDB).
    """

    project_name = models.CharField(max_length=128)
    device_id = models.CharField(max_length=128)
    batch_id = models.CharField(max_length=128)
    collection = models.CharField(max_length=16, default="raw", help_text="raw or predictions")
    source = models.CharField(max_length=64, blank=True)
    observed_property = models.CharField(max_length=200)
    model_id = models.CharField(max_length=200, blank=True)
    version = models.CharField(max_length=64, blank=True)
    time = models.DateTimeField(help_text="Timestamp of the flagged point.")
    value = models.FloatField(null=True, blank=True, help_text="The value shown when it was flagged.")
    level = models.CharField(max_length=16, choices=FlagLevel.choices, default=FlagLevel.WARNING)
    type = models.CharField(max_length=32, choices=FlagType.choices, default=FlagType.OTHER)
    description = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["project_name", "device_id", "batch_id", "time"], name="dashboard_flag_group_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(collection__in=["raw", "predictions"]), name="dashboard_flag_collection"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.type} {self.observed_property} @ {self.time:%Y-%m-%d %H:%M}"

    @property
    def group_label(self) -> str:
        return f"{self.project_name}/{self.device_id}/{self.batch_id}"

"""Drift state: jobs, their results, the alerts they raise, lab-sample residuals and per-project settings.

The rules (validation, scheduling, alert raising, the residual ledger) live in ``services.py``; these
models hold fields, constraints and what one row can say about itself.

- A ``DriftJob`` watches one deployment or one soft sensor with one detector configuration, a reference
  window and a test window (JSON specs, see ``window_loading.py``), optionally on a beat schedule.
- Each run stores a ``DriftResult`` (also ad hoc runs from the API, with ``job`` empty).
- A drift verdict of a job raises an ``Alert``: open → acknowledged (who, when, note) → resolved (by the
  job's next live run finding no drift, or by hand with a reason). While it is not resolved, further drift
  verdicts of the same job update it instead of opening another one (a partial unique constraint enforces
  one unresolved alert per job in the database). Every transition is an ``AlertEvent`` (the history).
- An ``AlertSilence`` mutes a deployment's alerts (of one detector, or all) until a time, with a reason:
  silenced alerts stay listed but do not count in the status light (``selectors.deployment_alert_status``).
- ``LabResidual`` is the residual ledger of a deployment: lab sample − nearest prediction, per group.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.common.models import TimeStampedModel


class VerdictRule(models.TextChoices):
    CALIBRATED = "calibrated", "reference-calibrated (default)"
    NOMINAL = "nominal", "the detector's own threshold"


class DriftJob(TimeStampedModel):
    """A detector configuration run against one deployment or soft sensor, by hand or on a schedule."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    deployment = models.ForeignKey(
        "orchestrator.Deployment", null=True, blank=True, on_delete=models.CASCADE, related_name="drift_jobs"
    )
    soft_sensor = models.ForeignKey(
        "registry.SoftSensor", null=True, blank=True, on_delete=models.CASCADE, related_name="drift_jobs"
    )
    detector = models.CharField(max_length=64, help_text="Catalogue key, e.g. psi.")
    params = models.JSONField(default=dict, blank=True, help_text="Validated detector parameters (defaults filled in).")
    variables = models.JSONField(
        default=list, blank=True, help_text="Variables to compare; empty means the model's input features."
    )
    reference = models.JSONField(help_text='Reference window spec, e.g. {"kind": "training"}.')
    test = models.JSONField(help_text='Test window spec, e.g. {"kind": "phase", "phase": "log"}.')
    verdict_rule = models.CharField(max_length=16, choices=VerdictRule.choices, default=VerdictRule.CALIBRATED)
    calibration = models.JSONField(
        default=dict,
        blank=True,
        help_text="CalibrationRule overrides: margin, quantile, bootstrap, block_fraction, seed.",
    )
    schedule_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Run every this many seconds (beat); empty means by hand only."
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        editable=False,
    )
    enabled = models.BooleanField(default=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(deployment__isnull=False, soft_sensor__isnull=True)
                | Q(deployment__isnull=True, soft_sensor__isnull=False),
                name="drift_job_deployment_xor_soft_sensor",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def target_label(self) -> str:
        if self.deployment_id:
            return f"deployment {self.deployment}"
        return f"soft sensor {self.soft_sensor}"

    @property
    def periodic_task_name(self) -> str:
        return f"drift job {self.pk}"


class ResultStatus(models.TextChoices):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ResultTrigger(models.TextChoices):
    BEAT = "beat"
    MANUAL = "manual"
    AD_HOC = "ad_hoc", "ad hoc"


class DriftResult(models.Model):
    """One run of a detector: verdict, score, explanation, the windows used and the calibration data.

    A run that could not score (no data in a window, a store outage) is stored too, with status
    ``failed`` and the error, so a schedule that does nothing is visible rather than silently green.
    """

    job = models.ForeignKey(DriftJob, null=True, blank=True, on_delete=models.CASCADE, related_name="results")
    deployment = models.ForeignKey(
        "orchestrator.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="drift_results"
    )
    soft_sensor = models.ForeignKey(
        "registry.SoftSensor", null=True, blank=True, on_delete=models.SET_NULL, related_name="drift_results"
    )
    trigger = models.CharField(max_length=16, choices=ResultTrigger.choices)
    status = models.CharField(max_length=16, choices=ResultStatus.choices, default=ResultStatus.SUCCEEDED)
    error = models.TextField(blank=True)
    detector = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=list, blank=True)
    drift = models.BooleanField(default=False)
    score = models.FloatField(
        null=True, blank=True, help_text="Calibrated: score ÷ calibrated threshold (threshold 1)."
    )
    threshold = models.FloatField(null=True, blank=True)
    p_value = models.FloatField(null=True, blank=True, help_text="The detector's iid p-value, where defined.")
    detection_index = models.IntegerField(null=True, blank=True)
    verdict_rule = models.CharField(max_length=16, choices=VerdictRule.choices, default=VerdictRule.CALIBRATED)
    explanation = models.TextField(blank=True)
    details = models.JSONField(
        default=dict, blank=True, help_text="Per-variable figures, nominal verdict, calibration."
    )
    reference_window = models.JSONField(default=dict, blank=True, help_text="The reference window as resolved.")
    test_window = models.JSONField(default=dict, blank=True, help_text="The test window as resolved.")
    runtime_ms = models.FloatField(default=0.0)
    version = models.CharField(
        max_length=100, blank=True, help_text="The deployment's version tag when the run scored it (what it ran)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["job", "created_at"], name="drift_result_job_idx"),
            models.Index(fields=["deployment", "created_at"], name="drift_result_dep_idx"),
        ]

    def __str__(self) -> str:
        verdict = "drift" if self.drift else ("failed" if self.status == ResultStatus.FAILED else "no drift")
        return f"{self.detector} #{self.pk}: {verdict}"

    @property
    def is_live_check(self) -> bool:
        """A job's run (beat or by hand) on a deployment: what may change its live status. Ad hoc runs never do."""
        return self.job_id is not None and self.trigger != ResultTrigger.AD_HOC

    @property
    def tested_batches(self) -> tuple[str, ...]:
        """``device/batch`` of every segment of the resolved test window (what the check looked at)."""
        segments = (self.test_window or {}).get("segments") or []
        return tuple(dict.fromkeys(f"{s.get('device_id')}/{s.get('batch_id')}" for s in segments
                                   if s.get("batch_id")))


class Severity(models.TextChoices):
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


#: The states in which an alert is still active (one per job at most; drift verdicts update it).
ACTIVE_STATES = (AlertState.OPEN, AlertState.ACKNOWLEDGED)


class Alert(models.Model):
    """Raised by a drift verdict of a job: open → acknowledged → resolved (see the module docstring)."""

    job = models.ForeignKey(DriftJob, on_delete=models.CASCADE, related_name="alerts")
    result = models.ForeignKey(DriftResult, on_delete=models.CASCADE, related_name="raised_alerts")
    last_result = models.ForeignKey(DriftResult, on_delete=models.CASCADE, related_name="+")
    severity = models.CharField(max_length=16, choices=Severity.choices)
    message = models.TextField()
    occurrences = models.PositiveIntegerField(default=1, help_text="Drift verdicts while this alert was active.")
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.OPEN, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledge_note = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who resolved it by hand; empty when the condition cleared.",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolve_reason = models.TextField(blank=True)
    resolved_by_result = models.ForeignKey(
        DriftResult, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The live check that found no drift and so resolved it.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job"], condition=Q(state__in=["open", "acknowledged"]), name="drift_alert_one_active_per_job"
            )
        ]

    def __str__(self) -> str:
        return f"{self.severity} alert {self.pk} ({self.job})"

    @property
    def is_open(self) -> bool:
        return self.state == AlertState.OPEN

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES


class AlertAction(models.TextChoices):
    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertEvent(models.Model):
    """One transition of an alert: who (empty: the platform), when, why, and the drift result behind it."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16, choices=AlertAction.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                           related_name="+")
    at = models.DateTimeField(db_index=True)
    note = models.TextField(blank=True, help_text="The acknowledgement note or the reason for resolving.")
    automatic = models.BooleanField(default=False, help_text="Done by the platform (a live check), not a person.")
    result = models.ForeignKey(DriftResult, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"alert {self.alert_id} {self.action} at {self.at:%Y-%m-%d %H:%M}"


class AlertSilence(models.Model):
    """Mutes a deployment's alerts of one detector (or of every detector) until a time, with a reason.

    Silenced alerts are still raised, listed and notified as silenced; they do not count in the status
    light. Ending a silence early keeps the row (who ended it, when).
    """

    deployment = models.ForeignKey("orchestrator.Deployment", on_delete=models.CASCADE, related_name="alert_silences")
    detector = models.CharField(max_length=64, blank=True, help_text="Catalogue key; empty silences every detector.")
    until = models.DateTimeField()
    reason = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Ended by hand before its time.")
    ended_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["deployment", "until"], name="drift_silence_dep_until_idx")]

    def __str__(self) -> str:
        what = self.detector or "every detector"
        return f"silence of {what} on deployment {self.deployment_id} until {self.until:%Y-%m-%d %H:%M}"

    def active_at(self, moment: Any) -> bool:
        return self.ended_at is None and self.until > moment

    def covers(self, detector: str) -> bool:
        return not self.detector or self.detector == detector


class ProjectDriftSettings(models.Model):
    """Per project (the time-series ``project_name`` tag): the batch phases test windows may name."""

    project_name = models.CharField(max_length=128, unique=True)
    phases = models.CharField(
        max_length=500,
        blank=True,
        help_text='Time-since-start ranges in hours, e.g. "lag:0-30,log:30-120,stationary:120-200,death:200-"; '
        "empty means IndPenSim's phases.",
    )

    class Meta:
        verbose_name_plural = "project drift settings"

    def __str__(self) -> str:
        return self.project_name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .windows import parse_phases

        if self.phases:
            try:
                parse_phases(self.phases)
            except ValueError as exc:
                raise ValidationError({"phases": str(exc)}) from None


class LabScoringSettings(models.Model):
    """How a deployment's predictions are matched with lab samples."""

    deployment = models.OneToOneField("orchestrator.Deployment", on_delete=models.CASCADE, related_name="lab_scoring")
    target = models.CharField(
        max_length=200, blank=True, help_text="Predicted variable; empty means the model's first output."
    )
    lab_property = models.CharField(
        max_length=200,
        blank=True,
        help_text="Lab series (source lab) holding the target's samples; empty means offline_<target>, "
        "else <target> (the CSV import stores offline_x as x with source lab).",
    )
    tolerance_seconds = models.PositiveIntegerField(
        default=900, help_text="A lab sample is matched with the nearest prediction at most this far away."
    )
    rolling_samples = models.PositiveIntegerField(default=5, help_text="Window of the rolling MAE / RMSE / bias.")
    event_k = models.FloatField(default=2.0, help_text="Error event when |residual| > k·σ of the reference residuals.")
    enabled = models.BooleanField(default=True, help_text="Refreshed by the periodic lab-scoring task.")

    class Meta:
        verbose_name_plural = "lab scoring settings"

    def __str__(self) -> str:
        return f"lab scoring of {self.deployment}"


class LabResidual(models.Model):
    """One lab sample against the nearest prediction of a deployment's model: residual = lab − predicted."""

    deployment = models.ForeignKey("orchestrator.Deployment", on_delete=models.CASCADE, related_name="lab_residuals")
    project_name = models.CharField(max_length=128)
    device_id = models.CharField(max_length=128)
    batch_id = models.CharField(max_length=128)
    target = models.CharField(max_length=200)
    lab_time = models.DateTimeField()
    prediction_time = models.DateTimeField()
    lab_value = models.FloatField()
    predicted_value = models.FloatField()
    residual = models.FloatField()
    model_id = models.CharField(max_length=200)
    version = models.CharField(max_length=32)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deployment", "project_name", "device_id", "batch_id", "lab_time"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "project_name", "device_id", "batch_id", "target", "lab_time"],
                name="drift_labresidual_unique_sample",
            )
        ]
        indexes = [models.Index(fields=["deployment", "lab_time"], name="drift_labres_dep_time_idx")]

    def __str__(self) -> str:
        return f"{self.batch_id} {self.lab_time:%Y-%m-%d %H:%M}: {self.residual:+.4g}"

    @property
    def group_label(self) -> str:
        return f"{self.project_name}/{self.device_id}/{self.batch_id}"

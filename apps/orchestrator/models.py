"""Orchestrator state: deployments, per-group watermarks (the claim and dedup row), pipeline runs.

How the three fit together (the rules live in ``services.py``):

- A ``Deployment`` says which soft sensor (alias or pinned version) scores which groups. A *shadow* deployment
  (``shadow_of``) scores its champion's groups and stores its own series (its version tag differs) but is
  never published nor shown as the estimate: it is a challenger judged on lab residuals.
- A ``Watermark`` exists per (deployment, group). It is the unit of exclusion: a run *claims* it with a
  conditional UPDATE that only succeeds when no unexpired lease is held, so two workers never process the
  same deployment/group window, on SQLite and PostgreSQL alike. It also carries the ``pending`` flag
  (set by a conditional UPDATE, so a burst of ingests leaves at most one queued run) and the progress:
  ``watermark_ns`` (newest snapshot time scored) and ``dirty_from_ns`` (earliest late point to rescore).
- A ``PipelineRun`` is one attempt on one watermark: trigger, status, step timings, counts, error.
- A ``BiasCorrection`` is one version of a deployment's lab bias update (part of how it scores: the scoring
  path applies the newest one; without any, the version's own trained parameters apply).
"""

from __future__ import annotations

import fnmatch

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.common.models import TimeStampedModel


class Deployment(TimeStampedModel):
    """Which soft sensor runs where, with which inputs; several deployments may score the same group."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    soft_sensor = models.ForeignKey("registry.SoftSensor", on_delete=models.PROTECT, related_name="deployments")
    alias = models.SlugField(
        max_length=64, blank=True, help_text="Alias to follow (e.g. production); empty when a version is pinned."
    )
    pinned_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="deployments"
    )
    # Scope: the soft sensor's project, optionally narrowed to devices, a batch pattern, live batches.
    device_ids = models.JSONField(default=list, blank=True, help_text="Devices to score; empty means every device.")
    batch_pattern = models.CharField(
        max_length=128,
        blank=True,
        help_text="Shell-style pattern on batch_id (e.g. batch_9*); empty means every batch.",
    )
    live_only = models.BooleanField(
        default=False, help_text="Only batches receiving data (newest input within STAMM_PIPELINE_LIVE_WINDOW)."
    )
    input_mapping = models.JSONField(
        default=dict, blank=True, help_text="Model feature -> project variable; unmapped features use their own name."
    )
    max_input_age_seconds = models.PositiveIntegerField(
        default=3600, help_text="An input older than this at a snapshot's time makes the snapshot incomplete."
    )
    score_from = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Groups seen for the first time are scored from here (empty: from their start).",
    )
    enabled = models.BooleanField(default=True)
    shadow_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="shadows",
        help_text="A shadow (challenger) scores the same groups as this deployment through the same path and stores "
        "its estimates, but never publishes them and is never shown as the estimate.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(alias="") & models.Q(pinned_version__isnull=False))
                | (~models.Q(alias="") & models.Q(pinned_version__isnull=True)),
                name="orchestrator_deployment_alias_xor_version",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_shadow(self) -> bool:
        """A shadow's estimates are stored, never published (connectors) nor shown as the estimate (pages)."""
        return self.shadow_of_id is not None

    @property
    def target_label(self) -> str:
        return f"@{self.alias}" if self.alias else f"v{self.pinned_version.number}" if self.pinned_version else "?"

    def feature_variable(self, feature: str) -> str:
        """The project variable feeding ``feature`` (by name unless mapped)."""
        return str(self.input_mapping.get(feature) or feature)

    def in_scope(self, *, device_id: str, batch_id: str) -> bool:
        """Device and batch-pattern filters (the project is matched by the caller; liveness by detection)."""
        if self.device_ids and device_id not in self.device_ids:
            return False
        return not self.batch_pattern or fnmatch.fnmatchcase(batch_id, self.batch_pattern)


class Watermark(models.Model):
    """Progress, dedup flag and lease of one deployment on one (project, device, batch) group."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="watermarks")
    project_name = models.CharField(max_length=128)
    device_id = models.CharField(max_length=128)
    batch_id = models.CharField(max_length=128)
    watermark_ns = models.BigIntegerField(null=True, blank=True, help_text="Newest snapshot time scored (epoch ns).")
    dirty_from_ns = models.BigIntegerField(
        null=True, blank=True, help_text="Earliest late data at or before the watermark, to rescore from (epoch ns)."
    )
    checkpoints = models.JSONField(
        default=list,
        blank=True,
        help_text="Late-data detector: [time (epoch ns), input points at or before it] for the watermark and "
        "earlier positions, newest first (services/late_data.py).",
    )
    pending = models.BooleanField(default=False, help_text="A run is queued for this group.")
    pending_since = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0, help_text="Consecutive failed runs (drives the backoff).")
    retry_after = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    bias_state = models.JSONField(
        default=dict,
        blank=True,
        help_text="Lab bias update memo: the version's raw estimate at each lab sample already seen, per output.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "project_name", "device_id", "batch_id"], name="orchestrator_watermark_group"
            )
        ]
        indexes = [
            models.Index(fields=["project_name", "device_id", "batch_id"], name="orchestrator_wm_group_idx"),
            models.Index(fields=["lease_expires_at"], name="orchestrator_wm_lease_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id}:{self.project_name}/{self.device_id}/{self.batch_id}"

    @property
    def group_label(self) -> str:
        return f"{self.project_name}/{self.device_id}/{self.batch_id}"


class Trigger(models.TextChoices):
    EVENT = "event"
    BEAT = "beat"
    MANUAL = "manual"
    BACKFILL = "backfill"


class RunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"
    STALE = "stale"


class PipelineRun(models.Model):
    """One run of health → detect → infer → store for one deployment and group."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="runs")
    watermark = models.ForeignKey(Watermark, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    project_name = models.CharField(max_length=128)
    device_id = models.CharField(max_length=128)
    batch_id = models.CharField(max_length=128)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    lease_token = models.UUIDField(unique=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the process that ran it.")
    task_id = models.CharField(max_length=255, blank=True)
    version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="pipeline_runs"
    )
    model_id = models.CharField(max_length=200, blank=True)
    version_label = models.CharField(max_length=100, blank=True)
    # The window asked for: (after, until] in epoch ns; None = open.
    window_after_ns = models.BigIntegerField(null=True, blank=True)
    window_until_ns = models.BigIntegerField(null=True, blank=True)
    dirty_from_ns = models.BigIntegerField(
        null=True, blank=True, help_text="Late-data rescore start taken by this run."
    )
    first_snapshot_ns = models.BigIntegerField(null=True, blank=True)
    last_snapshot_ns = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    health_ms = models.FloatField(null=True, blank=True)
    detect_ms = models.FloatField(null=True, blank=True)
    infer_ms = models.FloatField(null=True, blank=True)
    store_ms = models.FloatField(null=True, blank=True)
    snapshots = models.PositiveIntegerField(default=0)
    predictions = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    skipped_reasons = models.JSONField(default=dict, blank=True, help_text="Reason -> number of snapshots skipped.")
    registry_attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["status", "started_at"], name="orchestrator_run_status_idx"),
            models.Index(fields=["deployment", "started_at"], name="orchestrator_run_dep_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.deployment_id} {self.group_label} {self.status}"

    @property
    def group_label(self) -> str:
        return f"{self.project_name}/{self.device_id}/{self.batch_id}"

    @property
    def duration_ms(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000


class Heartbeat(models.Model):
    """The last time a named periodic task ran; beat's liveness is the age of ``beat``'s row.

    The pipeline health task records its verdict here too (``ok``/``detail`` under ``pipeline-health``).
    """

    name = models.CharField(max_length=64, unique=True)
    last_seen = models.DateTimeField()
    hostname = models.CharField(max_length=255, blank=True)
    ok = models.BooleanField(null=True, blank=True)
    detail = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen:%Y-%m-%d %H:%M:%S}"


class BiasCorrection(models.Model):
    """One version of a deployment's filtered bias update from lab samples.

    ``new bias = (1 − alpha) · bias + alpha · (lab − raw estimate at the sample time)``, for each lab sample
    whose value lies in [lab_min, lab_max] and whose age when its result arrives is at most
    ``max_lab_age_seconds``. The scoring path applies the newest version of a deployment (``enabled=False``
    turns the update off); older ones stay as the history.
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="bias_corrections")
    number = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    alpha = models.FloatField(
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)], help_text="Trust in each new lab residual."
    )
    max_lab_age_seconds = models.PositiveIntegerField(default=8 * 3600)
    lab_delay_seconds = models.PositiveIntegerField(
        default=4 * 3600, help_text="When a lab result becomes known after sampling."
    )
    lab_min = models.FloatField(null=True, blank=True)
    lab_max = models.FloatField(null=True, blank=True)
    reset_each_batch = models.BooleanField(default=True, help_text="Start every batch with a zero bias.")
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # State of the last replay (bias_correction_apply).
    applied_at = models.DateTimeField(null=True, blank=True)
    state = models.JSONField(default=dict, blank=True, help_text="Per batch: current bias, samples used and rejected.")

    class Meta:
        ordering = ["deployment", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "number"], name="orchestrator_bias_unique_number")
        ]

    def __str__(self) -> str:
        return f"bias correction v{self.number} of {self.deployment_id}"

"""Training state: runs, their steps, the candidates they train, project profiles and bias corrections.

- A ``TrainingRun`` is one request to train: who, when, the normalised configuration (project, target,
  features, batches, split, learners, gates, alias) and where it stands.
- A ``TrainingStep`` is one row per workflow step (load, preprocess, split, train:<learner>, evaluate,
  register, gate, promote) with status, attempts, timings and the step's output summary. Re-running a step
  updates its row; it never adds one.
- A ``Candidate`` is one learner of a run: hyperparameters, holdout metrics, gate verdicts and the model
  version it was registered as.
- A ``ProjectProfile`` holds what training needs to know about a project that the registry does not
  (the lab delay, the process phases).
- A ``BiasCorrection`` is one version of a deployment's filtered bias-update configuration plus its state.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.common.models import TimeStampedModel


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval", "awaiting approval"
    PROMOTED = "promoted"
    REGISTERED = "registered", "registered (no alias requested)"
    REJECTED = "rejected", "rejected by the gates"
    FAILED = "failed"


#: Statuses after which the workflow does no more work by itself.
FINISHED_STATUSES = (RunStatus.PROMOTED, RunStatus.REGISTERED, RunStatus.REJECTED, RunStatus.FAILED)


class TrainingRun(TimeStampedModel):
    """One training request and its outcome."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="Lineage id on model versions.")
    project = models.ForeignKey("registry.Project", on_delete=models.PROTECT, related_name="training_runs")
    model_id = models.CharField(max_length=200, help_text="Soft sensor whose versions the candidates become.")
    target = models.CharField(max_length=200)
    config = models.JSONField(help_text="The normalised configuration the run executes.")
    status = models.CharField(max_length=24, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    current_step = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    task_id = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    dataset = models.JSONField(
        default=dict, blank=True, help_text="Rows per batch, what preprocessing dropped, split sizes."
    )
    baselines = models.JSONField(
        default=dict, blank=True, help_text="Training mean and delayed-lab persistence on the holdout."
    )
    best_candidate = models.ForeignKey("Candidate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    promoted_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"training run {self.pk} {self.model_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def lineage_id(self) -> str:
        """What model versions record as ``training_run_id``."""
        return str(self.uid)


class StepStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WAITING = "waiting", "waiting for approval"
    SKIPPED = "skipped"


class TrainingStep(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    output = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="training_step_unique_name")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.name} {self.status}"


class CandidateStatus(models.TextChoices):
    PENDING = "pending"
    TRAINED = "trained"
    FAILED = "failed"


class Candidate(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="candidates")
    learner = models.CharField(max_length=64)
    hyperparameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=CandidateStatus.choices, default=CandidateStatus.PENDING)
    error = models.TextField(blank=True)
    artifact_path = models.CharField(max_length=500, blank=True, help_text="Fitted model, relative to MEDIA_ROOT.")
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    fit_seconds = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Holdout metrics: overall, per phase, vs baselines.")
    gates = models.JSONField(default=list, blank=True, help_text="One verdict per gate.")
    passed = models.BooleanField(null=True, blank=True)
    version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "learner"], name="training_candidate_unique_learner")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.learner}"


class ProjectProfile(TimeStampedModel):
    """Training facts about a project: how late lab results arrive, which phases a batch goes through."""

    project = models.OneToOneField("registry.Project", on_delete=models.CASCADE, related_name="training_profile")
    lab_delay_seconds = models.PositiveIntegerField(
        default=4 * 3600, help_text="Time from a lab sample to its result being known (IndPenSim default 4 h)."
    )
    phases = models.JSONField(
        default=list, blank=True, help_text='[{"name": "lag", "start_h": 0, "end_h": 30}, ...] on batch age in hours.'
    )

    def __str__(self) -> str:
        return f"profile of {self.project}"


class BiasCorrection(models.Model):
    """One version of a deployment's filtered bias update, and the state it reached.

    ``new bias = (1 − alpha) · bias + alpha · (lab − prediction)``, for each lab sample whose value lies
    in [lab_min, lab_max] and whose age when its result arrives is at most ``max_lab_age_seconds``.
    Only the newest version of a deployment is applied; older ones stay as the history.
    """

    deployment = models.ForeignKey("orchestrator.Deployment", on_delete=models.CASCADE, related_name="bias_corrections")
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
    # State of the last application.
    applied_at = models.DateTimeField(null=True, blank=True)
    state = models.JSONField(default=dict, blank=True, help_text="Per batch: current bias, samples used and rejected.")

    class Meta:
        ordering = ["deployment", "-number"]
        constraints = [models.UniqueConstraint(fields=["deployment", "number"], name="training_bias_unique_number")]

    def __str__(self) -> str:
        return f"bias correction v{self.number} of {self.deployment_id}"

"""Training state: runs, their steps, the candidates they train and project profiles.

- A ``TrainingRun`` is one request to train: who, when, the normalised configuration (project, target,
  features, batches, split, learners, gates, alias) and where it stands.
- A ``TrainingStep`` is one row per workflow step (load, preprocess, split, train:<learner>, evaluate,
  register, gate, promote) with status, attempts, timings and the step's output summary. Re-running a step
  updates its row; it never adds one.
- A ``Candidate`` is one learner of a run: hyperparameters, holdout metrics, gate verdicts and the model
  version it was registered as.
- A ``ProjectProfile`` holds what training needs to know about a project that the registry does not
  (the lab delay, the process phases).

The lab bias update a deployment runs with (``BiasCorrection``) belongs to the orchestrator: it is part of how
a deployment scores. Training evaluates versions with it and records the parameters it chose on the version.
"""

from __future__ import annotations

import uuid

from django.conf import settings
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


class RunTrigger(models.TextChoices):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    DRIFT_ALERT = "drift_alert", "drift alert"
    LAB_ERROR = "lab_error", "lab error above threshold"


#: Statuses of a run that is still working (a plan's next trigger is skipped meanwhile).
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


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
    plan = models.ForeignKey("TrainingPlan", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.MANUAL, db_index=True)
    trigger_key = models.CharField(
        max_length=200, blank=True, help_text="What started a plan's run (one run per key): a beat message, an alert."
    )
    trigger_detail = models.JSONField(
        default=dict, blank=True, help_text="The trigger's facts (alert, lab error figures) and the batches chosen."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "trigger_key"],
                condition=~models.Q(trigger_key=""),
                name="training_run_one_per_trigger",
            )
        ]

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


class TrainingPlan(TimeStampedModel):
    """A saved training configuration with its triggers: runs start by schedule, on a drift alert of a
    deployment, or when that deployment's lab error rises above a threshold; each trigger starts one run
    (none while one of the plan's runs is still working), through the same workflow and gates.

    ``config`` is a run's request without its batches; the batches are chosen when a trigger fires: every
    completed batch (no data for ``quiet_seconds``) of ``device_id`` matching ``batch_pattern`` whose data
    ended within ``window_days``, the newest ``holdout_newest`` held out.
    """

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    project = models.ForeignKey("registry.Project", on_delete=models.PROTECT, related_name="training_plans")
    config = models.JSONField(
        help_text="A training request without batches or split (target, features, learners, "
        "gates, bias, alias, model_id, ...)."
    )
    device_id = models.CharField(max_length=128, blank=True, help_text="Only this device's batches (empty: any).")
    batch_pattern = models.CharField(max_length=128, blank=True, help_text="Shell pattern on batch_id (empty: any).")
    window_days = models.PositiveIntegerField(default=90, help_text="Batches whose data ended this many days back.")
    holdout_newest = models.PositiveSmallIntegerField(default=2, help_text="The newest N batches are held out.")
    quiet_seconds = models.PositiveIntegerField(
        default=3600, help_text="A batch is complete when it has had no new data for this long."
    )
    max_batches = models.PositiveSmallIntegerField(default=30, help_text="At most this many (the newest).")
    schedule = models.CharField(
        max_length=100,
        blank=True,
        help_text='Crontab "minute hour day month weekday" (UTC), e.g. "0 3 * * 1" weekly; empty: no schedule.',
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    deployment = models.ForeignKey(
        "orchestrator.Deployment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_plans",
        help_text="The deployment whose drift alerts or lab error trigger the plan.",
    )
    on_drift_alert = models.BooleanField(
        default=False, help_text="A drift alert opened on the deployment starts a run."
    )
    lab_error_threshold = models.FloatField(
        null=True, blank=True, help_text="RMSE of the deployment's last N lab residuals above this starts a run."
    )
    lab_error_samples = models.PositiveSmallIntegerField(default=5, help_text="N lab samples of the lab-error rule.")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The plan's owner: its runs are theirs (and the two-person rule applies to them).",
    )
    trigger_state = models.JSONField(
        default=dict, blank=True, help_text="Last trigger, last skipped trigger, whether the lab error is above."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def periodic_task_name(self) -> str:
        return f"training plan {self.pk}"


class RequestStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved", "approved (alias moved, signed)"
    DISMISSED = "dismissed"
    SUPERSEDED = "superseded", "superseded (the alias or the challenger moved)"


class PromotionRequest(TimeStampedModel):
    """A proposal to move a champion's alias (production) to its challenger's version.

    The platform proposes it when a shadow deployment beats its champion on the lab samples both scored,
    with the configured confidence (``services.challengers``); it never performs it. A person approves it
    with an electronic signature (the alias move is the registry's, two-person rule included) or dismisses it.
    """

    champion = models.ForeignKey("orchestrator.Deployment", on_delete=models.CASCADE, related_name="+")
    challenger = models.ForeignKey("orchestrator.Deployment", on_delete=models.CASCADE, related_name="+")
    soft_sensor = models.ForeignKey("registry.SoftSensor", on_delete=models.CASCADE, related_name="+")
    alias = models.SlugField(max_length=64)
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    evidence = models.JSONField(default=dict, help_text="The comparison that justified it (samples, RMSE, bias, test).")
    status = models.CharField(
        max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING, db_index=True
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: proposed by the platform.",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["challenger", "version"],
                condition=models.Q(status="pending"),
                name="training_promotion_one_pending",
            )
        ]

    def __str__(self) -> str:
        return f"promote {self.alias} of {self.soft_sensor} to v{self.version.number} ({self.status})"

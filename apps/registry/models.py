"""Models of the registry app: projects, variable dictionaries, soft sensors, versions, aliases.

Writes go through ``services.py``; these classes hold fields, constraints and state derived from one row.
A ``ModelVersion`` is immutable once created (artefacts, descriptor signature, number): descriptor edits
that do not change what the model computes are recorded as ``DescriptorRevision`` rows, and anything
else needs a new version.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from apps.common.models import TimeStampedModel

project_id_validator = RegexValidator(r"^P[0-9]{4}$", "A project ID is P followed by 4 digits, e.g. P0001.")


class Project(TimeStampedModel):
    """A STAMM project (``project_info.yaml``): the unit models and variables belong to."""

    project_id = models.CharField("project ID", max_length=5, unique=True, validators=[project_id_validator])
    name = models.CharField(max_length=200, help_text="project_name, e.g. penicillin (the tsdb project tag).")
    description = models.TextField(blank=True)
    coordinator = models.CharField(max_length=200, blank=True)
    contributors = models.JSONField(default=list, blank=True)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    data_sources = models.JSONField(default=list, blank=True, help_text="List of {name, url, notes}.")
    references = models.JSONField(
        default=list, blank=True, help_text="List of {id, authors, title, journal, year, doi, apa}."
    )
    extra = models.JSONField(
        default=dict, blank=True, help_text="Other project_info keys (db_config, ...), kept for export."
    )

    class Meta:
        ordering = ["project_id"]

    def __str__(self) -> str:
        return f"{self.project_id} {self.name}"


class ColumnType(models.TextChoices):
    TIME = "Time"
    ACTUATOR = "Actuator"
    SENSOR = "Sensor"
    SOFT_SENSOR = "Soft_sensor"
    COMPUTED_VARIABLE = "Computed_variable"
    OFFLINE_MEASUREMENT = "Offline_measurement"
    EXPERIMENT = "Experiment"


class Variable(TimeStampedModel):
    """One row of a project's variable dictionary: how a raw column header maps to a canonical name."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="variables")
    position = models.PositiveIntegerField(default=0)
    raw_name = models.CharField(max_length=200, help_text="The raw column header (project_info 'name').")
    canonical_name = models.CharField(
        max_length=200, help_text="renamed_variable: the snake_case name used everywhere."
    )
    column_type = models.CharField(max_length=32, choices=ColumnType.choices)
    units = models.CharField(max_length=64, blank=True)
    description = models.TextField(blank=True)
    display_decimals = models.PositiveSmallIntegerField(default=2)

    class Meta:
        ordering = ["project", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "raw_name"], name="registry_variable_unique_raw_name"),
        ]
        indexes = [models.Index(fields=["project", "canonical_name"])]

    def __str__(self) -> str:
        return f"{self.raw_name} → {self.canonical_name}"


class SoftSensor(TimeStampedModel):
    """A STAMM model ID (e.g. ``0001_[python]_penicillin_RF``) with its successive versions."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="soft_sensors")
    model_id = models.CharField("model ID", max_length=200)
    name = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=32, blank=True)
    predicted_variables = models.JSONField(default=list, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "model_id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "model_id"], name="registry_softsensor_unique_model_id"),
        ]

    def __str__(self) -> str:
        return self.model_id


class Flavor(models.TextChoices):
    SKLEARN_PICKLE = "sklearn-pickle", "scikit-learn (joblib/pickle)"
    SKLEARN_SKOPS = "sklearn-skops", "scikit-learn (skops)"
    R_RDS = "r-rds", "R (.rds)"
    ONNX = "onnx", "ONNX"
    KERAS = "keras", "Keras"
    MLFLOW = "mlflow", "MLflow model"


class EnvironmentState(models.TextChoices):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


class RuntimeEnvironment(models.Model):
    """A declared Python environment (requirements + Python version) and the state of its build.

    ``key`` is the sha256 of what was declared; ``location`` names the built folder under
    ``STAMM_RUNTIME_ENV_DIR``, keyed by the resolved pins (``runtimes/environments.py``).
    """

    key = models.CharField(max_length=64, unique=True)
    python_request = models.CharField(max_length=16, blank=True, help_text="major.minor asked for; blank = any")
    requirements = models.JSONField(default=list, help_text="Declared requirements, e.g. scikit-learn==1.5.2.")
    variables = models.JSONField(default=dict, blank=True, help_text="Variables the worker starts with.")
    state = models.CharField(max_length=16, choices=EnvironmentState.choices, default=EnvironmentState.BUILDING)
    message = models.TextField(blank=True, help_text="The installer's message (failure) or a build note.")
    location = models.CharField(max_length=64, blank=True)
    python_version = models.CharField(max_length=32, blank=True)
    resolved = models.TextField(blank=True, help_text="The resolved pins that were installed.")
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)
    build_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"environment {self.key[:12]} ({', '.join(self.requirements)})"


class VersionStatus(models.TextChoices):
    ONLINE = "online"
    OFFLINE = "offline"
    LOAD_ERROR = "load_error", "load error"


class ModelVersion(models.Model):
    """One immutable version of a soft sensor: a validated descriptor plus its artefact files."""

    soft_sensor = models.ForeignKey(SoftSensor, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    version_label = models.CharField(
        max_length=100, blank=True, help_text="The descriptor's free-text version, e.g. V.1.0."
    )
    descriptor = models.JSONField(help_text="The validated ml_model_configuration mapping.")
    flavor = models.CharField(max_length=32, choices=Flavor.choices, blank=True)
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.OFFLINE)
    status_description = models.TextField(blank=True)
    environment = models.ForeignKey(
        RuntimeEnvironment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="versions",
        help_text="The declared environment it runs in; empty = the platform's own interpreter.",
    )
    requested_status = models.CharField(
        max_length=16, blank=True, help_text="The status to take once its environment is built (empty: none pending)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # Lineage: what this version came from.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    training_run_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    training_data = models.JSONField(
        default=dict, blank=True, help_text="Training data description (batches, rows, envelope)."
    )
    source = models.CharField(max_length=32, default="upload", help_text="upload, import, training, ...")
    first_predicted_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["soft_sensor", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["soft_sensor", "number"], name="registry_version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.soft_sensor.model_id} v{self.number}"

    @property
    def is_online(self) -> bool:
        return self.status == VersionStatus.ONLINE and self.archived_at is None


class ArtifactRole(models.TextChoices):
    MODEL = "model"
    INPUT_SCALER = "input_scaler", "input scaler"
    OUTPUT_SCALER = "output_scaler", "output scaler"
    #: The uploaded scikit-learn file a version converted to ONNX was made from (kept, never served).
    ORIGINAL_MODEL = "original_model", "original model"


class VersionArtifact(models.Model):
    """A file of a version, stored under MEDIA_ROOT, checked against ``sha256`` before every load."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="artifacts")
    role = models.CharField(max_length=16, choices=ArtifactRole.choices)
    original_name = models.CharField(max_length=255, help_text="File name as the descriptor names it (export uses it).")
    path = models.CharField(max_length=500, help_text="Path relative to MEDIA_ROOT.")
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    trusted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trusted_at = models.DateTimeField(null=True, blank=True)
    trusted_types = models.JSONField(
        default=list, blank=True, help_text="skops types beyond skops' defaults found in the file (all allowed)."
    )
    # A pickle is loaded only once an administrator approved this file: who, when, and which bytes.
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_sha256 = models.CharField(
        max_length=64, blank=True, help_text="The sha256 the administrator approved (pickles only)."
    )

    class Meta:
        ordering = ["version", "role"]
        constraints = [models.UniqueConstraint(fields=["version", "role"], name="registry_artifact_unique_role")]

    def __str__(self) -> str:
        return f"{self.version} {self.role}: {self.original_name}"


class Alias(models.Model):
    """A named pointer (``production``, ``staging``, ...) to one version of a soft sensor."""

    soft_sensor = models.ForeignKey(SoftSensor, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=64)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["soft_sensor", "name"]
        verbose_name_plural = "aliases"
        constraints = [models.UniqueConstraint(fields=["soft_sensor", "name"], name="registry_alias_unique_name")]

    def __str__(self) -> str:
        return f"{self.soft_sensor.model_id}@{self.name}"


class AliasMove(models.Model):
    """Every alias change: who moved which alias from which version to which, when and why."""

    soft_sensor = models.ForeignKey(SoftSensor, on_delete=models.CASCADE, related_name="alias_moves")
    alias_name = models.SlugField(max_length=64)
    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    moved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    moved_at = models.DateTimeField(auto_now_add=True, db_index=True)
    reason = models.TextField()
    signature = models.ForeignKey(
        "audit.Signature",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The electronic signature that authorised the move (signed aliases such as production).",
    )

    class Meta:
        ordering = ["-moved_at", "-id"]

    def __str__(self) -> str:
        before = f"v{self.from_version.number}" if self.from_version_id else "—"
        after = f"v{self.to_version.number}" if self.to_version_id else "removed"
        return f"{self.alias_name}: {before} → {after}"


class DescriptorRevision(models.Model):
    """A descriptor update (upstream keeps ``.bak`` files; here the history is in the database)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    patch = models.JSONField(help_text="What the caller sent (deep-merged into the descriptor).")
    before = models.JSONField()
    after = models.JSONField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source = models.CharField(max_length=32, help_text="api, stamm-update, ui, status, ...")

    class Meta:
        ordering = ["version", "-number"]
        constraints = [models.UniqueConstraint(fields=["version", "number"], name="registry_revision_unique_number")]


#: Aliases every project signs: moving or removing them needs an electronic signature (docs/governance.md).
ALWAYS_SIGNED = ("production",)


class SigningPolicy(TimeStampedModel):
    """A project's signing rules: which aliases besides ``production`` need a signature to move, and whether
    the two-person rule holds (whoever uploaded or trained a version cannot sign its move)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="signing_policy")
    signed_aliases = models.JSONField(
        default=list,
        blank=True,
        help_text='More aliases that need a signature, e.g. ["validated"] (production always needs one).',
    )
    two_person_rule = models.BooleanField(
        default=False, help_text="The user who uploaded or trained a version cannot sign its move."
    )

    class Meta:
        verbose_name_plural = "signing policies"

    def __str__(self) -> str:
        return f"signing policy of {self.project.project_id}"

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every signed alias of the project."""
        return tuple(dict.fromkeys([*ALWAYS_SIGNED, *(self.signed_aliases or [])]))

    def clean(self) -> None:
        from django.core.exceptions import ValidationError
        from django.utils.text import slugify

        names = self.signed_aliases
        if not isinstance(names, list) or not all(isinstance(n, str) and n and slugify(n) == n for n in names):
            raise ValidationError({"signed_aliases": "a list of alias names (letters, digits, - and _)"})


class VersionExplanation(models.Model):
    """What a version's estimates depend on, measured once on its holdout (``apps/registry/explanations.py``):
    permutation importance, partial-dependence curves of its top inputs, and the background rows an
    estimate's contributions are measured from. Derived data, recomputed at will, so not audited."""

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="explanation")
    computed_at = models.DateTimeField(auto_now=True)
    source = models.CharField(max_length=300, help_text="Where the holdout rows came from, in words.")
    data = models.JSONField(help_text="importance, partial_dependence, background, rows, rmse")

    def __str__(self) -> str:
        return f"explanation of version {self.version_id}"

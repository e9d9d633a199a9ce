"""Capability permissions, the unit of authorisation behind every role, and API tokens."""
from django.conf import settings
from django.db import models


class Capability(models.Model):
    """Carries the platform's capability permissions; it has no table and no rows.

    Roles (groups) are bundles of these permissions, and API views require capabilities, not group
    names, so a service account can be given exactly what it needs.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("use_platform", "Use the platform (any role)"),
            ("view_process", "Read process data, predictions and model details"),
            ("flag_points", "Flag measurements and predictions"),
            ("ingest_data", "Write process data to the time-series store"),
            ("predict", "Call soft-sensor models"),
            ("manage_models", "Upload, edit and promote soft-sensor models"),
            ("run_drift", "Run drift analyses and manage drift jobs"),
            ("train_models", "Train candidate models"),
            ("view_overview", "See the overview of every soft sensor"),
            ("manage_pipeline", "Manage deployments and pipeline runs"),
            ("administer", "Administer users, data and schedules"),
            ("view_audit", "Read the audit trail and the electronic signatures"),
            ("sign_records", "Sign electronic records (e.g. approve a production alias move)"),
        ]


class ApiToken(models.Model):
    """An API token, kept only as the SHA-256 of its key: the key itself is shown once, when issued.

    A key is 256 random bits, so a plain SHA-256 cannot be reversed or guessed, and a lookup stays one
    indexed query (a slow password hash would cost every API request). ``prefix`` (the first characters
    of the key) lets a person tell their tokens apart. A token may expire; ``last_used_at`` is refreshed
    at most once a minute so that reads do not become writes.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for (a system, a script).")
    prefix = models.CharField(max_length=16, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the token does not expire.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["user_id", "-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

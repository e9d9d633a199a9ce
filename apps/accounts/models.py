"""Capability permissions, the unit of authorisation behind every role."""
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
        ]

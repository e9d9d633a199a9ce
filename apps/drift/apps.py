from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_lab_scoring_schedule(sender: AppConfig, **kwargs) -> None:
    """After migrating the drift app: the periodic lab-scoring beat entry exists (idempotent)."""
    if sender.label != "drift":
        return
    from django.db import connections

    using = kwargs.get("using", "default")
    if "django_celery_beat_periodictask" not in connections[using].introspection.table_names():
        return
    from .services import lab_scoring_schedule_ensure

    lab_scoring_schedule_ensure(using=using)


class DriftConfig(AppConfig):
    name = "apps.drift"
    label = "drift"
    verbose_name = "Drift detection"

    def ready(self) -> None:
        post_migrate.connect(ensure_lab_scoring_schedule, dispatch_uid="drift.ensure_lab_scoring_schedule")

        from apps.audit.tracking import audit_register

        from .models import Alert, AlertSilence

        # Alerts are audited as their state changes (opened, acknowledged, resolved); repeated verdicts on an
        # active alert only bump counters, which are not recorded. Silences are audited as set and ended.
        audit_register(Alert, exclude=("occurrences", "last_result", "message"), label="drift alert")
        audit_register(AlertSilence, label="drift alert silence")

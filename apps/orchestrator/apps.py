from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrchestratorConfig(AppConfig):
    name = "apps.orchestrator"
    label = "orchestrator"
    verbose_name = "Orchestrator"

    def ready(self) -> None:
        from . import health_checks  # noqa: F401  (registers the beat heartbeat check)
        from .signals import ensure_schedules_after_migrate

        post_migrate.connect(ensure_schedules_after_migrate, dispatch_uid="orchestrator.ensure_schedules")

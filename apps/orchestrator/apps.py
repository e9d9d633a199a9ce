from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrchestratorConfig(AppConfig):
    name = "apps.orchestrator"
    label = "orchestrator"
    verbose_name = "Orchestrator"

    def ready(self) -> None:
        from apps.tsdb.signals import points_committed

        from . import (
            health_checks,  # noqa: F401  (registers the beat and pipeline checks)
            tasks,  # noqa: F401  (services queue the tasks by name, never importing this module)
        )
        from .signals import ensure_schedules_after_migrate, points_committed_received

        post_migrate.connect(ensure_schedules_after_migrate, dispatch_uid="orchestrator.ensure_schedules")
        points_committed.connect(points_committed_received, dispatch_uid="orchestrator.points_committed")

        from apps.audit.tracking import audit_register

        from .models import BiasCorrection, Deployment

        audit_register(Deployment, label="deployment")
        audit_register(BiasCorrection, exclude=("applied_at", "state"), label="bias update parameters")

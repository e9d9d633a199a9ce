from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConnectorsConfig(AppConfig):
    name = "apps.connectors"
    label = "connectors"
    verbose_name = "Plant connectivity"

    def ready(self) -> None:
        from apps.accounts.roles import ADMIN, MODELER
        from apps.common.navigation import NavLink, register_link
        from apps.orchestrator.signals import runs_finished

        from . import health_checks  # noqa: F401  (registers the connectors check)
        from .signals import ensure_schedule_after_migrate, runs_finished_received

        runs_finished.connect(runs_finished_received, dispatch_uid="connectors.runs_finished")
        post_migrate.connect(ensure_schedule_after_migrate, dispatch_uid="connectors.ensure_schedule")
        register_link(
            NavLink(
                key="connectors",
                title="Plant connectivity",
                description="MQTT and OPC UA sources: connected, messages/s, errors; estimates published back.",
                url_name="connectors:page",
                capability="manage_pipeline",
                roles=(MODELER, ADMIN),
                section="Pipeline",
                order=60,
            )
        )

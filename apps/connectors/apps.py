from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save


class ConnectorsConfig(AppConfig):
    name = "apps.connectors"
    label = "connectors"
    verbose_name = "Plant connectivity"

    def ready(self) -> None:
        from apps.accounts.roles import ADMIN, MODELER
        from apps.common.navigation import NavLink, register_link

        from . import health_checks  # noqa: F401  (registers the connectors check)
        from .signals import ensure_schedule_after_migrate, pipeline_run_saved

        # A lazy "app_label.Model" sender: the orchestrator's models module is never imported from here.
        post_save.connect(pipeline_run_saved, sender="orchestrator.PipelineRun", dispatch_uid="connectors.run_saved")
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

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "apps.dashboard"
    label = "dashboard"
    verbose_name = "Dashboards"

    def ready(self) -> None:
        from apps.audit.tracking import audit_register

        from . import dash_apps, navigation  # noqa: F401  (registers the Dash apps and the home links)
        from .models import PointFlag

        audit_register(PointFlag, label="point flag")

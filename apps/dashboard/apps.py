from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "apps.dashboard"
    label = "dashboard"
    verbose_name = "Dashboards"

    def ready(self) -> None:
        from . import dash_apps, navigation  # noqa: F401  (registers the Dash apps and the home links)

from django.apps import AppConfig


class TsdbConfig(AppConfig):
    name = "apps.tsdb"
    label = "tsdb"
    verbose_name = "Time-series store"

    def ready(self) -> None:
        from . import checks, health_checks  # noqa: F401  (system check tsdb.E00x, health check)

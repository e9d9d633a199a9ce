"""System checks: refuse to start with a time-series configuration that cannot work."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def check_tsdb_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    config = getattr(settings, "TSDB", None)
    if not isinstance(config, dict) or "BACKEND" not in config:
        return [checks.Error("settings.TSDB must be a dict with a BACKEND dotted path.", id="tsdb.E001")]
    if not isinstance(config.get("OPTIONS", {}), dict):
        return [checks.Error("settings.TSDB['OPTIONS'] must be a dict.", id="tsdb.E002")]
    from .backends import build_backend

    try:
        build_backend(config)
    except Exception as exc:  # the check's purpose is to report any construction failure
        return [
            checks.Error(
                f"The time-series backend {config['BACKEND']} cannot be built: {exc}",
                hint="Check TSDB_BACKEND and the INFLUXDB_* variables.",
                id="tsdb.E003",
            )
        ]
    return []

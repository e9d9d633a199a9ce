"""Backend selection: ``settings.TSDB = {"BACKEND": dotted path, "OPTIONS": {...}}``."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from .base import BackendError, TimeSeriesBackend

__all__ = ["BackendError", "TimeSeriesBackend", "build_backend", "get_backend"]


def build_backend(config: dict[str, Any]) -> TimeSeriesBackend:
    """Instantiate the backend a TSDB config dict names; raises ImportError/TypeError when invalid."""
    backend_cls = import_string(config["BACKEND"])
    if not (isinstance(backend_cls, type) and issubclass(backend_cls, TimeSeriesBackend)):
        raise TypeError(f"{config['BACKEND']} is not a TimeSeriesBackend subclass")
    return backend_cls(config.get("OPTIONS", {}))


@lru_cache(maxsize=1)
def _cached(backend_path: str, options_key: str) -> TimeSeriesBackend:
    return build_backend(settings.TSDB)


def get_backend() -> TimeSeriesBackend:
    """The configured backend, built once per process (rebuilt if the settings change, as in tests)."""
    return _cached(settings.TSDB["BACKEND"], repr(sorted(settings.TSDB.get("OPTIONS", {}).items())))

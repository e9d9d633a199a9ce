"""Create the time-series collections (tables, or InfluxDB databases/buckets with retention); idempotent."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.tsdb.backends import BackendError, get_backend


class Command(BaseCommand):
    help = "Create the raw, predictions and metadata collections of the configured backend if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        backend = get_backend()
        try:
            backend.ensure_collections()
        except BackendError as exc:
            raise CommandError(f"{backend.name}: {exc}") from exc
        health = backend.ping()
        if not health.ok:
            raise CommandError(f"{backend.name}: {health.detail}")
        self.stdout.write(self.style.SUCCESS(f"{backend.name}: {health.detail}"))

"""Is the time-series store reachable, and do its three collections exist? Exit status 1 if not."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.tsdb.backends import get_backend


class Command(BaseCommand):
    help = "Check the configured time-series backend and its collections (exit status 1 when unhealthy)."

    def handle(self, *args: Any, **options: Any) -> None:
        backend = get_backend()
        health = backend.ping()
        for name, present in sorted(health.collections.items()):
            self.stdout.write(f"  {name:<12} {'present' if present else 'MISSING'}")
        line = f"{backend.name}: {health.detail}"
        if not health.ok:
            raise CommandError(line)
        self.stdout.write(self.style.SUCCESS(line))

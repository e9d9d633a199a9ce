"""Seed the embedded demo that `make run` shows: role users (and, as apps land, the IndPenSim demo).

Idempotent: running it again keeps existing users and data. Lives in the dashboard app because the
dashboard is the top layer that may depend on every other app.
"""
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo users (random passwords, printed once) and the demo data."

    def handle(self, *args, **options) -> None:
        credentials = Path(settings.VAR_DIR) / "demo-credentials.txt"
        call_command("demo_users", credentials_file=str(credentials), stdout=self.stdout)

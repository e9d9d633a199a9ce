"""Create one demo user per role with a random password, printed once and saved to a 0600 file."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.accounts.services import demo_users_ensure


class Command(BaseCommand):
    help = "Create demo users (operator, modeler, manager, admin) with random passwords."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--credentials-file",
            default=str(Path(settings.VAR_DIR) / "demo-credentials.txt"),
            help="Where to write the new credentials (mode 0600).",
        )

    def handle(self, *args, **options) -> None:
        path = Path(options["credentials_file"])
        created = demo_users_ensure(credentials_path=path)
        if not created:
            self.stdout.write(f"Demo users already exist; their credentials are in {path}")
            return
        self.stdout.write(self.style.SUCCESS("Demo users created (passwords are shown only now):"))
        for cred in created:
            self.stdout.write(f"  {cred.role:<9} {cred.username:<10} {cred.password}")
        self.stdout.write(f"Saved to {path}")

"""Import a STAMM project folder (project_info.yaml, configs/*.yaml, models/*) into the registry."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.registry.services import project_folder_import


class Command(BaseCommand):
    help = (
        "Import a STAMM project folder: each descriptor in configs/ becomes a soft sensor with version 1. "
        "Prints one line per model (imported / skipped / failed: <reason>) and exits non-zero if any failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="The project folder (holding project_info.yaml).")
        parser.add_argument("--user", help="Username recorded as creator and as trusting the artefacts.")

    def handle(self, *args, path: Path, user: str | None = None, **options) -> None:
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder")
        account = None
        if user:
            try:
                account = get_user_model().objects.get(username=user)
            except get_user_model().DoesNotExist:
                raise CommandError(f"no user named {user!r}") from None
        report = project_folder_import(root=path, user=account)
        if report.error:
            raise CommandError(report.error)
        for outcome in report.outcomes:
            line = outcome.line()
            self.stdout.write(self.style.ERROR(line) if outcome.status == "failed" else line)
        failed = sum(outcome.status == "failed" for outcome in report.outcomes)
        total = len(report.outcomes)
        summary = f"{report.project.project_id}: {total - failed} of {total} model(s) imported or already present"
        if failed:
            raise CommandError(f"{summary}; {failed} failed")
        self.stdout.write(self.style.SUCCESS(summary))

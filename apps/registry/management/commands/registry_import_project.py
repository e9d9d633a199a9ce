"""Import a STAMM project folder (project_info.yaml, configs/*.yaml, models/*) into the registry."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.registry.services import project_folder_import


class Command(BaseCommand):
    help = (
        "Import a STAMM project folder: every descriptor in configs/ is registered (what cannot be served, "
        "offline with its reason; declared environments are built now). Prints one line per model, then a "
        "summary table; exits non-zero if a descriptor was invalid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="The project folder (holding project_info.yaml).")
        parser.add_argument("--user", help="Username recorded as the creator of the versions.")
        parser.add_argument(
            "--approve-pickles-as",
            metavar="ADMIN",
            help="An administrator's username: approve the folder's pickles as they are imported (loading a "
            "pickle runs its code; needs REGISTRY_ALLOW_PICKLE). Without it pickles are imported offline, "
            "awaiting an administrator's approval.",
        )

    def handle(
        self, *args, path: Path, user: str | None = None, approve_pickles_as: str | None = None, **options
    ) -> None:
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder")
        account, approver = _user(user), _user(approve_pickles_as)
        if approver is not None and not approver.has_perm("accounts.administer"):
            raise CommandError(f"{approve_pickles_as!r} is not an administrator: only administrators approve pickles")
        report = project_folder_import(root=path, user=account, pickle_approved_by=approver)
        if report.error:
            raise CommandError(report.error)
        for outcome in report.outcomes:
            line = outcome.line()
            self.stdout.write(self.style.ERROR(line) if outcome.status == "failed" else line)
        self.stdout.write("")
        for line in report.table():
            self.stdout.write(line)
        failed = sum(outcome.status == "failed" for outcome in report.outcomes)
        total = len(report.outcomes)
        summary = f"{report.project.project_id}: {total - failed} of {total} model(s) registered or already present"
        if failed:
            raise CommandError(f"{summary}; {failed} failed")
        self.stdout.write(self.style.SUCCESS(summary))


def _user(username: str | None):  # noqa: ANN202 - the project's user model
    if not username:
        return None
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise CommandError(f"no user named {username!r}") from None

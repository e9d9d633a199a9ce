"""Write a project back in the STAMM folder layout (project_info.yaml, configs/, models/)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.errors import NotFound
from apps.registry.artifacts import ArtifactIntegrityError
from apps.registry.selectors import project_get
from apps.registry.services import project_folder_export


class Command(BaseCommand):
    help = "Export a project's current model versions in the STAMM project folder layout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project_id", help="e.g. P0001")
        parser.add_argument("path", type=Path, help="Target folder (created; existing files are overwritten).")

    def handle(self, *args, project_id: str, path: Path, **options) -> None:
        try:
            project = project_get(project_id=project_id)
        except NotFound as exc:
            raise CommandError(exc.message) from None
        try:
            written = project_folder_export(project=project, target=path)
        except ArtifactIntegrityError as exc:
            raise CommandError(str(exc)) from None
        for model_id in written:
            self.stdout.write(f"{model_id}: exported")
        self.stdout.write(self.style.SUCCESS(f"{project_id}: {len(written)} model(s) written to {path}"))

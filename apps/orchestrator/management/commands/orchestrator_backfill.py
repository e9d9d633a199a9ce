"""Rescore a historical window of a deployment: ``orchestrator_backfill --deployment X --start … --end …``.

Idempotent (prediction writes are upserts on series and time); a tqdm bar counts snapshots.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.common.errors import ApplicationError


class Command(BaseCommand):
    help = "Rescore every snapshot of a deployment's groups between --start and --end (ISO 8601 with a time zone)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deployment", required=True, help="Deployment id or name.")
        parser.add_argument("--start", required=True, help="e.g. 2026-01-01T00:00:00Z")
        parser.add_argument("--end", required=True, help="e.g. 2026-01-02T00:00:00Z")
        parser.add_argument("--no-progress", action="store_true", help="Do not draw the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.orchestrator.selectors import deployment_get
        from apps.orchestrator.services import pipeline_backfill

        try:
            deployment = deployment_get(deployment_id=options["deployment"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        bar = tqdm(total=0, unit="snapshot", disable=options["no_progress"], file=self.stderr._out)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            runs = pipeline_backfill(
                deployment=deployment, start=options["start"], end=options["end"], progress=progress
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.message} {exc.details or ''}".strip()) from exc
        finally:
            bar.close()
        snapshots = sum(r.snapshots for r in runs)
        predictions = sum(r.predictions for r in runs)
        skipped = sum(r.skipped for r in runs)
        for run in runs:
            self.stdout.write(
                f"{run.group_label}: {run.status}, {run.snapshots} snapshots, {run.predictions} predictions, "
                f"{run.skipped} skipped (run {run.pk})"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"{deployment.name}: {len(runs)} group(s), {snapshots} snapshots, "
                f"{predictions} predictions, {skipped} skipped"
            )
        )

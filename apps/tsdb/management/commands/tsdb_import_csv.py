"""Import IndPenSim-style wide CSV files, one batch per file, through the ingest service.

Times: a numeric time column is an offset from the batch start. Without ``--start`` the files are laid
back to back in the order given so that the last one ends now (a realistic history for one device);
with ``--start`` the first batch starts then and the next ones follow it. Each file is imported in one
transaction: a file with a bad cell writes nothing and the command stops, naming the row and column.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from apps.common.dictionaries import variable_dictionary_for
from apps.common.errors import ApplicationError
from apps.tsdb.csv_import import TIME_UNITS_NS, CsvInvalid, WideTable, wide_csv_parse
from apps.tsdb.services import points_ingest
from apps.tsdb.types import GroupKey, from_ns, to_ns

#: Rows per ingest call (progress granularity); the whole file still commits as one transaction.
CHUNK_ROWS = 200


def parse_start(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"--start {value!r} is not an ISO 8601 date-time")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def batch_id_from_filename(path: Path) -> str:
    """``batch_91.csv`` → ``batch_91``; ``IndPenSim 91.csv`` → ``indpensim_91``."""
    return re.sub(r"[^0-9a-z]+", "_", path.stem.lower()).strip("_") or "batch"


class Command(BaseCommand):
    help = "Import wide CSV batches (IndPenSim format) into the raw collection, with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        parser.add_argument("--project", required=True, help="project_name tag, e.g. penicillin")
        parser.add_argument("--device", required=True, help="device_id tag, e.g. R1")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--batch", help="batch_id tag (one file only)")
        group.add_argument("--batch-from-filename", action="store_true", help="batch_id from each file name")
        parser.add_argument("--start", type=parse_start, help="Start of the first batch (ISO 8601; UTC if no zone)")
        parser.add_argument(
            "--time-unit", choices=list(TIME_UNITS_NS), default="h", help="Unit of a numeric time column"
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        paths: list[Path] = options["paths"]
        if options["batch"] and len(paths) > 1:
            raise CommandError("--batch names one batch: give one file, or use --batch-from-filename")
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        dictionary = variable_dictionary_for(project_name=options["project"])
        tables: list[tuple[Path, WideTable]] = []
        for path in paths:
            try:
                tables.append((path, wide_csv_parse(path, time_unit=options["time_unit"], dictionary=dictionary)))
            except CsvInvalid as exc:
                raise CommandError(f"{path}: {exc}") from exc
        starts = self._starts(tables, options["start"])
        total_points = 0
        for (path, table), start in zip(tables, starts, strict=True):
            batch_id = options["batch"] or batch_id_from_filename(path)
            group = GroupKey(options["project"], options["device"], batch_id)
            try:
                times = table.absolute_times(start)
            except CsvInvalid as exc:
                raise CommandError(f"{path}: {exc}") from exc
            written = 0
            with (
                tqdm(
                    total=len(table),
                    desc=f"{path.name} → {batch_id}",
                    unit="row",
                    disable=options["no_progress"] or None,
                ) as bar,
                transaction.atomic(),
            ):
                for offset in range(0, len(table), CHUNK_ROWS):
                    rows = slice(offset, offset + CHUNK_ROWS)
                    try:
                        result = points_ingest(batch=table.to_batch(group=group, times_ns=times[rows], rows=rows))
                    except ApplicationError as exc:
                        raise CommandError(f"{path}: {exc.message} {exc.details or ''}".strip()) from exc
                    written += result.points
                    bar.update(len(table.values[rows]))
            total_points += written
            self.stdout.write(
                f"{path.name}: {written} points, {len(table)} rows, batch {batch_id}, "
                f"{from_ns(int(times.min())).isoformat()} .. {from_ns(int(times.max())).isoformat()}"
            )
        self.stdout.write(self.style.SUCCESS(f"Imported {len(tables)} file(s), {total_points} points."))

    @staticmethod
    def _starts(tables: list[tuple[Path, WideTable]], start: datetime | None) -> list[datetime | None]:
        """Batch starts: back to back from ``start``, or ending now when no start is given."""
        relative = [table.relative for _, table in tables]
        if not any(relative):
            if start is not None:
                raise CommandError("--start applies to numeric time columns; these files hold timestamps")
            return [None] * len(tables)
        spans = [int(table.times_ns.max()) if table.relative else 0 for _, table in tables]
        if start is None:
            now_ns = to_ns(datetime.now(UTC).replace(microsecond=0))
            begin = now_ns - sum(spans)
        else:
            begin = to_ns(start)
        starts: list[datetime | None] = []
        for (_, table), span in zip(tables, spans, strict=True):
            starts.append(from_ns(begin) if table.relative else None)
            begin += span
        return starts

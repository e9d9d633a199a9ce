"""Stream a batch CSV row by row into the raw collection, as STAMM's Node-RED emulator does.

Each row goes through the same ingest service as the API (validation, transaction, the after-commit
``points_committed`` signal), stamped with the wall-clock time it is sent: the first row now, the next
ones ``--interval`` apart (default 20 s, STAMM's emulator) or at the file's own spacing divided by
``--speed`` (e.g. ``500x``: 12 minutes of process in 1.44 s).

``--backfill N`` starts a fresh replay at an interesting point instead of at the batch's first row: rows 1..N
are written at once, stamped at the file's own spacing so that row N is "now" (the process history as it
would have been recorded, lab samples and their delays on the real time scale), and the replay then goes on
live from row N+1 at ``--interval``/``--speed``. ``make run`` uses it so the first screen already shows a
moving estimate, lab samples, bias updates and validity changes (``docs/dashboard.md``).

Resumable: progress is saved after every row in a small JSON state file (``var/replay/``), so after
Ctrl-C the same command continues with the next row, stamped from the new "now". ``--restart``
forgets the saved progress (the replayed rows are then written again at new times).
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.common.dictionaries import variable_dictionary_for
from apps.common.errors import ApplicationError
from apps.tsdb.csv_import import TIME_UNITS_NS, CsvInvalid, wide_csv_parse
from apps.tsdb.services import points_ingest
from apps.tsdb.types import NS_PER_S, GroupKey, from_ns, to_ns

_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_interval(value: str) -> float:
    """``20s``, ``500ms``, ``1.5``, ``2m`` → seconds (> 0)."""
    match = _INTERVAL.match(value)
    if not match or float(match.group(1)) <= 0:
        raise CommandError(f"--interval {value!r}: expected a positive duration such as 20s, 500ms, 2m")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_speed(value: str) -> float:
    """``500x`` or ``500`` → 500.0 (> 0)."""
    try:
        speed = float(value.strip().lower().removesuffix("x"))
    except ValueError:
        raise CommandError(f"--speed {value!r}: expected a factor such as 500x") from None
    if speed <= 0:
        raise CommandError("--speed must be positive")
    return speed


def state_path(state_dir: Path, group: GroupKey) -> Path:
    safe = "__".join(
        re.sub(r"[^0-9A-Za-z_.-]+", "_", part) for part in (group.project_name, group.device_id, group.batch_id)
    )
    return state_dir / f"{safe}.json"


class Command(BaseCommand):
    help = "Replay a batch CSV row by row into the raw collection, stamped from now (resumable)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, metavar="PATH")
        parser.add_argument("--project", required=True)
        parser.add_argument("--device", required=True)
        parser.add_argument("--batch", required=True)
        pace = parser.add_mutually_exclusive_group()
        pace.add_argument("--interval", type=parse_interval, help="Wall-clock time between rows (default 20s)")
        pace.add_argument(
            "--speed", type=parse_speed, help="Replay at the file's spacing divided by this factor, e.g. 500x"
        )
        parser.add_argument("--rows", type=int, help="Stop after this many rows in total (default: the whole file)")
        parser.add_argument(
            "--time-unit", choices=list(TIME_UNITS_NS), default="h", help="Unit of a numeric time column"
        )
        parser.add_argument(
            "--backfill",
            type=int,
            default=0,
            metavar="N",
            help="On a fresh replay, write the first N rows at once at the file's own spacing ending now, then go live",
        )
        parser.add_argument("--restart", action="store_true", help="Ignore saved progress and start from the first row")
        parser.add_argument("--state-dir", type=Path, default=Path(settings.VAR_DIR) / "replay")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        group = GroupKey(options["project"], options["device"], options["batch"])
        try:
            table = wide_csv_parse(
                path,
                time_unit=options["time_unit"],
                dictionary=variable_dictionary_for(project_name=group.project_name),
            )
        except CsvInvalid as exc:
            raise CommandError(f"{path}: {exc}") from exc
        total = len(table) if options["rows"] is None else min(len(table), options["rows"])
        if total < 1:
            raise CommandError("--rows must be at least 1")
        gaps_ns = self._gaps(table.times_ns, options["interval"], options["speed"])

        state_file = state_path(options["state_dir"], group)
        state = self._load_state(state_file, path) if not options["restart"] else {}
        next_row = int(state.get("next_row", 0))
        last_ns = int(state.get("last_time_ns", -1))
        if next_row >= total:
            self.stdout.write(
                f"Already replayed {next_row} rows of {path.name} into {group.batch_id}; --restart to replay again."
            )
            return
        if next_row:
            self.stdout.write(f"Resuming {path.name} at row {next_row + 1} of {total}.")

        points = 0
        backfill = min(max(int(options["backfill"] or 0), 0), total - 1)
        if next_row == 0 and backfill:
            points, last_ns = self._backfill(table, group, backfill)
            next_row = backfill
            self._save_state(state_file, path, next_row, last_ns, total)
            self.stdout.write(f"Backfilled rows 1..{backfill} of {path.name} ({points} points) ending now; going live.")

        # Row k of this run is due at run_start + (offset[k] - offset[next_row]), and stamped with that time.
        offsets = np.concatenate([[0], np.cumsum(gaps_ns)])
        run_start_ns = max(to_ns(datetime.now(UTC)), last_ns + 1000)
        bar = tqdm(
            total=total,
            initial=next_row,
            desc=f"replay {group.batch_id}",
            unit="row",
            disable=options["no_progress"] or None,
        )
        row = next_row
        try:
            for row in range(next_row, total):
                due_ns = run_start_ns + int(offsets[row] - offsets[next_row])
                wait = (due_ns - to_ns(datetime.now(UTC))) / NS_PER_S
                if wait > 0:
                    time.sleep(wait)
                batch = table.to_batch(group=group, times_ns=np.array([due_ns]), rows=slice(row, row + 1))
                try:
                    points += points_ingest(batch=batch).points
                except ApplicationError as exc:
                    raise CommandError(f"row {int(table.lines[row])}: {exc.message}") from exc
                self._save_state(state_file, path, row + 1, due_ns, total)
                bar.update(1)
        except KeyboardInterrupt:
            bar.close()
            self.stdout.write(
                self.style.WARNING(
                    f"Interrupted after row {row} of {total} ({points} points this run);"
                    " run the same command to resume."
                )
            )
            return
        bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Replayed rows {next_row + 1}..{total} of {path.name} into {group.project_name}/{group.device_id}/"
                f"{group.batch_id}: {points} points, last at {from_ns(due_ns).isoformat()}."
            )
        )

    @staticmethod
    def _backfill(table: Any, group: GroupKey, rows: int) -> tuple[int, int]:
        """Write rows ``0..rows-1`` in one ingest, stamped at the file's own spacing with the last one now;
        returns the points written and the last stamp."""
        own = table.times_ns[:rows].astype(np.int64)
        now_ns = to_ns(datetime.now(UTC))
        stamps = now_ns - (own[-1] - own)
        try:
            written = points_ingest(batch=table.to_batch(group=group, times_ns=stamps, rows=slice(0, rows))).points
        except ApplicationError as exc:
            raise CommandError(f"backfill: {exc.message}") from exc
        return written, int(stamps[-1])

    @staticmethod
    def _gaps(times_ns: np.ndarray, interval: float | None, speed: float | None) -> np.ndarray:
        """Wall-clock ns between consecutive rows."""
        n = times_ns.shape[0]
        if speed is not None:
            gaps = np.diff(times_ns).astype(np.float64) / speed
            return np.maximum(np.round(gaps), 1000).astype(np.int64)  # keep times strictly increasing
        seconds = interval if interval is not None else 20.0
        return np.full(max(n - 1, 0), int(seconds * NS_PER_S), dtype=np.int64)

    @staticmethod
    def _load_state(state_file: Path, path: Path) -> dict[str, Any]:
        if not state_file.exists():
            return {}
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"{state_file}: unreadable replay state ({exc}); use --restart") from exc
        if state.get("path") != str(path.resolve()):
            raise CommandError(
                f"{state_file} belongs to a replay of {state.get('path')}; use --restart to replay {path} instead"
            )
        return state

    @staticmethod
    def _save_state(state_file: Path, path: Path, next_row: int, last_ns: int, total: int) -> None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"path": str(path.resolve()), "next_row": next_row, "rows": total, "last_time_ns": last_ns})
        )
        os.replace(tmp, state_file)  # atomic: a Ctrl-C never leaves half a state file

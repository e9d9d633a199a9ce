"""IndPenSim-style wide CSV (one column per variable, one row per time) → raw points.

The same parser serves the import API, ``tsdb_import_csv`` and ``tsdb_replay``: ``wide_csv_parse``
reads and checks the whole file once into a ``WideTable`` (NumPy matrix, NaN = empty cell), and
``WideTable.to_batch`` turns any slice of rows into a ``PointBatch`` at the times the caller chooses.

Column mapping
  With a project variable dictionary (``{raw column: (canonical name, column type, units)}``, what the
  registry's ``variable_mapping`` returns) a column takes its canonical name and the source of its
  STAMM column type (Sensor → sensor, Actuator → actuator, Computed_variable → computed_variable,
  Offline_measurement → lab; Time is the time column; Experiment and Soft_sensor columns are skipped).
  Columns absent from the dictionary, and every column when there is none, follow the rule below.

  Rule: the canonical name is the header in snake_case (lower case, every run of characters other than
  letters and digits becomes one ``_``: ``heating/cooling_water_flow_rate`` → ``heating_cooling_water_
  flow_rate``, ``pH`` → ``ph``); the source comes from ``INDPENSIM_SOURCES`` (default ``sensor``).
  Offline lab columns are stored with source ``lab`` and without the ``offline_`` prefix, so that
  ``offline_penicillin_concentration`` is the lab value of ``penicillin_concentration`` and aligns with
  its predictions. Empty cells produce no point (lab columns are filled about every 12 h).

Time column
  ``time`` (or ``Time``/``timestamp``): numbers are offsets from ``start`` in ``time_unit`` (IndPenSim:
  hours); otherwise ISO 8601 timestamps (a timestamp without a zone is read as UTC), and then
  ``start`` must not be given.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from .types import NS_PER_S, Collection, GroupKey, PointBatch, SeriesKey, to_ns

TIME_COLUMNS = ("time", "Time", "timestamp", "Timestamp", "datetime")
TIME_UNITS_NS = {"h": 3600 * NS_PER_S, "min": 60 * NS_PER_S, "s": NS_PER_S}
#: Text cells read as empty (no point) besides the empty string.
EMPTY_TOKENS = frozenset({"", "nan", "NaN", "NA", "N/A", "null", "NULL", "None"})
MAX_PROBLEMS = 20
#: Longest line of a CSV file, in characters. An IndPenSim row is about 600; a wide file with a thousand
#: columns stays far below. A longer line (a file without newlines, a binary upload) is refused at once.
MAX_LINE_CHARS = 1024 * 1024

#: IndPenSim columns (canonical names) → STAMM source. Anything else defaults to ``sensor``.
INDPENSIM_SOURCES: Mapping[str, str] = {
    # Manipulated variables.
    "aeration_rate": "actuator",
    "agitator": "actuator",
    "sugar_feed_rate": "actuator",
    "acid_flow_rate": "actuator",
    "base_flow_rate": "actuator",
    "heating_cooling_water_flow_rate": "actuator",
    "heating_water_flow_rate": "actuator",
    "water_for_injection_dilution": "actuator",
    "air_head_pressure": "actuator",
    "dumped_broth_flow": "actuator",
    "paa_flow": "actuator",
    "oil_flow": "actuator",
    "ammonia_shots": "actuator",
    # Online measurements.
    "substrate_concentration": "sensor",
    "dissolved_oxygen_concentration": "sensor",
    "penicillin_concentration": "sensor",
    "vessel_volume": "sensor",
    "vessel_weight": "sensor",
    "ph": "sensor",
    "temperature": "sensor",
    "generated_heat": "sensor",
    "co2_percent_in_off_gas": "sensor",
    "oxygen_in_percent_in_off_gas": "sensor",
    # Derived from off-gas measurements.
    "oxygen_uptake_rate": "computed_variable",
    "carbon_evolution_rate": "computed_variable",
}
#: Offline lab columns (raw header) → canonical name stored with source ``lab``.
LAB_COLUMNS: Mapping[str, str] = {
    "offline_penicillin_concentration": "penicillin_concentration",
    "offline_biomass_concentration": "biomass_concentration",
    "PAA_concentration": "paa_concentration",
    "NH3_concentration": "nh3_concentration",
}
#: Columns that are not variables (IndPenSim's batch number).
SKIPPED_COLUMNS: Mapping[str, str] = {"experiment_ID": "experiment identifier, not a variable"}
#: STAMM dictionary column types → source (None: not stored as a raw variable).
COLUMN_TYPE_SOURCES: Mapping[str, str | None] = {
    "sensor": "sensor",
    "actuator": "actuator",
    "computed_variable": "computed_variable",
    "offline_measurement": "lab",
    "soft_sensor": None,
    "experiment": None,
    "time": None,
}

#: A variable dictionary: raw column → (canonical name, column type, units).
VariableDictionary = Mapping[str, tuple[str, str, str]]


class CsvInvalid(ValueError):
    """The file cannot be imported; ``problems`` are ``{"row", "column", "message"}`` dicts."""

    def __init__(self, message: str, problems: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def canonical_name(column: str) -> str:
    """The snake_case rule: lower case, runs of non-alphanumerics → ``_``, trimmed."""
    return re.sub(r"[^0-9a-z]+", "_", column.strip().lower()).strip("_")


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """How one CSV column is stored."""

    column: str
    observed_property: str
    source: str
    mapped_by: str  # "dictionary" | "rule"


@dataclass(frozen=True, slots=True)
class SkippedColumn:
    column: str
    reason: str


def column_plan(
    header: list[str], time_column: str, dictionary: VariableDictionary | None = None
) -> tuple[list[ColumnPlan], list[SkippedColumn]]:
    """Decide the (property, source) of every column; refuse two columns landing on one series."""
    plans: list[ColumnPlan] = []
    skipped: list[SkippedColumn] = []
    for column in header:
        if column == time_column:
            continue
        entry = (dictionary or {}).get(column)
        if entry is not None:
            canonical, kind, _units = entry
            source = COLUMN_TYPE_SOURCES.get(str(kind).strip().lower(), "sensor")
            if source is None:
                skipped.append(SkippedColumn(column, f"dictionary column type {kind} is not a raw variable"))
                continue
            plans.append(ColumnPlan(column, canonical_name(canonical or column), source, "dictionary"))
            continue
        if column in SKIPPED_COLUMNS:
            skipped.append(SkippedColumn(column, SKIPPED_COLUMNS[column]))
            continue
        if column in LAB_COLUMNS:
            plans.append(ColumnPlan(column, LAB_COLUMNS[column], "lab", "rule"))
            continue
        name = canonical_name(column)
        if not name:
            skipped.append(SkippedColumn(column, "no letters or digits in the header"))
            continue
        if name.startswith("offline_"):
            plans.append(ColumnPlan(column, name.removeprefix("offline_"), "lab", "rule"))
            continue
        plans.append(ColumnPlan(column, name, INDPENSIM_SOURCES.get(name, "sensor"), "rule"))
    seen: dict[tuple[str, str], str] = {}
    for plan in plans:
        key = (plan.source, plan.observed_property)
        if key in seen:
            raise CsvInvalid(
                f"columns {seen[key]!r} and {plan.column!r} both map to {plan.source}/{plan.observed_property}",
                [{"column": plan.column, "message": f"maps to the same series as {seen[key]!r}"}],
            )
        seen[key] = plan.column
    return plans, skipped


@dataclass(slots=True)
class WideTable:
    """A parsed wide CSV: ``values[row, j]`` belongs to ``columns[j]``; NaN means an empty cell."""

    columns: list[ColumnPlan]
    skipped: list[SkippedColumn]
    values: np.ndarray
    #: Absolute times (timestamp column) or offsets from the first row's start (relative column), ns.
    times_ns: np.ndarray
    relative: bool
    empty_cells: int = 0
    lines: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def to_batch(self, *, group: GroupKey, times_ns: np.ndarray, rows: slice | np.ndarray = slice(None)) -> PointBatch:
        """Raw points of ``rows`` stamped with ``times_ns`` (one per selected row); empty cells skipped."""
        block = self.values[rows]
        times_ns = np.asarray(times_ns, dtype=np.int64)
        if block.shape[0] != times_ns.shape[0]:
            raise ValueError("one time per selected row is required")
        filled = ~np.isnan(block)
        row_idx, col_idx = np.nonzero(filled)
        series = [
            SeriesKey(group.project_name, group.device_id, group.batch_id, plan.source, plan.observed_property)
            for plan in self.columns
        ]
        return PointBatch(
            collection=Collection.RAW,
            series=series,
            series_index=col_idx.astype(np.int32),
            times_ns=times_ns[row_idx],
            values=block[row_idx, col_idx],
        )

    def absolute_times(self, start: datetime | None) -> np.ndarray:
        """Row times in ns: offsets from ``start`` for a relative time column, else the timestamps."""
        if self.relative:
            if start is None:
                raise CsvInvalid(
                    "start is required: the time column holds offsets, not timestamps",
                    [{"column": "start", "message": "required for a relative time column"}],
                )
            return to_ns(start) + self.times_ns
        if start is not None:
            raise CsvInvalid(
                "start must not be given: the time column holds timestamps",
                [{"column": "start", "message": "not allowed with a timestamp column"}],
            )
        return self.times_ns

    @property
    def duration_ns(self) -> int:
        return int(self.times_ns.max() - self.times_ns.min()) if len(self) else 0


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvInvalid(f"the file is not UTF-8 text (byte {exc.start})") from None


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _shape_checked(text: str) -> list[str]:
    """The header cells, once the file is known to be a table: no NUL character, no line over
    ``MAX_LINE_CHARS``, and every non-blank row exactly as many cells as the header (pandas would pad a
    short row with empty cells and store it). Raises ``CsvInvalid`` naming the first line at fault."""
    nul = text.find("\x00")
    if nul >= 0:
        line = _line_of(text, nul)
        raise CsvInvalid(
            f"line {line}: the file contains a NUL character; it is not a text CSV",
            [{"row": line, "message": "NUL character"}],
        )
    lines = text.split("\n")
    lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
    too_long = np.flatnonzero(lengths > MAX_LINE_CHARS)
    if too_long.size:
        line = int(too_long[0]) + 1
        raise CsvInvalid(
            f"line {line} is {int(lengths[too_long[0]])} characters long; lines are limited to {MAX_LINE_CHARS}",
            [{"row": line, "message": "line too long"}],
        )
    try:
        if '"' in text:  # quoted cells may hold commas and newlines: let the csv module count the cells
            reader = csv.reader(io.StringIO(text))
            header = next(reader)
            for record in reader:
                if len(record) != len(header) and any(cell.strip() for cell in record):
                    _ragged(reader.line_num, len(record), len(header))
            return header
    except csv.Error as exc:
        raise CsvInvalid(f"the file is not valid CSV: {exc}") from None
    header = next(csv.reader([lines[0]]))
    commas = np.fromiter(map(str.count, lines, itertools.repeat(",")), dtype=np.int64, count=len(lines))
    for index in np.flatnonzero(commas != commas[0]).tolist():
        if lines[index].strip():
            _ragged(index + 1, int(commas[index]) + 1, len(header))
    return header


def _ragged(line: int, cells: int, expected: int) -> None:
    fewer = "fewer" if cells < expected else "more"
    raise CsvInvalid(
        f"line {line} has {cells} cells, {fewer} than the header's {expected}",
        [{"row": line, "message": f"{cells} cells, the header has {expected}"}],
    )


def wide_csv_parse(
    source: str | Path | bytes | IO[bytes] | IO[str],
    *,
    time_unit: str = "h",
    dictionary: VariableDictionary | None = None,
) -> WideTable:
    """Read and check a whole wide CSV; raises ``CsvInvalid`` naming the row (file line) and column."""
    if time_unit not in TIME_UNITS_NS:
        raise CsvInvalid(
            f"time_unit must be one of {', '.join(TIME_UNITS_NS)}", [{"column": "time_unit", "message": "unknown unit"}]
        )
    if isinstance(source, (str, Path)):
        text = _decode(Path(source).read_bytes())
    elif isinstance(source, bytes):
        text = _decode(source)
    else:
        raw = source.read()
        text = _decode(raw) if isinstance(raw, bytes) else raw
    if not text.strip():
        raise CsvInvalid("the file is empty")
    header = _shape_checked(text)
    header = [h.strip() for h in header]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise CsvInvalid(
            f"duplicate column(s): {', '.join(duplicates)}", [{"column": d, "message": "duplicate"} for d in duplicates]
        )
    if any(not h for h in header):
        raise CsvInvalid("a column has an empty header", [{"column": header.index(""), "message": "empty header"}])
    time_column = next((c for c in TIME_COLUMNS if c in header), None)
    if time_column is None:
        raise CsvInvalid(
            f"no time column (expected one of {', '.join(TIME_COLUMNS)})", [{"column": "time", "message": "missing"}]
        )
    plans, skipped = column_plan(header, time_column, dictionary)
    if not plans:
        raise CsvInvalid("no variable columns to import")
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=True
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise CsvInvalid(f"the file is not valid CSV: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise CsvInvalid("the file has a header but no rows")
    lines = np.arange(len(frame), dtype=np.int64) + 2  # file line of each row (header = line 1)
    problems: list[dict[str, object]] = []

    # Time column: all numbers (relative) or all timestamps (absolute).
    raw_times = frame[time_column].str.strip()
    empty_time = raw_times.isin(EMPTY_TOKENS)
    for i in np.flatnonzero(empty_time.to_numpy())[:5]:
        problems.append({"row": int(lines[i]), "column": time_column, "message": "empty time"})
    numeric = pd.to_numeric(raw_times, errors="coerce")
    relative = bool(numeric.notna().any())
    if relative:
        bad = numeric.isna() & ~empty_time
        for i in np.flatnonzero(bad.to_numpy())[:5]:
            problems.append(
                {"row": int(lines[i]), "column": time_column, "message": f"not a number: {raw_times.iloc[i]!r}"}
            )
        offsets = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        bad_inf = ~np.isfinite(offsets) & ~np.isnan(offsets)
        for i in np.flatnonzero(bad_inf)[:5]:
            problems.append({"row": int(lines[i]), "column": time_column, "message": "not a finite number"})
        times_ns = np.round(np.nan_to_num(offsets, nan=0.0, posinf=0.0, neginf=0.0) * TIME_UNITS_NS[time_unit]).astype(
            np.int64
        )
    else:
        parsed = pd.to_datetime(raw_times.where(~empty_time), utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna() & ~empty_time
        for i in np.flatnonzero(bad.to_numpy())[:5]:
            problems.append(
                {"row": int(lines[i]), "column": time_column, "message": f"not a timestamp: {raw_times.iloc[i]!r}"}
            )
        times_ns = np.zeros(len(frame), dtype=np.int64)
        if not bad.any() and not empty_time.any():
            times_ns = parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
        if (times_ns < 0).any():
            i = int(np.flatnonzero(times_ns < 0)[0])
            problems.append({"row": int(lines[i]), "column": time_column, "message": "before 1970-01-01"})

    values = np.full((len(frame), len(plans)), np.nan)
    empty_cells = 0
    for j, plan in enumerate(plans):
        cells = frame[plan.column].str.strip()
        empty = cells.isin(EMPTY_TOKENS).to_numpy()
        empty_cells += int(empty.sum())
        numbers = pd.to_numeric(cells.where(~empty), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(numbers) & ~empty
        for i in np.flatnonzero(bad)[:5]:
            problems.append(
                {"row": int(lines[i]), "column": plan.column, "message": f"not a number: {cells.iloc[i]!r}"}
            )
        infinite = np.isinf(numbers)
        for i in np.flatnonzero(infinite)[:5]:
            problems.append({"row": int(lines[i]), "column": plan.column, "message": "not a finite number"})
        values[:, j] = numbers
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        first = problems[0]
        raise CsvInvalid(
            f"row {first.get('row')}, column {first.get('column')}: {first['message']}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            problems[:MAX_PROBLEMS],
        )
    return WideTable(
        columns=plans,
        skipped=skipped,
        values=values,
        times_ns=times_ns,
        relative=relative,
        empty_cells=empty_cells,
        lines=lines,
    )

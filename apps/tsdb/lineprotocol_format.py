"""Writing line protocol: escaping and one line per point (what the InfluxDB backend sends to ``/write``)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .types import EXTRA_FIELDS, MEASUREMENT, PointBatch, SeriesKey, VariableMetadata


# --- escaping ---------------------------------------------------------------------------------------
def _escape(text: str, specials: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"line protocol cannot carry a newline in {text!r}")
    if text.endswith("\\"):
        raise ValueError(f"line protocol cannot carry a trailing backslash in {text!r}")
    for char in specials:
        if char in text:
            text = text.replace(char, "\\" + char)
    return text


def escape_measurement(text: str) -> str:
    return _escape(text, ", ")


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return _escape(text, ",= ")


def escape_string_field(text: str) -> str:
    """A double-quoted string field value."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"line protocol cannot carry a newline in {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- formatting -------------------------------------------------------------------------------------
def series_prefix(series: SeriesKey, measurement: str = MEASUREMENT) -> str:
    """``measurement,tag=value,...`` of one series, tags sorted by key (InfluxDB's preferred order)."""
    tags = series.tags()
    return ",".join(
        [escape_measurement(measurement), *(f"{escape_key(k)}={escape_key(tags[k])}" for k in sorted(tags))]
    )


def format_batch(batch: PointBatch, measurement: str = MEASUREMENT) -> list[str]:
    """One line per point, timestamps in nanoseconds, ``value`` always written as a float.

    Values must be finite (``batch_validate`` guarantees it on every write path). Extra fields of the
    collection are written when present on the point (NaN / empty string means absent).
    """
    prefixes = [series_prefix(s, measurement) + " value=" for s in batch.series]
    index = batch.series_index.tolist()
    values = batch.values.astype(np.float64, copy=False).tolist()
    times = batch.times_ns.tolist()
    if not batch.fields:
        return [f"{prefixes[s]}{v!r} {t}" for s, v, t in zip(index, values, times, strict=True)]
    suffix = [""] * len(batch)
    for name, column in batch.fields.items():
        kind = EXTRA_FIELDS[batch.collection].get(name)
        if kind == "float":
            for i, v in enumerate(column.astype(np.float64, copy=False).tolist()):
                if math.isfinite(v):
                    suffix[i] += f",{escape_key(name)}={v!r}"
        elif kind == "str":
            for i, v in enumerate(column.tolist()):
                if v not in (None, ""):
                    suffix[i] += f",{escape_key(name)}={escape_string_field(str(v))}"
        else:
            raise ValueError(f"{name!r} is not a field of the {batch.collection.value} collection")
    return [f"{prefixes[s]}{v!r}{x} {t}" for s, v, x, t in zip(index, values, suffix, times, strict=True)]


def format_metadata(items: Iterable[VariableMetadata], time_ns: int, measurement: str = MEASUREMENT) -> list[str]:
    """Metadata lines as STAMM writes them: tags device/project/property, fields unit, display_name, decimals."""
    lines = []
    for item in items:
        tags = {
            "device_id": item.device_id,
            "project_name": item.project_name,
            "observed_property": item.observed_property,
        }
        head = ",".join([escape_measurement(measurement), *(f"{k}={escape_key(tags[k])}" for k in sorted(tags))])
        fields = (
            f"decimals={int(item.decimals)}i,display_name={escape_string_field(item.display_name)},"
            f"unit={escape_string_field(item.unit)}"
        )
        lines.append(f"{head} {fields} {time_ns}")
    return lines

"""InfluxDB line protocol: a streaming parser into ``PointBatch`` and a formatter out of it (pure Python).

Grammar (https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/)::

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

Escaping: a backslash escapes the next character. In the measurement, ``,`` and space must be escaped;
in tag keys, tag values and field keys, ``,``, ``=`` and space; in string field values (double-quoted),
``"`` and ``\\``. Lines starting with ``#`` are comments; blank lines are skipped.

What this platform accepts (the STAMM schema, ``../shared/docs/stamm-contracts.md`` §1):

- measurement ``device_obs`` (``bioreactor_obs`` accepted as a synonym and stored as ``device_obs``);
- tags: exactly the STAMM tags of the collection, the five required ones non-empty
  (``project_name``, ``device_id``, ``batch_id``, ``source``, ``observed_property``), plus ``model_id`` and
  ``version`` for predictions; any other tag is refused, because silently dropping it would merge series
  the client considers distinct;
- field ``value``: a finite float; an integer (``12i`` / ``12u``) is accepted and stored as a float (exact
  up to 2**53); strings, booleans, NaN and infinities are refused. Predictions may also carry
  ``validity`` (string) and ``corrected_value`` (float);
- timestamp: an integer in the request's precision, optional (the receive time is used when absent, as
  InfluxDB does), and between ``earliest_ns`` and 2262-04-11 once scaled: a value that lands before
  ``earliest_ns`` almost always means the wrong precision (seconds sent as nanoseconds), so it is refused;
- duplicates on (series, time) within one body: the last line wins; out-of-order timestamps are accepted.

The parser is incremental (``feed`` bytes as they arrive, ``finish`` at the end): memory grows with
the number of points stored in columnar arrays (about 20 bytes a point), never with the body size.
Parsing stops at the first bad line, with its number and the problem, so a rejected body writes nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from datetime import datetime

import numpy as np

from .asof import last_wins
from .types import (
    EXTRA_FIELDS,
    MAX_TIME_NS,
    MEASUREMENT,
    READ_MEASUREMENTS,
    UTC,
    Collection,
    PointBatch,
    SeriesKey,
    VariableMetadata,
    to_ns,
)
from .validation import InvalidBatch, batch_validate

#: Nanoseconds per unit of each precision name InfluxDB 1.x and 2.x accept on ``/write``.
PRECISIONS: dict[str, int] = {
    "ns": 1,
    "n": 1,
    "us": 1_000,
    "u": 1_000,
    "µ": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
#: Default lower bound on timestamps: earlier ones are refused as "wrong precision?".
DEFAULT_EARLIEST_NS = to_ns(datetime(1990, 1, 1, tzinfo=UTC))
SERIES_TAGS = ("project_name", "device_id", "batch_id", "source", "observed_property", "model_id", "version")
_ALLOWED_TAGS = {
    Collection.RAW: frozenset(SERIES_TAGS[:5]),
    Collection.PREDICTIONS: frozenset(SERIES_TAGS),
}
_BOOLEANS = frozenset({"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"})
_INT64_MAX = 2**63 - 1
#: Validated series keys remembered per process (a key string is at most a few hundred bytes).
SERIES_KEY_CACHE_SIZE = 16_384
_UINT64_MAX = 2**64 - 1


class LineProtocolError(ValueError):
    """A body that cannot be stored; ``line`` is 1-based (0 when the problem is the body as a whole)."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.problem = message
        super().__init__(f"line {line}: {message}" if line else message)


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


# --- parsing ----------------------------------------------------------------------------------------
def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not escaped by a backslash (escapes are kept for the caller)."""
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str, specials: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in specials:
            out.append(text[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _split_line(line: str) -> tuple[str, str, str | None]:
    """(series key, fields, timestamp) of a line with escapes or quoted strings (the slow path)."""
    sections: list[str] = []
    start = 0
    i = 0
    n = len(line)
    in_string = False
    seen_fields = False
    while i < n:
        char = line[i]
        if char == "\\":
            i += 2
            continue
        if char == '"' and seen_fields:
            in_string = not in_string
        elif char == " " and not in_string:
            sections.append(line[start:i])
            start = i + 1
            seen_fields = True
        i += 1
    if in_string:
        raise ValueError('unterminated string field value (missing closing ")')
    sections.append(line[start:])
    if len(sections) == 2:
        return sections[0], sections[1], None
    if len(sections) == 3:
        return sections[0], sections[1], sections[2]
    if len(sections) < 2:
        raise ValueError("missing fields (expected 'measurement,tags fields [timestamp]')")
    raise ValueError(
        f"{len(sections) - 1} unescaped spaces; expected 'measurement,tags fields [timestamp]' "
        "(escape spaces in names and tag values as '\\ ')"
    )


def _split_fields(text: str) -> list[tuple[str, str]]:
    """``[(key, raw value)]`` of a field set, aware of quoted strings and escapes."""
    pairs: list[tuple[str, str]] = []
    i = 0
    n = len(text)
    start = 0
    in_string = False
    while i <= n:
        char = text[i] if i < n else ","
        if char == "\\" and i < n:
            i += 2
            continue
        if char == '"':
            in_string = not in_string
        elif char == "," and not in_string:
            item = text[start:i]
            eq = -1
            j = 0
            while j < len(item):
                if item[j] == "\\":
                    j += 2
                    continue
                if item[j] == "=":
                    eq = j
                    break
                j += 1
            if eq <= 0:
                raise ValueError(f"field {item!r} is not 'key=value' (unescaped comma or missing '=')")
            pairs.append((_unescape(item[:eq], ",= "), item[eq + 1 :]))
            start = i + 1
        i += 1
    return pairs


def _number(raw: str, name: str) -> float:
    """A float or integer field value as float; refuses strings, booleans, NaN and infinities."""
    if not raw:
        raise ValueError(f"field {name!r} has no value")
    last = raw[-1]
    if last == "i" or last == "u":
        digits = raw[:-1]
        body = digits[1:] if digits[:1] == "-" else digits
        if not (body.isascii() and body.isdigit()) or (last == "u" and digits[:1] == "-"):
            raise ValueError(f"field {name!r}: invalid integer {raw!r}")
        number = int(digits)
        if (last == "i" and not -_INT64_MAX - 1 <= number <= _INT64_MAX) or number > _UINT64_MAX:
            raise ValueError(f"field {name!r}: integer {raw!r} out of range")
        return float(number)
    if raw[0] == '"':
        raise ValueError(f"field {name!r} is a string; it must be a number (a float)")
    if raw in _BOOLEANS:
        raise ValueError(f"field {name!r} is a boolean; it must be a number (a float)")
    if "_" in raw or not raw.isascii():
        raise ValueError(f"field {name!r}: invalid number {raw!r}")
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"field {name!r}: invalid number {raw!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"field {name!r}: {raw!r} is not a finite number (NaN and infinities are not stored)")
    return number


def _string(raw: str, name: str) -> str:
    if len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
        raise ValueError(f"field {name!r} must be a double-quoted string")
    body = raw[1:-1]
    return body.replace('\\"', '"').replace("\\\\", "\\") if "\\" in body else body


class _WholeLines:
    """Bytes in, whole lines out: ``feed`` hands every complete line to ``_parse_block`` at once and
    keeps the unfinished last line for the next chunk; ``_flush`` parses that line at the end."""

    def __init__(self) -> None:
        self._pending = b""
        self.bytes_seen = 0

    def _parse_block(self, block: bytes) -> None:
        raise NotImplementedError

    def feed(self, chunk: bytes) -> None:
        """Parse every complete line of ``chunk`` (plus what was left over from the previous one)."""
        self.bytes_seen += len(chunk)
        data = self._pending + chunk if self._pending else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._pending = data
            return
        self._pending = data[cut + 1 :]
        self._parse_block(data[: cut + 1])

    def _flush(self) -> None:
        """Parse the last line when the body did not end with a newline."""
        if self._pending:
            tail, self._pending = self._pending, b""
            self._parse_block(tail)


class LineProtocolParser(_WholeLines):
    """Incremental parser of one write request into a ``PointBatch`` of one collection.

    ``feed(chunk)`` as bytes arrive (lines may straddle chunks), then ``finish()``. Raises
    ``LineProtocolError`` at the first bad line.
    """

    def __init__(
        self,
        collection: Collection,
        *,
        precision: str = "ns",
        now_ns: int | None = None,
        earliest_ns: int = DEFAULT_EARLIEST_NS,
        max_buffered_points: int | None = None,
    ) -> None:
        if collection not in _ALLOWED_TAGS:
            raise ValueError(f"line protocol writes to the {collection.value} collection are not supported")
        if precision not in PRECISIONS:
            raise LineProtocolError(0, f"invalid precision {precision!r} (use one of ns, us, ms, s)")
        self.collection = collection
        self.precision = precision
        self._scale = PRECISIONS[precision]
        self._earliest = earliest_ns
        if now_ns is None:
            now_ns = to_ns(datetime.now(UTC))
        self._now = now_ns - now_ns % self._scale  # InfluxDB rounds the server time to the precision
        self._allowed_tags = _ALLOWED_TAGS[collection]
        self._extra = EXTRA_FIELDS[collection]
        self._series: list[SeriesKey] = []
        self._series_ids: dict[SeriesKey, int] = {}
        self._key_cache: dict[str, int] = {}
        super().__init__()
        self._line = 0
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
        self._buffered = 0
        self._max_buffered = max_buffered_points
        self.points_seen = 0
        #: True once more than ``max_buffered_points`` arrived: the points were dropped, only validated.
        self.overflowed = False

    @property
    def lines_seen(self) -> int:
        return self._line

    @property
    def buffered_points(self) -> int:
        """Points parsed and held, not yet returned by ``take``."""
        return self._buffered

    # public API ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Parse the last line (if the body did not end with a newline); refuse a body without points."""
        self._flush()
        if not self.points_seen:
            raise LineProtocolError(0, "writing requires points (the body holds no line)")

    def finish(self) -> PointBatch:
        """``close`` then ``take``: every point of a body that was buffered whole."""
        self.close()
        if self.overflowed:
            raise RuntimeError("the body had more points than max_buffered_points; re-parse it with take()")
        return self.take()

    def take(self) -> PointBatch:
        """The points buffered so far (then forgotten), de-duplicated on (series, time), last line winning.

        The batch lists only the series its points use. Feeding a long body and calling ``take`` every
        N points keeps memory bounded; writing the batches in order keeps "the last line wins".
        """
        if not self._chunks:
            return PointBatch(
                collection=self.collection,
                series=[],
                series_index=np.empty(0, dtype=np.int32),
                times_ns=np.empty(0, dtype=np.int64),
                values=np.empty(0, dtype=np.float64),
            )
        times = np.concatenate([c[0] for c in self._chunks])
        values = np.concatenate([c[1] for c in self._chunks])
        index = np.concatenate([c[2] for c in self._chunks])
        fields: dict[str, np.ndarray] = {}
        for name in {name for c in self._chunks for name in c[3]}:
            kind = self._extra[name]
            parts = []
            for t, _v, _i, extra in self._chunks:
                if name in extra:
                    parts.append(extra[name])
                elif kind == "float":
                    parts.append(np.full(t.shape[0], np.nan))
                else:
                    parts.append(np.full(t.shape[0], "", dtype=object))
            fields[name] = np.concatenate(parts)
        self._chunks = []
        self._buffered = 0
        keep = last_wins(index, times)
        if keep.shape[0] != times.shape[0]:
            times, values, index = times[keep], values[keep], index[keep]
            fields = {name: column[keep] for name, column in fields.items()}
        used, index = np.unique(index, return_inverse=True)
        return PointBatch(
            collection=self.collection,
            series=[self._series[i] for i in used.tolist()],
            series_index=index.astype(np.int32, copy=False),
            times_ns=times,
            values=values,
            fields=fields,
        )

    # internals -----------------------------------------------------------------------------------
    def _parse_block(self, block: bytes) -> None:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self._line + block.count(b"\n", 0, exc.start) + 1
            raise LineProtocolError(line, "is not valid UTF-8") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if self._parse_plain(text, lines):
            return
        times: list[int] = []
        values: list[float] = []
        index: list[int] = []
        extras: dict[str, list] = {}
        key_cache = self._key_cache
        scale = self._scale
        earliest = self._earliest
        number = _number
        lineno = self._line
        for line in lines:
            lineno += 1
            if not line or line[0] in "# \t\r" or line[-1] in " \t\r":
                line = line.strip()
                if not line or line[0] == "#":
                    continue
            try:
                if "\\" in line or '"' in line:
                    key, field_text, stamp = _split_line(line)
                else:
                    parts = line.split(" ")
                    if len(parts) == 3:
                        key, field_text, stamp = parts
                    elif len(parts) == 2:
                        key, field_text = parts
                        stamp = None
                    elif len(parts) < 2:
                        raise ValueError("missing fields (expected 'measurement,tags fields [timestamp]')")
                    else:
                        raise ValueError(
                            f"{len(parts) - 1} unescaped spaces; expected 'measurement,tags fields [timestamp]' "
                            "(escape spaces in names and tag values as '\\ ')"
                        )
                series = key_cache.get(key)
                if series is None:
                    series = self._series_of(key)
                    key_cache[key] = series
                if field_text[:6] == "value=" and "," not in field_text:
                    raw = field_text[6:]
                    try:  # fast path: a plain finite float; anything else gets the full check
                        value = float(raw)
                        plain = value - value == 0.0 and "_" not in raw and raw.isascii()
                    except ValueError:
                        plain = False
                    if not plain:
                        value = number(raw, "value")
                    extra = None
                else:
                    value, extra = self._fields(field_text)
                if stamp is None:
                    time_ns = self._now
                else:
                    if not (stamp.isdigit() and stamp.isascii()) and not (
                        stamp[:1] == "-" and stamp[1:].isdigit() and stamp.isascii()
                    ):
                        raise ValueError(f"invalid timestamp {stamp!r} (an integer in precision {self.precision!r})")
                    time_ns = int(stamp) * scale
                    if time_ns < earliest or time_ns > MAX_TIME_NS:
                        raise ValueError(
                            f"timestamp {stamp} is out of range in precision {self.precision!r} "
                            f"(accepted: {_iso(earliest)} .. 2262-04-11); wrong precision?"
                        )
            except ValueError as exc:
                raise LineProtocolError(lineno, str(exc)) from None
            if extra or extras:
                self._extras_append(extras, extra or {}, len(times))
            times.append(time_ns)
            values.append(value)
            index.append(series)
        self._line = lineno
        if times:
            self._store(
                np.asarray(times, dtype=np.int64),
                np.asarray(values, dtype=np.float64),
                np.asarray(index, dtype=np.int32),
                {
                    name: np.asarray(column, dtype=np.float64 if self._extra[name] == "float" else object)
                    for name, column in extras.items()
                },
            )

    def _store(self, times: np.ndarray, values: np.ndarray, index: np.ndarray, extra: dict[str, np.ndarray]) -> None:
        self.points_seen += times.shape[0]
        if self.overflowed:
            return
        self._buffered += times.shape[0]
        if self._max_buffered is not None and self._buffered > self._max_buffered:
            self.overflowed = True
            self._chunks = []
            self._buffered = 0
            return
        self._chunks.append((times, values, index, extra))

    def _parse_plain(self, text: str, lines: list[str]) -> bool:
        """Vectorised path for a block of plain ``key value=<float> <timestamp>`` lines.

        Returns False, having stored nothing, as soon as anything is unusual (escapes, quotes, comments,
        blank lines, other fields, integers, missing timestamps, a bad value or time, a new bad series):
        the line-by-line path then parses the block and reports the first bad line with its number.
        """
        n = len(lines)
        # Single characters only: each test is a memchr over the block, where a two-character search
        # ("\n#") costs fifty times more. Comments and blank lines need no test of their own: a "#"
        # anywhere sends the block to the line-by-line path, and a blank line has no spaces.
        if not n or "\\" in text or '"' in text or "\r" in text or "\t" in text or "#" in text:
            return False
        # Exactly two spaces on every line; then one flat split (no list per line: a million small lists
        # kept alive at once would wake the cyclic garbage collector over and over).
        if set(map(str.count, lines, [" "] * n)) != {2}:
            return False
        tokens = " ".join(lines).split(" ")
        if "" in tokens:  # a line starting or ending with a space
            return False
        keys, fields, stamps = tokens[0::3], tokens[1::3], tokens[2::3]
        joined = "\n" + "\n".join(fields)
        if joined.count("\nvalue=") != n or joined.count("=") != n or "," in joined or "_" in joined:
            return False
        if not joined.isascii():
            return False
        digits = "".join(stamps)
        if not (digits.isdigit() and digits.isascii()):
            return False
        try:
            values = np.array([f[6:] for f in fields], dtype=np.float64)
            stamps_arr = np.array(stamps, dtype=np.int64)
        except (ValueError, OverflowError):
            return False
        if not np.isfinite(values).all():
            return False
        if stamps_arr.max() > MAX_TIME_NS // self._scale:
            return False
        times = stamps_arr * self._scale if self._scale != 1 else stamps_arr
        if times.min() < self._earliest:
            return False
        cache = self._key_cache
        for key in dict.fromkeys(keys):  # first-appearance order, like the line-by-line path
            if key not in cache:
                try:
                    cache[key] = self._series_of(key)
                except ValueError:
                    return False
        index = np.fromiter(map(cache.__getitem__, keys), dtype=np.int32, count=n)
        self._line += n
        self._store(times, values, index, {})
        return True

    def _extras_append(self, extras: dict[str, list], extra: dict[str, object], position: int) -> None:
        """Append point ``position``'s extra fields; columns hold a placeholder where a point has none."""
        for name in extra:
            if name not in extras:
                extras[name] = [np.nan if self._extra[name] == "float" else ""] * position
        for name, column in extras.items():
            column.append(extra.get(name, np.nan if self._extra[name] == "float" else ""))

    def _fields(self, text: str) -> tuple[float, dict[str, object]]:
        pairs = (
            _split_fields(text) if ("\\" in text or '"' in text) else [_plain_pair(item) for item in text.split(",")]
        )
        value: float | None = None
        extra: dict[str, object] = {}
        for name, raw in pairs:
            if name == "value":
                if value is not None:
                    raise ValueError("field 'value' appears twice")
                value = _number(raw, name)
            elif name in self._extra:
                if name in extra:
                    raise ValueError(f"field {name!r} appears twice")
                extra[name] = _number(raw, name) if self._extra[name] == "float" else _string(raw, name)
            else:
                allowed = ", ".join(["value", *self._extra])
                raise ValueError(f"unknown field {name!r} (the {self.collection.value} collection takes {allowed})")
        if value is None:
            raise ValueError("missing field 'value'")
        return value, extra

    def _series_of(self, key: str) -> int:
        series = _series_key(key, self.collection)
        index = self._series_ids.get(series)
        if index is None:
            index = self._series_ids[series] = len(self._series)
            self._series.append(series)
        return index


@functools.lru_cache(maxsize=SERIES_KEY_CACHE_SIZE)
def _series_key(key: str, collection: Collection) -> SeriesKey:
    """The validated series of a line's ``measurement,tag=value,...`` section; ``ValueError`` says why not.

    Cached per process: a writer sends the same few hundred keys in every request, and checking one
    costs as much as parsing a hundred points. Refusals are not cached (``lru_cache`` keeps only results).
    """
    parts = _split_unescaped(key, ",")
    measurement = _unescape(parts[0], ", ")
    if not measurement:
        raise ValueError("missing measurement")
    if measurement not in READ_MEASUREMENTS:
        raise ValueError(f"unknown measurement {measurement!r} (use {MEASUREMENT!r})")
    allowed_tags = _ALLOWED_TAGS[collection]
    tags: dict[str, str] = {}
    for item in parts[1:]:
        pieces = _split_unescaped(item, "=")
        if len(pieces) != 2 or not pieces[0]:
            raise ValueError(f"tag {item!r} is not 'key=value' (unescaped comma, space or '='?)")
        name = _unescape(pieces[0], ",= ")
        value = _unescape(pieces[1], ",= ")
        if name not in allowed_tags:
            allowed = ", ".join(t for t in SERIES_TAGS if t in allowed_tags)
            raise ValueError(f"unknown tag {name!r} (the {collection.value} collection takes {allowed})")
        if name in tags:
            raise ValueError(f"tag {name!r} appears twice")
        if not value:
            raise ValueError(f"tag {name!r} has an empty value")
        tags[name] = value
    missing = [t for t in SERIES_TAGS[:5] if t not in tags]
    if missing:
        raise ValueError(f"missing required tag(s): {', '.join(missing)}")
    series = SeriesKey(**tags)
    try:
        batch_validate(
            PointBatch(
                collection=collection,
                series=[series],
                series_index=np.empty(0, dtype=np.int32),
                times_ns=np.empty(0, dtype=np.int64),
                values=np.empty(0, dtype=np.float64),
            )
        )
    except InvalidBatch as exc:
        raise ValueError("; ".join(f"tag {p.field} {p.message}" for p in exc.problems)) from None
    return series


class MetadataLineParser(_WholeLines):
    """Incremental parser of metadata lines (``stamm_metadata``) into ``VariableMetadata`` items.

    STAMM's shape: tags ``project_name``, ``device_id``, ``observed_property``; fields ``unit`` and
    ``display_name`` (strings) and ``decimals`` (an integer, ``2i``, or an integral float). A line replaces
    the variable's metadata: absent fields take their defaults (``""``, ``""``, 2). Timestamps are checked
    for syntax only (metadata is not a time series here); the last line for a variable wins.
    """

    TAGS = ("project_name", "device_id", "observed_property")

    def __init__(self) -> None:
        super().__init__()
        self._line = 0
        self._items: dict[tuple[str, str, str], VariableMetadata] = {}

    def finish(self) -> list[VariableMetadata]:
        self._flush()
        if not self._items:
            raise LineProtocolError(0, "writing requires points (the body holds no line)")
        return list(self._items.values())

    def _parse_block(self, block: bytes) -> None:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineProtocolError(self._line + block.count(b"\n", 0, exc.start) + 1, "is not valid UTF-8") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for line in lines:
            self._line += 1
            line = line.strip()
            if not line or line[0] == "#":
                continue
            try:
                item = self._item(line)
            except ValueError as exc:
                raise LineProtocolError(self._line, str(exc)) from None
            self._items[(item.project_name, item.device_id, item.observed_property)] = item

    def _item(self, line: str) -> VariableMetadata:
        key, field_text, stamp = _split_line(line)
        if stamp is not None and not (stamp.lstrip("-").isdigit() and stamp.isascii()):
            raise ValueError(f"invalid timestamp {stamp!r}")
        parts = _split_unescaped(key, ",")
        measurement = _unescape(parts[0], ", ")
        if measurement not in READ_MEASUREMENTS:
            raise ValueError(f"unknown measurement {measurement!r} (use {MEASUREMENT!r})")
        tags: dict[str, str] = {}
        for item in parts[1:]:
            pieces = _split_unescaped(item, "=")
            if len(pieces) != 2 or not pieces[0]:
                raise ValueError(f"tag {item!r} is not 'key=value' (unescaped comma, space or '='?)")
            name, value = _unescape(pieces[0], ",= "), _unescape(pieces[1], ",= ")
            if name not in self.TAGS:
                raise ValueError(f"unknown tag {name!r} (metadata takes {', '.join(self.TAGS)})")
            if name in tags or not value:
                raise ValueError(f"tag {name!r} appears twice or is empty")
            tags[name] = value
        missing = [t for t in self.TAGS if t not in tags]
        if missing:
            raise ValueError(f"missing required tag(s): {', '.join(missing)}")
        fields: dict[str, object] = {"unit": "", "display_name": "", "decimals": 2}
        for name, raw in _split_fields(field_text):
            if name in ("unit", "display_name"):
                fields[name] = _string(raw, name)
            elif name == "decimals":
                number = _number(raw, name)
                if number != int(number) or not 0 <= number <= 15:
                    raise ValueError("field 'decimals' must be an integer between 0 and 15")
                fields[name] = int(number)
            else:
                raise ValueError(f"unknown field {name!r} (metadata takes unit, display_name, decimals)")
        return VariableMetadata(
            project_name=tags["project_name"],
            device_id=tags["device_id"],
            observed_property=tags["observed_property"],
            unit=str(fields["unit"]),
            display_name=str(fields["display_name"]),
            decimals=int(fields["decimals"]),  # type: ignore[call-overload]
        )


def _plain_pair(item: str) -> tuple[str, str]:
    name, sep, raw = item.partition("=")
    if not sep or not name:
        raise ValueError(f"field {item!r} is not 'key=value' (unescaped comma or missing '=')")
    return name, raw


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d")


def parse(
    body: bytes | str | Iterable[bytes],
    collection: Collection,
    *,
    precision: str = "ns",
    now_ns: int | None = None,
    earliest_ns: int = DEFAULT_EARLIEST_NS,
) -> PointBatch:
    """Parse a whole body (bytes, text, or an iterable of byte chunks) into one ``PointBatch``."""
    parser = LineProtocolParser(collection, precision=precision, now_ns=now_ns, earliest_ns=earliest_ns)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        parser.feed(bytes(body))
    else:
        for chunk in body:
            parser.feed(chunk)
    return parser.finish()

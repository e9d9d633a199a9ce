"""InfluxDB line protocol in: a streaming parser of STAMM points and metadata into ``PointBatch`` (pure Python).

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
The grammar itself lives in ``lineprotocol_syntax``; writing lines, in ``lineprotocol_format``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime

import numpy as np

from .asof import last_wins
from .lineprotocol_syntax import (
    LineProtocolError,
    WholeLines,
    field_number,
    field_string,
    split_fields,
    split_line,
    split_unescaped,
    unescape,
)
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
from .validation import MAX_DECIMALS, InvalidBatch, batch_validate

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
#: Validated series keys remembered per process (a key string is at most a few hundred bytes).
SERIES_KEY_CACHE_SIZE = 16_384


class LineProtocolParser(WholeLines):
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
        number = field_number
        lineno = self._line
        for line in lines:
            lineno += 1
            if not line or line[0] in "# \t\r" or line[-1] in " \t\r":
                line = line.strip()
                if not line or line[0] == "#":
                    self._empty_line(lineno)
                    continue
            try:
                if "\\" in line or '"' in line:
                    key, field_text, stamp = split_line(line)
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
            split_fields(text) if ("\\" in text or '"' in text) else [_plain_pair(item) for item in text.split(",")]
        )
        value: float | None = None
        extra: dict[str, object] = {}
        for name, raw in pairs:
            if name == "value":
                if value is not None:
                    raise ValueError("field 'value' appears twice")
                value = field_number(raw, name)
            elif name in self._extra:
                if name in extra:
                    raise ValueError(f"field {name!r} appears twice")
                extra[name] = field_number(raw, name) if self._extra[name] == "float" else field_string(raw, name)
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
    parts = split_unescaped(key, ",")
    measurement = unescape(parts[0], ", ")
    if not measurement:
        raise ValueError("missing measurement")
    if measurement not in READ_MEASUREMENTS:
        raise ValueError(f"unknown measurement {measurement!r} (use {MEASUREMENT!r})")
    allowed_tags = _ALLOWED_TAGS[collection]
    tags: dict[str, str] = {}
    for item in parts[1:]:
        pieces = split_unescaped(item, "=")
        if len(pieces) != 2 or not pieces[0]:
            raise ValueError(f"tag {item!r} is not 'key=value' (unescaped comma, space or '='?)")
        name = unescape(pieces[0], ",= ")
        value = unescape(pieces[1], ",= ")
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


class MetadataLineParser(WholeLines):
    """Incremental parser of metadata lines (``stamm_metadata``) into ``VariableMetadata`` items.

    STAMM's shape: tags ``project_name``, ``device_id``, ``observed_property``; fields ``unit`` and
    ``display_name`` (strings) and ``decimals`` (an integer, ``2i``, or an integral float). A line replaces
    the variable's metadata: absent fields take their defaults (``""``, ``""``, 2). Timestamps are checked
    for syntax only (metadata is not a time series here); the last line for a variable wins.
    """

    TAGS = ("project_name", "device_id", "observed_property")

    def __init__(self) -> None:
        super().__init__()
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
                self._empty_line(self._line)
                continue
            try:
                item = self._item(line)
            except ValueError as exc:
                raise LineProtocolError(self._line, str(exc)) from None
            self._items[(item.project_name, item.device_id, item.observed_property)] = item

    def _item(self, line: str) -> VariableMetadata:
        key, field_text, stamp = split_line(line)
        if stamp is not None and not (stamp.lstrip("-").isdigit() and stamp.isascii()):
            raise ValueError(f"invalid timestamp {stamp!r}")
        parts = split_unescaped(key, ",")
        measurement = unescape(parts[0], ", ")
        if measurement not in READ_MEASUREMENTS:
            raise ValueError(f"unknown measurement {measurement!r} (use {MEASUREMENT!r})")
        tags: dict[str, str] = {}
        for item in parts[1:]:
            pieces = split_unescaped(item, "=")
            if len(pieces) != 2 or not pieces[0]:
                raise ValueError(f"tag {item!r} is not 'key=value' (unescaped comma, space or '='?)")
            name, value = unescape(pieces[0], ",= "), unescape(pieces[1], ",= ")
            if name not in self.TAGS:
                raise ValueError(f"unknown tag {name!r} (metadata takes {', '.join(self.TAGS)})")
            if name in tags or not value:
                raise ValueError(f"tag {name!r} appears twice or is empty")
            tags[name] = value
        missing = [t for t in self.TAGS if t not in tags]
        if missing:
            raise ValueError(f"missing required tag(s): {', '.join(missing)}")
        fields: dict[str, object] = {"unit": "", "display_name": "", "decimals": 2}
        for name, raw in split_fields(field_text):
            if name in ("unit", "display_name"):
                fields[name] = field_string(raw, name)
            elif name == "decimals":
                number = field_number(raw, name)
                if number != int(number) or not 0 <= number <= MAX_DECIMALS:
                    raise ValueError(f"field 'decimals' must be an integer between 0 and {MAX_DECIMALS}")
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

"""The line protocol's syntax: splitting a line into measurement, tags, fields and timestamp, escaping,
field values, and the line-by-line reader every parser of ``apps.tsdb.lineprotocol`` builds on.

Kept apart from what the lines mean (the STAMM schema, in ``lineprotocol``) so the grammar is written once.
"""

from __future__ import annotations

import math

from .validation import text_problem

BOOLEANS = frozenset({"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"})
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
#: Longest line accepted, in bytes. A STAMM line (seven tags of at most 128 characters, three fields) is
#: well under 2 KiB; the bound stops a body without newlines (a huge line, a gzip of zeros) at once.
MAX_LINE_BYTES = 64 * 1024
#: Most blank or comment lines one body may hold. Each costs a step of the line-by-line parser, so a body
#: of nothing else (256 MiB of ``#\n``) would keep a web process busy for minutes; clients send points.
MAX_EMPTY_LINES = 100_000


class LineProtocolError(ValueError):
    """A body that cannot be stored; ``line`` is 1-based (0 when the problem is the body as a whole)."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.problem = message
        super().__init__(f"line {line}: {message}" if line else message)


def split_unescaped(text: str, sep: str) -> list[str]:
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


def unescape(text: str, specials: str) -> str:
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


def split_line(line: str) -> tuple[str, str, str | None]:
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


def split_fields(text: str) -> list[tuple[str, str]]:
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
            pairs.append((unescape(item[:eq], ",= "), item[eq + 1 :]))
            start = i + 1
        i += 1
    return pairs


def field_number(raw: str, name: str) -> float:
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
        if (last == "i" and not -INT64_MAX - 1 <= number <= INT64_MAX) or number > UINT64_MAX:
            raise ValueError(f"field {name!r}: integer {raw!r} out of range")
        return float(number)
    if raw[0] == '"':
        raise ValueError(f"field {name!r} is a string; it must be a number (a float)")
    if raw in BOOLEANS:
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


def field_string(raw: str, name: str) -> str:
    if len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
        raise ValueError(f"field {name!r} must be a double-quoted string")
    body = raw[1:-1]
    if problem := text_problem(body):
        raise ValueError(f"field {name!r} {problem}")
    return body.replace('\\"', '"').replace("\\\\", "\\") if "\\" in body else body


class WholeLines:
    """Bytes in, whole lines out: ``feed`` hands every complete line to ``_parse_block`` at once and
    keeps the unfinished last line for the next chunk; ``_flush`` parses that line at the end.

    Work per byte stays bounded whatever the body: a line longer than ``MAX_LINE_BYTES`` is refused as
    soon as that many bytes of it have arrived (the unfinished line is never copied more than once per
    chunk), and a block of blank lines is counted, not split into millions of empty strings.
    """

    def __init__(self) -> None:
        self._pending = b""
        self.bytes_seen = 0
        self._line = 0
        self._empty_lines = 0

    def _parse_block(self, block: bytes) -> None:
        raise NotImplementedError

    def feed(self, chunk: bytes) -> None:
        """Parse every complete line of ``chunk`` (plus what was left over from the previous one)."""
        self.bytes_seen += len(chunk)
        data = self._pending + chunk if self._pending else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._pending = b""
            self._refuse_unfinished(data)
            self._pending = data
            return
        self._pending = b""
        self._block(data[: cut + 1])
        self._refuse_unfinished(data[cut + 1 :])
        self._pending = data[cut + 1 :]

    def _flush(self) -> None:
        """Parse the last line when the body did not end with a newline."""
        if self._pending:
            tail, self._pending = self._pending, b""
            self._block(tail)

    def _block(self, block: bytes) -> None:
        if not block.strip():  # blank lines only: count them at C speed, nothing to parse
            blank = block.count(b"\n")
            if self._empty_lines + blank > MAX_EMPTY_LINES:
                first_over = self._line + MAX_EMPTY_LINES - self._empty_lines + 1
                self._empty_lines = MAX_EMPTY_LINES
                self._empty_line(first_over)
            self._empty_lines += blank
            self._line += blank
            return
        if len(block) > MAX_LINE_BYTES:
            lengths = list(map(len, block.split(b"\n")))
            if max(lengths) > MAX_LINE_BYTES:
                index = next(i for i, size in enumerate(lengths) if size > MAX_LINE_BYTES)
                raise LineProtocolError(self._line + index + 1, too_long(lengths[index]))
        self._parse_block(block)

    def _empty_line(self, number: int) -> None:
        """Count a blank or comment line; refuse the body past ``MAX_EMPTY_LINES`` of them."""
        self._empty_lines += 1
        if self._empty_lines > MAX_EMPTY_LINES:
            raise LineProtocolError(
                number, f"more than {MAX_EMPTY_LINES} blank or comment lines in one body (send points, one per line)"
            )

    def _refuse_unfinished(self, tail: bytes) -> None:
        """Refuse a line as soon as more than ``MAX_LINE_BYTES`` of it arrived, before its end does."""
        if len(tail) > MAX_LINE_BYTES:
            raise LineProtocolError(self._line + 1, too_long(len(tail), unfinished=True))


def too_long(size: int, *, unfinished: bool = False) -> str:
    what = f"over {size} bytes so far" if unfinished else f"{size} bytes"
    return (
        f"line is {what}; lines are limited to {MAX_LINE_BYTES} bytes "
        "(a STAMM line is well under 1 KiB: is the body line protocol, one point per line?)"
    )

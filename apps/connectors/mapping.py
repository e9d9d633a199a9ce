"""Mapping rules from plant addresses (MQTT topics, OPC UA browse paths) to STAMM tags (pure, no Django).

A rule's *pattern* is a ``/``-separated path whose segments are one of:

- a literal (``plant``; for OPC UA a browse name, optionally namespace-qualified: ``2:Reactor``),
- ``+``: any one segment, not captured (MQTT's single-level wildcard),
- ``#``: any remaining segments, last only (MQTT's multi-level wildcard; for OPC UA every variable below),
- ``{name}``: any one segment, captured as ``name`` for the tag templates.

Tag templates (``{device_id}``, ``R1``, ``{site}-{unit}``) are formatted with the captures, so
``plant/{device_id}/{observed_property}`` with ``project_name=penicillin`` covers a whole reactor hall in one
row. An OPC UA pattern that starts with ``ns=`` or ``i=`` is one node id (no captures).

Payloads (MQTT): a plain number (``12.5``), or JSON: a number, or an object with ``value`` and optional
``timestamp`` (or ``time``; ISO 8601 with a zone, or seconds since the epoch) and ``quality`` (``good`` /
``uncertain`` / ``bad``, an OPC UA status name such as ``Bad_SensorFailure``, or a numeric status code).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

#: The STAMM tags a rule fills, in series-key order.
TAGS = ("project_name", "device_id", "batch_id", "source", "observed_property")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CAPTURE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
#: Longest pattern and template the rules accept (bounded work per message).
MAX_PATTERN_LENGTH = 500
#: Largest payload parsed; a bigger one is an error of its source, not a memory spike.
MAX_PAYLOAD_BYTES = 64 * 1024

GOOD, UNCERTAIN, BAD = "good", "uncertain", "bad"


class MappingError(ValueError):
    """A pattern or template that cannot work; the message says which part and why."""


class PayloadError(ValueError):
    """A message that cannot be read as a value; counted and logged as an error of its source."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed rule pattern: match paths, capture segments, derive the MQTT subscription filter."""

    text: str
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Pattern:
        text = (text or "").strip()
        if not text:
            raise MappingError("the pattern is empty")
        if len(text) > MAX_PATTERN_LENGTH:
            raise MappingError(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
        if is_node_id(text):
            return cls(text, (text,))
        segments = tuple(text.split("/"))
        captured: set[str] = set()
        for index, segment in enumerate(segments):
            if segment == "#" and index != len(segments) - 1:
                raise MappingError(f"'#' must be the last segment (segment {index + 1} of {text!r})")
            if "#" in segment and segment != "#" or "+" in segment and segment != "+":
                raise MappingError(f"wildcards must fill a whole segment (segment {index + 1}: {segment!r})")
            match = _CAPTURE.match(segment)
            if match:
                if match.group(1) in captured:
                    raise MappingError(f"{{{match.group(1)}}} is captured twice in {text!r}")
                captured.add(match.group(1))
            elif "{" in segment or "}" in segment:
                raise MappingError(f"a placeholder must fill a whole segment (segment {index + 1}: {segment!r})")
        return cls(text, segments)

    @property
    def is_node_id(self) -> bool:
        return is_node_id(self.text)

    @property
    def captures(self) -> tuple[str, ...]:
        return tuple(m.group(1) for s in self.segments if (m := _CAPTURE.match(s)))

    def subscription(self) -> str:
        """The MQTT topic filter: placeholders become ``+``."""
        return "/".join("+" if _CAPTURE.match(s) else s for s in self.segments)

    def match(self, path: tuple[str, ...] | list[str], *, browse_names: bool = False) -> dict[str, str] | None:
        """The captures when ``path`` matches, else None.

        With ``browse_names`` (OPC UA) a literal ``2:Name`` must match the namespace-qualified segment and a
        bare ``Name`` matches any namespace; captures keep the name without its namespace index.
        """
        captures: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment == "#":
                return captures if len(path) >= index else None
            if index >= len(path):
                return None
            actual = path[index]
            name = actual.split(":", 1)[1] if browse_names and ":" in actual else actual
            capture = _CAPTURE.match(segment)
            if capture:
                if not name:
                    return None
                captures[capture.group(1)] = name
            elif segment != "+" and segment != actual and not (browse_names and ":" not in segment and segment == name):
                return None
        return captures if len(path) == len(self.segments) else None

    def prefix_depth(self) -> int:
        """Segments before the first wildcard or capture (OPC UA browses below them)."""
        for index, segment in enumerate(self.segments):
            if segment in ("+", "#") or _CAPTURE.match(segment):
                return index
        return len(self.segments)


def is_node_id(text: str) -> bool:
    return text.startswith(("ns=", "i=", "s=", "g=", "b="))


def template_names(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template or ""))


def render(template: str, captures: dict[str, str]) -> str:
    """Fill a tag template; a placeholder the pattern did not capture is a ``MappingError``."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in captures:
            raise MappingError(f"{{{name}}} is not captured by the pattern")
        return captures[name]

    return _PLACEHOLDER.sub(fill, template)


def rule_check(pattern: str, templates: dict[str, str]) -> dict[str, str]:
    """Every problem of a rule at once, keyed by field (empty when the rule can work)."""
    problems: dict[str, str] = {}
    try:
        parsed = Pattern.parse(pattern)
    except MappingError as exc:
        return {"pattern": str(exc)}
    captured = set(parsed.captures)
    for tag, template in templates.items():
        if not (template or "").strip():
            problems[tag] = "must not be empty"
            continue
        missing = template_names(template) - captured
        if missing:
            problems[tag] = (
                f"uses {', '.join('{' + m + '}' for m in sorted(missing))}, which the pattern does not capture"
            )
    return problems


# --------------------------------------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class Reading:
    """One value a source reported: ``quality`` is good / uncertain / bad; ``time`` None means "on arrival"."""

    value: float | None
    time: datetime | None
    quality: str = GOOD
    status_code: int | None = None
    status_name: str = ""


def quality_of_code(code: int) -> str:
    """OPC UA severity: the top two bits of a status code (00 good, 01 uncertain, 10/11 bad)."""
    severity = (int(code) >> 30) & 0b11
    return GOOD if severity == 0 else UNCERTAIN if severity == 1 else BAD


def quality_of_text(text: str) -> str:
    lowered = text.strip().lower()
    for quality in (GOOD, UNCERTAIN, BAD):
        if lowered.startswith(quality):
            return quality
    raise PayloadError(f"quality {text!r} is not good, uncertain, bad or an OPC UA status name")


def parse_time(value: object) -> datetime:
    if isinstance(value, bool):
        raise PayloadError("timestamp must be ISO 8601 text or seconds since the epoch, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < 9.2e9:
            raise PayloadError(f"timestamp {value!r} is not seconds since the epoch between 1970 and 2262")
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"timestamp {value!r} is not ISO 8601") from None
        if moment.tzinfo is None:
            raise PayloadError(f"timestamp {value!r} has no time zone")
        return moment.astimezone(UTC)
    raise PayloadError("timestamp must be ISO 8601 text or seconds since the epoch")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{what} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise PayloadError(f"{what} must be finite, got {value!r}")
    return number


def payload_parse(payload: bytes) -> Reading:
    """Read one MQTT payload (see the module docstring); raises ``PayloadError`` saying what is wrong."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes is larger than {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PayloadError("payload is not UTF-8 text") from None
    if not text:
        raise PayloadError("payload is empty")
    try:
        data = json.loads(text)
    except ValueError:
        raise PayloadError(f"payload {text[:80]!r} is neither a number nor JSON") from None
    if not isinstance(data, dict):
        return Reading(value=_number(data, "payload"), time=None)
    if "value" not in data:
        raise PayloadError("JSON payload has no 'value'")
    stamp = data.get("timestamp", data.get("time"))
    moment = parse_time(stamp) if stamp is not None else None
    raw_quality = data.get("quality")
    quality, code, name = GOOD, None, ""
    if raw_quality is not None:
        if isinstance(raw_quality, bool):
            raise PayloadError("quality must be text or a status code, not a boolean")
        if isinstance(raw_quality, int):
            quality, code = quality_of_code(raw_quality), int(raw_quality)
        elif isinstance(raw_quality, str):
            quality, name = quality_of_text(raw_quality), raw_quality.strip()[:64]
        else:
            raise PayloadError("quality must be text or a status code")
    value = data["value"]
    if quality != GOOD and value is None:
        return Reading(value=None, time=moment, quality=quality, status_code=code, status_name=name)
    return Reading(value=_number(value, "value"), time=moment, quality=quality, status_code=code, status_name=name)

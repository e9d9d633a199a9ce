"""What every input (MQTT, OPC UA) shares: compiled mapping rules, the reading it queues, its counters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.tsdb.types import SeriesKey

from .. import mapping
from ..models import DataSource, ErrorKind


@dataclass(frozen=True)
class CompiledRule:
    pattern: mapping.Pattern
    templates: dict[str, str]
    unit: str
    scale: float
    offset: float
    sampling_interval_ms: int
    deadband: float

    def key(self, captures: dict[str, str]) -> SeriesKey:
        tags = {tag: mapping.render(template, captures) for tag, template in self.templates.items()}
        return SeriesKey(**tags)


def compile_rules(source: DataSource) -> list[CompiledRule]:
    return [
        CompiledRule(
            pattern=mapping.Pattern.parse(rule.pattern),
            templates=rule.templates(),
            unit=rule.unit,
            scale=float(rule.scale),
            offset=float(rule.offset),
            sampling_interval_ms=int(rule.sampling_interval_ms),
            deadband=float(rule.deadband),
        )
        for rule in source.rules.all()
    ]


@dataclass
class Incoming:
    """One reading on its way to the store; ``ack`` (MQTT) runs only after it is committed."""

    source_id: int
    key: SeriesKey
    rule: CompiledRule
    reading: mapping.Reading
    arrival_ns: int
    ack: Callable[[], None] | None = None

    @property
    def time_ns(self) -> int:
        if self.reading.time is None:
            return self.arrival_ns
        delta = self.reading.time - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@dataclass
class SourceStats:
    """Counters one input keeps and the reporter writes to ``SourceStatus`` (single-threaded: the event loop)."""

    source_id: int
    name: str
    config_version: int
    connected: bool = False
    connected_since: datetime | None = None
    state: str = "starting"
    last_message_at: datetime | None = None
    messages_total: int = 0
    points_total: int = 0
    errors_total: int = 0
    last_error: str = ""
    last_error_at: datetime | None = None
    pending_errors: list[dict[str, Any]] = field(default_factory=list)
    _rate_mark: tuple[float, int] = (0.0, 0)
    messages_per_second: float = 0.0

    def message(self) -> None:
        self.messages_total += 1
        self.last_message_at = datetime.now(UTC)

    def up(self, state: str) -> None:
        if not self.connected:
            self.connected_since = datetime.now(UTC)
        self.connected, self.state = True, state

    def down(self, state: str) -> None:
        self.connected, self.connected_since, self.state = False, None, state

    def error(self, kind: str, message: str, *, address: str = "", excerpt: str = "") -> None:
        now = datetime.now(UTC)
        self.errors_total += 1
        self.last_error, self.last_error_at = message, now
        if len(self.pending_errors) < 1000:  # a flood of bad messages must not grow memory
            self.pending_errors.append(
                {
                    "data_source_id": self.source_id,
                    "at": now,
                    "kind": kind,
                    "message": message,
                    "address": address,
                    "excerpt": excerpt,
                }
            )

    def refused(self, message: str) -> None:
        self.down(message)
        self.error(ErrorKind.REFUSED, message)

    def report(self) -> dict[str, Any]:
        """The ``SourceStatus`` fields now; messages/s over the time since the last report."""
        mark_time, mark_count = self._rate_mark
        now = time.monotonic()
        if mark_time:
            self.messages_per_second = (self.messages_total - mark_count) / max(now - mark_time, 1e-6)
        self._rate_mark = (now, self.messages_total)
        return {
            "data_source_id": self.source_id,
            "connected": self.connected,
            "connected_since": self.connected_since,
            "state": self.state[:500],
            "config_version": self.config_version,
            "last_message_at": self.last_message_at,
            "messages_total": self.messages_total,
            "messages_per_second": self.messages_per_second,
            "points_total": self.points_total,
            "errors_total": self.errors_total,
            "last_error": self.last_error[:2000],
            "last_error_at": self.last_error_at,
        }

    def take_errors(self) -> list[dict[str, Any]]:
        errors, self.pending_errors = self.pending_errors, []
        return errors


Sink = Callable[[Incoming], None]


class SourceInput:
    """One running source: ``start`` connects (and keeps reconnecting), ``stop`` ends it cleanly."""

    def __init__(self, source: DataSource, sink: Sink, stats: SourceStats) -> None:
        self.source = source
        self.sink = sink
        self.stats = stats
        self.rules = compile_rules(source)

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        """Stop handing readings on (shutting down: what is queued is stored and acknowledged first)."""
        self.paused = True

    paused = False

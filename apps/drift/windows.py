"""Batch phase windows: time-since-start ranges that cut a batch into comparable pieces.

Fed-batch fermentations go through growth phases, and a window mixing phases compares apples with
pears. IndPenSim's phases are the defaults; a project passes its own with :func:`parse_phases`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Phase:
    """Rows with ``start_h <= time < end_h`` (hours since the batch started; ``end_h = inf`` = open)."""

    name: str
    start_h: float
    end_h: float = math.inf

    def __post_init__(self) -> None:
        if not self.name or not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ValueError(f"phase name {self.name!r}: use letters, digits, _ or -")
        if not (self.start_h >= 0 and self.end_h > self.start_h):
            raise ValueError(f"phase {self.name}: need 0 ≤ start < end, got {self.start_h}–{self.end_h} h")

    def mask(self, time_h: np.ndarray) -> np.ndarray:
        time_h = np.asarray(time_h, dtype=float)
        return (time_h >= self.start_h) & (time_h < self.end_h)

    def __str__(self) -> str:
        end = "" if math.isinf(self.end_h) else f"{self.end_h:g}"
        return f"{self.name}:{self.start_h:g}-{end}"


#: IndPenSim's growth phases (README of the data set): lag 0–30 h, log 30–120 h, stationary 120–200 h,
#: death after 200 h.
INDPENSIM_PHASES: tuple[Phase, ...] = (
    Phase("lag", 0, 30),
    Phase("log", 30, 120),
    Phase("stationary", 120, 200),
    Phase("death", 200),
)


def parse_phases(spec: str) -> tuple[Phase, ...]:
    """``"lag:0-30,log:30-120,stationary:120-200,death:200-"`` → phases (overlaps refused)."""
    phases = []
    for i, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
        match = re.fullmatch(r"([A-Za-z0-9_-]+):([0-9.]+)-([0-9.]*)", part)
        if not match:
            raise ValueError(f"phase {i + 1} {part!r}: expected name:start-end (hours; end may be empty)")
        name, start, end = match.groups()
        phases.append(Phase(name, float(start), float(end) if end else math.inf))
    check_phases(phases)
    return tuple(phases)


def check_phases(phases: Sequence[Phase]) -> None:
    if not phases:
        raise ValueError("no phases given")
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ValueError(f"phase names repeat: {names}")
    ordered = sorted(phases, key=lambda p: p.start_h)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start_h < a.end_h:
            raise ValueError(f"phases {a.name} and {b.name} overlap")


def phase_of(time_h: np.ndarray, phases: Sequence[Phase] = INDPENSIM_PHASES) -> np.ndarray:
    """The phase name of every row ('' outside every phase)."""
    out = np.full(np.shape(time_h), "", dtype=object)
    for phase in phases:
        out[phase.mask(time_h)] = phase.name
    return out

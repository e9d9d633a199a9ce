"""Phase windows."""
from __future__ import annotations

import math

import numpy as np
import pytest

from apps.drift.windows import INDPENSIM_PHASES, Phase, parse_phases, phase_of


def test_indpensim_phases():
    assert [str(p) for p in INDPENSIM_PHASES] == ["lag:0-30", "log:30-120", "stationary:120-200", "death:200-"]
    t = np.array([0.2, 29.8, 30.0, 119.8, 120.0, 199.8, 200.0, 250.0])
    assert phase_of(t).tolist() == ["lag", "lag", "log", "log", "stationary", "stationary", "death", "death"]


def test_parse_phases_round_trip_and_errors():
    phases = parse_phases("early:0-50, late:50-")
    assert phases == (Phase("early", 0, 50), Phase("late", 50, math.inf))
    with pytest.raises(ValueError, match="overlap"):
        parse_phases("a:0-50,b:40-60")
    with pytest.raises(ValueError, match="expected name:start-end"):
        parse_phases("a:zero-50")
    with pytest.raises(ValueError, match="start < end"):
        parse_phases("a:50-10")
    with pytest.raises(ValueError, match="repeat"):
        parse_phases("a:0-1,a:2-3")

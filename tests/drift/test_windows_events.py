"""Phase windows and residual events."""
from __future__ import annotations

import math

import numpy as np
import pytest

from apps.drift.residual_events import align_to_lab, residual_events, residual_sigma
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


def test_residual_events_and_sigma():
    residuals = np.array([0.1, -0.3, 2.5, -2.1, 0.0])
    assert residual_events(residuals, sigma=1.0, k=2.0).tolist() == [0, 0, 1, 1, 0]
    assert residual_sigma(np.array([1.0, 2.0, 3.0, np.nan])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3"):
        residual_sigma(np.array([1.0, 2.0]))


def test_align_to_lab_uses_the_nearest_prediction_within_tolerance():
    pred_time = np.array([0.0, 0.2, 0.4, 0.6])
    predictions = np.array([10.0, 11.0, 12.0, 13.0])
    residuals, matched = align_to_lab(pred_time, predictions, np.array([0.21, 0.55, 5.0]), np.array([11.5, 12.0, 1.0]),
                                      tolerance=0.1)
    assert residuals.tolist() == pytest.approx([0.5, -1.0]) and matched.tolist() == [0, 1]

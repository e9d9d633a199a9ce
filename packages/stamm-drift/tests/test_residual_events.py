"""Residual events for the error-based detectors (EDDM, HDDM-A)."""
from __future__ import annotations

import numpy as np
import pytest
from stamm_drift.residual_events import align_to_lab, residual_events, residual_sigma


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

"""The paired test of champion and challenger, against values computed by hand on a six-sample fixture."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.training.paired import diebold_mariano, paired_compare, wilcoxon_greater

# Residuals (lab − estimate) of the two estimators at the same six lab samples.
CHAMPION = [1.5, 2.0, 0.5, 2.5, 1.0, 1.3]
CHALLENGER = [0.5, 1.0, 1.0, 1.0, 0.6, 0.6]
# d = e_champion² − e_challenger² = [2.0, 3.0, −0.75, 5.25, 0.64, 1.33] (by hand).
D = [2.0, 3.0, -0.75, 5.25, 0.64, 1.33]


def test_wilcoxon_signed_rank_by_hand():
    # |d| in order: 0.64 (rank 1), 0.75 (2, the only negative), 1.33 (3), 2.0 (4), 3.0 (5), 5.25 (6).
    # W+ = 1 + 3 + 4 + 5 + 6 = 19. Under H0 each of the 2^6 = 64 sign patterns is equally likely; W+ ≥ 19 for
    # the rank sets {1..6} (21), {2..6} (20) and {1,3,4,5,6} (19): p = 3 / 64.
    statistic, p = wilcoxon_greater(np.array(D))
    assert statistic == 19.0
    assert p == pytest.approx(3 / 64)


def test_diebold_mariano_by_hand():
    mean = (2.0 + 3.0 - 0.75 + 5.25 + 0.64 + 1.33) / 6  # 1.911667
    squares = sum((x - mean) ** 2 for x in D)  # 21.376683
    dm = mean / math.sqrt(squares / 5 / 6)  # 2.264658
    statistic, p = diebold_mariano(np.array(D))
    assert statistic == pytest.approx(dm) and statistic == pytest.approx(2.26466, abs=1e-5)
    assert p == pytest.approx(0.5 * math.erfc(dm / math.sqrt(2)))


def test_verdict_figures_and_decision_by_hand():
    verdict = paired_compare(CHAMPION, CHALLENGER, confidence=0.95, min_samples=6)
    assert verdict.n == 6
    assert verdict.champion_rmse == pytest.approx(math.sqrt((2.25 + 4 + 0.25 + 6.25 + 1 + 1.69) / 6))  # 1.604159
    assert verdict.challenger_rmse == pytest.approx(math.sqrt((0.25 + 1 + 1 + 1 + 0.36 + 0.36) / 6))  # 0.813429
    assert verdict.champion_bias == pytest.approx(8.8 / 6) and verdict.challenger_bias == pytest.approx(4.7 / 6)
    assert verdict.wilcoxon_p == pytest.approx(3 / 64) and verdict.challenger_better  # 0.046875 < 0.05
    assert "p = 0.04688 < 0.05" in verdict.reason


def test_the_decision_needs_the_confidence_and_enough_samples():
    assert not paired_compare(CHAMPION, CHALLENGER, confidence=0.99, min_samples=6).challenger_better  # p > 0.01
    too_few = paired_compare(CHAMPION, CHALLENGER, confidence=0.95, min_samples=10)
    assert not too_few.challenger_better and "fewer than the 10 required" in too_few.reason
    # The same errors the other way round: the champion is better, the challenger never shown better.
    assert not paired_compare(CHALLENGER, CHAMPION, confidence=0.95, min_samples=6).challenger_better
    same = paired_compare(CHAMPION, CHAMPION, min_samples=2)
    assert not same.challenger_better and same.wilcoxon_p is None and "same errors" in same.reason


def test_unpaired_input_is_refused():
    with pytest.raises(ValueError, match="paired"):
        paired_compare([1.0, 2.0], [1.0])

"""The default verdict rule: thresholds calibrated on the reference batches themselves.

Why: process windows are autocorrelated and batches differ from each other even in control, so iid
significance tests flag almost every batch (on IndPenSim an MMD permutation test gives p ≈ 0.01 for
the in-control batch 98 too). What matters is whether a test batch differs from the reference *more
than the reference batches differ from each other*.

The rule (:class:`CalibrationRule`, stored with every calibrated result):

1. **Leave one batch out.** Each reference batch in turn is the test window and the other reference
   batches are the reference window; the detector's scores of these comparisons are the in-control
   between-batch variation.
2. **Local block bootstrap.** With two reference batches step 1 gives one number per held-out batch,
   and a single number is a noisy basis for a threshold. So each held-out window is also resampled
   ``bootstrap`` times with a local block bootstrap (blocks of ``block_fraction`` of the window, each
   drawn within one block length of its own position, which keeps the autocorrelation and the batch's
   trajectory) and re-scored. The ``quantile`` (default: the median) of a held-out batch's score and
   its replicates is its *stabilised* leave-one-out score. Order-sensitive (streaming) detectors are
   not bootstrapped — spliced blocks create jumps they would rightly detect — and use step 1 only.
3. **Threshold** = max(nominal threshold, (1 + ``margin``) × the largest stabilised score over the
   held-out batches). The nominal threshold (the detector's own, e.g. PSI 0.1) is a floor, so
   calibration never makes a detector stricter than its textbook setting. Per-variable detectors get
   one threshold per variable. The default margin is 50 %: a test batch must differ from the
   reference by half as much again as the reference batches differ from each other.
4. **Verdict**: drift when any component's score exceeds its threshold. The calibrated score is the
   largest score / threshold ratio (so the calibrated threshold is 1); raw scores, the detector's
   nominal verdict and its p-value stay in ``details``.

Nothing here looks at a test batch: thresholds are fixed before any test window is scored.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Detector, DriftResult, as_matrix, detector_class, format_shifts
from .errors import DataError

ScoreFn = Callable[[Sequence[np.ndarray], np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CalibrationRule:
    """Parameters of the reference-calibrated verdict (defaults are the documented configuration)."""

    margin: float = 0.5
    quantile: float = 0.5
    bootstrap: int = 20
    block_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError("margin must be ≥ 0")
        if not 0 < self.quantile <= 1:
            raise ValueError("quantile must be in (0, 1]")
        if self.bootstrap < 0:
            raise ValueError("bootstrap must be ≥ 0")
        if not 0 < self.block_fraction <= 1:
            raise ValueError("block_fraction must be in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Calibration:
    """Calibrated thresholds of one detector configuration on one set of reference batches."""

    detector: str
    params: dict[str, Any]
    rule: CalibrationRule
    components: tuple[str, ...]
    thresholds: np.ndarray  # (1 + margin) × max over held-out batches of the quantile; before the floor
    scores: np.ndarray  # calibration scores: rows = comparisons, columns = components
    comparisons: tuple[str, ...]  # "93 vs 92", "93 vs 92 (block bootstrap 3)", ...
    held_out: tuple[str, ...]  # the held-out batch of each row
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        lobo = [i for i, c in enumerate(self.comparisons) if "bootstrap" not in c]
        return {
            "detector": self.detector,
            "params": self.params,
            "rule": self.rule.to_dict(),
            "components": list(self.components),
            "calibrated_thresholds": [float(t) for t in self.thresholds],
            "leave_one_batch_out": {
                self.comparisons[i]: [float(v) for v in self.scores[i]] for i in lobo
            },
            "bootstrap_replicates": int(self.scores.shape[0] - len(lobo)),
            "held_out_quantiles": {
                batch: [float(v) for v in q]
                for batch, q in held_out_quantiles(self.scores, self.held_out, self.rule).items()
            },
            **self.extra,
        }


def block_bootstrap_indices(n: int, *, replicates: int, block_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Local block bootstrap (Paparoditis and Politis, 2002): ``replicates`` × ``n`` row indices.

    The window is cut into blocks of ``block_fraction``·n rows; the block at position k is replaced by
    a block starting anywhere within one block length of k. Blocks keep the autocorrelation, and the
    local draw keeps the batch's trajectory (a trending phase window stays in time order), so a
    replicate looks like the same batch run with a little timing jitter — unlike the ordinary moving
    block bootstrap, which would mix the start and the end of a trending window.
    """
    length = int(min(n, max(2, round(block_fraction * n))))
    n_blocks = -(-n // length)
    nominal = np.arange(n_blocks) * length
    jitter = rng.integers(-length, length + 1, size=(replicates, n_blocks))
    starts = np.clip(nominal[None, :] + jitter, 0, n - length)
    idx = (starts[:, :, None] + np.arange(length)[None, None, :]).reshape(replicates, -1)
    return idx[:, :n]


def held_out_quantiles(scores: np.ndarray, held_out: Sequence[str], rule: CalibrationRule) -> dict[str, np.ndarray]:
    """Per held-out batch: the ``quantile`` of its scores (its leave-one-out score and its replicates)."""
    groups = np.asarray(held_out)
    return {g: np.quantile(scores[groups == g], rule.quantile, axis=0) for g in dict.fromkeys(held_out)}


def thresholds_from_scores(scores: np.ndarray, held_out: Sequence[str], rule: CalibrationRule) -> np.ndarray:
    """(1 + margin) × the largest per-held-out-batch quantile, per component."""
    per_batch = np.vstack(list(held_out_quantiles(scores, held_out, rule).values()))
    return (1.0 + rule.margin) * per_batch.max(axis=0)


def feature_score_fn(detector: Detector) -> ScoreFn:
    """Scores of a features detector: the other reference batches pooled as reference window."""

    def score(references: Sequence[np.ndarray], test: np.ndarray) -> np.ndarray:
        return detector.component_scores(np.vstack(references), test)

    return score


def calibrate(
    detector: Detector,
    batches: Mapping[str, Any],
    *,
    rule: CalibrationRule | None = None,
    score_fn: ScoreFn | None = None,
    components: Sequence[str] | None = None,
    order_sensitive: bool | None = None,
) -> Calibration:
    """Calibrate ``detector`` on ≥ 2 reference batches (``{batch label: window}``).

    ``score_fn(reference_windows, test_window)`` returns the component scores; by default the
    detector's :meth:`~Detector.component_scores` on the pooled other batches. Model-based callers pass
    their own (e.g. retrain the models without the held-out batch). ``order_sensitive`` defaults to
    the detector being a streaming one (no block bootstrap, see the module docstring).
    """
    rule = rule or CalibrationRule()
    if len(batches) < 2:
        raise DataError(f"calibration needs at least two reference batches, got {len(batches)}")
    windows = {str(k): as_matrix(v, name=f"reference batch {k}")[0] for k, v in batches.items()}
    score_fn = score_fn or feature_score_fn(detector)
    order_sensitive = detector.mode == "streaming" if order_sensitive is None else order_sensitive
    rng = np.random.default_rng(rule.seed)
    rows: list[np.ndarray] = []
    labels: list[str] = []
    groups: list[str] = []
    for held_out, window in windows.items():
        others = [w for k, w in windows.items() if k != held_out]
        rest = ",".join(k for k in windows if k != held_out)
        rows.append(np.atleast_1d(score_fn(others, window)))
        labels.append(f"{held_out} vs {rest}")
        groups.append(held_out)
        if not order_sensitive and rule.bootstrap:
            idx = block_bootstrap_indices(window.shape[0], replicates=rule.bootstrap,
                                          block_fraction=rule.block_fraction, rng=rng)
            for r in range(rule.bootstrap):
                rows.append(np.atleast_1d(score_fn(others, window[idx[r]])))
                labels.append(f"{held_out} vs {rest} (block bootstrap {r + 1})")
                groups.append(held_out)
    scores = np.vstack(rows)
    thresholds = thresholds_from_scores(scores, groups, rule)
    names = tuple(components) if components is not None else tuple(f"x{i}" for i in range(scores.shape[1]))
    if len(names) != scores.shape[1]:
        raise DataError(f"{scores.shape[1]} component scores but {len(names)} component names")
    return Calibration(detector=detector.key, params=detector.get_params(), rule=rule, components=names,
                       thresholds=thresholds, scores=scores, comparisons=tuple(labels), held_out=tuple(groups))


def apply_calibration(result: DriftResult, calibration: Calibration, component_scores: np.ndarray) -> DriftResult:
    """The calibrated verdict for a detector's ``result`` with ``component_scores`` on the test window.

    The nominal threshold is a floor per component (the nominal verdict's threshold is the same for
    every variable of a per-variable detector).
    """
    component_scores = np.atleast_1d(np.asarray(component_scores, dtype=float))
    if component_scores.shape != calibration.thresholds.shape:
        raise DataError(f"{component_scores.size} scores for {calibration.thresholds.size} calibrated components")
    thresholds = np.maximum(calibration.thresholds, result.threshold)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(thresholds > 0, component_scores / thresholds,
                         np.where(component_scores > 0, np.inf, 0.0))
    worst = int(np.argmax(ratio))
    flagged = [calibration.components[i] for i in np.flatnonzero(ratio > 1.0)]
    details = {
        **result.details,
        "nominal": {"drift": result.drift, "score": result.score, "threshold": result.threshold,
                    "p_value": result.p_value},
        "calibration": calibration.to_dict(),
        "components": [
            {"name": name, "score": float(s), "threshold": float(t), "ratio": float(r)}
            for name, s, t, r in zip(calibration.components, component_scores, thresholds, ratio, strict=True)
        ],
        "flagged_components": flagged,
        "verdict_rule": "reference-calibrated",
    }
    drifted = bool(flagged)
    explanation = _calibrated_explanation(result, calibration, component_scores, thresholds, ratio, worst, drifted)
    return dataclasses.replace(result, drift=drifted, score=float(ratio[worst]), threshold=1.0, details=details,
                               explanation=explanation)


def _calibrated_explanation(result, calibration, scores, thresholds, ratio, worst, drifted) -> str:
    name = calibration.components[worst]
    what = f"{name}'s score" if len(calibration.components) > 1 else "The score"
    try:
        label = detector_class(result.detector).label
    except DataError:
        label = result.detector
    lead = (f"{label}: {'drift' if drifted else 'no drift'} against the reference batches. {what} "
            f"{scores[worst]:.4g} is {ratio[worst]:.2f}× the calibrated threshold {thresholds[worst]:.4g} "
            f"(largest in-control between-batch score plus {calibration.rule.margin:.0%}).")
    if result.p_value is not None:
        lead += f" The iid test's p-value ({result.p_value:.3g}) is kept for reference only."
    shifts = result.details.get("shifts")
    if shifts:
        lead += f" Largest mean shifts: {format_shifts(shifts)}."
    return lead


def calibrated_detect(
    detector: Detector, calibration: Calibration, reference: Any, test: Any, *,
    variables: Sequence[str] | None = None,
) -> DriftResult:
    """``detector.detect`` on the windows, then the calibrated verdict (features detectors)."""
    result = detector.detect(reference, test, variables=variables)
    return apply_calibration(result, calibration, result_component_scores(detector, result))


def result_component_scores(detector: Detector, result: DriftResult) -> np.ndarray:
    """The component scores a result already holds (per variable, or the single score)."""
    if detector.per_variable:
        return np.array([row["score"] for row in result.details["per_variable"]], dtype=float)
    return np.array([result.score], dtype=float)

"""The IndPenSim drift study: every detector, per test batch and growth phase, calibrated on the reference.

The study reads the per-batch CSV files directly (a small loader below) so that it runs without the
time-series store. For each phase it

1. cuts every batch's phase window of the eight model inputs (:data:`INPUTS`);
2. trains three soft sensors for penicillin on the reference batches (ridge, k-nearest neighbours,
   gradient boosting) — for model disagreement, and the ridge model's residuals at the lab samples become
   the 0/1 error events of EDDM and HDDM-A (``|residual| > k·σ`` of the reference residuals);
3. calibrates every detector on the reference batches only (:mod:`stamm_drift.calibration`);
4. scores every test batch and records the raw score, the nominal verdict, the calibrated verdict and
   the runtime.

Nothing is tuned on the test batches: the detectors run with their catalogue defaults and the rule
with :class:`~stamm_drift.calibration.CalibrationRule`'s defaults.
"""
from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from stamm_drift import DataError, Detector, DriftResult, build_detector, registry
from stamm_drift.calibration import (
    Calibration,
    CalibrationRule,
    apply_calibration,
    block_bootstrap_indices,
    calibrate,
    result_component_scores,
    thresholds_from_scores,
)
from stamm_drift.residual_events import residual_events, residual_sigma

from .windows import INDPENSIM_PHASES, Phase

#: The eight process inputs a penicillin soft sensor would use: the two manipulated feeds (aeration,
#: sugar), the controlled conditions (temperature, pH), the culture's responses that are measured
#: online (dissolved O2, off-gas CO2, oxygen uptake) and the broth volume. All are online sensors or
#: actuators; lab values and the simulator's hidden states are excluded.
INPUTS: tuple[str, ...] = (
    "aeration_rate",
    "sugar_feed_rate",
    "temperature",
    "pH",
    "dissolved_oxygen_concentration",
    "CO2_percent_in_off_gas",
    "vessel_volume",
    "oxygen_uptake_rate",
)
TIME = "time"
TARGET = "penicillin_concentration"  # simulator's true value on every row: the soft sensor's target
LAB = "offline_penicillin_concentration"  # lab samples, about every 12 h
BATCH_ID = "experiment_ID"
#: Known condition of each IndPenSim batch (data README), for the report only — never used to calibrate.
CONDITIONS: dict[int, str] = {
    91: "substrate-feed fault", 92: "in control", 93: "in control", 94: "aeration fault",
    95: "substrate-feed fault", 96: "minor variation", 97: "substrate-feed fault (mild)",
    98: "minor variation", 99: "aeration fault", 100: "aeration fault",
}
FAULTY = frozenset({91, 94, 95, 97, 99, 100})
#: Residual events: a lab sample is an "error" when |lab − prediction| > EVENT_K · σ(reference residuals).
EVENT_K = 2.0


class StudyError(DataError):
    """The study cannot run on the given data (missing file, column or window)."""


def load_batches(data_dir: Path | str, batches: Iterable[int]) -> dict[int, pd.DataFrame]:
    """``{batch: frame}`` from ``batch_<n>.csv`` files, with the columns the study needs, time-sorted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise StudyError(f"data directory {data_dir} does not exist")
    wanted = [TIME, *INPUTS, TARGET, LAB]
    out: dict[int, pd.DataFrame] = {}
    for batch in batches:
        path = data_dir / f"batch_{batch}.csv"
        if not path.is_file():
            raise StudyError(f"batch {batch}: {path} not found")
        frame = pd.read_csv(path, usecols=lambda c: c in wanted)
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise StudyError(f"batch {batch}: {path.name} lacks columns {missing}")
        bad = frame[[TIME, *INPUTS]].isna().any()
        if bad.any():
            raise StudyError(f"batch {batch}: missing values in {list(bad[bad].index)}")
        out[int(batch)] = frame.sort_values(TIME, kind="stable").reset_index(drop=True)
    return out


# -- soft sensors for the model-based detectors ------------------------------------------------------

@dataclass
class SoftSensors:
    """Three penicillin soft sensors trained on the same batches; ``models[0]`` (ridge) is the
    "deployed" one whose lab residuals feed EDDM / HDDM-A."""

    names: tuple[str, ...]
    models: list[Any]
    mean: np.ndarray
    sd: np.ndarray
    sigma: float  # SD of the ridge model's residuals at the training batches' lab samples

    @classmethod
    def train(cls, frames: Sequence[pd.DataFrame]) -> SoftSensors:
        from sklearn.ensemble import GradientBoostingRegressor
        from sklearn.linear_model import Ridge
        from sklearn.neighbors import KNeighborsRegressor

        x = np.vstack([f[list(INPUTS)].to_numpy(float) for f in frames])
        y = np.concatenate([f[TARGET].to_numpy(float) for f in frames])
        mean, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
        sd = np.where(sd > 0, sd, 1.0)
        z = (x - mean) / sd
        models = [
            Ridge(alpha=1.0).fit(z, y),
            KNeighborsRegressor(n_neighbors=10).fit(z, y),
            GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0).fit(z, y),
        ]
        sensors = cls(("ridge", "knn", "gradient_boosting"), models, mean, sd, sigma=math.nan)
        residuals = np.concatenate([sensors.lab_residuals(f) for f in frames])
        sensors.sigma = residual_sigma(residuals)
        return sensors

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predictions of every model (rows × models)."""
        z = (frame[list(INPUTS)].to_numpy(float) - self.mean) / self.sd
        return np.column_stack([m.predict(z) for m in self.models])

    def lab_residuals(self, frame: pd.DataFrame) -> np.ndarray:
        """``lab − ridge prediction`` at the rows that carry a lab sample (predictions are per row)."""
        lab = frame[LAB].to_numpy(float)
        rows = np.flatnonzero(np.isfinite(lab))
        if rows.size == 0:
            return np.empty(0)
        z = (frame[list(INPUTS)].to_numpy(float)[rows] - self.mean) / self.sd
        return lab[rows] - self.models[0].predict(z)

    def events(self, frame: pd.DataFrame) -> np.ndarray:
        return residual_events(self.lab_residuals(frame), sigma=self.sigma, k=EVENT_K)


# -- the study -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyRow:
    detector: str
    batch: int
    phase: str
    condition: str
    score: float
    nominal_threshold: float
    nominal_drift: bool
    p_value: float | None
    calibrated_score: float
    drift: bool
    flagged: tuple[str, ...]
    runtime_ms: float
    explanation: str


@dataclass
class StudyReport:
    reference: tuple[int, ...]
    test: tuple[int, ...]
    phases: tuple[Phase, ...]
    rule: CalibrationRule
    rows: list[StudyRow] = field(default_factory=list)
    calibrations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def verdicts(self, phase: str) -> dict[str, dict[int, bool]]:
        """``{detector: {batch: calibrated drift}}`` of one phase."""
        out: dict[str, dict[int, bool]] = {}
        for row in self.rows:
            if row.phase == phase:
                out.setdefault(row.detector, {})[row.batch] = row.drift
        return out

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["phase", "batch", "condition", "detector", "score", "nominal_threshold", "nominal_drift",
                         "p_value", "calibrated_score", "drift", "flagged", "runtime_ms"])
        for r in self.rows:
            writer.writerow([r.phase, r.batch, r.condition, r.detector, f"{r.score:.6g}", f"{r.nominal_threshold:.6g}",
                             int(r.nominal_drift), "" if r.p_value is None else f"{r.p_value:.4g}",
                             f"{r.calibrated_score:.4g}", int(r.drift), ";".join(r.flagged), f"{r.runtime_ms:.1f}"])
        return buffer.getvalue()

    def to_markdown(self) -> str:
        detectors = list(dict.fromkeys(r.detector for r in self.rows))
        tests = ", ".join(f"{b} ({CONDITIONS.get(b, 'unknown')})" for b in self.test)
        lines = [
            "# IndPenSim drift study",
            "",
            f"Reference batches: {', '.join(map(str, self.reference))}. Test batches: "
            f"{tests}.",
            f"Inputs: {', '.join(INPUTS)}.",
            f"Verdict rule: reference-calibrated (margin {self.rule.margin:.0%}, quantile {self.rule.quantile}, "
            f"{self.rule.bootstrap} block-bootstrap replicates per held-out batch, blocks of "
            f"{self.rule.block_fraction:.0%} of the window, seed {self.rule.seed}). "
            f"Total runtime {self.seconds:.2f} s.",
            "",
            "Cells: calibrated score (score ÷ calibrated threshold; **bold** = drift) / nominal verdict "
            "(D = the detector's own threshold says drift).",
        ]
        for phase in self.phases:
            rows = [r for r in self.rows if r.phase == phase.name]
            if not rows:
                continue
            end = "" if math.isinf(phase.end_h) else f"{phase.end_h:g}"
            lines += ["", f"## Phase {phase.name} ({phase.start_h:g}–{end} h)", ""]
            lines.append("| detector | " + " | ".join(f"{b}{'*' if b in FAULTY else ''}" for b in self.test)
                         + " | faulty flagged | 98 flagged | ms |")
            lines.append("|---" * (len(self.test) + 4) + "|")
            for det in detectors:
                cells, ms = [], 0.0
                by_batch = {r.batch: r for r in rows if r.detector == det}
                for b in self.test:
                    r = by_batch.get(b)
                    if r is None:
                        cells.append("–")
                        continue
                    ms += r.runtime_ms
                    value = f"{r.calibrated_score:.2f}"
                    cells.append((f"**{value}**" if r.drift else value) + (" / D" if r.nominal_drift else ""))
                flagged = sum(1 for b in self.test if b in FAULTY and by_batch.get(b) and by_batch[b].drift)
                n_faulty = sum(1 for b in self.test if b in FAULTY)
                flag98 = "yes" if by_batch.get(98) and by_batch[98].drift else ("no" if 98 in by_batch else "–")
                lines.append(f"| {det} | " + " | ".join(cells) + f" | {flagged}/{n_faulty} | {flag98} | {ms:.0f} |")
        if self.skipped:
            lines += ["", "Skipped:", *[f"- {s}" for s in self.skipped]]
        lines += ["", "\\* = known faulty batch (from the data README; not used for calibration).", ""]
        return "\n".join(lines)


def run_study(
    *, data_dir: Path | str, reference: Sequence[int], test: Sequence[int],
    phases: Sequence[Phase] | None = INDPENSIM_PHASES, detectors: Sequence[str] | None = None,
    rule: CalibrationRule | None = None,
) -> StudyReport:
    """Run every detector (or ``detectors``) on each test batch and phase (``phases=None``: whole batch).

    BLAS runs single-threaded here: the work is many small matrix products, for which thread start-up
    and contention with other processes on a small machine cost more than they save (measured 2× on 2 cores).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _run_study(data_dir=data_dir, reference=reference, test=test, phases=phases, detectors=detectors,
                          rule=rule)


def _run_study(*, data_dir, reference, test, phases, detectors, rule) -> StudyReport:
    started = time.perf_counter()
    reference, test = tuple(int(b) for b in reference), tuple(int(b) for b in test)
    if len(reference) < 2:
        raise StudyError("the reference needs at least two batches (calibration leaves one out)")
    if set(reference) & set(test):
        raise StudyError(f"batches both in reference and test: {sorted(set(reference) & set(test))}")
    rule = rule or CalibrationRule()
    keys = list(detectors or registry())
    for key in keys:
        build_detector(key)  # unknown keys fail before any work
    phases = tuple(phases) if phases else (Phase("batch", 0),)
    frames = load_batches(data_dir, (*reference, *test))
    report = StudyReport(reference, test, phases, rule)

    models = ModelOutputs.compute(frames, reference) if any(registry()[k].input != "features" for k in keys) else None

    for phase in phases:
        masks = {b: phase.mask(f[TIME].to_numpy()) for b, f in frames.items()}
        short = [b for b, m in masks.items() if m.sum() < 10]
        if any(b in reference for b in short):
            report.skipped.append(f"phase {phase.name}: reference batch window(s) {short} have < 10 rows")
            continue
        x = {b: f[list(INPUTS)].to_numpy(float)[masks[b]] for b, f in frames.items()}
        for key in keys:
            detector = build_detector(key)
            t0 = time.perf_counter()
            try:
                cal, run = _prepare(detector, x, masks, reference, phase, models, rule)
            except DataError as exc:
                report.skipped.append(f"{key}, phase {phase.name}: {exc}")
                continue
            cal_ms = (time.perf_counter() - t0) * 1000
            report.calibrations[(key, phase.name)] = {**cal.to_dict(), "runtime_ms": cal_ms}
            for batch in test:
                if batch in short:
                    report.skipped.append(f"{key}, batch {batch}, phase {phase.name}: window < 10 rows")
                    continue
                t1 = time.perf_counter()
                try:
                    result = run(batch)
                except DataError as exc:
                    report.skipped.append(f"{key}, batch {batch}, phase {phase.name}: {exc}")
                    continue
                ms = (time.perf_counter() - t1) * 1000 + cal_ms / len(test)
                nominal = result.details["nominal"]
                report.rows.append(StudyRow(
                    detector=key, batch=batch, phase=phase.name, condition=CONDITIONS.get(batch, ""),
                    score=float(nominal["score"]), nominal_threshold=float(nominal["threshold"]),
                    nominal_drift=bool(nominal["drift"]), p_value=nominal["p_value"],
                    calibrated_score=result.score, drift=result.drift,
                    flagged=tuple(result.details["flagged_components"]), runtime_ms=ms,
                    explanation=result.explanation,
                ))
    report.seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class ModelOutputs:
    """Soft-sensor outputs computed once per study: predictions of the models trained on all reference
    batches (every batch, every row), of the leave-one-batch-out models (on the reference batches), and
    the lab-residual events of the ridge model with the time of each lab sample."""

    names: tuple[str, ...]
    predictions: dict[int, np.ndarray]
    fold_predictions: dict[int, dict[int, np.ndarray]]  # held-out batch → batch → predictions
    lab_time: dict[int, np.ndarray]
    events: dict[int, np.ndarray]

    @classmethod
    def compute(cls, frames: dict[int, pd.DataFrame], reference: tuple[int, ...]) -> ModelOutputs:
        full = SoftSensors.train([frames[b] for b in reference])
        folds = {h: SoftSensors.train([frames[o] for o in reference if o != h]) for h in reference}
        lab_time = {b: f[TIME].to_numpy(float)[np.isfinite(f[LAB].to_numpy(float))] for b, f in frames.items()}
        return cls(
            names=full.names,
            predictions={b: full.predict(f) for b, f in frames.items()},
            fold_predictions={h: {b: m.predict(frames[b]) for b in reference} for h, m in folds.items()},
            lab_time=lab_time,
            events={b: full.events(f) for b, f in frames.items()},
        )


def _prepare(detector: Detector, x: dict[int, np.ndarray], masks: dict[int, np.ndarray], reference: tuple[int, ...],
             phase: Phase, models: ModelOutputs | None, rule: CalibrationRule):
    """Calibrate ``detector`` for one phase and return ``(calibration, run(batch) → calibrated result)``."""
    if detector.input == "features":
        names = INPUTS if detector.per_variable else (detector.key,)
        cal = calibrate(detector, {b: x[b] for b in reference}, rule=rule, components=names)
        ref = np.vstack([x[b] for b in reference])

        def run(batch: int) -> DriftResult:
            return _calibrated(detector, cal, ref, x[batch], INPUTS)

        return cal, run

    assert models is not None
    if detector.input == "predictions":
        fold_pred = {
            h: (models.fold_predictions[h][h][masks[h]],
                np.vstack([models.fold_predictions[h][o][masks[o]] for o in reference if o != h]))
            for h in reference
        }
        cal = _calibrate_predictions(detector, fold_pred, rule)
        ref_pred = np.vstack([models.predictions[b][masks[b]] for b in reference])

        def run(batch: int) -> DriftResult:
            return _calibrated(detector, cal, ref_pred, models.predictions[batch][masks[batch]], models.names)

        return cal, run

    # events: the ridge soft sensor's lab residuals → 0/1 events, streamed reference first
    events = {b: e[phase.mask(models.lab_time[b])] for b, e in models.events.items()}
    ref_events = np.concatenate([events[b] for b in reference])
    if ref_events.size < 2:
        raise DataError(f"fewer than two lab samples in the reference batches' {phase.name} phase")
    cal = calibrate(detector, {b: events[b] for b in reference}, rule=rule, components=(detector.key,))

    def run(batch: int) -> DriftResult:
        if events[batch].size < detector.min_rows:
            raise DataError(f"{events[batch].size} lab samples in the window")
        return _calibrated(detector, cal, ref_events, events[batch], ("lab_error_events",))

    return cal, run


def _calibrate_predictions(detector: Detector, fold_pred: dict[int, tuple[np.ndarray, np.ndarray]],
                           rule: CalibrationRule) -> Calibration:
    """Leave-one-batch-out for model disagreement: the models are retrained without the held-out batch,
    which is then scored (and block-bootstrapped) against those models' predictions on their own
    training windows (which set the scale)."""
    rng = np.random.default_rng(rule.seed)
    scores: list[float] = []
    labels: list[str] = []
    groups: list[str] = []
    for batch, (held, train_pred) in fold_pred.items():
        scores.append(detector.score(train_pred, held))
        labels.append(f"{batch} vs models trained without it")
        groups.append(str(batch))
        if rule.bootstrap:
            idx = block_bootstrap_indices(held.shape[0], replicates=rule.bootstrap,
                                          block_fraction=rule.block_fraction, rng=rng)
            for r in range(rule.bootstrap):
                scores.append(detector.score(train_pred, held[idx[r]]))
                labels.append(f"{batch} vs models trained without it (block bootstrap {r + 1})")
                groups.append(str(batch))
    matrix = np.array(scores)[:, None]
    return Calibration(detector=detector.key, params=detector.get_params(), rule=rule, components=(detector.key,),
                       thresholds=thresholds_from_scores(matrix, groups, rule), scores=matrix,
                       comparisons=tuple(labels), held_out=tuple(groups))


def _calibrated(detector: Detector, cal: Calibration, reference: np.ndarray, test: np.ndarray,
                variables: Sequence[str]) -> DriftResult:
    result = detector.detect(reference, test, variables=variables)
    return apply_calibration(result, cal, result_component_scores(detector, result))


def write_report(report: StudyReport, out_dir: Path | str) -> dict[str, Path]:
    """Write ``drift_study.md``, ``drift_study.csv`` and ``calibration.csv`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "drift_study.md", "csv": out / "drift_study.csv", "calibration": out / "calibration.csv"}
    paths["markdown"].write_text(report.to_markdown(), encoding="utf-8")
    paths["csv"].write_text(report.to_csv(), encoding="utf-8")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["phase", "detector", "component", "calibrated_threshold", "held_out_quantiles", "lobo_scores"])
    for (key, phase), cal in report.calibrations.items():
        for i, comp in enumerate(cal["components"]):
            lobo = ";".join(f"{k}={v[i]:.4g}" for k, v in cal["leave_one_batch_out"].items())
            quantiles = ";".join(f"{k}={v[i]:.4g}" for k, v in cal["held_out_quantiles"].items())
            writer.writerow([phase, key, comp, f"{cal['calibrated_thresholds'][i]:.6g}", quantiles, lobo])
    paths["calibration"].write_text(buffer.getvalue(), encoding="utf-8")
    return paths

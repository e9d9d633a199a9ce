"""The IndPenSim study: targets, a regression test on the verdict table, the command."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.drift.study import FAULTY, INPUTS, StudyError, load_batches, run_study
from tests.conftest import INDPENSIM_DIR

REFERENCE = (92, 93)
TEST = (91, 94, 95, 96, 97, 98, 99, 100)
EXPECTED = json.loads((Path(__file__).parent / "study_verdicts.json").read_text())


@pytest.fixture(scope="module")
def report():
    if not INDPENSIM_DIR.is_dir():
        pytest.fail(f"IndPenSim data not found at {INDPENSIM_DIR}")
    return run_study(data_dir=INDPENSIM_DIR, reference=REFERENCE, test=TEST)


def flagged(report, phase: str, detector: str) -> set[int]:
    return {b for b, drift in report.verdicts(phase)[detector].items() if drift}


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["psi", "ks"])
def test_log_phase_target_all_faulty_batches_flagged_and_98_not(report, detector):
    hits = flagged(report, "log", detector)
    assert FAULTY <= hits, f"{detector} misses {sorted(FAULTY - hits)}"
    assert 98 not in hits


@pytest.mark.slow
def test_study_scores_every_batch_phase_and_detector(report):
    # Its duration is a figure of `manage.py drift_study` (docs/drift.md), not an assertion: a timed test
    # fails on a busy machine and passes on a fast one without saying anything about the code.
    assert len(report.rows) == 10 * len(TEST) * 4 and not report.skipped


@pytest.mark.slow
def test_verdict_table_regression(report):
    """Every verdict that is not within 5 % of its threshold matches the recorded table."""
    mismatches = []
    for row in report.rows:
        expected = row.batch in EXPECTED[row.phase][row.detector]
        if abs(row.calibrated_score - 1.0) > 0.05 and row.drift != expected:
            mismatches.append((row.phase, row.detector, row.batch, row.calibrated_score, expected))
    assert not mismatches


@pytest.mark.slow
def test_calibration_never_sees_a_test_batch(report):
    for cal in report.calibrations.values():
        for comparison in cal["leave_one_batch_out"]:
            numbers = {int(tok) for tok in comparison.replace(",", " ").split() if tok.isdigit()}
            assert numbers <= set(REFERENCE), comparison
    # thresholds do not depend on which test batches are scored
    alone = run_study(data_dir=INDPENSIM_DIR, reference=REFERENCE, test=(98,), detectors=["psi", "model_disagreement"])
    for key in ("psi", "model_disagreement"):
        assert alone.calibrations[(key, "log")]["calibrated_thresholds"] == pytest.approx(
            report.calibrations[(key, "log")]["calibrated_thresholds"])


@pytest.mark.slow
def test_explanations_name_variables(report):
    row = next(r for r in report.rows if r.detector == "psi" and r.phase == "log" and r.batch == 95)
    assert row.drift and "sugar_feed_rate" in row.flagged
    assert any(v in row.explanation for v in INPUTS)


def test_loader_checks_files_and_columns(tmp_path, indpensim_dir):
    with pytest.raises(StudyError, match="not found"):
        load_batches(tmp_path, [92])
    (tmp_path / "batch_1.csv").write_text("time,aeration_rate\n0.2,30\n")
    with pytest.raises(StudyError, match="lacks columns"):
        load_batches(tmp_path, [1])
    frames = load_batches(indpensim_dir, [92])
    assert list(frames[92].columns)[:2] == ["time", "aeration_rate"] and len(frames[92]) == 1150


def test_study_refuses_overlapping_or_short_reference(indpensim_dir):
    with pytest.raises(StudyError, match="at least two"):
        run_study(data_dir=indpensim_dir, reference=[92], test=[98])
    with pytest.raises(StudyError, match="both in reference and test"):
        run_study(data_dir=indpensim_dir, reference=[92, 93], test=[93])


@pytest.mark.slow
def test_command_writes_markdown_and_csv(tmp_path, indpensim_dir, capsys):
    call_command("drift_study", "--reference", "92,93", "--test", "98,99", "--phases", "log:30-120",
                 "--data-dir", str(indpensim_dir), "--out", str(tmp_path), "--detectors", "psi,mmd")
    out = capsys.readouterr().out
    assert "psi" in out and "wrote" in out
    md = (tmp_path / "drift_study.md").read_text()
    assert "## Phase log (30–120 h)" in md and "| psi |" in md
    rows = (tmp_path / "drift_study.csv").read_text().splitlines()
    assert rows[0].startswith("phase,batch,condition,detector,score") and len(rows) == 1 + 2 * 2
    assert (tmp_path / "calibration.csv").read_text().count("\nlog,psi,") == len(INPUTS)


def test_command_errors(indpensim_dir, tmp_path):
    with pytest.raises(CommandError, match="--reference"):
        call_command("drift_study", "--reference", "92,x", "--test", "98", "--data-dir", str(indpensim_dir))
    with pytest.raises(CommandError, match="unknown drift detector"):
        call_command("drift_study", "--reference", "92,93", "--test", "98", "--data-dir", str(indpensim_dir),
                     "--detectors", "cusum", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="--phases"):
        call_command("drift_study", "--reference", "92,93", "--test", "98", "--phases", "log:30",
                     "--data-dir", str(indpensim_dir))
    with pytest.raises(CommandError, match="does not exist"):
        call_command("drift_study", "--reference", "92,93", "--test", "98", "--data-dir", str(tmp_path / "none"))

"""``manage.py drift_study``: run every drift detector on IndPenSim batches and write the tables.

Example::

    manage.py drift_study --reference 92,93 --test 91,94,95,96,97,98,99,100 --phases \\
        --data-dir ../shared/data/indpensim --out var/drift-study
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from stamm_drift import DriftError
from stamm_drift.calibration import CalibrationRule

from apps.drift.study import FAULTY, run_study, write_report
from apps.drift.windows import INDPENSIM_PHASES, parse_phases


def _batches(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"{option}: expected comma-separated batch numbers, got {text!r}") from None
    if not values:
        raise CommandError(f"{option}: no batch given")
    return values


class Command(BaseCommand):
    help = ("Run every drift detector per test batch (and growth phase) against reference batches, with "
            "thresholds calibrated on the reference only; write Markdown and CSV tables.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reference", required=True, help="reference batches, e.g. 92,93")
        parser.add_argument("--test", required=True, help="test batches, e.g. 91,94,95,96,97,98,99,100")
        parser.add_argument(
            "--phases", nargs="?", const="indpensim", default=None,
            help="score each growth phase (IndPenSim's lag/log/stationary/death by default, or a spec like "
                 "'lag:0-30,log:30-120,stationary:120-200,death:200-'); without it the whole batch is one window",
        )
        parser.add_argument("--data-dir", default=str(settings.BASE_DIR.parent / "shared" / "data" / "indpensim"),
                            help="folder with batch_<n>.csv files (default ../shared/data/indpensim)")
        parser.add_argument("--out", default=str(Path(settings.VAR_DIR) / "drift-study"),
                            help="output folder (default var/drift-study)")
        parser.add_argument("--detectors", default="", help="comma-separated detector keys (default: all)")
        parser.add_argument("--margin", type=float, default=CalibrationRule.margin,
                            help="calibration margin over the in-control between-batch score (default 0.5)")
        parser.add_argument("--bootstrap", type=int, default=CalibrationRule.bootstrap,
                            help="local block-bootstrap replicates per held-out reference batch (default 20)")
        parser.add_argument("--seed", type=int, default=CalibrationRule.seed, help="bootstrap seed (default 0)")

    def handle(self, *args, **options) -> None:
        reference = _batches(options["reference"], "--reference")
        test = _batches(options["test"], "--test")
        phases = None
        if options["phases"] == "indpensim":
            phases = INDPENSIM_PHASES
        elif options["phases"]:
            try:
                phases = parse_phases(options["phases"])
            except ValueError as exc:
                raise CommandError(f"--phases: {exc}") from None
        try:
            rule = CalibrationRule(margin=options["margin"], bootstrap=options["bootstrap"], seed=options["seed"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        detectors = [d.strip() for d in options["detectors"].split(",") if d.strip()] or None
        try:
            report = run_study(data_dir=options["data_dir"], reference=reference, test=test, phases=phases,
                               detectors=detectors, rule=rule)
        except DriftError as exc:
            raise CommandError(str(exc)) from None
        paths = write_report(report, options["out"])
        for phase in report.phases:
            verdicts = report.verdicts(phase.name)
            if not verdicts:
                continue
            self.stdout.write(f"{phase.name}:")
            for key, by_batch in verdicts.items():
                flagged = [b for b, drift in by_batch.items() if drift]
                faulty = sum(1 for b in flagged if b in FAULTY)
                total = sum(b in FAULTY for b in test)
                self.stdout.write(f"  {key:<20} flags {flagged or '-'} ({faulty}/{total} faulty)")
        for skipped in report.skipped:
            self.stdout.write(f"skipped: {skipped}")
        self.stdout.write(f"wrote {', '.join(str(p) for p in paths.values())} in {report.seconds:.2f} s")

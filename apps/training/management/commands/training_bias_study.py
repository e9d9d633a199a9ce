"""Does the filtered bias update help on IndPenSim? Raw vs bias-corrected RMSE per batch and alpha.

Trains a random forest (the eight online inputs plus batch age) on batches 92, 93 and 96 straight from
the CSV files, predicts every other batch, applies ``bias.bias_trace`` with the batch's own lab samples
(``offline_penicillin_concentration``, known ``--lab-delay-hours`` after sampling) and prints a Markdown
table of RMSE against the true penicillin concentration. Nothing is written to the database.

    manage.py training_bias_study --data ../shared/data/indpensim
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

EIGHT = [
    "temperature",
    "sugar_feed_rate",
    "aeration_rate",
    "dissolved_oxygen_concentration",
    "pH",
    "vessel_volume",
    "CO2_percent_in_off_gas",
    "oxygen_in_percent_in_off_gas",
]
NS_PER_HOUR = 3600 * 1_000_000_000


class Command(BaseCommand):
    help = "IndPenSim study: RMSE of raw vs bias-corrected soft-sensor estimates, per batch and alpha."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", type=Path, default=Path("../shared/data/indpensim"))
        parser.add_argument("--train", nargs="+", type=int, default=[92, 93, 96])
        parser.add_argument("--test", nargs="+", type=int, default=[91, 94, 95, 97, 98, 99, 100])
        parser.add_argument("--alphas", nargs="+", type=float, default=[0.3, 0.5, 0.8])
        parser.add_argument("--lab-delay-hours", type=float, default=4.0)
        parser.add_argument("--max-age-hours", type=float, default=8.0)
        parser.add_argument("--no-batch-age", action="store_true")
        parser.add_argument("--trees", type=int, default=100)

    def handle(self, *args: Any, **options: Any) -> None:
        import pandas as pd
        from sklearn.ensemble import RandomForestRegressor

        from apps.training.bias import BiasParams, bias_trace
        from apps.training.evaluation import metrics, persistence_predictions

        folder: Path = options["data"]
        if not folder.is_dir():
            raise CommandError(f"--data: {folder} is not a folder")
        features = EIGHT + ([] if options["no_batch_age"] else ["time"])

        def load(number: int) -> pd.DataFrame:
            path = folder / f"batch_{number}.csv"
            if not path.exists():
                raise CommandError(f"{path} not found")
            return pd.read_csv(path)

        train = pd.concat([load(n) for n in options["train"]])
        model = RandomForestRegressor(n_estimators=options["trees"], random_state=0, n_jobs=1).fit(
            train[features].to_numpy(float), train["penicillin_concentration"].to_numpy(float)
        )
        alphas = options["alphas"]
        header = (
            "| batch | raw RMSE | "
            + " | ".join(f"α={a:g} RMSE" for a in alphas)
            + " | persistence RMSE (lab-known rows) | lab samples |"
        )
        self.stdout.write(f"inputs: {', '.join(features)} (time = batch age); trained on {options['train']}")
        self.stdout.write(header)
        self.stdout.write("|" + "---|" * (4 + len(alphas)))
        totals = {"raw": [], **{a: [] for a in alphas}, "persistence": []}
        delay_ns = int(options["lab_delay_hours"] * NS_PER_HOUR)
        for number in options["test"]:
            frame = load(number)
            times = np.round(frame["time"].to_numpy(float) * NS_PER_HOUR).astype(np.int64)
            truth = frame["penicillin_concentration"].to_numpy(float)
            raw = model.predict(frame[features].to_numpy(float))
            lab = frame[["time", "offline_penicillin_concentration"]].dropna()
            lab_t = np.round(lab["time"].to_numpy(float) * NS_PER_HOUR).astype(np.int64)
            lab_v = lab["offline_penicillin_concentration"].to_numpy(float)
            row = [metrics(truth, raw)["rmse"]]
            totals["raw"].append(row[0])
            for alpha in alphas:
                trace = bias_trace(
                    times,
                    raw,
                    lab_t,
                    lab_v,
                    BiasParams(
                        alpha=alpha,
                        lab_delay_ns=int(options["lab_delay_hours"] * NS_PER_HOUR),
                        max_age_ns=int(options["max_age_hours"] * NS_PER_HOUR),
                        lab_min=0.0,
                    ),
                )
                value = metrics(truth, trace.corrected)["rmse"]
                row.append(value)
                totals[alpha].append(value)
            persistence = persistence_predictions(
                times, np.zeros(times.shape[0], dtype=np.int32), [(lab_t, lab_v)], lab_delay_ns=delay_ns
            )
            row.append(metrics(truth, persistence)["rmse"])
            totals["persistence"].append(row[-1])
            self.stdout.write(f"| {number} | " + " | ".join(f"{v:.3f}" for v in row) + f" | {len(lab_v)} |")
        self.stdout.write(
            "| mean | " + " | ".join(f"{np.mean(totals[k]):.3f}" for k in ["raw", *alphas, "persistence"]) + " | |"
        )

"""R runtime benchmark: a 100-tree randomForest predicting 10,000 rows through the worker vs in R directly.

Usage: ``.venv/bin/python benchmarks/r_runtime.py [--repeats 15]`` from the repository root (needs Rscript
and ../shared/data/indpensim). Trains the forest with Rscript on batch 92, predicts 10,000 rows taken from
batches 91 and 93–100, and reports medians: R alone (``predict`` timed inside R on the same data frame),
the worker round trip (``RWorkerRuntime.predict``), that round trip taken apart (``predict`` inside the
worker vs transport: encode, pipe, decode, data frame, reply), and single-row latency p50/p99 over 1,000
calls. The last line is JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from apps.registry.runtimes.r import RWorkerRuntime, _columns_payload  # noqa: E402

DATA = (REPO / ".." / "shared" / "data" / "indpensim").resolve()
FEATURES = ["temperature", "sugar_feed_rate", "aeration_rate", "pH", "dissolved_oxygen_concentration"]

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(randomForest))
d <- read.csv(args[1], check.names = FALSE)
set.seed(1)
m <- randomForest(penicillin_concentration ~ temperature + sugar_feed_rate + aeration_rate + pH +
                  dissolved_oxygen_concentration, data = d, ntree = 100)
saveRDS(m, args[2])
x <- jsonlite::fromJSON(args[3], simplifyMatrix = FALSE)
newdata <- as.data.frame(lapply(x$data, as.double), col.names = x$columns, check.names = FALSE)
repeats <- as.integer(args[4])
times <- numeric(repeats)
for (i in seq_len(repeats)) {
  t0 <- proc.time()[["elapsed"]]
  p <- predict(m, newdata = newdata)
  times[i] <- proc.time()[["elapsed"]] - t0
}
cat(sprintf("%.17g", median(times)), "\n", file = args[5])
cat(paste(sprintf("%.17g", p), collapse = " "), "\n", file = args[5], append = TRUE)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--single-calls", type=int, default=1_000)
    options = parser.parse_args()

    frames = [pd.read_csv(DATA / f"batch_{n}.csv") for n in (91, *range(93, 101))]
    X = np.concatenate([f[FEATURES].to_numpy(np.float64) for f in frames])[: options.rows]
    assert X.shape[0] == options.rows, f"only {X.shape[0]} rows available"

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = tmp_path / "rf100.rds"
        inputs = tmp_path / "inputs.json"
        result = tmp_path / "r_result.txt"
        script = tmp_path / "bench.R"
        inputs.write_text(json.dumps({"columns": FEATURES, "data": X.T.tolist()}))
        script.write_text(R_SCRIPT)
        subprocess.run(
            ["Rscript", "--vanilla", str(script), str(DATA / "batch_92.csv"), str(model), str(inputs),
             str(options.repeats), str(result)],
            check=True,
        )
        r_seconds_text, r_predictions_text = result.read_text().splitlines()[:2]
        r_seconds = float(r_seconds_text)
        r_predictions = np.array([float(v) for v in r_predictions_text.split()])

        sha = hashlib.sha256(model.read_bytes()).hexdigest()
        runtime = RWorkerRuntime()
        try:
            t0 = time.perf_counter()
            runtime.load(model, sha)
            first_load = time.perf_counter() - t0  # includes starting the worker
            predictions = runtime.predict(model, sha, X, FEATURES)  # warm-up
            batch_times = []
            for _ in range(options.repeats):
                t0 = time.perf_counter()
                predictions = runtime.predict(model, sha, X, FEATURES)
                batch_times.append(time.perf_counter() - t0)
            # The same call taken apart: the reply says how long predict() itself took inside R, so the
            # difference is the transport (encode, pipe, decode, data frame), measured on the same call.
            worker = runtime._worker
            payload = _columns_payload(X)
            transport = []
            inside = []
            for _ in range(options.repeats):
                t0 = time.perf_counter()
                reply = worker.call(
                    {"op": "predict", "key": sha, "columns": FEATURES, "rows": len(X)}, timeout=60, payload=payload
                )
                total = time.perf_counter() - t0
                inside.append(reply["predict_seconds"])
                transport.append(total - reply["predict_seconds"])
            single = []
            for i in range(options.single_calls):
                row = X[i % len(X)][None, :]
                t0 = time.perf_counter()
                runtime.predict(model, sha, row, FEATURES)
                single.append(time.perf_counter() - t0)
        finally:
            runtime.close()

    worker_seconds = statistics.median(batch_times)
    figures = {
        "model": "randomForest, 100 trees, 5 inputs",
        "rows": options.rows,
        "repeats": options.repeats,
        "r_direct_seconds": round(r_seconds, 4),
        "worker_seconds": round(worker_seconds, 4),
        "predict_inside_worker_seconds": round(statistics.median(inside), 4),
        "transport_seconds": round(statistics.median(transport), 4),
        "r_direct_rows_per_s": round(options.rows / r_seconds) if r_seconds > 0 else None,
        "worker_rows_per_s": round(options.rows / worker_seconds),
        "worker_vs_r_ratio": round(worker_seconds / r_seconds, 2) if r_seconds > 0 else None,
        "single_row_p50_ms": round(1000 * float(np.percentile(single, 50)), 3),
        "single_row_p99_ms": round(1000 * float(np.percentile(single, 99)), 3),
        "first_load_seconds": round(first_load, 3),
        "max_abs_diff_vs_r": float(np.max(np.abs(predictions - r_predictions))),
    }
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Drift package benchmark: stream updates per second per core, and every detector's cost per call.

    .venv/bin/python benchmarks/drift_package.py                       # 200 k stream values; 1 k, 10 k, 100 k rows
    .venv/bin/python benchmarks/drift_package.py --rows 1000,10000 --stream-values 50000   # a quicker run

Pure computation in this process (no database, no Redis); BLAS and OpenMP are held to one thread, so
the figures are per core. Synthetic data, seeded.

Streams: each state machine (``AdwinStream``, ``PageHinkleyStream``, ``HDDMAStream``,
``EDDMStream``) is fed ``--stream-values`` values one ``update`` call at a time (normal values; 0/1
events at a 10 % rate for the event detectors) — river's guideline for a streaming detector is at
least 5,000 updates/s. The same through the drift_detectors_pack call shape (``stamm_drift.compat``,
``calculate([x])`` with ``online=True``, one call per value) shows the adapter's overhead.

Calls: ``detector.detect(reference, test)`` with the catalogue defaults, reference and test of N rows
each (8 variables; 3 models for model disagreement; one 0/1 event stream for EDDM and HDDM-A), median
of up to ``--repeat`` calls (fewer when a call takes over a second), and the peak memory numpy
allocated during one call (tracemalloc). The last line printed is JSON with every figure and the load
average before and after.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # per-core figures: set before numpy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
import stamm_drift as sd  # noqa: E402
import stamm_drift.compat as dd  # noqa: E402

GUIDELINE = 5_000  # river's updates/s per core for a streaming detector


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000,10000,100000", help="window sizes (rows each side), comma-separated")
    parser.add_argument("--stream-values", type=int, default=200_000, help="values fed to each stream")
    parser.add_argument("--repeat", type=int, default=5, help="most timed calls per detector and size")
    parser.add_argument("--detectors", default="", help="comma-separated detector keys (default: all ten)")
    return parser.parse_args()


def stream_rates(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    values = rng.normal(size=n).tolist()
    events = (rng.random(n) < 0.1).astype(float).tolist()
    cases = [
        ("AdwinStream", sd.AdwinStream, values, dd.Adwin),
        ("PageHinkleyStream", sd.PageHinkleyStream, values, dd.PageHinkley),
        ("HDDMAStream", sd.HDDMAStream, events, dd.HDDM_A),
        ("EDDMStream", sd.EDDMStream, events, dd.EDDM),
    ]
    rows = []
    for name, cls, data, compat_cls in cases:
        stream = cls()
        update = stream.update
        start = time.perf_counter()
        for x in data:
            update(x)
        direct = n / (time.perf_counter() - start)
        compat = compat_cls(online=True)
        sample = data[: max(1, n // 10)]
        start = time.perf_counter()
        for x in sample:
            compat.calculate([x])
        via_compat = len(sample) / (time.perf_counter() - start)
        rows.append({"stream": name, "updates_per_s": round(direct), "compat_calls_per_s": round(via_compat),
                     "detections": stream.n_detections, "meets_guideline": direct >= GUIDELINE})
    return rows


def windows(key: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    cls = sd.detector_class(key)
    if cls.input == "events":
        return (rng.random(n) < 0.1).astype(float), (rng.random(n) < 0.12).astype(float)
    if cls.input == "predictions":
        base_r, base_t = rng.normal(size=n), rng.normal(size=n)
        return (np.column_stack([base_r + 0.1 * rng.normal(size=n) for _ in range(3)]),
                np.column_stack([base_t + 0.1 * rng.normal(size=n) for _ in range(3)]))
    return rng.normal(size=(n, 8)), rng.normal(size=(n, 8)) + np.r_[0.2, np.zeros(7)]


def call_cost(key: str, n: int, repeat: int) -> dict:
    rng = np.random.default_rng(n)
    reference, test = windows(key, n, rng)
    detector = sd.build_detector(key)
    times = []
    while len(times) < repeat:
        start = time.perf_counter()
        detector.detect(reference, test)
        times.append(time.perf_counter() - start)
        if sum(times) > 3.0:
            break
    tracemalloc.start()
    detector.detect(reference, test)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"detector": key, "mode": detector.mode, "rows": n, "calls": len(times),
            "ms_per_call": round(1000 * statistics.median(times), 2), "peak_mib": round(peak / 2**20, 1)}


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.rows.split(",") if s.strip()]
    keys = [k.strip() for k in args.detectors.split(",") if k.strip()] or sorted(sd.registry())
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
          f"stamm_drift {sd.__version__}; one BLAS thread")

    streams = stream_rates(args.stream_values)
    print(f"\nStreams ({args.stream_values:,} values, one update() per value; guideline ≥ {GUIDELINE:,}/s)")
    print(f"{'stream':<20}{'updates/s':>12}{'compat calls/s':>16}{'detections':>12}")
    for row in streams:
        print(f"{row['stream']:<20}{row['updates_per_s']:>12,}{row['compat_calls_per_s']:>16,}{row['detections']:>12}")

    calls = []
    print("\nCost per detect() call (reference and test of N rows each)")
    print(f"{'detector':<20}{'mode':<11}" + "".join(f"{f'{n:,} rows':>22}" for n in sizes))
    for key in keys:
        cells = []
        for n in sizes:
            row = call_cost(key, n, args.repeat)
            calls.append(row)
            cells.append(f"{row['ms_per_call']:>10,.1f} ms {row['peak_mib']:>6.1f} MiB")
        print(f"{key:<20}{sd.detector_class(key).mode:<11}" + "".join(f"{c:>22}" for c in cells))

    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(json.dumps({"benchmark": "drift_package", "version": sd.__version__, "stream_values": args.stream_values,
                      "guideline_updates_per_s": GUIDELINE, "streams": streams, "calls": calls,
                      "load_before": load_before, "load_after": load_after}))


if __name__ == "__main__":
    main()

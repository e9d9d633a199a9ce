"""Helpers of the package's tests: optional tools and the IndPenSim batches (skip locally, fail in CI)."""
from __future__ import annotations

import csv
import importlib
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
INDPENSIM_DIR = Path(os.environ.get("STAMM_INDPENSIM_DIR", REPO / ".." / "shared" / "data" / "indpensim")).resolve()
#: The eight online inputs of the platform's IndPenSim study (feeds, conditions, responses, volume).
INPUTS = ("aeration_rate", "sugar_feed_rate", "temperature", "pH", "dissolved_oxygen_concentration",
          "CO2_percent_in_off_gas", "vessel_volume", "oxygen_uptake_rate")
TARGET = "penicillin_concentration"
LOG_PHASE = (30.0, 120.0)


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message, allow_module_level=True)


def require(module: str) -> ModuleType:
    """Import an optional test dependency: skip without it on a developer machine, fail in CI."""
    try:
        return importlib.import_module(module)
    except ImportError:
        _missing(f"{module} is not installed (pip install 'stamm-drift[test]')")
        raise


def indpensim_batch(batch: int, columns=(*INPUTS, TARGET), phase=LOG_PHASE) -> np.ndarray:
    """Rows of ``batch_<n>.csv`` inside ``phase`` (hours), the given columns in order (numpy only)."""
    path = INDPENSIM_DIR / f"batch_{batch}.csv"
    if not path.is_file():
        _missing(f"IndPenSim batch not found at {path} (set STAMM_INDPENSIM_DIR)")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = np.array([[float(row["time"])] + [float(row[c]) for c in columns] for row in rows])
    inside = (table[:, 0] >= phase[0]) & (table[:, 0] < phase[1])
    return table[inside, 1:]

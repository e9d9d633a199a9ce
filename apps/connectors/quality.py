"""Quality codes of published estimates: the written rules, in one place (pure, no Django).

A control system holds its last good value when an estimate is not Good, so the code says how far to
trust this estimate. Rules, worst first (the worst that applies wins; every reason that applies is listed):

====================  ==========  ==========================================================================
Condition             Quality     OPC UA status code sent
====================  ==========  ==========================================================================
runtime failure       Bad         ``BadInternalError``: the deployment's latest pipeline run on this group
                                  failed, so no fresh estimate exists; the last estimate is re-sent as Bad
inputs out of range   Uncertain   ``UncertainEngineeringUnitsExceeded``: the prediction's ``validity`` is not
                                  ``ok`` (today ``out_of_range``: an input outside the training envelope)
stale inputs          Uncertain   ``UncertainLastUsableValue``: an input held its last value, because its
                                  source reported it Bad/Uncertain since, or it is older than the
                                  publication's ``stale_after_seconds``
drift alert open      Uncertain   ``UncertainSensorNotAccurate``: an open, unsilenced drift alert on
                                  what the deployment scores now (docs/dashboard.md)
none of these         Good        ``Good``
====================  ==========  ==========================================================================
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Quality(str, enum.Enum):
    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


#: OPC UA status codes (Part 6, StatusCode.csv) for each rule; ``tests/connectors`` checks them against asyncua.
STATUS_CODES = {
    "Good": 0x00000000,
    "BadInternalError": 0x80020000,
    "UncertainEngineeringUnitsExceeded": 0x40940000,
    "UncertainLastUsableValue": 0x40900000,
    "UncertainSensorNotAccurate": 0x40930000,
}
#: Prediction validity labels that mean "inside the envelope" (empty: the model declared no envelope).
VALID = ("ok", "")


@dataclass(frozen=True, slots=True)
class EstimateQuality:
    quality: Quality
    status_name: str
    reasons: tuple[str, ...]

    @property
    def status_code(self) -> int:
        return STATUS_CODES[self.status_name]


def estimate_quality(
    *, validity: str, stale_inputs: Sequence[str] = (), drift_alerts: int = 0, runtime_error: str = ""
) -> EstimateQuality:
    """Apply the rules of the module docstring to one estimate."""
    findings: list[tuple[Quality, str, str]] = []
    if runtime_error:
        findings.append((Quality.BAD, "BadInternalError", f"runtime failure: {runtime_error[:200]}"))
    if (validity or "") not in VALID:
        findings.append(
            (Quality.UNCERTAIN, "UncertainEngineeringUnitsExceeded", f"inputs outside the envelope ({validity})")
        )
    if stale_inputs:
        findings.append((Quality.UNCERTAIN, "UncertainLastUsableValue", f"stale inputs: {', '.join(stale_inputs)}"))
    if drift_alerts:
        findings.append((Quality.UNCERTAIN, "UncertainSensorNotAccurate", f"drift alert open ({drift_alerts})"))
    if not findings:
        return EstimateQuality(Quality.GOOD, "Good", ())
    worst = Quality.BAD if any(f[0] is Quality.BAD for f in findings) else Quality.UNCERTAIN
    status = next(f[1] for f in findings if f[0] is worst)
    return EstimateQuality(worst, status, tuple(f[2] for f in findings))

"""Names of the derived model inputs: values the platform computes instead of reading a stored series.

The registry marks such features on a model spec, the time-series store computes them in its snapshots
(``apps.tsdb.derived``), training adds them to its data sets and drift leaves them out (a computed clock
cannot drift). Those apps do not import one another, so the names live here, once.
"""

from __future__ import annotations

BATCH_AGE = "batch_age"

#: Derived variable → what it means (shown in docs, descriptors and error messages).
DERIVED_VARIABLES: dict[str, str] = {BATCH_AGE: "hours since the batch's first raw point"}


def is_derived(name: str) -> bool:
    """True when ``name`` is computed by the platform (never read from, or written as, a stored series)."""
    return name in DERIVED_VARIABLES

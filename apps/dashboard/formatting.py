"""How numbers, ranges and validity are shown on every dashboard page: the one place for these rules.

The rules (written for people in ``docs/dashboard.md``, "Reading a chart"):

- **Numbers** carry :data:`SIGNIFICANT_DIGITS` significant digits, whatever their size: ``0.000997 g/L``,
  ``12.35 g/L``, ``1,235 kg`` — never ``0.00 g/L`` for a small value nor ``12.345678`` for a large one.
  Values below 1e-4 or from 1e6 up are written ``9.97e-05``. Plotly's hover labels follow the same rule
  through :func:`d3_format`; its tick labels are its own, readable once the range is sane (next rule).
- **Y ranges** are padded around the data (:data:`RANGE_PADDING` of the span on each side) and span at least
  :data:`MIN_RELATIVE_SPAN` of the values' magnitude, so sensor noise never fills the plot and looks like a
  trend. When the data come close to zero (the low end is within :data:`ZERO_NEAR_FRACTION` of the high end's
  magnitude) the range includes zero.
- **Validity** of an estimate has one label, colour, marker and card tone (:data:`VALIDITY`), used by the live
  chart's markers and by the trust card alike.
- **Text** that does not fit is shortened at a word boundary with an ellipsis (:func:`shorten`), never cut
  mid-word.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

#: Significant digits of every number a page shows (values, tick labels, hover labels).
SIGNIFICANT_DIGITS = 4
#: Below this magnitude (and from :data:`LARGE` up) a number is written in scientific notation.
SMALL = 1e-4
LARGE = 1e6
#: Padding added on each side of a y range, as a fraction of the data's span.
RANGE_PADDING = 0.08
#: A y range spans at least this fraction of the data's magnitude (noise must not look like a trend).
MIN_RELATIVE_SPAN = 0.05
#: The range includes zero when the data's low end is within this fraction of the high end's magnitude.
ZERO_NEAR_FRACTION = 0.35


def number_text(value: Any, digits: int = SIGNIFICANT_DIGITS) -> str:
    """A value as people read it: numbers with ``digits`` significant digits and thousands separators,
    booleans as yes/no, ``None`` and non-finite numbers as an em dash, anything else as text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not isinstance(value, float):
        try:
            import numpy as np  # noqa: PLC0415 - numpy scalars from selectors

            if isinstance(value, np.integer):
                return f"{int(value):,}"
            if isinstance(value, np.floating):
                value = float(value)
            else:
                return str(value)
        except ImportError:  # pragma: no cover - numpy is a dependency
            return str(value)
    if not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude < SMALL or magnitude >= LARGE:
        return f"{value:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def quantity(value: Any, unit: str = "", digits: int = SIGNIFICANT_DIGITS) -> str:
    """``number_text`` followed by the unit: ``0.000997 g/L``; an em dash alone when there is no value."""
    text = number_text(value, digits)
    return text if text == "—" or not unit else f"{text} {unit}"


def d3_format(values: Iterable[Any] = (), digits: int = SIGNIFICANT_DIGITS) -> str:
    """The d3 format Plotly's hover labels use for ``values``: the decimals :func:`number_text` gives their
    magnitude (``,.6f`` for values around 0.001, ``,.2f`` around 12), scientific outside [1e-4, 1e6)."""
    finite = [abs(float(v)) for v in values if isinstance(v, int | float) and math.isfinite(v) and v != 0]
    if not finite:
        return f".{digits}~g"
    magnitude = max(finite)
    if magnitude < SMALL or magnitude >= LARGE:
        return f".{digits - 1}e"
    return f",.{max(0, digits - 1 - math.floor(math.log10(magnitude)))}f"


def shorten(text: str, width: int = 160) -> str:
    """``text`` in at most ``width`` characters, cut at a word boundary with an ellipsis."""
    return textwrap.shorten(" ".join(str(text).split()), width=width, placeholder=" …")


def y_range(values: Iterable[Any]) -> list[float] | None:
    """The y range that shows ``values`` honestly: padded around the data, at least
    :data:`MIN_RELATIVE_SPAN` of their magnitude wide, and including zero when they come near it. ``None``
    when there is no finite value (Plotly's own autorange then applies)."""
    finite = [float(v) for v in values if v is not None and isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return None
    low, high = min(finite), max(finite)
    magnitude = max(abs(low), abs(high))
    if magnitude == 0:
        return [-1.0, 1.0]
    if low >= 0 and low <= ZERO_NEAR_FRACTION * high:
        low = 0.0
    elif high <= 0 and high >= ZERO_NEAR_FRACTION * low:
        high = 0.0
    span = high - low
    minimum = MIN_RELATIVE_SPAN * magnitude
    if span < minimum:
        middle = (low + high) / 2
        low, high = middle - minimum / 2, middle + minimum / 2
        span = minimum
    pad = RANGE_PADDING * span
    bottom = low - pad if low != 0 else 0.0
    top = high + pad if high != 0 else 0.0
    if min(finite) >= 0:  # padding never invents negative values for non-negative data
        bottom = max(bottom, 0.0)
    return [bottom, top]


def value_axis(values: Iterable[Any], *, title: str = "", **extra: Any) -> dict[str, Any]:
    """A Plotly y axis for ``values``: the :func:`y_range`, significant-digit hover labels, a margin that grows
    to fit the tick labels (never clipped) and a title kept clear of them."""
    values = list(values)
    axis: dict[str, Any] = {
        "hoverformat": d3_format(values),
        "automargin": True,
        "exponentformat": "none",
        "separatethousands": True,
        "nticks": 7,
        "gridcolor": "#e5e8eb",
        "linecolor": "#5d6d7e",
        "zeroline": False,
    }
    bounds = y_range(values)
    if bounds is not None:
        axis["range"] = bounds
        axis["autorange"] = False
    if title:
        axis["title"] = {"text": title, "standoff": 12}
    axis.update(extra)
    return axis


@dataclass(frozen=True)
class ValidityStyle:
    """How one validity code is drawn: the card's sentence and tone, the chart's marker and legend name."""

    code: str
    text: str
    legend: str
    tone: str
    colour: str
    symbol: str


#: Validity codes of an estimate (``apps.tsdb`` prediction rows) and how every page draws them.
VALIDITY: Mapping[str, ValidityStyle] = {
    "ok": ValidityStyle("ok", "Valid: inputs inside the training envelope", "valid", "ok", "#1e8449", "circle"),
    "out_of_range": ValidityStyle(
        "out_of_range",
        "Inputs outside the training envelope",
        "inputs outside the training envelope",
        "warning",
        "#b03a2e",
        "x",
    ),
}
UNKNOWN_VALIDITY = ValidityStyle("", "Validity unknown", "validity unknown", "neutral", "#5d6d7e", "circle-open")


def validity_style(code: str | None) -> ValidityStyle:
    """The one drawing of validity ``code`` (card and chart)."""
    return VALIDITY.get(str(code or ""), UNKNOWN_VALIDITY)


def ago(moment: datetime | None, *, now: datetime | None = None) -> str:
    """ "5 minutes ago", "3 hours ago", "2 days ago" (for pickers and status lines)."""
    if moment is None:
        return "never"
    seconds = max(0.0, ((now or timezone.now()) - moment).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def duration_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


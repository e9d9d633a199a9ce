"""drift_detectors_pack's streaming detectors (Adwin, PageHinkley, HDDM_A, EDDM) on stamm_drift's streams.

``calculate(values)`` feeds the values to a stream state machine (a fresh one per call, or one kept
across calls with ``online=True``) and returns a :class:`StreamingDriftResult`: ``last_index`` is the
offset of the last detection among this call's values (−1: none), ``details["detections"]`` all of them.
Per-call overrides (``delta=``, ``lambda_=``, ...) apply to that call only, except Adwin's ``delta``,
which — as upstream — replaces the setting and restarts an online stream.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..adwin import AdwinStream
from ..base import as_matrix, require_events
from ..eddm import EDDMStream
from ..errors import DataError
from ..hddm_a import HDDMAStream
from ..page_hinkley import PageHinkleyStream
from ._base import DriftDetector, StreamingDriftResult


class StreamDetector(DriftDetector):
    """Common part: values checked, fed one by one, detections reported relative to this call.

    A subclass sets ``stream_class`` and ``self._params`` (the stream's keyword arguments) before
    calling ``__init__``.
    """

    stream_class: ClassVar[type]
    _params: dict[str, Any]

    def __init__(self, online: bool | None = False) -> None:
        super().__init__(reference_data=None, online=online)
        self._stream = self._new_stream()

    def _new_stream(self) -> Any:
        return self.stream_class(**self._params)

    def reset(self) -> None:
        """Forget everything seen (an online detector starts again)."""
        self._stream = self._new_stream()

    def _values(self, test_data: Any) -> np.ndarray:
        """The values as one flat stream (a scalar, list, array or frame), checked as every window is."""
        return as_matrix(np.ravel(test_data), name="test_data")[0][:, 0]

    def _feed(self, values: np.ndarray, overrides: Mapping[str, Any], details: Mapping[str, Any],
              ) -> StreamingDriftResult:
        if overrides:  # checked as the stream's constructor checks its settings
            self.stream_class(**{**self._params, **overrides})
        stream = self._stream if self._online else self._new_stream()
        saved = {name: getattr(stream, name) for name in overrides}
        for name, value in overrides.items():
            setattr(stream, name, value)
        detections: list[int] = []
        warning = False
        try:
            update = stream.update
            for i, x in enumerate(values.tolist()):
                if update(x):
                    detections.append(i)
                warning = warning or bool(getattr(stream, "warning_detected", False))
        finally:
            for name, value in saved.items():
                setattr(stream, name, value)
        out = {**details, "mode": self._mode, "n_observations": int(values.size), "detections": detections}
        if hasattr(stream, "warning_detected"):
            out["warning"] = warning
        return StreamingDriftResult(last_index=detections[-1] if detections else -1, drift=bool(detections),
                                    details=out)


class Adwin(StreamDetector):
    """ADWIN (stamm_drift :class:`~stamm_drift.AdwinStream`, river's ``drift.ADWIN`` detections)."""

    stamm_key, folder, acronym = "adwin", "adwin", "ADWIN"
    differences = (
        "None in the formula: upstream wraps river's ADWIN and AdwinStream reproduces river's detections "
        "(tested). The values are used as given; stamm_drift's ADWIN detector also z-scores them with a "
        "reference window first.",
    )

    stream_class = AdwinStream

    def __init__(self, delta: float = 0.002, online: bool = False) -> None:
        self._params = {"delta": float(delta)}
        super().__init__(online=online)

    def calculate(self, test_data: Any, delta: float | None = None) -> StreamingDriftResult:
        values = self._values(test_data)
        if delta is not None and delta != self._params["delta"]:
            self.stream_class(delta=delta)  # checked before it replaces the setting
            self._params = {"delta": float(delta)}
            self.reset()
        return self._feed(values, {}, dict(self._params))


class PageHinkley(StreamDetector):
    """Page-Hinkley test (stamm_drift :class:`~stamm_drift.PageHinkleyStream`, river's ``PageHinkley``).

    ``min_instances`` and ``direction`` (keyword-only) are stamm_drift's.
    """

    stamm_key, folder, acronym = "page_hinkley", "page_hinkley", "PH"
    stream_class = PageHinkleyStream
    renamed = {"lambda_": "threshold"}
    differences = (
        "river's Page-Hinkley: the forgetting factor alpha fades the cumulative sum but not its running "
        "minimum, and the statistic is the sum's distance from that minimum; upstream clamps the faded sum at "
        "0 (max(0, α·S + x − mean − δ)). Both agree when alpha = 1.",
        "No detection before min_instances=30 values (river's default; upstream: from the first value).",
        "direction='up' (the default here, as upstream) watches increases; 'down' and 'both' are available.",
    )

    def __init__(self, delta: float = 0.005, lambda_: float = 50.0, alpha: float = 1 - 1e-4, online: bool = False,
                 *, min_instances: int = 30, direction: str = "up") -> None:
        self._params = {"delta": float(delta), "threshold": float(lambda_), "alpha": float(alpha),
                        "min_instances": min_instances, "direction": direction}
        super().__init__(online=online)

    def calculate(self, test_data: Any, delta: float | None = None, lambda_: float | None = None,
                  ) -> StreamingDriftResult:
        values = self._values(test_data)
        overrides = {k: float(v) for k, v in (("delta", delta), ("threshold", lambda_)) if v is not None}
        used = {**self._params, **overrides}
        return self._feed(values, overrides, {"delta": used["delta"], "lambda": used["threshold"],
                                              "alpha": used["alpha"], "min_instances": used["min_instances"],
                                              "direction": used["direction"]})


class HDDM_A(StreamDetector):  # noqa: N801 -- drift_detectors_pack's name
    """HDDM-A (stamm_drift :class:`~stamm_drift.HDDMAStream`, river's ``drift.binary.HDDMA``)."""

    stamm_key, folder, acronym = "hddm_a", "hddm_a", "HDDM-A"
    stream_class = HDDMAStream
    differences = (
        "Frías-Blanco et al.'s A-test as river and MOA implement it (two cut points, one for an increase and "
        "one for a decrease of the mean); upstream keeps one cut point at the lowest running mean.",
        "Values must lie in [0, 1] (typically 0/1 error events; see stamm_drift.residual_events), where "
        "Hoeffding's bound holds; upstream min-max rescales each call's values instead, so the same value "
        "means something different in every call.",
    )

    def __init__(self, drift_confidence: float = 0.001, warning_confidence: float = 0.005, two_sided: bool = True,
                 online: bool = False) -> None:
        self._params = {"drift_confidence": float(drift_confidence),
                        "warning_confidence": float(warning_confidence), "two_sided": bool(two_sided)}
        super().__init__(online=online)

    def calculate(self, test_data: Any, drift_confidence: float | None = None,
                  warning_confidence: float | None = None) -> StreamingDriftResult:
        values = self._values(test_data)
        if values.min() < 0 or values.max() > 1:
            raise DataError("HDDM_A reads values in [0, 1] (0/1 error events: stamm_drift.residual_events turns "
                            f"residuals into events); got values from {values.min():.4g} to {values.max():.4g}")
        overrides = {k: float(v) for k, v in (("drift_confidence", drift_confidence),
                                              ("warning_confidence", warning_confidence)) if v is not None}
        return self._feed(values, overrides, {**self._params, **overrides})


class EDDM(StreamDetector):
    """EDDM (stamm_drift :class:`~stamm_drift.EDDMStream`, river's ``drift.binary.EDDM``)."""

    stamm_key, folder, acronym = "eddm", "eddm", "EDDM"
    stream_class = EDDMStream
    renamed = {"min_n_errors": "min_errors"}
    differences = (
        "Baena-García et al.'s rule as river implements it: a drift on the first error whose level "
        "(p′+2s′)/max falls below drift_level once more than min_n_errors values and errors were seen; "
        "upstream waits for min_consecutive_drift_signals=3 consecutive low levels inside a warning state, "
        "so that argument has no counterpart.",
        "Values must be 0/1 error events (upstream reads any value above 0.5 as an error).",
    )
    unsupported = {
        "min_consecutive_drift_signals": "STAMM's EDDM detects on the first level below drift_level.",
    }

    def __init__(self, warning_level: float = 0.95, drift_level: float = 0.90, min_n_errors: int = 30,
                 min_consecutive_drift_signals: int = 3, online: bool = False) -> None:
        self._refuse_unsupported(min_consecutive_drift_signals=min_consecutive_drift_signals)
        self._params = {"warning_level": float(warning_level), "drift_level": float(drift_level),
                        "min_errors": min_n_errors}
        super().__init__(online=online)

    def calculate(self, test_data: Any, warning_level: float | None = None,
                  drift_level: float | None = None) -> StreamingDriftResult:
        values = self._values(test_data)
        require_events(values, name="test_data", reader="EDDM")
        overrides = {k: float(v) for k, v in (("warning_level", warning_level), ("drift_level", drift_level))
                     if v is not None}
        used = {**self._params, **overrides}
        return self._feed(values, overrides, {"warning_level": used["warning_level"],
                                              "drift_level": used["drift_level"], "min_n_errors": used["min_errors"]})

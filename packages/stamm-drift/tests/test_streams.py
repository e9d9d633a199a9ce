"""The stream state machines, one value at a time, against river 0.26.1 (the reference they reproduce)."""
from __future__ import annotations

import numpy as np
import pytest
from _support import INPUTS, indpensim_batch, require
from stamm_drift import AdwinStream, EDDMStream, HDDMAStream, PageHinkleyStream, ParameterError

river_drift = require("river.drift")
river_binary = require("river.drift.binary")


def value_streams():
    rng = np.random.default_rng(11)
    yield "steps", np.concatenate([rng.normal(0, 1, 700), rng.normal(2, 1, 700), rng.normal(-1, 3, 700)])
    yield "random-walk", np.cumsum(rng.normal(0, 0.5, 4000))
    yield "stationary", rng.normal(size=5000)


def event_streams():
    rng = np.random.default_rng(12)
    yield "rate-up", (rng.random(4000) < np.r_[np.full(2000, 0.05), np.full(2000, 0.25)]).astype(int)
    yield "rate-down", (rng.random(4000) < np.r_[np.full(2000, 0.3), np.full(2000, 0.05)]).astype(int)
    yield "stationary", (rng.random(5000) < 0.1).astype(int)


def trace(detector, stream, fields):
    """Per value: (drift flag, *fields) after the update — the whole observable state."""
    out = []
    for x in stream:
        detector.update(x)
        out.append((detector.drift_detected, *(getattr(detector, f) for f in fields)))
    return out


@pytest.mark.parametrize(("name", "stream"), list(value_streams()))
@pytest.mark.parametrize("settings", [{}, {"delta": 0.1}, {"delta": 1e-5, "clock": 1},
                                      {"max_buckets": 3, "min_window_length": 10, "grace_period": 50}])
def test_adwin_stream_equals_river_value_by_value(name, stream, settings):
    values = stream.tolist()
    ours = trace(AdwinStream(**settings), values, ("width", "estimation", "total"))
    theirs = trace(river_drift.ADWIN(**settings), values, ("width", "estimation", "total"))
    assert ours == theirs  # bit for bit: the cut sizes that ADWIN's score uses depend on it


@pytest.mark.parametrize(("name", "events"), list(event_streams()))
@pytest.mark.parametrize("two_sided", [False, True])
def test_hddm_a_stream_equals_river_with_warnings(name, events, two_sided):
    values = events.tolist()
    ours = trace(HDDMAStream(two_sided=two_sided), values, ("warning_detected",))
    theirs = trace(river_binary.HDDMA(two_sided_test=two_sided), values, ("warning_detected",))
    assert ours == theirs
    if name == "rate-up" or (name == "rate-down" and two_sided):
        assert any(flag for flag, _ in ours)


@pytest.mark.parametrize(("name", "events"), list(event_streams()))
def test_eddm_stream_equals_river_with_warnings(name, events):
    values = events.tolist()
    ours = trace(EDDMStream(), values, ("warning_detected",))
    theirs = trace(river_binary.EDDM(), values, ("warning_detected",))
    assert ours == theirs


@pytest.mark.parametrize(("name", "stream"), list(value_streams()))
@pytest.mark.parametrize("direction", ["both", "up", "down"])
def test_page_hinkley_stream_equals_river(name, stream, direction):
    values = stream.tolist()
    ours = [flag for flag, in trace(PageHinkleyStream(direction=direction, threshold=20.0), values, ())]
    theirs = [flag for flag, in trace(river_drift.PageHinkley(mode=direction, threshold=20.0), values, ())]
    assert ours == theirs


def test_streams_on_the_indpensim_log_phase_equal_river():
    """Real process streams: each of the eight inputs of faulty batch 94 and in-control batch 92."""
    for batch in (92, 94):
        window = indpensim_batch(batch)
        for j, variable in enumerate(INPUTS):
            values = window[:, j].tolist()
            assert trace(AdwinStream(), values, ("width", "estimation")) == trace(
                river_drift.ADWIN(), values, ("width", "estimation")), (batch, variable)
            assert trace(PageHinkleyStream(threshold=5.0), values, ()) == trace(
                river_drift.PageHinkley(threshold=5.0), values, ()), (batch, variable)


def test_a_detection_restarts_the_stream_on_the_next_value():
    stream = PageHinkleyStream(threshold=5.0, min_instances=5, direction="up")
    flags = [stream.update(x) for x in [0.0] * 20 + [10.0]]
    assert flags.index(True) == 20 and stream.n_detections == 1 and stream.statistic > 5.0
    assert stream.update(10.0) is False and stream.statistic == 0.0  # warming up again
    adwin = AdwinStream(delta=0.01)
    for x in [0.0] * 300 + [5.0] * 300:
        if adwin.update(x):
            break
    assert adwin.drift_detected and 0 < adwin.width < 600
    adwin.update(5.0)
    assert adwin.width == 1 and adwin.estimation == 5.0


@pytest.mark.parametrize(
    ("cls", "kwargs", "parameter"),
    [
        (AdwinStream, {"delta": 0.0}, "delta"),
        (AdwinStream, {"clock": 0}, "clock"),
        (AdwinStream, {"max_buckets": 1}, "max_buckets"),
        (PageHinkleyStream, {"direction": "sideways"}, "direction"),
        (PageHinkleyStream, {"alpha": 1.5}, "alpha"),
        (PageHinkleyStream, {"threshold": 0.0}, "threshold"),
        (HDDMAStream, {"drift_confidence": 1.0}, "drift_confidence"),
        (EDDMStream, {"drift_level": 0.99}, "drift_level"),
        (EDDMStream, {"min_errors": 0}, "min_errors"),
    ],
)
def test_bad_settings_name_the_parameter(cls, kwargs, parameter):
    with pytest.raises(ParameterError) as info:
        cls(**kwargs)
    assert info.value.parameter == parameter

"""What a notebook does: DataFrames and Series in, named variables out, calibration on reference batches."""
from __future__ import annotations

import numpy as np
import pytest
import stamm_drift as sd
from _support import INPUTS, indpensim_batch, require

pd = require("pandas")


def frame(batch: int) -> pd.DataFrame:
    return pd.DataFrame(indpensim_batch(batch, columns=INPUTS), columns=list(INPUTS))


def test_a_series_and_a_dataframe_name_their_variables():
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(size=300), name="pH")
    result = sd.KS().detect(ref, pd.Series(rng.normal(1.0, 1, size=300), name="pH"))
    assert result.variables == ("pH",) and "pH" in result.explanation
    df = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    assert sd.as_matrix(df, name="x")[1] == ("a", "b")
    assert sd.as_matrix(df, name="x", variables=["u", "v"])[1] == ("u", "v")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pd.DataFrame({"a": [1.0, None, 3.0]}), "1 missing or non-finite"),
        (pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64")}), "1 missing or non-finite"),
        (pd.DataFrame({"a": ["x", "y", "z"]}), "not numeric"),
    ],
)
def test_bad_frames_are_refused_with_a_message(data, message):
    with pytest.raises(sd.DataError, match=message):
        sd.PSI().detect(data, data)


def test_calibrate_on_reference_batches_as_dataframes_then_score_a_test_batch():
    references = {"92": frame(92), "93": frame(93)}
    psi = sd.PSI()
    calibration = sd.calibrate(psi, references, components=list(INPUTS))
    reference = pd.concat(references.values(), ignore_index=True)
    faulty = sd.calibrated_detect(psi, calibration, reference, frame(95))
    in_control = sd.calibrated_detect(psi, calibration, reference, frame(98))
    assert faulty.drift and "sugar_feed_rate" in faulty.details["flagged_components"]
    assert not in_control.drift
    worst = max(faulty.details["components"], key=lambda c: c["ratio"])["name"]
    assert faulty.variables == INPUTS and faulty.explanation.count(worst) >= 1
    assert faulty.to_dict()["details"]["calibration"]["components"] == list(INPUTS)


def test_the_catalogue_is_data():
    table = pd.DataFrame(sd.catalogue())[["key", "kind", "mode", "input"]]
    assert len(table) == 10 and set(table["mode"]) == {"batch", "streaming"}
    assert table.set_index("key").loc["hddm_a", "input"] == "events"

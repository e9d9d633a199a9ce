"""Line protocol: parsing into PointBatch, formatting out of it, and every kind of bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.tsdb.lineprotocol import (
    DEFAULT_EARLIEST_NS,
    LineProtocolError,
    LineProtocolParser,
    MetadataLineParser,
    parse,
)
from apps.tsdb.lineprotocol_format import escape_key, format_batch, format_metadata
from apps.tsdb.types import Collection, Point, PointBatch, SeriesKey, VariableMetadata, from_ns

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
TAGS = "device_id=R1,project_name=penicillin,batch_id=batch_91,source=sensor,observed_property=temperature"
PRED_TAGS = (
    "device_id=R1,project_name=penicillin,batch_id=batch_91,source=soft_sensor,"
    "observed_property=penicillin_concentration,model_id=0001_[python]_penicillin_rf,version=V.1.0"
)


def raw(body: str, **kwargs) -> PointBatch:
    return parse(body, Collection.RAW, **kwargs)


def error(body: str | bytes, collection: Collection = Collection.RAW, **kwargs) -> LineProtocolError:
    with pytest.raises(LineProtocolError) as info:
        parse(body, collection, **kwargs)
    return info.value


def test_stamm_example_line():
    batch = raw(f"device_obs,{TAGS} value=298.22 {T0}\n")
    assert batch.collection is Collection.RAW
    assert batch.series == [SeriesKey("penicillin", "R1", "batch_91", "sensor", "temperature")]
    assert batch.times_ns.tolist() == [T0]
    assert batch.values.tolist() == [298.22]
    assert batch.series_index.tolist() == [0]
    assert batch.fields == {}


def test_many_series_share_one_key_each_and_order_is_kept_per_series():
    body = "\n".join(f"device_obs,{TAGS.replace('temperature', f'v{i % 3}')} value={i}.5 {T0 + i}" for i in range(9))
    batch = raw(body)
    assert [s.observed_property for s in batch.series] == ["v0", "v1", "v2"]
    assert len(batch) == 9
    for i in range(9):
        rows = np.flatnonzero(batch.times_ns == T0 + i)
        assert batch.values[rows[0]] == i + 0.5
        assert batch.series[batch.series_index[rows[0]]].observed_property == f"v{i % 3}"


def test_bioreactor_obs_is_a_synonym_comments_blank_lines_crlf_and_no_trailing_newline():
    body = f"# a comment\r\n\r\n  bioreactor_obs,{TAGS} value=1 {T0}\r\n\ndevice_obs,{TAGS} value=2 {T0 + 1}"
    batch = raw(body)
    assert batch.values.tolist() == [1.0, 2.0]
    assert len(batch.series) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1.0),
        ("-1.5", -1.5),
        ("1e3", 1000.0),
        ("-2.5E-3", -0.0025),
        ("12i", 12.0),
        ("7u", 7.0),
        ("-3i", -3.0),
        (".5", 0.5),
    ],
)
def test_numbers_and_integers_become_floats(text, expected):
    assert raw(f"device_obs,{TAGS} value={text} {T0}").values.tolist() == [expected]


@pytest.mark.parametrize(
    ("precision", "stamp", "expected"),
    [
        ("ns", T0, T0),
        ("n", T0, T0),
        ("us", T0 // 1000, T0),
        ("u", T0 // 1000, T0),
        ("ms", T0 // 10**6, T0),
        ("s", T0 // 10**9, T0),
        ("m", T0 // (60 * 10**9), T0),
        ("h", T0 // (3600 * 10**9), T0),
    ],
)
def test_precisions(precision, stamp, expected):
    assert raw(f"device_obs,{TAGS} value=1 {stamp}", precision=precision).times_ns.tolist() == [expected]


def test_missing_timestamp_takes_the_receive_time_rounded_to_the_precision():
    now = T0 + 1_234_567_890
    assert raw(f"device_obs,{TAGS} value=1", now_ns=now).times_ns.tolist() == [now]
    assert raw(f"device_obs,{TAGS} value=1", now_ns=now, precision="s").times_ns.tolist() == [T0 + 1_000_000_000]


def test_duplicates_last_wins_and_out_of_order_is_accepted():
    body = f"device_obs,{TAGS} value=1 {T0 + 5}\ndevice_obs,{TAGS} value=2 {T0}\ndevice_obs,{TAGS} value=3 {T0 + 5}\n"
    batch = raw(body)
    assert len(batch) == 2
    got = dict(zip(batch.times_ns.tolist(), batch.values.tolist(), strict=True))
    assert got == {T0: 2.0, T0 + 5: 3.0}


def test_escapes_in_measurement_tags_and_strings():
    body = (
        "device_obs,device_id=R\\ 1,project_name=my\\,proj,batch_id=b\\=1,source=soft_sensor,"
        "observed_property=x,model_id=m,version=V\\ 1 "
        'value=1.5,validity="out \\"of\\" range, really",corrected_value=2i ' + str(T0)
    )
    batch = parse(body, Collection.PREDICTIONS)
    key = batch.series[0]
    assert (key.device_id, key.project_name, key.batch_id, key.version) == ("R 1", "my,proj", "b=1", "V 1")
    assert batch.fields["validity"].tolist() == ['out "of" range, really']
    assert batch.fields["corrected_value"].tolist() == [2.0]


def test_prediction_extra_fields_are_filled_where_absent():
    body = (
        f"device_obs,{PRED_TAGS} value=1 {T0}\n"
        f'device_obs,{PRED_TAGS} value=2,validity="ok" {T0 + 1}\n'
        f"device_obs,{PRED_TAGS} value=3,corrected_value=3.5 {T0 + 2}\n"
    )
    batch = parse(body, Collection.PREDICTIONS)
    order = np.argsort(batch.times_ns)
    assert batch.values[order].tolist() == [1.0, 2.0, 3.0]
    assert batch.fields["validity"][order].tolist() == ["", "ok", ""]
    corrected = batch.fields["corrected_value"][order]
    assert math.isnan(corrected[0]) and math.isnan(corrected[1]) and corrected[2] == 3.5


def test_lines_straddling_chunks_and_utf8_split_in_the_middle():
    body = f"device_obs,{TAGS.replace('R1', 'Réacteur')} value=1 {T0}\ndevice_obs,{TAGS} value=2 {T0 + 1}\n".encode()
    parser = LineProtocolParser(Collection.RAW)
    for i in range(len(body)):  # one byte at a time: every split point, including inside "é"
        parser.feed(body[i : i + 1])
    batch = parser.finish()
    assert sorted(s.device_id for s in batch.series) == ["R1", "Réacteur"]
    assert parser.lines_seen == 2


# --- bad input: every error names the line and the problem -----------------------------------------
GOOD = f"device_obs,{TAGS} value=1 {T0}"


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        (f"device_obs,{TAGS}", "missing fields"),
        (f"device_obs,{TAGS} {T0}", "not 'key=value'"),
        (f"device_obs,{TAGS.replace('R1', 'R 1')} value=1 {T0}", "unescaped space"),
        (f"device_obs,{TAGS.replace('penicillin', 'a,b')} value=1 {T0}", "unescaped comma"),
        (f"device_obs,{TAGS} value=1 {T0} extra", "unescaped space"),
        (f"device_obs,{TAGS} value=NaN {T0}", "not a finite number"),
        (f"device_obs,{TAGS} value=nan {T0}", "not a finite number"),
        (f"device_obs,{TAGS} value=inf {T0}", "not a finite number"),
        (f"device_obs,{TAGS} value=-Infinity {T0}", "not a finite number"),
        (f"device_obs,{TAGS} value=1e999 {T0}", "not a finite number"),
        (f'device_obs,{TAGS} value="298.2" {T0}', "is a string"),
        (f"device_obs,{TAGS} value=true {T0}", "is a boolean"),
        (f"device_obs,{TAGS} value=T {T0}", "is a boolean"),
        (f"device_obs,{TAGS} value=1_000 {T0}", "invalid number"),
        (f"device_obs,{TAGS} value=12x {T0}", "invalid number"),
        (f"device_obs,{TAGS} value=1.5i {T0}", "invalid integer"),
        (f"device_obs,{TAGS} value=-1u {T0}", "invalid integer"),
        (f"device_obs,{TAGS} value=99999999999999999999i {T0}", "out of range"),
        (f"device_obs,{TAGS} value= {T0}", "has no value"),
        (f"device_obs,{TAGS} temperature=1 {T0}", "unknown field 'temperature'"),
        (f"device_obs,{TAGS} value=1,value=2 {T0}", "appears twice"),
        (f'device_obs,{TAGS} value=1,validity="ok" {T0}', "unknown field 'validity'"),
        (f"device_obs,{TAGS} value=1 12:00", "invalid timestamp"),
        (f"device_obs,{TAGS} value=1 1.5e18", "invalid timestamp"),
        (f"device_obs,{TAGS} value=1 -5", "out of range"),
        (f"device_obs,{TAGS} value=1 {T0 // 10**9}", "wrong precision"),  # seconds sent as ns
        (f"device_obs,{TAGS} value=1 99999999999999999999", "out of range"),
        (f"cpu,{TAGS} value=1 {T0}", "unknown measurement 'cpu'"),
        (f",{TAGS} value=1 {T0}", "missing measurement"),
        (f"device_obs,{TAGS},host=a value=1 {T0}", "unknown tag 'host'"),
        (f"device_obs,{TAGS},device_id=R2 value=1 {T0}", "appears twice"),
        (f"device_obs,{TAGS.replace('batch_id=batch_91,', '')} value=1 {T0}", "missing required tag(s): batch_id"),
        (f"device_obs,{TAGS.replace('source=sensor', 'source=')} value=1 {T0}", "empty value"),
        (f"device_obs,{TAGS.replace('source=sensor', 'source=oracle')} value=1 {T0}", "'oracle' is not one of"),
        (f"device_obs,{TAGS},model_id=m value=1 {T0}", "unknown tag 'model_id'"),
        (f'device_obs,{TAGS} value=1,note="unterminated {T0}', "unterminated string"),
    ],
)
@pytest.mark.parametrize("second", ["# comment", GOOD.replace("value=1", "value=2")])
def test_bad_lines_are_refused_with_line_number(bad_line, fragment, second):
    # Without the comment the block first tries the vectorised path, which must fall back and agree.
    exc = error(f"{GOOD}\n{second}\n{bad_line}\n{GOOD}\n")
    assert exc.line == 3
    assert fragment in exc.problem
    assert str(exc).startswith("line 3: ")


def test_vectorised_and_line_by_line_paths_agree(monkeypatch):
    body = "".join(
        f"device_obs,{TAGS.replace('temperature', f'v{i % 7}')} value={(i * 7919) % 1000 / 7!r} "
        f"{T0 + (i % 300) * 10**6}\n"
        for i in range(2000)
    )
    used = []
    plain = LineProtocolParser._parse_plain
    monkeypatch.setattr(
        LineProtocolParser, "_parse_plain", lambda self, text, lines: used.append(plain(self, text, lines)) or used[-1]
    )
    fast = raw(body, precision="ns")
    assert used == [True]
    monkeypatch.setattr(LineProtocolParser, "_parse_plain", lambda self, text, lines: False)
    slow = raw(body, precision="ns")
    assert fast.series == slow.series
    np.testing.assert_array_equal(fast.series_index, slow.series_index)
    np.testing.assert_array_equal(fast.times_ns, slow.times_ns)
    np.testing.assert_array_equal(fast.values, slow.values)


def test_seconds_timestamp_with_second_precision_is_fine_but_ns_stamp_with_s_precision_overflows():
    assert raw(f"device_obs,{TAGS} value=1 {T0 // 10**9}", precision="s").times_ns.tolist() == [T0]
    exc = error(f"device_obs,{TAGS} value=1 {T0}", precision="s")
    assert "out of range in precision 's'" in exc.problem


def test_earliest_is_configurable():
    assert raw(f"device_obs,{TAGS} value=1 5", earliest_ns=0).times_ns.tolist() == [5]
    assert DEFAULT_EARLIEST_NS < T0


def test_predictions_need_model_and_version_and_soft_sensor_source():
    exc = error(f"device_obs,{TAGS.replace('sensor', 'soft_sensor')} value=1 {T0}", Collection.PREDICTIONS)
    assert "model_id is required" in exc.problem and "version is required" in exc.problem
    exc = error(f"device_obs,{PRED_TAGS.replace('soft_sensor', 'sensor')} value=1 {T0}", Collection.PREDICTIONS)
    assert "source" in exc.problem


def test_invalid_utf8_names_its_line():
    body = f"{GOOD}\n{GOOD}\n".encode() + b"device_obs,device_id=\xff\xfe value=1 1\n"
    exc = error(body)
    assert exc.line == 3 and "UTF-8" in exc.problem


@pytest.mark.parametrize("body", ["", "\n\n", "# only a comment\n"])
def test_empty_body_is_refused(body):
    exc = error(body)
    assert exc.line == 0 and "requires points" in str(exc)


def test_unknown_precision_and_metadata_collection_are_refused():
    with pytest.raises(LineProtocolError, match="invalid precision"):
        LineProtocolParser(Collection.RAW, precision="d")
    with pytest.raises(ValueError, match="metadata"):
        LineProtocolParser(Collection.METADATA)


# --- formatting --------------------------------------------------------------------------------------
def test_format_escapes_and_roundtrips():
    series = SeriesKey("my proj", "R,1", "b=1", "soft_sensor", "x y", "m", "V 1")
    batch = PointBatch.from_points(
        Collection.PREDICTIONS,
        [
            Point(series, from_ns(T0), 1.25, {"validity": 'say "hi" \\ ok', "corrected_value": 2.0}),
            Point(series, from_ns(T0 + 1000), 3.0, {}),
        ],
    )
    lines = format_batch(batch)
    assert lines[0] == (
        "device_obs,batch_id=b\\=1,device_id=R\\,1,model_id=m,observed_property=x\\ y,project_name=my\\ proj,"
        'source=soft_sensor,version=V\\ 1 value=1.25,validity="say \\"hi\\" \\\\ ok",corrected_value=2.0 '
        f"{T0}"
    )
    assert lines[1].endswith(f" value=3.0 {T0 + 1000}")
    back = parse("\n".join(lines), Collection.PREDICTIONS)
    assert back.series == [series]
    assert back.fields["validity"].tolist() == ['say "hi" \\ ok', ""]


def test_format_refuses_newlines_and_trailing_backslash():
    with pytest.raises(ValueError, match="newline"):
        escape_key("a\nb")
    with pytest.raises(ValueError, match="backslash"):
        escape_key("a\\")


def test_format_metadata_lines():
    lines = format_metadata([VariableMetadata("penicillin", "R1", "temperature", "K", "Temperature T", 1)], T0)
    assert lines == [
        "device_obs,device_id=R1,observed_property=temperature,project_name=penicillin "
        f'decimals=1i,display_name="Temperature T",unit="K" {T0}'
    ]


tag_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"), min_size=1, max_size=12
)


@settings(max_examples=200, deadline=None)
@given(
    project=tag_text,
    device=tag_text,
    batch=tag_text,
    prop=tag_text,
    values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=20),
)
def test_format_then_parse_is_identity(project, device, batch, prop, values):
    series = SeriesKey(project, device, batch, "sensor", prop)
    points = [Point(series, from_ns(T0 + i * 1000), v) for i, v in enumerate(values)]
    original = PointBatch.from_points(Collection.RAW, points)
    back = parse("\n".join(format_batch(original)), Collection.RAW)
    assert back.series == [series]
    assert back.times_ns.tolist() == original.times_ns.tolist()
    assert back.values.tolist() == original.values.tolist()


# --- metadata lines ---------------------------------------------------------------------------------
def parse_metadata(body: str) -> list[VariableMetadata]:
    parser = MetadataLineParser()
    parser.feed(body.encode())
    return parser.finish()


def test_metadata_lines_parse_and_last_wins():
    body = (
        'device_obs,device_id=R1,project_name=penicillin,observed_property=temperature unit="K",'
        f'display_name="Temperature, reactor",decimals=1i {T0}\n'
        "device_obs,device_id=R1,project_name=penicillin,observed_property=ph decimals=3\n"
        'device_obs,device_id=R1,project_name=penicillin,observed_property=temperature unit="degC"\n'
    )
    items = {m.observed_property: m for m in parse_metadata(body)}
    assert items["temperature"] == VariableMetadata("penicillin", "R1", "temperature", "degC", "", 2)
    assert items["ph"] == VariableMetadata("penicillin", "R1", "ph", "", "", 3)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('device_obs,device_id=R1,project_name=p unit="K"', "missing required tag(s): observed_property"),
        ('device_obs,device_id=R1,project_name=p,observed_property=x,batch_id=b unit="K"', "unknown tag"),
        ("device_obs,device_id=R1,project_name=p,observed_property=x unit=3", "double-quoted string"),
        ("device_obs,device_id=R1,project_name=p,observed_property=x decimals=1.5", "integer between 0 and 15"),
        ('device_obs,device_id=R1,project_name=p,observed_property=x colour="red"', "unknown field"),
    ],
)
def test_bad_metadata_lines(line, fragment):
    with pytest.raises(LineProtocolError) as info:
        parse_metadata(f"# header\n{line}\n")
    assert info.value.line == 2 and fragment in info.value.problem


# --- bounded buffering: validate a long body, then re-parse it in pieces ----------------------------
def test_overflow_drops_points_but_keeps_validating():
    body = "".join(f"device_obs,{TAGS} value={i} {T0 + i}\n" for i in range(100)).encode()
    parser = LineProtocolParser(Collection.RAW, max_buffered_points=30)
    parser.feed(body[:3000])
    parser.feed(body[3000:])
    parser.close()
    assert parser.overflowed and parser.points_seen == 100 and parser.buffered_points == 0
    with pytest.raises(RuntimeError):
        parser.finish()
    bad = LineProtocolParser(Collection.RAW, max_buffered_points=30)
    with pytest.raises(LineProtocolError) as info:
        bad.feed(body + f"device_obs,{TAGS} value=NaN {T0}\n".encode())
        bad.close()
    assert info.value.line == 101


def test_take_in_pieces_lists_only_used_series_and_keeps_every_point():
    body = "".join(
        f"device_obs,{TAGS.replace('temperature', 'a' if i < 50 else 'b')} value={i} {T0 + i}\n" for i in range(100)
    )
    parser = LineProtocolParser(Collection.RAW)
    batches = []
    for line in body.splitlines(keepends=True):
        parser.feed(line.encode())
        if parser.buffered_points >= 40:
            batches.append(parser.take())
    parser.close()
    batches.append(parser.take())
    assert [len(b) for b in batches] == [40, 40, 20]
    assert [sorted(s.observed_property for s in b.series) for b in batches] == [["a"], ["a", "b"], ["b"]]
    values = np.concatenate([b.values for b in batches])
    assert sorted(values.tolist()) == list(map(float, range(100)))
    assert len(parser.take()) == 0

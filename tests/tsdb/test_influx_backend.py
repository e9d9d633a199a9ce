"""The backend contract and InfluxDB specifics on a real influxd (scripts/influxdb-start.sh).

Each test session uses its own throwaway databases (``t<hex>_stamm_raw`` ...), dropped at the end, so
the suite can run against a shared server. Skipped locally when no InfluxDB answers; required in CI.
"""

from __future__ import annotations

import gzip
import uuid
from datetime import timedelta

import numpy as np
import pytest
import requests

from apps.tsdb.asof import mean_buckets
from apps.tsdb.backends.base import BackendError
from apps.tsdb.backends.influx import InfluxBackend, ident, literal
from apps.tsdb.types import Collection, Downsample, SeriesFilter, SeriesKey, from_ns
from tests.services import INFLUXDB_URL, influxdb_available, require

from .contract import T0, BackendContract, new_group, raw_batch, raw_key, read_all, seconds

pytestmark = pytest.mark.influxdb


@pytest.fixture(scope="session")
def influx_options():
    require(influxdb_available(), "InfluxDB")
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    options = {
        "URL": INFLUXDB_URL,
        "DATABASES": {
            c.value: prefix + name
            for c, name in (
                (Collection.RAW, "stamm_raw"),
                (Collection.PREDICTIONS, "stamm_predictions"),
                (Collection.METADATA, "stamm_metadata"),
            )
        },
        # The contract writes fixed 2026-01-01 timestamps: no retention, or InfluxDB would drop them.
        "RETENTION": {"raw": "INF", "predictions": "INF", "metadata": "INF"},
        "BATCH_SIZE": 700,
    }
    yield options
    cleanup = InfluxBackend(options)
    for name in options["DATABASES"].values():
        cleanup.query(f"DROP DATABASE {ident(name)}")
    cleanup.close()


@pytest.fixture
def backend(influx_options):
    backend = InfluxBackend(influx_options)
    backend.ensure_collections()
    yield backend
    backend.close()


class TestInfluxBackendContract(BackendContract):
    """Every rule of ``apps/tsdb/backends/base.py``, on InfluxDB."""


# --- InfluxDB specifics --------------------------------------------------------------------------
def test_identifiers_and_literals_are_escaped():
    assert ident('a"b\\c') == '"a\\"b\\\\c"'
    assert literal("it's \\ here") == "'it\\'s \\\\ here'"


def test_hostile_tag_values_round_trip_and_match_only_themselves(backend):
    group = new_group()
    nasty = SeriesKey(group.project_name, group.device_id, group.batch_id, "sensor", 'x\' OR 1=1 -- "q" \\ ,= y')
    plain = SeriesKey(group.project_name, group.device_id, group.batch_id, "sensor", "x")
    from apps.tsdb.types import Point

    backend.write_points(Collection.RAW, [Point(nasty, T0, 1.0), Point(plain, T0, 2.0)])
    data = read_all(backend, nasty)
    assert data.values.tolist() == [1.0]
    infos = backend.list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))
    assert {i.series for i in infos} == {nasty, plain}


def test_large_write_goes_in_several_gzip_requests(backend, influx_options):
    group = new_group()
    sizes: list[int] = []

    def record(response, *args, **kwargs):
        if response.request.path_url.startswith("/write"):
            assert response.request.headers["Content-Encoding"] == "gzip"
            lines = gzip.decompress(response.request.body).decode().strip().split("\n")
            sizes.append(len(lines))

    backend.session.hooks["response"].append(record)
    n = 2000
    t = seconds(*range(n))
    assert backend.write(raw_batch(group, {"temperature": (t, np.arange(n, dtype=float))})) == n
    assert sizes == [700, 700, 600]
    data = read_all(backend, raw_key(group))
    assert len(data) == n and data.values[-1] == n - 1


def test_bioreactor_obs_points_are_read_too(backend, influx_options):
    group = new_group()
    key = raw_key(group)
    backend.write(raw_batch(group, {"temperature": (seconds(0, 20), [1.0, 2.0])}))
    line = (
        f"bioreactor_obs,project_name={group.project_name},device_id={group.device_id},batch_id={group.batch_id},"
        f"source=sensor,observed_property=temperature value=1.5 {int(seconds(10)[0])}"
    )
    response = requests.post(
        f"{INFLUXDB_URL}/write", params={"db": influx_options["DATABASES"]["raw"], "precision": "ns"}, data=line
    )
    assert response.status_code == 204
    assert read_all(backend, key).values.tolist() == [1.0, 1.5, 2.0]
    mean = read_all(backend, key, max_points=1, method=Downsample.MEAN)
    assert mean.values.tolist() == [pytest.approx(1.5)] and mean.fields["count"].tolist() == [3]
    assert backend.latest(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))[0].value == 2.0
    assert (
        backend.list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))[0].point_count == 3
    )


def test_mean_buckets_start_at_the_range_start_and_match_the_numpy_reference(backend):
    group = new_group()
    t = seconds(*range(0, 100))
    values = np.sin(np.arange(100.0))
    backend.write(raw_batch(group, {"temperature": (t, values)}))
    start, end = int(t[3]), int(t[43])
    data = backend.read(
        collection=Collection.RAW, series=raw_key(group), start=from_ns(start), end=from_ns(end), max_points=4
    )
    inside = (t >= start) & (t <= end)
    times, mean, low, high, count = mean_buckets(t[inside], values[inside], start_ns=start, end_ns=end, max_points=4)
    assert data.times_ns[0] == start and len(data) == 4
    np.testing.assert_array_equal(data.times_ns, times)
    np.testing.assert_allclose(data.values, mean)
    np.testing.assert_allclose(data.fields["min"], low)
    np.testing.assert_allclose(data.fields["max"], high)
    assert data.fields["count"].tolist() == count.tolist()
    assert data.total_points == 41


def test_ensure_collections_sets_stamm_retention():
    require(influxdb_available(), "InfluxDB")
    prefix = f"r{uuid.uuid4().hex[:8]}_"
    names = {c.value: prefix + c.value for c in Collection}
    backend = InfluxBackend({"URL": INFLUXDB_URL, "DATABASES": names})
    try:
        assert not backend.ping().ok
        backend.ensure_collections()
        backend.ensure_collections()
        health = backend.ping()
        assert health.ok and health.collections == {"raw": True, "predictions": True, "metadata": True}
        durations = {}
        for collection, name in names.items():
            result = backend.query(f"SHOW RETENTION POLICIES ON {ident(name)}")[0]["series"][0]
            default = [row for row in result["values"] if row[result["columns"].index("default")]]
            durations[collection] = default[0][result["columns"].index("duration")]
        assert durations == {"raw": "2160h0m0s", "predictions": "4320h0m0s", "metadata": "0s"}
    finally:
        for name in names.values():
            backend.query(f"DROP DATABASE {ident(name)}")
        backend.close()


def test_unreachable_server_is_reported_not_raised():
    backend = InfluxBackend({"URL": "http://127.0.0.1:9", "TIMEOUT": 1})
    health = backend.ping()
    assert not health.ok and "unreachable" in health.detail
    with pytest.raises(BackendError, match="unreachable"):
        backend.read(collection=Collection.RAW, series=raw_key(new_group()), start=T0, end=T0 + timedelta(hours=1))


def test_refused_write_says_how_much_was_written(backend, influx_options):
    broken = InfluxBackend({**influx_options, "DATABASES": {"raw": "no_such_database_here"}})
    group = new_group()
    with pytest.raises(BackendError, match="0 of 2 points"):
        broken.write(raw_batch(group, {"temperature": (seconds(0, 1), [1.0, 2.0])}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"URL": "ftp://x"}, "http"),
        ({"URL": "http://x", "BATCH_SIZE": 0}, "BATCH_SIZE"),
        ({"URL": "http://x", "RETENTION": {"raw": "90 days"}}, "RETENTION"),
        ({"URL": "http://x", "TOKEN": "a", "USERNAME": "b"}, "either"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        InfluxBackend(options)


def test_auth_is_sent_as_token_or_basic():
    assert InfluxBackend({"TOKEN": "abc"}).session.headers["Authorization"] == "Token abc"
    assert InfluxBackend({"USERNAME": "u", "PASSWORD": "p"}).session.auth == ("u", "p")


def test_line_break_in_a_string_field_fails_the_batch_before_anything_is_sent(backend):
    from apps.tsdb.types import Point
    from apps.tsdb.validation import InvalidBatch

    group = new_group()
    key = SeriesKey(group.project_name, group.device_id, group.batch_id, "soft_sensor", "p", "m", "v1")
    points = [Point(key, T0 + timedelta(seconds=i), float(i), {"validity": "ok"}) for i in range(1500)]
    points.append(Point(key, T0 + timedelta(seconds=2000), 1.0, {"validity": "bad\nline"}))
    with pytest.raises(InvalidBatch, match="line break"):
        backend.write_points(Collection.PREDICTIONS, points)
    assert backend.list_series(collection=Collection.PREDICTIONS, where=SeriesFilter(batch_id=group.batch_id)) == []


def test_chunked_query_answers_are_merged(backend, monkeypatch):
    from apps.tsdb.backends import influx_http

    monkeypatch.setattr(influx_http, "CHUNK_ROWS", 300)  # the server splits every long series into chunks
    group = new_group()
    n = 2000
    t = seconds(*range(n))
    backend.write(raw_batch(group, {"temperature": (t, np.arange(n, dtype=float)), "ph": (t[:700], np.ones(700))}))
    data = read_all(backend, raw_key(group))
    np.testing.assert_array_equal(data.times_ns, t)
    np.testing.assert_array_equal(data.values, np.arange(n, dtype=float))
    counts = {
        i.series.observed_property: i.point_count
        for i in backend.list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))
    }
    assert counts == {"temperature": n, "ph": 700}
    snaps = backend.snapshots(group=group, variables=("temperature", "ph"), after=None, max_age=timedelta(seconds=5))
    assert len(snaps) == n and snaps.complete.sum() == 705  # ph (last at 699 s) is fresh for 5 s more

"""The time-series backend contract, as tests every backend must pass (the Django cache-test pattern).

Use: subclass ``BackendContract`` in a test module and provide a ``backend`` fixture that yields a
clean backend (collections ensured, no points). Each test writes its own group under a unique batch id,
so the mixin works on a shared store too (InfluxDB), and cleans nothing up itself.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import numpy as np
import pytest

from apps.tsdb.types import (
    UTC,
    Collection,
    Downsample,
    GroupKey,
    Point,
    PointBatch,
    SeriesFilter,
    SeriesKey,
    VariableMetadata,
    from_ns,
    to_ns,
)
from apps.tsdb.validation import InvalidBatch

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEC = 1_000_000_000


def new_group(project: str = "contract") -> GroupKey:
    return GroupKey(project, "R1", f"batch_{uuid.uuid4().hex[:10]}")


def raw_key(group: GroupKey, prop: str = "temperature", source: str = "sensor") -> SeriesKey:
    return SeriesKey(group.project_name, group.device_id, group.batch_id, source, prop)


def raw_batch(group: GroupKey, columns: dict[str, tuple[np.ndarray, np.ndarray]], source: str = "sensor") -> PointBatch:
    """A raw batch from ``{property: (times_ns, values)}``."""
    series, index, times, values = [], [], [], []
    for i, (prop, (t, v)) in enumerate(columns.items()):
        series.append(raw_key(group, prop, source))
        index.append(np.full(len(t), i, dtype=np.int32))
        times.append(np.asarray(t, dtype=np.int64))
        values.append(np.asarray(v, dtype=np.float64))
    return PointBatch(Collection.RAW, series, np.concatenate(index), np.concatenate(times), np.concatenate(values))


def seconds(*s: float) -> np.ndarray:
    return np.array([to_ns(T0) + int(x * SEC) for x in s], dtype=np.int64)


def read_all(backend, key: SeriesKey, collection: Collection = Collection.RAW, **kwargs):
    return backend.read(
        collection=collection, series=key, start=T0 - timedelta(days=1), end=T0 + timedelta(days=30), **kwargs
    )


class BackendContract:
    """Tests every ``TimeSeriesBackend`` must pass; needs a ``backend`` fixture."""

    # --- health ----------------------------------------------------------------------------------
    def test_ping_reports_three_collections(self, backend):
        health = backend.ping()
        assert health.ok, health.detail
        assert set(health.collections) == {"raw", "predictions", "metadata"}
        assert all(health.collections.values())

    def test_ensure_collections_is_idempotent(self, backend):
        backend.ensure_collections()
        backend.ensure_collections()
        assert backend.ping().ok

    # --- writes ----------------------------------------------------------------------------------
    def test_write_then_read_round_trip(self, backend):
        group = new_group()
        t = seconds(0, 20, 40, 60)
        assert backend.write(raw_batch(group, {"temperature": (t, [298.1, 298.2, 298.3, 298.4])})) == 4
        data = read_all(backend, raw_key(group))
        np.testing.assert_array_equal(data.times_ns, t)
        np.testing.assert_allclose(data.values, [298.1, 298.2, 298.3, 298.4])
        assert data.downsampled is None

    def test_duplicate_points_keep_one_and_last_value_wins(self, backend):
        group = new_group()
        t = seconds(0, 20)
        backend.write(raw_batch(group, {"temperature": (t, [1.0, 2.0])}))
        backend.write(raw_batch(group, {"temperature": (t[:1], [5.0])}))
        # Duplicates inside one batch: the later one wins too.
        backend.write(raw_batch(group, {"temperature": (np.array([t[1], t[1]]), [7.0, 8.0])}))
        data = read_all(backend, raw_key(group))
        np.testing.assert_array_equal(data.times_ns, t)
        np.testing.assert_allclose(data.values, [5.0, 8.0])
        [info] = backend.list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))
        assert info.point_count == 2  # overwrites are not counted twice
        [summary] = [g for g in backend.groups(project_name=group.project_name) if g.group == group]
        assert summary.point_count == 2

    def test_out_of_order_points_are_accepted_and_read_in_order(self, backend):
        group = new_group()
        t = seconds(60, 0, 40, 20)
        backend.write(raw_batch(group, {"temperature": (t, [4.0, 1.0, 3.0, 2.0])}))
        backend.write(raw_batch(group, {"temperature": (seconds(10), [1.5])}))
        data = read_all(backend, raw_key(group))
        np.testing.assert_array_equal(data.times_ns, seconds(0, 10, 20, 40, 60))
        np.testing.assert_allclose(data.values, [1.0, 1.5, 2.0, 3.0, 4.0])
        backend.write(raw_batch(group, {"temperature": (seconds(-30), [0.5])}))
        [info] = backend.list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))
        assert (info.first_time, info.last_time, info.point_count) == (
            from_ns(int(seconds(-30)[0])),
            from_ns(int(seconds(60)[0])),
            6,
        )

    def test_rejected_batch_writes_nothing(self, backend):
        group = new_group()
        t = seconds(0, 20, 40)
        with pytest.raises(InvalidBatch) as info:
            backend.write(raw_batch(group, {"temperature": (t, [1.0, float("nan"), 3.0])}))
        assert info.value.problems[0].field == "value" and info.value.problems[0].point == 1
        assert len(read_all(backend, raw_key(group))) == 0
        bad_source = raw_batch(group, {"temperature": (t, [1.0, 2.0, 3.0])}, source="oracle")
        with pytest.raises(InvalidBatch):
            backend.write(bad_source)
        assert backend.list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id)) == []

    def test_predictions_carry_validity_and_corrected_value(self, backend):
        group = new_group()
        key = SeriesKey(
            group.project_name,
            group.device_id,
            group.batch_id,
            "soft_sensor",
            "penicillin_concentration",
            "0001_[python]_penicillin_rf",
            "V.1.0",
        )
        points = [
            Point(key, from_ns(int(seconds(0)[0])), 1.5, {"validity": "ok", "corrected_value": 1.6}),
            Point(key, from_ns(int(seconds(20)[0])), 1.7, {"validity": "out_of_range"}),
        ]
        assert backend.write_points(Collection.PREDICTIONS, points) == 2
        data = read_all(backend, key, Collection.PREDICTIONS)
        np.testing.assert_allclose(data.values, [1.5, 1.7])
        assert list(data.fields["validity"]) == ["ok", "out_of_range"]
        assert data.fields["corrected_value"][0] == pytest.approx(1.6)
        assert np.isnan(data.fields["corrected_value"][1])
        # Predictions and raw points are separate collections.
        assert backend.list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id)) == []

    # --- reads -----------------------------------------------------------------------------------
    def test_read_range_is_inclusive_and_bounded(self, backend):
        group = new_group()
        t = seconds(*range(0, 100, 10))
        backend.write(raw_batch(group, {"temperature": (t, np.arange(10.0))}))
        data = backend.read(
            collection=Collection.RAW, series=raw_key(group), start=from_ns(int(t[2])), end=from_ns(int(t[5]))
        )
        np.testing.assert_array_equal(data.times_ns, t[2:6])
        unknown = SeriesKey(group.project_name, group.device_id, group.batch_id, "sensor", "nothing")
        assert len(read_all(backend, unknown)) == 0

    def test_read_refuses_reversed_range(self, backend):
        with pytest.raises(ValueError):
            backend.read(
                collection=Collection.RAW, series=raw_key(new_group()), start=T0, end=T0 - timedelta(seconds=1)
            )

    @pytest.mark.parametrize("method", list(Downsample))
    def test_downsampling_respects_max_points_and_bounds(self, backend, method):
        group = new_group()
        n = 1000
        t = seconds(*range(n))
        rng = np.random.default_rng(7)
        values = np.sin(np.arange(n) / 50) * 10 + rng.normal(0, 0.1, n)
        values[500] = 99.0  # a spike minmax and lttb must keep
        backend.write(raw_batch(group, {"temperature": (t, values)}))
        data = backend.read(
            collection=Collection.RAW,
            series=raw_key(group),
            start=from_ns(int(t[0])),
            end=from_ns(int(t[-1])),
            max_points=50,
            method=method,
        )
        assert 2 <= len(data) <= 50
        assert data.downsampled == method.value
        assert data.total_points == n
        assert np.all(np.diff(data.times_ns) > 0)
        assert data.times_ns[0] >= t[0] and data.times_ns[-1] <= t[-1]
        assert values.min() - 1e-9 <= data.values.min() and data.values.max() <= values.max() + 1e-9
        if method is Downsample.MEAN:
            assert np.all(data.fields["min"] <= data.values + 1e-9)
            assert np.all(data.values <= data.fields["max"] + 1e-9)
            assert data.fields["max"].max() == pytest.approx(99.0)
            assert data.values.mean() == pytest.approx(values.mean(), abs=0.5)
        else:  # real points only
            assert set(data.times_ns.tolist()) <= set(t.tolist())
            assert 99.0 in data.values.tolist()
        # Fewer points than max_points: returned as stored.
        small = backend.read(
            collection=Collection.RAW,
            series=raw_key(group),
            start=from_ns(int(t[0])),
            end=from_ns(int(t[9])),
            max_points=50,
            method=method,
        )
        assert len(small) == 10 and small.downsampled is None

    def test_latest_returns_newest_point_per_series(self, backend):
        group = new_group()
        backend.write(
            raw_batch(group, {"temperature": (seconds(0, 20, 40), [1.0, 2.0, 3.0]), "ph": (seconds(0, 20), [6.5, 6.6])})
        )
        latest = {
            p.series.observed_property: p
            for p in backend.latest(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))
        }
        assert set(latest) == {"temperature", "ph"}
        assert latest["temperature"].value == 3.0 and latest["temperature"].time == from_ns(int(seconds(40)[0]))
        assert latest["ph"].value == 6.6

    def test_list_series_filters_and_counts(self, backend):
        group = new_group()
        backend.write(
            raw_batch(group, {"temperature": (seconds(0, 20, 40), [1.0, 2.0, 3.0]), "ph": (seconds(0, 20), [6.5, 6.6])})
        )
        backend.write(raw_batch(group, {"ph": (seconds(30), [1.0])}, source="lab"))
        infos = backend.list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))
        assert {(i.series.source, i.series.observed_property): i.point_count for i in infos} == {
            ("sensor", "temperature"): 3,
            ("sensor", "ph"): 2,
            ("lab", "ph"): 1,
        }
        only = backend.list_series(
            collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id, observed_property="temperature")
        )
        assert len(only) == 1
        assert only[0].first_time == from_ns(int(seconds(0)[0])) and only[0].last_time == from_ns(int(seconds(40)[0]))
        ranged = backend.list_series(
            collection=Collection.RAW,
            where=SeriesFilter(batch_id=group.batch_id, source="sensor"),
            start=from_ns(int(seconds(15)[0])),
            end=from_ns(int(seconds(25)[0])),
        )
        assert sorted(i.point_count for i in ranged) == [1, 1]

    def test_input_points_upto_counts_inputs_at_or_before_a_time(self, backend):
        group = new_group()
        backend.write(
            raw_batch(group, {"temperature": (seconds(0, 20, 40), [1.0, 2.0, 3.0]), "ph": (seconds(0, 20), [6.5, 6.6])})
        )
        backend.write(raw_batch(group, {"temperature": (seconds(10), [1.0])}, source="lab"))  # a target, not an input
        backend.write(raw_batch(group, {"oxygen": (seconds(5), [1.0])}))  # not asked for

        def upto(s: float, variables=("temperature", "ph", "batch_age")) -> int:
            return backend.input_points_upto(group=group, variables=variables, end_ns=int(seconds(s)[0]))

        assert [upto(-1), upto(0), upto(19), upto(20), upto(40), upto(1000)] == [0, 2, 2, 4, 5, 5]
        assert upto(40, variables=("ph",)) == 2
        backend.write(raw_batch(group, {"ph": (seconds(10, 20), [6.0, 6.7])}))  # one late point, one overwrite
        assert [upto(9), upto(10), upto(40)] == [2, 3, 6]
        assert backend.input_points_upto(group=new_group(), variables=("ph",), end_ns=int(seconds(40)[0])) == 0

    def test_groups_summarise_batches(self, backend):
        project = f"p{uuid.uuid4().hex[:8]}"
        g1, g2 = new_group(project), new_group(project)
        backend.write(
            raw_batch(g1, {"temperature": (seconds(0, 20), [1.0, 2.0]), "ph": (seconds(0, 20, 40), [1.0, 2.0, 3.0])})
        )
        backend.write(raw_batch(g2, {"temperature": (seconds(100), [1.0])}))
        groups = {g.group: g for g in backend.groups(project_name=project)}
        assert set(groups) == {g1, g2}
        assert groups[g1].point_count == 5
        assert groups[g1].variables == ("ph", "temperature")
        assert groups[g1].first_time == from_ns(int(seconds(0)[0])) and groups[g1].last_time == from_ns(
            int(seconds(40)[0])
        )
        recent = backend.groups(project_name=project, since=from_ns(int(seconds(50)[0])))
        assert [g.group for g in recent] == [g2]

    # --- snapshots -------------------------------------------------------------------------------
    def test_snapshots_as_of_with_missing_and_stale_inputs(self, backend):
        group = new_group()
        backend.write(
            raw_batch(
                group,
                {
                    "temperature": (seconds(0, 20, 40, 60, 200), [1.0, 2.0, 3.0, 4.0, 5.0]),
                    "ph": (seconds(20, 50), [6.0, 6.5]),
                },
            )
        )
        snaps = backend.snapshots(
            group=group, variables=("temperature", "ph"), after=None, max_age=timedelta(seconds=30)
        )
        np.testing.assert_array_equal(snaps.times_ns, seconds(0, 20, 40, 50, 60, 200))
        assert snaps.complete.tolist() == [False, True, True, True, True, False]
        assert snaps.reasons[0] == "missing: ph"
        np.testing.assert_allclose(snaps.matrix[1:5], [[2.0, 6.0], [3.0, 6.0], [3.0, 6.5], [4.0, 6.5]])
        assert "stale: ph (age 150 s)" in snaps.reasons[5]
        assert np.isnan(snaps.matrix[5, 1]) and snaps.matrix[5, 0] == 5.0

        later = backend.snapshots(
            group=group,
            variables=("temperature", "ph"),
            after=from_ns(int(seconds(40)[0])),
            until=from_ns(int(seconds(60)[0])),
            max_age=timedelta(seconds=30),
        )
        np.testing.assert_array_equal(later.times_ns, seconds(50, 60))
        assert later.complete.all()
        # The window starts after the watermark, yet a value older than the window counts as stale, not missing.
        far = backend.snapshots(
            group=group, variables=("ph",), after=from_ns(int(seconds(60)[0])), max_age=timedelta(seconds=30)
        )
        assert far.reasons == [] or all("stale: ph" in r for r in far.reasons if r)
        limited = backend.snapshots(
            group=group, variables=("temperature", "ph"), after=None, max_age=timedelta(seconds=30), limit=2
        )
        np.testing.assert_array_equal(limited.times_ns, seconds(0, 20))

    def test_snapshots_stale_beyond_window_and_unknown_variable(self, backend):
        group = new_group()
        backend.write(
            raw_batch(group, {"temperature": (seconds(0, 100, 200), [1.0, 2.0, 3.0]), "ph": (seconds(0), [6.0])})
        )
        snaps = backend.snapshots(
            group=group,
            variables=("temperature", "ph", "oxygen"),
            after=from_ns(int(seconds(50)[0])),
            max_age=timedelta(seconds=30),
        )
        np.testing.assert_array_equal(snaps.times_ns, seconds(100, 200))
        assert not snaps.complete.any()
        assert snaps.reasons[0] == "missing: oxygen; stale: ph (age 100 s)"
        assert snaps.matrix[0, 0] == 2.0

    def test_snapshots_ignore_lab_samples(self, backend):
        group = new_group()
        backend.write(raw_batch(group, {"temperature": (seconds(0, 20), [1.0, 2.0])}))
        backend.write(raw_batch(group, {"temperature": (seconds(10), [50.0])}, source="lab"))
        snaps = backend.snapshots(group=group, variables=("temperature",), after=None, max_age=timedelta(seconds=30))
        np.testing.assert_array_equal(snaps.times_ns, seconds(0, 20))
        np.testing.assert_allclose(snaps.matrix[:, 0], [1.0, 2.0])

    def test_snapshots_compute_batch_age_from_the_first_raw_point(self, backend):
        group = new_group()
        # The batch starts with a lab sample at 0 s; batch age counts from the first raw point of any source.
        backend.write(raw_batch(group, {"penicillin_concentration": (seconds(0), [0.1])}, source="lab"))
        backend.write(raw_batch(group, {"temperature": (seconds(3600, 7200), [1.0, 2.0])}))
        snaps = backend.snapshots(
            group=group, variables=("batch_age", "temperature"), after=None, max_age=timedelta(hours=2)
        )
        assert snaps.variables == ("batch_age", "temperature")
        np.testing.assert_array_equal(snaps.times_ns, seconds(3600, 7200))
        np.testing.assert_allclose(snaps.matrix, [[1.0, 1.0], [2.0, 2.0]])
        assert snaps.complete.all()
        later = backend.snapshots(
            group=group, variables=("temperature", "batch_age"), after=from_ns(int(seconds(3600)[0])),
            max_age=timedelta(hours=2),
        )
        np.testing.assert_allclose(later.matrix, [[2.0, 2.0]])
        with pytest.raises(ValueError, match="stored variable"):
            backend.snapshots(group=group, variables=("batch_age",), after=None, max_age=timedelta(hours=1))

    # --- deletes and metadata --------------------------------------------------------------------
    def test_delete_time_range_then_batch(self, backend):
        group, other = new_group(), new_group()
        backend.write(raw_batch(group, {"temperature": (seconds(0, 20, 40, 60), [1.0, 2.0, 3.0, 4.0])}))
        backend.write(raw_batch(other, {"temperature": (seconds(0), [1.0])}))
        deleted = backend.delete(
            collection=Collection.RAW, group=group, start=from_ns(int(seconds(10)[0])), end=from_ns(int(seconds(45)[0]))
        )
        assert deleted in (2, -1)
        np.testing.assert_array_equal(read_all(backend, raw_key(group)).times_ns, seconds(0, 60))
        [summary] = [g for g in backend.groups(project_name=group.project_name) if g.group == group]
        assert summary.point_count == 2
        backend.delete(collection=Collection.RAW, group=group, start=from_ns(int(seconds(50)[0])))
        [info] = backend.list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))
        assert (info.first_time, info.last_time, info.point_count) == (from_ns(int(seconds(0)[0])),) * 2 + (1,)
        assert [
            p.value for p in backend.latest(collection=Collection.RAW, where=SeriesFilter(batch_id=group.batch_id))
        ] == [1.0]
        backend.delete(collection=Collection.RAW, group=group)
        assert len(read_all(backend, raw_key(group))) == 0
        remaining = {g.group for g in backend.groups(project_name=group.project_name)}
        assert group not in remaining and other in remaining
        assert len(read_all(backend, raw_key(other))) == 1

    def test_metadata_upsert_and_read(self, backend):
        project = f"p{uuid.uuid4().hex[:8]}"
        backend.metadata_write(
            [
                VariableMetadata(project, "R1", "temperature", "K", "Temperature", 2),
                VariableMetadata(project, "R1", "ph", "", "pH", 3),
            ]
        )
        backend.metadata_write([VariableMetadata(project, "R1", "temperature", "degC", "Temperature", 1)])
        items = {m.observed_property: m for m in backend.metadata_read(project_name=project)}
        assert items["temperature"] == VariableMetadata(project, "R1", "temperature", "degC", "Temperature", 1)
        assert items["ph"].decimals == 3
        assert backend.metadata_read(project_name=project, device_id="R2") == []

    def test_bad_metadata_is_refused_whole(self, backend):
        project = f"p{uuid.uuid4().hex[:8]}"
        good = VariableMetadata(project, "R1", "temperature", "K", "Temperature", 2)
        for bad in (
            VariableMetadata(project, "R1", "ph", "u" * 65),
            VariableMetadata(project, "R1", "ph", "", "d" * 201),
            VariableMetadata(project, "R1", "ph", decimals=16),
            VariableMetadata(project, "", "ph"),
        ):
            with pytest.raises(InvalidBatch):
                backend.metadata_write([good, bad])
        assert backend.metadata_read(project_name=project) == []

    # --- arguments: every backend refuses the same ones ----------------------------------------------
    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda b, k: read_all(b, k, collection=Collection.METADATA), id="read-metadata"),
            pytest.param(lambda b, k: b.read(collection="points", series=k, start=T0, end=T0), id="read-unknown"),
            pytest.param(lambda b, k: b.read(collection=Collection.RAW, series=k, start=None, end=T0), id="read-open"),
            pytest.param(lambda b, k: read_all(b, k, max_points=0), id="read-max-points"),
            pytest.param(lambda b, k: read_all(b, k, method="median"), id="read-method"),
            pytest.param(lambda b, k: b.latest(collection=Collection.METADATA, where=SeriesFilter()), id="latest"),
            pytest.param(
                lambda b, k: b.list_series(collection=Collection.METADATA, where=SeriesFilter()), id="list-series"
            ),
            pytest.param(lambda b, k: b.groups(collection=Collection.METADATA), id="groups"),
            pytest.param(lambda b, k: b.delete(collection=Collection.METADATA, group=k.group), id="delete"),
            pytest.param(lambda b, k: _snapshots(b, k, variables=("ph", "ph")), id="snapshots-repeat"),
            pytest.param(lambda b, k: _snapshots(b, k, variables=()), id="snapshots-none"),
            pytest.param(lambda b, k: _snapshots(b, k, max_age=timedelta(seconds=-1)), id="snapshots-max-age"),
            pytest.param(lambda b, k: _snapshots(b, k, limit=0), id="snapshots-limit"),
        ],
    )
    def test_bad_arguments_are_refused(self, backend, call):
        with pytest.raises(ValueError):
            call(backend, raw_key(new_group()))


def _snapshots(backend, key: SeriesKey, **kwargs):
    arguments = {"variables": ("ph",), "after": None, "max_age": timedelta(minutes=5), "limit": None} | kwargs
    return backend.snapshots_stored(group=key.group, **arguments)

"""The backend contract on the SQL backend: SQLite and PostgreSQL, plus SQL-specific behaviour.

``TestSQLBackendDefaultDatabase`` runs on the test run's own database (SQLite locally; PostgreSQL in
CI's second pass with DATABASE_URL set). ``TestSQLBackendPostgres`` always runs on PostgreSQL, in a
throwaway database of its own, and is skipped locally / failed in CI when no server answers.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection, connections, transaction

from apps.tsdb.backends.sql import SQLBackend
from apps.tsdb.types import Collection, Downsample, to_ns
from tests.services import postgres_available, require

from .contract import BackendContract, new_group, raw_batch, raw_key, read_all, seconds


class SQLSpecific:
    """SQL-only behaviour, run on each engine."""

    # --- write streams (the line-protocol endpoint's path: PostgreSQL keeps one COPY open) -----------
    def _stats(self, backend, group):
        return {
            i.series.observed_property: (i.point_count, i.first_time, i.last_time)
            for i in backend.list_series(collection=Collection.RAW, where=_filter(group))
        }

    def test_stream_appends_overwrites_and_new_series_keep_exact_statistics(self, backend):
        group = new_group()
        with transaction.atomic(using=backend.alias):
            stream = backend.write_stream(Collection.RAW)
            assert stream.write(raw_batch(group, {"temperature": (seconds(*range(10)), np.arange(10.0))})) == 10
            # More appends, plus a series first seen mid-stream.
            stream.write(
                raw_batch(
                    group,
                    {"temperature": (seconds(*range(10, 20)), np.arange(10.0, 20)), "ph": (seconds(3), [7.0])},
                )
            )
            # An overwrite of an earlier point and a duplicate inside the batch: the last value wins.
            stream.write(raw_batch(group, {"temperature": (seconds(5, 5, 25), [-1.0, -5.0, 25.0])}))
            # Appending again after the overwrite.
            stream.write(raw_batch(group, {"temperature": (seconds(*range(26, 30)), np.arange(26.0, 30))}))
            stream.close()
        assert stream.groups == {group}
        data = read_all(backend, raw_key(group))
        assert len(data) == 25 and data.values[5] == -5.0 and data.values[-1] == 29.0
        stats = self._stats(backend, group)
        assert stats["temperature"][0] == 25 and stats["ph"][0] == 1
        assert (to_ns(stats["temperature"][1]), to_ns(stats["temperature"][2])) == (data.times_ns[0], data.times_ns[-1])

    def test_aborted_stream_writes_nothing_and_leaves_the_connection_usable(self, backend):
        group = new_group()
        with pytest.raises(RuntimeError), transaction.atomic(using=backend.alias):
            stream = backend.write_stream(Collection.RAW)
            stream.write(raw_batch(group, {"temperature": (seconds(0, 20), [1.0, 2.0])}))
            stream.write(raw_batch(group, {"temperature": (seconds(40, 60), [3.0, 4.0])}))
            try:
                raise RuntimeError("a bad line further down the body")
            except RuntimeError:
                stream.abort()
                raise
        assert self._stats(backend, group) == {}
        backend.write(raw_batch(group, {"temperature": (seconds(0), [1.0])}))
        assert len(read_all(backend, raw_key(group))) == 1

    def test_points_stream_is_one_transaction_with_one_signal(self, backend):
        from apps.common.errors import ValidationFailed
        from apps.tsdb.services import points_stream
        from apps.tsdb.signals import points_committed

        group, other = new_group(), new_group()
        received = []

        def receiver(sender, **kwargs):
            received.append((kwargs["groups"], kwargs["points"]))

        points_committed.connect(receiver)
        try:
            with pytest.raises(ValidationFailed), points_stream(collection=Collection.RAW, backend=backend) as write:
                write(raw_batch(group, {"temperature": (seconds(0, 20), [1.0, 2.0])}))
                write(raw_batch(group, {"temperature": (seconds(40), [np.inf])}))  # refused: all rolls back
            assert self._stats(backend, group) == {} and received == []
            with points_stream(collection=Collection.RAW, backend=backend) as write:
                write(raw_batch(group, {"temperature": (seconds(0, 20), [1.0, 2.0])}))
                write(raw_batch(other, {"ph": (seconds(0), [7.0])}))
                assert received == []  # not before the commit
        finally:
            points_committed.disconnect(receiver)
        assert received == [(frozenset({group, other}), 3)]
        assert self._stats(backend, group)["temperature"][0] == 2

    def test_cached_series_ids_are_checked_against_the_rows(self, backend):
        """A remembered id whose row was deleted, or now names another series, is looked up again."""
        group = new_group()
        backend.write(raw_batch(group, {"temperature": (seconds(0), [1.0])}))
        backend.delete(collection=Collection.RAW, group=group)
        backend.write(raw_batch(group, {"temperature": (seconds(10), [2.0])}))  # the cached id is gone
        assert read_all(backend, raw_key(group)).values.tolist() == [2.0]
        with transaction.atomic(using=backend.alias), connections[backend.alias].cursor() as cursor:
            cursor.execute(
                "UPDATE tsdb_series SET observed_property = 'renamed' WHERE project_name = %s AND batch_id = %s",
                [group.project_name, group.batch_id],
            )
        backend.write(raw_batch(group, {"temperature": (seconds(20), [3.0])}))  # the cached id names another
        assert read_all(backend, raw_key(group)).values.tolist() == [3.0]
        assert read_all(backend, raw_key(group, "renamed")).values.tolist() == [2.0]

    def test_appends_are_decided_from_the_points_not_the_statistics(self, backend):
        """Statistics that fell behind the points (rows written around the backend) cannot break a write."""
        group = new_group()
        backend.write(raw_batch(group, {"temperature": (seconds(0, 10, 20), [1.0, 2.0, 3.0])}))
        with transaction.atomic(using=backend.alias), connections[backend.alias].cursor() as cursor:
            cursor.execute(
                "UPDATE tsdb_series SET last_time = first_time WHERE project_name = %s AND batch_id = %s",
                [group.project_name, group.batch_id],
            )
        # Looks like an append after t=0 to the statistics; t=20 is stored: must overwrite, not clash.
        backend.write(raw_batch(group, {"temperature": (seconds(20, 30), [30.0, 40.0])}))
        with transaction.atomic(using=backend.alias):
            stream = backend.write_stream(Collection.RAW)
            stream.write(raw_batch(group, {"temperature": (seconds(30, 40), [-4.0, 50.0])}))
            stream.close()
        data = read_all(backend, raw_key(group))
        assert data.values.tolist() == [1.0, 2.0, 30.0, -4.0, 50.0]

    def test_write_joins_the_callers_transaction(self, backend):
        group = new_group()
        with pytest.raises(RuntimeError), transaction.atomic(using=backend.alias):
            backend.write(raw_batch(group, {"temperature": (seconds(0, 20), [1.0, 2.0])}))
            assert len(read_all(backend, raw_key(group))) == 2  # visible inside the transaction
            raise RuntimeError("caller fails after the write")
        assert len(read_all(backend, raw_key(group))) == 0
        assert backend.list_series(collection=Collection.RAW, where=_filter(group)) == []

    def test_large_batch_with_duplicates(self, backend):
        group = new_group()
        n = 60_000
        t = seconds(*range(n))
        values = np.arange(n, dtype=np.float64)
        batch = raw_batch(
            group, {"temperature": (np.concatenate([t, t[:10]]), np.concatenate([values, -values[:10] - 1]))}
        )
        assert backend.write(batch) == n
        data = read_all(backend, raw_key(group))
        assert len(data) == n
        np.testing.assert_allclose(data.values[:10], -np.arange(10.0) - 1)
        np.testing.assert_allclose(data.values[10:], values[10:])

    def test_mean_buckets_match_numpy_reference(self, backend):
        from apps.tsdb.asof import mean_buckets

        group = new_group()
        t = seconds(*range(0, 3600, 7))
        values = np.cos(np.arange(len(t)) / 40.0)
        backend.write(raw_batch(group, {"temperature": (t, values)}))
        start, end = int(t[0]), int(t[-1])
        data = backend.read(
            collection=Collection.RAW, series=raw_key(group), start=_dt(start), end=_dt(end), max_points=60
        )
        times, means, mins, maxs, counts = mean_buckets(t, values, start_ns=start, end_ns=end, max_points=60)
        np.testing.assert_array_equal(data.times_ns, times)
        np.testing.assert_allclose(data.values, means)
        np.testing.assert_allclose(data.fields["min"], mins)
        np.testing.assert_allclose(data.fields["max"], maxs)
        np.testing.assert_array_equal(data.fields["count"], counts)

    def test_minmax_matches_numpy_reference_with_ties(self, backend):
        from apps.tsdb.asof import minmax_buckets

        group = new_group()
        t = seconds(*range(0, 2000))
        values = np.round(np.sin(np.arange(len(t)) / 30.0) * 3)  # few distinct values: many ties
        backend.write(raw_batch(group, {"temperature": (t, values)}))
        start, end = int(t[0]), int(t[-1])
        data = backend.read(
            collection=Collection.RAW,
            series=raw_key(group),
            start=_dt(start),
            end=_dt(end),
            max_points=40,
            method=Downsample.MINMAX,
        )
        keep = minmax_buckets(t, values, start_ns=start, end_ns=end, max_points=40)
        np.testing.assert_array_equal(data.times_ns, t[keep])
        np.testing.assert_array_equal(data.values, values[keep])
        assert len(data) <= 40

    def test_snapshots_reject_bad_arguments(self, backend):
        group = new_group()
        with pytest.raises(ValueError):
            backend.snapshots(group=group, variables=(), after=None, max_age=timedelta(seconds=1))
        with pytest.raises(ValueError):
            backend.snapshots(group=group, variables=("a", "a"), after=None, max_age=timedelta(seconds=1))


def _filter(group):
    from apps.tsdb.types import SeriesFilter

    return SeriesFilter(project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id)


def _dt(ns: int):
    from apps.tsdb.types import from_ns

    return from_ns(ns)


@pytest.mark.django_db(transaction=True)
class TestSQLBackendDefaultDatabase(BackendContract, SQLSpecific):
    """Runs on whichever database the test run uses (SQLite locally, PostgreSQL in CI's second pass)."""

    @pytest.fixture
    def backend(self, transactional_db):
        backend = SQLBackend({})
        backend.ensure_collections()
        return backend

    def test_engine_is_the_django_database(self, backend):
        assert backend.connection.vendor == connection.vendor
        assert backend.ping().detail.startswith(connection.vendor)


@pytest.fixture(scope="class")
def pg_alias(django_db_blocker):
    """A migrated throwaway PostgreSQL database for one test class."""
    require(postgres_available(), "PostgreSQL")
    from .pgdb import throwaway_postgres

    with django_db_blocker.unblock(), throwaway_postgres("stamm_tsdb_contract") as alias:
        yield alias


@pytest.mark.postgres
class TestSQLBackendPostgres(BackendContract, SQLSpecific):
    """Always PostgreSQL: COPY + upsert path, BRIN index, TimescaleDB when the server has it."""

    @pytest.fixture
    def backend(self, pg_alias, django_db_blocker):
        backend = SQLBackend({"DATABASE": pg_alias})
        with django_db_blocker.unblock():
            backend.ensure_collections()
            yield backend

    def test_postgres_schema_has_brin_and_primary_key(self, backend):
        assert backend.is_postgres
        with connections[backend.alias].cursor() as cursor:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tsdb_rawpoint'")
            indexes = dict(cursor.fetchall())
        assert any('USING brin ("time")' in d or "USING brin (time)" in d for d in indexes.values()), indexes
        assert any('(series_id, "time")' in d or "(series_id, time)" in d for d in indexes.values()), indexes

    def test_timescaledb_hypertable_when_available(self, backend):
        available, _ = backend._timescale_state()
        if not available:
            pytest.skip("the timescaledb extension is not available on this PostgreSQL server")
        backend.ensure_collections()
        assert backend.uses_timescale()
        assert "timescaledb" in backend.ping().detail
        # The contract still holds on a hypertable.
        group = new_group()
        backend.write(raw_batch(group, {"temperature": (seconds(0, 20), [1.0, 2.0])}))
        assert len(read_all(backend, raw_key(group))) == 2

    def test_streams_that_deadlock_leave_one_whole_and_ask_the_other_to_retry(self, backend):
        """Two bodies taking the same two series in opposite orders: PostgreSQL cancels one (503)."""
        import threading

        from apps.common.errors import ServiceUnavailable
        from apps.tsdb.services import points_stream

        group = new_group()
        both_locked = threading.Barrier(2, timeout=30)
        outcome: dict[str, object] = {}

        def body(name: str, first: str, second: str) -> None:
            try:
                with points_stream(collection=Collection.RAW, backend=backend) as write:
                    write(raw_batch(group, {first: (seconds(0), [1.0])}))
                    both_locked.wait()
                    write(raw_batch(group, {second: (seconds(10), [2.0])}))
                outcome[name] = "written"
            except BaseException as exc:  # reported to the main thread
                outcome[name] = exc
            finally:
                connections.close_all()  # the backend's and the default (points_committed's receivers read it)

        threads = [
            threading.Thread(target=body, args=("a", "temperature", "ph")),
            threading.Thread(target=body, args=("b", "ph", "temperature")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(map(type, outcome.values()), key=str) == sorted([str, ServiceUnavailable], key=str), outcome
        # Only the winner's two points are stored: its first series at t=0, its second at t=10.
        first, second = ("temperature", "ph") if outcome["a"] == "written" else ("ph", "temperature")
        assert read_all(backend, raw_key(group, first)).times_ns.tolist() == seconds(0).tolist()
        assert read_all(backend, raw_key(group, second)).times_ns.tolist() == seconds(10).tolist()
        assert {prop: count for prop, (count, *_rest) in self._stats(backend, group).items()} == {first: 1, second: 1}

    def test_concurrent_overlapping_writers_keep_exact_statistics(self, backend):
        """Two connections upsert overlapping ranges of one series at once: no lost or double counts."""
        import threading

        group = new_group()
        errors: list[BaseException] = []

        def writer(first: int) -> None:
            try:
                t = seconds(*range(first, first + 1000))
                for chunk in range(0, 1000, 100):
                    backend.write(
                        raw_batch(group, {"temperature": (t[chunk : chunk + 100], np.full(100, float(first)))})
                    )
            except BaseException as exc:  # reported to the main thread
                errors.append(exc)
            finally:
                connections.close_all()  # the backend's and the default (points_committed's receivers read it)

        threads = [threading.Thread(target=writer, args=(first,)) for first in (0, 500)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        [info] = backend.list_series(collection=Collection.RAW, where=_filter(group))
        assert info.point_count == 1500
        assert len(read_all(backend, raw_key(group))) == 1500

"""tsdb management commands on real IndPenSim batches: import, replay (fast, resumable), ping, ensure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.tsdb.backends import get_backend
from apps.tsdb.types import Collection, GroupKey, SeriesFilter, SeriesKey, to_ns

pytestmark = pytest.mark.django_db


def run(*args, **kwargs) -> str:
    out = StringIO()
    call_command(*args, stdout=out, no_progress=True, **kwargs)
    return out.getvalue()


def rows_of(path) -> int:
    return sum(1 for _ in path.open()) - 1


def point_count(**where) -> int:
    return sum(i.point_count for i in get_backend().list_series(collection=Collection.RAW, where=SeriesFilter(**where)))


def test_import_real_batches_back_to_back(indpensim_dir):
    paths = [indpensim_dir / "batch_92.csv", indpensim_dir / "batch_93.csv"]
    before = datetime.now(UTC)
    out = run("tsdb_import_csv", *map(str, paths), "--project", "penicillin", "--device", "R1", "--batch-from-filename")
    assert "Imported 2 file(s)" in out
    groups = {g.group.batch_id: g for g in get_backend().groups(project_name="penicillin")}
    assert set(groups) == {"batch_92", "batch_93"}
    assert groups["batch_92"].last_time <= groups["batch_93"].first_time  # back to back
    assert before - timedelta(seconds=2) <= groups["batch_93"].last_time <= datetime.now(UTC)  # ends now
    temp = get_backend().list_series(
        collection=Collection.RAW, where=SeriesFilter(batch_id="batch_92", observed_property="temperature")
    )[0]
    assert temp.point_count == rows_of(paths[0])
    # Re-importing is idempotent only for the same start: with --start the same points are rewritten.
    run(
        "tsdb_import_csv",
        str(paths[0]),
        "--project",
        "p2",
        "--device",
        "R1",
        "--batch",
        "b",
        "--start",
        "2026-01-01T00:00:00Z",
    )
    first = point_count(project_name="p2")
    run(
        "tsdb_import_csv",
        str(paths[0]),
        "--project",
        "p2",
        "--device",
        "R1",
        "--batch",
        "b",
        "--start",
        "2026-01-01T00:00:00Z",
    )
    assert point_count(project_name="p2") == first
    info = get_backend().list_series(
        collection=Collection.RAW, where=SeriesFilter(project_name="p2", observed_property="ph")
    )[0]
    assert info.first_time == datetime(2026, 1, 1, 0, 12, tzinfo=UTC)


def test_import_refuses_bad_file_and_writes_nothing(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_text("time,temperature\n0.2,298\n0.4,warm\n")
    with pytest.raises(CommandError, match="row 3, column temperature"):
        run("tsdb_import_csv", str(bad), "--project", "p", "--device", "R1", "--batch", "b")
    assert point_count(project_name="p") == 0
    with pytest.raises(CommandError, match="one file"):
        run("tsdb_import_csv", str(bad), str(bad), "--project", "p", "--device", "R1", "--batch", "b")


def test_replay_first_rows_fast_and_resume(indpensim_dir, tmp_path):
    path = indpensim_dir / "batch_94.csv"
    args = (
        "tsdb_replay",
        str(path),
        "--project",
        "penicillin",
        "--device",
        "R2",
        "--batch",
        "live",
        "--speed",
        "100000x",
        "--state-dir",
        str(tmp_path),
    )
    started = datetime.now(UTC)
    out = run(*args, "--rows", "10")
    assert "Replayed rows 1..10" in out
    key = SeriesKey("penicillin", "R2", "live", "sensor", "temperature")
    data = get_backend().read(
        collection=Collection.RAW,
        series=key,
        start=started - timedelta(seconds=1),
        end=datetime.now(UTC) + timedelta(seconds=5),
    )
    assert len(data) == 10
    assert data.times_ns[0] >= to_ns(started)
    np.testing.assert_allclose(np.diff(data.times_ns), 0.2 * 3600e9 / 100000, rtol=1e-3)  # 12 min / 100000
    state = json.loads((tmp_path / "penicillin__R2__live.json").read_text())
    assert state["next_row"] == 10

    out = run(*args, "--rows", "20")
    assert "Resuming" in out and "Replayed rows 11..20" in out
    data = get_backend().read(
        collection=Collection.RAW,
        series=key,
        start=started - timedelta(seconds=1),
        end=datetime.now(UTC) + timedelta(seconds=5),
    )
    assert len(data) == 20 and np.all(np.diff(data.times_ns) > 0)
    csv_values = np.genfromtxt(path, delimiter=",", names=True)["temperature"][:20]
    np.testing.assert_allclose(data.values, csv_values)
    assert "Already replayed" in run(*args, "--rows", "20")


def test_replay_ctrl_c_saves_progress(indpensim_dir, tmp_path, monkeypatch):
    from apps.tsdb.management.commands import tsdb_replay

    real_ingest = tsdb_replay.points_ingest
    calls = {"n": 0}

    def interrupting_ingest(**kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_ingest(**kwargs)

    monkeypatch.setattr(tsdb_replay, "points_ingest", interrupting_ingest)
    path = indpensim_dir / "batch_95.csv"
    args = (
        "tsdb_replay",
        str(path),
        "--project",
        "p",
        "--device",
        "R1",
        "--batch",
        "b",
        "--interval",
        "1ms",
        "--state-dir",
        str(tmp_path),
    )
    out = run(*args, "--rows", "12")
    assert "Interrupted" in out
    assert json.loads((tmp_path / "p__R1__b.json").read_text())["next_row"] == 5
    monkeypatch.setattr(tsdb_replay, "points_ingest", real_ingest)
    assert "Replayed rows 6..12" in run(*args, "--rows", "12")
    key = SeriesKey("p", "R1", "b", "actuator", "sugar_feed_rate")
    group_info = get_backend().groups(project_name="p")[0]
    assert group_info.group == GroupKey("p", "R1", "b")
    data = get_backend().read(
        collection=Collection.RAW, series=key, start=group_info.first_time, end=group_info.last_time
    )
    assert len(data) == 12


def test_replay_bad_arguments(indpensim_dir, tmp_path):
    path = str(indpensim_dir / "batch_91.csv")
    base = ("tsdb_replay", path, "--project", "p", "--device", "R1", "--batch", "b", "--state-dir", str(tmp_path))
    with pytest.raises(CommandError, match="interval"):
        run(*base, "--interval", "soon")
    with pytest.raises(CommandError, match="speed"):
        run(*base, "--speed", "-3x")
    with pytest.raises(CommandError, match="no such file"):
        run("tsdb_replay", "/nonexistent.csv", "--project", "p", "--device", "R1", "--batch", "b")


def test_ping_and_ensure_collections():
    assert "collections ready" in run_plain("tsdb_ensure_collections")
    out = run_plain("tsdb_ping")
    assert "raw" in out and "present" in out and "collections ready" in out


def run_plain(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_replay_backfill_writes_history_ending_now_then_goes_live(indpensim_dir, tmp_path):
    """``--backfill N``: rows 1..N at the file's own spacing (12 min) with row N stamped now, then live rows."""
    path = indpensim_dir / "batch_93.csv"
    args = ("tsdb_replay", str(path), "--project", "p", "--device", "R3", "--batch", "bf", "--state-dir", str(tmp_path))
    before = datetime.now(UTC)
    out = run(*args, "--backfill", "30", "--interval", "1ms", "--rows", "33")
    after = datetime.now(UTC)
    assert "Backfilled rows 1..30" in out and "Replayed rows 31..33" in out
    key = SeriesKey("p", "R3", "bf", "sensor", "temperature")
    data = get_backend().read(
        collection=Collection.RAW, series=key, start=before - timedelta(hours=10), end=after + timedelta(seconds=5)
    )
    assert len(data) == 33
    np.testing.assert_allclose(np.diff(data.times_ns[:30]), 0.2 * 3600e9)  # the file's own 12 min spacing
    assert to_ns(before) <= data.times_ns[29] <= to_ns(after)  # row 30 is "now"
    assert np.all(np.diff(data.times_ns[29:]) < 1e9)  # then live, 1 ms apart (plus ingest time)
    assert json.loads((tmp_path / "p__R3__bf.json").read_text())["next_row"] == 33

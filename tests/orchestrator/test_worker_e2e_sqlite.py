"""The end-to-end cases of ``e2e_cases`` on a SQLite file in WAL mode and a redis-server of the test's own;
then, on the same stack, the broker's faults: Redis restarted mid-stream (the test's own server, so the
shared one is never touched) and three workers sharing one stream. No fault needs a manual step.
"""

from __future__ import annotations

import time

import pytest

from .e2e_cases import *  # noqa: F403 (the marks, fixtures and cases run here)
from .e2e_cases import stack_fixture
from .e2e_stack import RECOVERY_SECONDS, assert_exactly_once, wait_for

stack = stack_fixture("sqlite")


@pytest.mark.parametrize("down_for", [0.05, 3.0])
def test_redis_restarted_mid_stream_the_worker_recovers_by_itself(stack, model, frame, down_for):
    """A Redis blip (0.05 s, as in the probe that found the crash) and a longer outage: the same worker
    process reconnects, nothing is restarted by hand, and every snapshot is predicted soon after."""
    worker = stack.processes["worker"]
    batch = f"batch_blip_{int(down_for * 100)}"
    for start in range(0, 40, 10):
        stack.ingest(frame, batch_id=batch, rows=range(start, start + 10))
    stack.wait_scored(batch, 40)
    stack.ingest(frame, batch_id=batch, rows=range(40, 50))  # in flight while Redis goes down
    stack.redis.restart(down_for)
    restarted = time.monotonic()
    for start in range(50, 80, 10):
        stack.ingest(frame, batch_id=batch, rows=range(start, start + 10))
    assert_exactly_once(stack, batch, list(range(80)), model, frame, timeout=RECOVERY_SECONDS + 60)
    recovered = time.monotonic() - restarted
    print(f"Redis down {down_for} s: every snapshot predicted {recovered:.1f} s after it came back")
    assert worker.poll() is None, "the worker exited after the Redis restart:\n" + stack.log_tail()
    assert stack.processes["worker"] is worker, "no process was restarted"
    log = stack.logs["worker"].read_text(errors="replace")
    assert "Unrecoverable error" not in log, log[-3000:]
    assert recovered < RECOVERY_SECONDS, f"{recovered:.0f} s to score everything after the restart"


def test_three_workers_share_the_stream_and_score_each_snapshot_once(stack, model, frame):
    """Two more workers (no beat) join: two batches streamed in interleaved, each snapshot scored once,
    and the work spread over more than one worker."""
    stack.start_worker("worker2", beat=False)
    stack.start_worker("worker3", beat=False)
    try:
        for name in ("worker2", "worker3"):
            wait_for(lambda name=name: " ready." in stack.logs[name].read_text(errors="replace"), 60, f"{name} ready")
        for start in range(0, 120, 10):
            for batch in ("batch_three_a", "batch_three_b"):
                stack.ingest(frame, batch_id=batch, rows=range(start, start + 10))
        for batch in ("batch_three_a", "batch_three_b"):
            assert_exactly_once(stack, batch, list(range(120)), model, frame)
        busy = [
            name for name in ("worker", "worker2", "worker3")
            if "orchestrator.run_groups" in stack.logs[name].read_text(errors="replace").split("Connected to", 1)[-1]
        ]
        assert len(busy) >= 2, f"only {busy} ran pipeline tasks"
    finally:
        stack.kill("worker2")
        stack.kill("worker3")

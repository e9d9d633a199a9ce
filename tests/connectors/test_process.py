"""The connectors process as it runs in production (``manage.py connectors_run``), killed and restarted while
a plant keeps publishing: nothing lost (the broker keeps the persistent session's messages, unacknowledged
ones come again), nothing stored twice (acknowledged after commit; the upsert on (series, time))."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.embedded_db import REPO, manage, migrated_database
from tests.services import mosquitto_available, require

from .peers import MqttPeer, shared_broker, topic_prefix, wait_for

pytestmark = [pytest.mark.slow]


class ConnectorProcess:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "stamm_site.settings.local",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "STAMM_VAR_DIR": str(tmp / "var"),
            "STAMM_CONNECTORS_FLUSH_MS": "50",
            "STAMM_CONNECTORS_STATUS_INTERVAL": "1",
            "DJANGO_LOG_LEVEL": "WARNING",
        }
        self.env.pop("DATABASE_URL", None)
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        return manage(self.env, *args)

    def start(self) -> None:
        with (self.tmp / "connectors.log").open("ab") as log:  # the process has its own copy of the file
            self.process = subprocess.Popen(
                # no system checks at each start (see tests.embedded_db.WORKER_ENVIRONMENT)
                [sys.executable, "manage.py", "connectors_run", "--poll", "0.5", "--skip-checks"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)
        self.process = None

    def query(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.tmp / "var" / "stamm.sqlite3", timeout=30) as conn:
            return conn.execute(sql).fetchall()

    def log(self) -> str:
        path = self.tmp / "connectors.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def test_killed_and_restarted_while_messages_keep_coming_loses_nothing_and_stores_nothing_twice(tmp_path):
    require(mosquitto_available(), "Mosquitto")
    host, port = shared_broker()
    prefix = topic_prefix()
    process = ConnectorProcess(tmp_path)
    migrated_database(tmp_path / "var")
    rules = [{"pattern": f"{prefix}/{{device_id}}/{{observed_property}}", "project_name": "plant", "batch_id": "k"}]
    process.manage(
        "shell",
        "-c",
        "from apps.connectors.services import data_source_create; import json; "
        f"data_source_create(name='kill-test', kind='mqtt', url='mqtt://{host}:{port}', client_id='c-{prefix}', "
        f"rules=json.loads({json.dumps(json.dumps(rules))}))",
    )
    process.start()
    try:
        wait_for(lambda: process.query("SELECT connected FROM connectors_sourcestatus") == [(1,)], 30, "the connection")
        peer = MqttPeer(host, port)
        t0 = datetime(2026, 5, 1, tzinfo=UTC)
        sent = 0
        done = threading.Event()

        def publish() -> None:
            nonlocal sent
            for i in range(600):  # 6 s at 100 messages/s over 3 series
                device = f"R{i % 3}"
                peer.publish(
                    f"{prefix}/{device}/flow", {"value": float(i), "timestamp": (t0 + timedelta(seconds=i)).isoformat()}
                )
                sent += 1
                time.sleep(0.01)
            done.set()

        publisher = threading.Thread(target=publish)
        publisher.start()
        wait_for(lambda: sent >= 150, 30, "some messages")
        process.kill()  # SIGKILL mid-stream: received-but-unacknowledged messages stay with the broker
        killed_at = sent
        time.sleep(1.0)
        process.start()
        publisher.join(60)
        assert done.is_set() and killed_at < 600
        wait_for(
            lambda: process.query("SELECT COUNT(*) FROM tsdb_rawpoint")[0][0] >= 600,
            60,
            "every message stored",
        )
        time.sleep(1.0)  # anything redelivered late would land now
        rows = process.query(
            "SELECT s.device_id, p.time, p.value FROM tsdb_rawpoint p JOIN tsdb_series s ON s.id = p.series_id"
        )
        assert len(rows) == 600, process.log()
        assert sorted(int(v) for _, _, v in rows) == list(range(600))
        counts = process.query("SELECT SUM(point_count) FROM tsdb_series")
        assert counts == [(600,)]
        peer.close()
    finally:
        process.kill(signal.SIGTERM)


def test_sigterm_stops_the_process_cleanly(tmp_path):
    require(mosquitto_available(), "Mosquitto")
    process = ConnectorProcess(tmp_path)
    migrated_database(tmp_path / "var")
    process.start()
    wait_for(lambda: "reading every enabled data source" in process.log(), 60, "the start", interval=0.2)
    time.sleep(1.0)
    assert process.process is not None and process.process.poll() is None
    os.killpg(process.process.pid, signal.SIGTERM)
    assert process.process.wait(timeout=20) == 0, process.log()
    assert "connectors process stopped" in process.log()

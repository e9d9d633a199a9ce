"""A migrated database of the embedded settings (SQLite in ``STAMM_VAR_DIR``), built once per test run.

The tests that run the application as separate processes (Celery workers, gunicorn, the connectors process)
each need a fresh database, and so does every xdist worker's test database. Migrating one costs about 11 s
of CPU in a new process, and nine such databases were migrated per run. The first caller migrates one file,
exactly as ``manage.py migrate`` does for a new installation, under the run's directory
(``STAMM_TEST_RUN_DIR``, shared by the xdist workers of one run and removed at its end; a lock keeps two
workers from building it twice); every caller gets its own copy.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN_DIR_VARIABLE = "STAMM_TEST_RUN_DIR"


def run_dir() -> Path:
    """The directory the processes of this test run share (made by the first caller when pytest did not)."""
    path = os.environ.get(RUN_DIR_VARIABLE)
    if not path:
        path = tempfile.mkdtemp(prefix="stamm-test-run-")
        os.environ[RUN_DIR_VARIABLE] = path
    return Path(path)


def migrated_template() -> Path:
    """The run's migrated database (build it if this is the first call); copy it, never open it."""
    root = run_dir() / "migrated"
    root.mkdir(parents=True, exist_ok=True)
    database = root / "var" / "stamm.sqlite3"
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "stamm_site.settings.local",
                "DJANGO_SECRET_KEY": "test-only-migrate-" + "x" * 40,
                "STAMM_VAR_DIR": str(root / "building"),
            }
            env.pop("DATABASE_URL", None)
            done = subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"manage.py migrate failed:\n{done.stdout}\n{done.stderr[-3000:]}"
            built = root / "building" / "stamm.sqlite3"
            assert not built.with_name("stamm.sqlite3-wal").exists() or not built.with_name(
                "stamm.sqlite3-wal"
            ).stat().st_size, "the migrated database still has a write-ahead log"
            database.parent.mkdir(exist_ok=True)
            shutil.copyfile(built, database.with_suffix(".partial"))
            database.with_suffix(".partial").rename(database)
    return database


def migrated_database(var_dir: Path) -> Path:
    """Put a freshly migrated ``stamm.sqlite3`` in ``var_dir`` (the ``STAMM_VAR_DIR`` of the processes)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    target = var_dir / "stamm.sqlite3"
    shutil.copyfile(migrated_template(), target)
    return target

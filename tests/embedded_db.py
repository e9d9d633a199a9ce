"""A migrated database of the embedded settings (SQLite in ``STAMM_VAR_DIR``), built once per test run.

The tests that run the application as separate processes (Celery workers, gunicorn, the connectors process)
each need a fresh database, and so does every xdist worker's test database. Migrating one costs about 11 s
of CPU in a new process, and nine such databases were migrated per run. The first caller migrates one file,
exactly as ``manage.py migrate`` does for a new installation, under the run's directory
(``STAMM_TEST_RUN_DIR``, shared by the xdist workers of one run and removed at its end; a lock keeps two
workers from building it twice); every caller gets its own copy. ``template`` builds other such folders
the same way (the training worker tests' imported batches).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The ten IndPenSim batches, beside the repository (never copied into it).
INDPENSIM_DIR = (REPO / ".." / "shared" / "data" / "indpensim").resolve()
RUN_DIR_VARIABLE = "STAMM_TEST_RUN_DIR"


def run_dir() -> Path:
    """The directory the processes of this test run share (made by the first caller when pytest did not)."""
    path = os.environ.get(RUN_DIR_VARIABLE)
    if not path:
        path = tempfile.mkdtemp(prefix="stamm-test-run-")
        os.environ[RUN_DIR_VARIABLE] = path
    return Path(path)


def template(name: str, build: Callable[[Path], None]) -> Path:
    """The run's template var folder ``name``: the first caller builds it with ``build(folder)`` (under a lock,
    so two xdist workers never build it twice); every caller gets the built folder, to copy, never to open."""
    root = run_dir() / name
    root.mkdir(parents=True, exist_ok=True)
    built = root / "var"
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            building = root / "building"
            shutil.rmtree(building, ignore_errors=True)
            build(building)
            wal = building / "stamm.sqlite3-wal"
            assert not wal.exists() or not wal.stat().st_size, f"the {name} database still has a write-ahead log"
            building.rename(built)
    return built


#: In the environment of every Celery worker the tests start. Celery's Django fixup runs all of Django's system
#: checks when a worker starts, 0.6 s of CPU each time, and the tests start about ten workers; the checks
#: themselves run in the one ``migrate`` of the run (on the embedded settings) and in
#: ``tests/common/test_production_settings.py`` (``manage.py check``, with ``--deploy``). The other commands the
#: tests start (``connectors_run``, ``registry_train``, ``tsdb_import_csv``) get ``--skip-checks`` for the same
#: reason.
WORKER_ENVIRONMENT = {"CELERY_SKIP_CHECKS": "1"}


def embedded_environment(var_dir: Path) -> dict[str, str]:
    """The environment of a ``manage.py`` process on the embedded settings with its data in ``var_dir``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "stamm_site.settings.local",
        "DJANGO_SECRET_KEY": "test-only-not-secret-" + "x" * 40,
        "STAMM_VAR_DIR": str(var_dir),
    }
    env.pop("DATABASE_URL", None)
    return env


def manage(env: dict[str, str], *args: str, timeout: int = 300) -> str:
    """Run ``manage.py`` with ``env``; its output, or the test fails with both streams."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def _migrate(folder: Path) -> None:
    manage(embedded_environment(folder), "migrate", "--noinput", "-v", "0")


def migrated_template() -> Path:
    """The run's migrated database (built if this is the first call); copy it, never open it."""
    return template("migrated", _migrate) / "stamm.sqlite3"


def migrated_database(var_dir: Path) -> Path:
    """Put a freshly migrated ``stamm.sqlite3`` in ``var_dir`` (the ``STAMM_VAR_DIR`` of the processes)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    target = var_dir / "stamm.sqlite3"
    shutil.copyfile(migrated_template(), target)
    return target


def var_copied(source: Path, var_dir: Path) -> None:
    """Copy a template var folder (database and media) into ``var_dir``."""
    shutil.copytree(source, var_dir, dirs_exist_ok=True)

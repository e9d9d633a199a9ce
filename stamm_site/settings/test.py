"""Test settings: fast hashers, quiet logs, PostgreSQL when ``DATABASE_URL`` is set, SQLite otherwise."""
from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
from pathlib import Path

from .base import *  # noqa: F401,F403
from .base import LOGGING
from .env import database_from_url, env_bool, env_str

DEBUG = False
# The suite exercises STAMM's own pickled models (each approved by an admin in its fixtures); the rules
# with pickle loading off are tested by overriding this.
REGISTRY_ALLOW_PICKLE = env_bool("REGISTRY_ALLOW_PICKLE", True)
# A fresh random key per run: tests must never depend on a known secret.
SECRET_KEY = secrets.token_urlsafe(50)
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_tmp = Path(tempfile.mkdtemp(prefix="stamm-test-"))
# The test database lives in RAM when the machine has a tmpfs for it (as fast as SQLite's in-memory mode),
# and goes when the process ends.
_db_dir = Path(tempfile.mkdtemp(prefix="stamm-test-db-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
atexit.register(shutil.rmtree, _db_dir, ignore_errors=True)

# SQLite in a file, as the embedded default runs it, not in memory: Django shares an in-memory database's
# one connection between the test thread and every live-server request thread, and two threads inside
# atomic blocks on one connection corrupt each other's transaction state (a request still running when the
# next test starts broke that test). With a file each thread has its own connection; WAL lets readers run
# beside a writer, and the busy timeout makes a second writer wait rather than fail. pytest-xdist gives
# each worker its own file (a _gwN suffix).
_database_url = env_str("DATABASE_URL", "")
DATABASES = {
    "default": database_from_url(_database_url)
    if _database_url
    else {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_db_dir / "stamm.sqlite3"),
        "TEST": {"NAME": str(_db_dir / "test.sqlite3")},
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;", "timeout": 30},
    }
}
DATABASES["default"]["CONN_MAX_AGE"] = 0

MEDIA_ROOT = _tmp / "media"
STATIC_ROOT = _tmp / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Built model environments are shared by every test process and kept between runs: a build happens once per
# machine (or CI run), never per test.
STAMM_RUNTIME_ENV_DIR = Path(
    env_str("STAMM_RUNTIME_ENV_DIR", "") or Path(tempfile.gettempdir()) / "stamm-test-runtime-envs"
)

# Tests start runtime workers when they need them (a warm-up thread would race with tests that restart them).
REGISTRY_RUNTIME_PREWARM = False

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or "memory://"
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or "cache+memory://"

LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}

# The test runner empties every table between transactional tests, which the audit trail's append-only
# triggers refuse; tests/audit installs them itself (apps.audit.guard) where it checks them.
STAMM_AUDIT_DB_GUARD = False

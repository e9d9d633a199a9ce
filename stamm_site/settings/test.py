"""Test settings: fast hashers, quiet logs, PostgreSQL when ``DATABASE_URL`` is set, SQLite otherwise."""
from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from .base import *  # noqa: F401,F403
from .base import LOGGING
from .env import database_from_url, env_str

DEBUG = False
# A fresh random key per run: tests must never depend on a known secret.
SECRET_KEY = secrets.token_urlsafe(50)
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_database_url = env_str("DATABASE_URL", "")
DATABASES = {
    "default": database_from_url(_database_url)
    if _database_url
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:", "TEST": {"NAME": ":memory:"}}
}
DATABASES["default"]["CONN_MAX_AGE"] = 0

_tmp = Path(tempfile.mkdtemp(prefix="stamm-test-"))
MEDIA_ROOT = _tmp / "media"
STATIC_ROOT = _tmp / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or "memory://"
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or "cache+memory://"

LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}

"""The embedded default (``make run``): SQLite in WAL mode, filesystem Celery broker, all under ``var/``.

Needs no server. The secret key is generated once and kept in ``var/secret_key`` so sessions survive
restarts; set ``DJANGO_SECRET_KEY`` to override.
"""
from __future__ import annotations

import os
import secrets

from .base import *  # noqa: F401,F403
from .base import VAR_DIR
from .env import database_from_url, env_bool, env_str

DEBUG = env_bool("DJANGO_DEBUG", True)

VAR_DIR.mkdir(parents=True, exist_ok=True)


def _persisted_secret_key() -> str:
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        os.chmod(path, 0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or _persisted_secret_key()

_database_url = env_str("DATABASE_URL", "")
if _database_url:
    DATABASES = {"default": database_from_url(_database_url)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "stamm.sqlite3",
            # WAL lets the web server read while the worker writes; IMMEDIATE avoids lock-upgrade deadlocks.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # Reuse the connection between requests (as the DATABASE_URL path does): opening SQLite and
            # running the PRAGMAs costs a few ms per request, more than a single-row prediction.
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    }

_celery_dir = VAR_DIR / "celery"
for _sub in ("in", "processed", "results", "control"):
    (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        # One folder for both directions: producers and consumers on this machine share the queue.
        "data_folder_in": str(_celery_dir / "in"),
        "data_folder_out": str(_celery_dir / "in"),
        "processed_folder": str(_celery_dir / "processed"),
        "store_processed": False,
        # Broadcast (remote control) exchange files; kombu's default is ./control in the working directory.
        "control_folder": str(_celery_dir / "control"),
    }
    if CELERY_BROKER_URL == "filesystem://"
    else {}
)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or f"file://{_celery_dir / 'results'}"

# Without EMAIL_BACKEND set, e-mail notifications are written one file per message under var/mail/
# (docs/notifications.md); set EMAIL_BACKEND and EMAIL_HOST to send through an SMTP server.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"

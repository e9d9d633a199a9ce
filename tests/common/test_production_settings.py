"""Production settings refuse to start without their secrets and pass `check --deploy` when complete."""
import os
import secrets
import subprocess
import sys

from tests.embedded_db import REPO


def _run(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "stamm_site.settings.production", **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


COMPLETE = {
    "DATABASE_URL": "postgresql://stamm@127.0.0.1:5432/stamm",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "DJANGO_ALLOWED_HOSTS": "stamm.example.org",
}


def test_refuses_to_start_without_secret_key():
    result = _run(COMPLETE, "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_refuses_a_short_secret_key():
    result = _run({**COMPLETE, "DJANGO_SECRET_KEY": "short"}, "check")
    assert result.returncode != 0
    assert "at least 50 characters" in result.stderr


def test_refuses_to_start_without_database_url():
    env = {k: v for k, v in COMPLETE.items() if k != "DATABASE_URL"}
    result = _run({**env, "DJANGO_SECRET_KEY": secrets.token_urlsafe(60)}, "check")
    assert result.returncode != 0
    assert "DATABASE_URL is required" in result.stderr


def test_check_deploy_is_clean_when_configured():
    env = {**COMPLETE, "DJANGO_SECRET_KEY": secrets.token_urlsafe(60)}
    result = _run(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout

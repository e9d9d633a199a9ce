"""Which external services a test needs, and whether they are here.

A test needing a server (PostgreSQL, Redis, InfluxDB, R, Chromium) skips on a developer machine where
it is absent and fails in CI (``CI=true``), where ``.ci/run`` must have provided it.
"""
from __future__ import annotations

import os
import shutil
import socket
from functools import cache

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

REDIS_URL = os.environ.get("STAMM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("STAMM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
INFLUXDB_URL = os.environ.get("STAMM_TEST_INFLUXDB_URL", "http://127.0.0.1:8086")
CHROMIUM = os.environ.get("STAMM_TEST_CHROMIUM", "/usr/bin/chromium")


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@cache
def redis_available() -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    return _port_open(parsed.hostname or "127.0.0.1", parsed.port or 6379)


@cache
def postgres_available() -> bool:
    return _port_open("127.0.0.1", 5432)


@cache
def influxdb_available() -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(INFLUXDB_URL)
    return _port_open(parsed.hostname or "127.0.0.1", parsed.port or 8086)


@cache
def r_available() -> bool:
    return shutil.which("Rscript") is not None


@cache
def chromium_available() -> bool:
    return os.path.exists(CHROMIUM)


def require(available: bool, what: str) -> None:
    """Skip (developer machine) or fail (CI) when a service the test needs is absent."""
    if available:
        return
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message}, and CI must provide it (see .ci/run)", pytrace=False)
    pytest.skip(message)

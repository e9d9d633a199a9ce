"""Which external services a test needs, and whether they are here.

A test needing a server (PostgreSQL, Redis, Mosquitto, InfluxDB, R, Chromium) skips on a developer machine where
it is absent and fails in CI (``CI=true``), where ``.ci/run`` must have provided it.
"""
from __future__ import annotations

import os
import shutil
import socket
from functools import cache

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: Redis database numbers per pytest-xdist worker (gw0 or no xdist: the first row), one for each use: the
#: broker round trips, the pipeline's end-to-end worker, the training worker. Two workers never share a
#: database; benchmarks use 6 and 11, ``make run`` uses 0.
_REDIS_DBS = ((15, 12, 14), (5, 4, 3), (2, 1, 7), (8, 9, 10))
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def redis_test_url(use: int) -> str:
    """The Redis URL of use 0 (round trips), 1 (pipeline worker) or 2 (training worker) for this process."""
    return f"redis://127.0.0.1:6379/{_REDIS_DBS[_WORKER % len(_REDIS_DBS)][use]}"


REDIS_URL = os.environ.get("STAMM_TEST_REDIS_URL", redis_test_url(0))
POSTGRES_URL = os.environ.get("STAMM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
INFLUXDB_URL = os.environ.get("STAMM_TEST_INFLUXDB_URL", "http://127.0.0.1:8086")
#: Debian's headless shell of Chromium (package chromium-headless-shell: the same Blink and V8 as the browser,
#: without the windowing layers) when present, as Playwright itself runs headless tests: starting it, a
#: context or a page costs about a half to a third of the CPU of the full browser in headless mode (measured
#: in docs/architecture.md). Otherwise Debian's full Chromium.
CHROMIUM = os.environ.get(
    "STAMM_TEST_CHROMIUM",
    "/usr/bin/chromium-headless-shell" if os.path.exists("/usr/bin/chromium-headless-shell") else "/usr/bin/chromium",
)
MQTT_URL = os.environ.get("STAMM_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
MOSQUITTO = os.environ.get("STAMM_TEST_MOSQUITTO", shutil.which("mosquitto") or "/usr/sbin/mosquitto")


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
def mosquitto_available() -> bool:
    """The shared broker (``STAMM_TEST_MQTT_URL``) answers, and the ``mosquitto`` binary is here for the
    tests that start a private broker (restarts, credentials) without touching the shared one."""
    from urllib.parse import urlparse

    parsed = urlparse(MQTT_URL)
    return _port_open(parsed.hostname or "127.0.0.1", parsed.port or 1883) and os.path.exists(MOSQUITTO)


@cache
def r_available() -> bool:
    return shutil.which("Rscript") is not None


@cache
def chromium_available() -> bool:
    return os.path.exists(CHROMIUM)


def aiosmtpd_available() -> bool:
    """The SMTP server the notification tests start themselves (requirements/dev.txt)."""
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        return False
    return True


def require(available: bool, what: str) -> None:
    """Skip (developer machine) or fail (CI) when a service the test needs is absent."""
    if available:
        return
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message}, and CI must provide it (see .ci/run)", pytrace=False)
    pytest.skip(message)

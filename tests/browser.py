"""Playwright driving Debian's Chromium (never a downloaded browser); screenshots go to test-artifacts/.

One Playwright driver, one browser and one page serve every test of a test process (``browser_page``): a test
gets the page on ``about:blank`` with no cookies, at its size. Starting the driver and the browser again for
each test module cost about 0.85 s of CPU each time, and a new page about 1 s more on its first Dash page (a
new renderer compiles the Dash and Plotly scripts again). Playwright's sync API leaves its event loop marked
as running in the thread between its calls, which would make ``asyncio.run`` and ``async_to_sync`` in later
tests refuse to run; ``browser_page`` marks it running only while a test holds the page.
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.services import CHROMIUM, chromium_available, require

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


class _Shared:
    """The test process's Playwright driver, browser and page, started on first use (main thread only)."""

    manager: Any = None
    playwright: Any = None
    browser: Any = None
    page: Any = None
    loop: asyncio.AbstractEventLoop | None = None


def _launch(playwright) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def _shared_page() -> Any:
    """The process's page (the driver, the browser and the page are started, or started again if the browser
    died or a test closed the page). Called with Playwright's loop marked running, as its sync API expects."""
    from playwright.sync_api import sync_playwright

    if _Shared.manager is None:
        _Shared.manager = sync_playwright()
        _Shared.playwright = _Shared.manager.start()
        _Shared.loop = asyncio._get_running_loop()  # the driver's loop, which the sync API marks as running
    if _Shared.browser is None or not _Shared.browser.is_connected():
        _Shared.browser = _launch(_Shared.playwright)
        _Shared.page = None
    if _Shared.page is None or _Shared.page.is_closed():
        _Shared.page = _Shared.browser.new_context().new_page()
    return _Shared.page


def close_shared_browser() -> None:
    """Stop the process's browser and driver (at the end of the session)."""
    if _Shared.manager is None:
        return
    asyncio._set_running_loop(_Shared.loop)
    try:
        _Shared.manager.__exit__(None, None, None)
    finally:
        asyncio._set_running_loop(None)
        _Shared.manager = _Shared.playwright = _Shared.browser = _Shared.page = _Shared.loop = None


@contextmanager
def browser_page(width: int = 1280, height: int = 800) -> Iterator:
    """The process's headless Chromium page at ``width``×``height``, on ``about:blank`` with no cookies (live_server
    needs DJANGO_ALLOW_ASYNC_UNSAFE); left on ``about:blank`` with no cookies for the next test."""
    require(chromium_available(), f"Chromium ({CHROMIUM})")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert threading.current_thread() is threading.main_thread(), "Playwright's sync objects belong to the main thread"
    if _Shared.loop is not None:
        asyncio._set_running_loop(_Shared.loop)
    try:
        page = _shared_page()
        page.set_viewport_size({"width": width, "height": height})
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            _leave(page)
    finally:
        asyncio._set_running_loop(None)  # no loop runs between tests


def _leave(page) -> None:
    """Leave the page blank and signed out for the next test; a page that cannot be (crashed, stuck in a
    dialog) is closed with its context, and the next test gets a new one."""
    if page.is_closed():
        return
    try:
        page.goto("about:blank", timeout=10_000)
        page.context.clear_cookies()
    except Exception:  # noqa: BLE001 - whatever broke the page, the next test must not inherit it
        page.context.close()


@contextmanager
def javascript_errors(page) -> Iterator[list[str]]:
    """The JavaScript errors the page raises while the block runs; the listener goes with the block, since the
    page serves the process's later tests too."""
    errors: list[str] = []

    def record(exc) -> None:
        errors.append(str(exc))

    page.on("pageerror", record)
    try:
        yield errors
    finally:
        page.remove_listener("pageerror", record)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, base_url: str, username: str, *, home: str, password: str = "correct-horse-battery") -> None:
    """Sign in through the login form and wait for the role's home (``/home/<role>/``)."""
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/home/{home}/")

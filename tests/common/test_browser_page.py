"""``tests.browser.browser_page``: the process's one page is handed to each test blank, signed out and at its
size, and no asyncio loop is left marked as running in between (Playwright's sync API marks its own)."""

from __future__ import annotations

import asyncio

import pytest

from tests.browser import browser_page, javascript_errors

pytestmark = pytest.mark.browser


def test_the_shared_page_comes_back_blank_signed_out_at_its_size_and_asyncio_runs_between(live_server):
    with browser_page(width=900, height=700) as page:
        page.goto(f"{live_server.url}/login/")
        page.context.add_cookies([{"name": "left", "value": "over", "url": live_server.url}])
        with javascript_errors(page) as errors:
            page.evaluate("() => setTimeout(() => { throw new Error('inside'); })")
            page.wait_for_timeout(100)
        page.evaluate("() => setTimeout(() => { throw new Error('after'); })")
        page.wait_for_timeout(100)
        first = page
    assert errors == ["inside"]  # the error inside the block, not the one after it
    assert asyncio.run(asyncio.sleep(0, result="ran")) == "ran"  # no loop is marked as running here
    with browser_page(width=1280, height=800) as page:
        assert page is first
        assert page.url == "about:blank"
        assert page.context.cookies() == []
        assert page.viewport_size == {"width": 1280, "height": 800}

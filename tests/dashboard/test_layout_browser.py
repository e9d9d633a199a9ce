"""Every page each role reaches from its home, in Debian's Chromium at 1,280, 1,440 and 1,920 px wide
(issue 15): nothing wider than the window, every plot's tick labels and axis titles inside the plot, no "{"
of raw JSON or Python dicts in the visible text, no request leaving the server. The pages are also driven to
their interesting state, and what they then show is checked (``DRIVERS``: a clicked estimate's explanation, the
drift run with its default variables and its verdict, a divergence, a simulation with a row flagged and its
Excel export). The modeler's pages are checked here only: a test of their own loaded and drove them again,
which cost this file and test_browser.py 12 s of CPU more (74.9 s against 62.9 s).
A screenshot of every page at 1,440 px, and at any width where a problem was found, goes to test-artifacts/
(screenshots at every width cost the file 51.8 s of CPU against 46.9 s, for no check).

The demo is seeded once for the module: a single test walks every role, page and width and reports every
problem it found at once. Each role signs in once through the login form; the same page then makes every
(role, page) visit in that role's session (its cookies). One browser page, not two in parallel: the other test
processes keep both cores busy anyway, and walking in two more browsers cost this test 52.5 s of CPU against
50.0 s. A page is loaded once, at
1,280 px, and driven; the window is then widened to 1,440 and 1,920 px, as a user maximising it does, and the
page is checked at each width (loading and driving it again at each width cost the walk a
third more CPU, Chromium's most, for the same checks). A page is checked once it is ready (``BUSY``: no
request in flight, its Dash app idle, its plots drawn, its layout still), not after fixed waits."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from openpyxl import load_workbook

from tests.browser import ARTIFACTS, browser_page, sign_in

from .seed import seed_demo
from .test_browser import wait_for_plot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = (1280, 1440, 1920)
#: Every page is screenshotted at the width the issue measured, and at any other width where a problem was found.
SCREENSHOT_WIDTH = 1440
ROLES = ("operator", "modeler", "manager", "admin")
#: Pages of other designs (Django admin, API docs) and downloads are not walked.
SKIPPED_PREFIXES = ("/admin/", "/api/", "/django_plotly_dash/")

#: What still keeps the current page from its final layout (empty when nothing does): a Dash app not yet
#: started (hydrated), a Dash callback pending, a component loading or "Loading...", a dcc.Graph drawing (it marks
#: itself ``dash-graph--pending`` while Plotly loads, while ``Plotly.react`` runs, automargin redraws
#: included, and while it follows a resize), the document or its fonts loading. Checked twice, and the
#: layout's fingerprint must not move in between: two animation frames apart, or on a Dash page 100 ms and
#: two frames apart, since dcc.Graph hears of a resize 50 ms late (its ResizeObserver is debounced).
BUSY = """async () => {
  const check = () => {
    const busy = [];
    const text = document.body.innerText;
    if (document.readyState !== 'complete') busy.push('document loading');
    if (document.fonts.status !== 'loaded') busy.push('fonts loading');
    if (document.getElementById('_dash-config')) {
      const state = window.store && window.store.getState();  // dash-renderer's Redux store
      if (!state || state.appLifecycle !== 'HYDRATED') busy.push('Dash app starting');
      else if (Object.entries(state.callbacks).some(([k, v]) => k !== 'stored' && Array.isArray(v) && v.length)) {
        busy.push('Dash callbacks pending');
      }
    }
    if (document.querySelector('[data-dash-is-loading="true"]')) busy.push('a Dash component loading');
    if (text.includes('Loading...')) busy.push('"Loading..." on the page');
    if (document.querySelector('.dash-graph--pending')) busy.push('a dcc.Graph drawing');
    const plots = [...document.querySelectorAll('.js-plotly-plot')];
    if (plots.some(p => !p._fullLayout)) busy.push('a Plotly plot drawing');
    const root = document.documentElement;
    const fingerprint = JSON.stringify([root.scrollWidth, root.scrollHeight, text.length,
      plots.map(p => [p.getBoundingClientRect(), ...[...p.querySelectorAll('text')].map(t => t.getBoundingClientRect())]
        .map(r => [r.left, r.top, r.width, r.height]))]);
    return {busy, fingerprint};
  };
  const before = check();
  if (before.busy.length) return before.busy;
  await new Promise(done => setTimeout(done, document.getElementById('_dash-config') ? 100 : 0));
  await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  const after = check();
  if (after.busy.length) return after.busy;
  return after.fingerprint === before.fingerprint ? [] : ['layout moving'];
}"""


#: Problems of the current page, measured in the browser.
MEASURE = """() => {
  const width = window.innerWidth;
  const problems = [];
  const scroll = document.documentElement.scrollWidth;
  if (scroll > width + 1) {
    const wide = [...document.querySelectorAll('body *')]
      .filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.right > width + 1; })
      .filter(el => !el.parentElement || el.parentElement.getBoundingClientRect().right <= width + 1)
      .slice(0, 3)
      .map(el => `${el.tagName.toLowerCase()}#${el.id}.${String(el.className).slice(0, 40)} right=${
        Math.round(el.getBoundingClientRect().right)}`);
    problems.push(`page ${scroll}px wide in a ${width}px window: ${wide.join('; ')}`);
  }
  document.querySelectorAll('.js-plotly-plot').forEach((plot, index) => {
    const box = plot.getBoundingClientRect();
    if (box.width === 0) return;
    const name = plot.closest('[id]') ? plot.closest('[id]').id : `plot ${index}`;
    if (box.right > width + 1) problems.push(`${name}: plot ends at ${Math.round(box.right)}px`);
    plot.querySelectorAll('g[class$="tick"] > text, g[class*="title"] > text').forEach(label => {
      const r = label.getBoundingClientRect();
      if (r.width === 0 || !label.textContent.trim()) return;
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1) {
        problems.push(`${name}: label "${label.textContent}" outside its plot`);
      }
    });
  });
  const text = document.body.innerText;
  const brace = text.indexOf('{');
  if (brace >= 0) problems.push(`raw braces in the text: "${text.slice(Math.max(0, brace - 40), brace + 40)}"`);
  return problems;
}"""


def settle(page, requests: set) -> None:
    """Wait until nothing keeps the page from its final layout (``BUSY``) and no request is in flight."""
    deadline = time.monotonic() + 60
    while busy := page.evaluate(BUSY) + ([f"{len(requests)} requests in flight"] if requests else []):
        assert time.monotonic() < deadline, f"{page.url} still busy after 60 s: {busy}"
        page.wait_for_timeout(25)


def drive_live(page, downloads: Path) -> None:
    """A click on an estimate of the live chart: its explanation opens."""
    page.wait_for_function(
        "() => { const p = document.querySelector('#chart .js-plotly-plot');"
        " return p && p.data && p.data.some(t => (t.x || []).length > 0); }",
        timeout=60_000,
    )
    estimate = page.evaluate(
        """() => { const p = document.querySelector('#chart .js-plotly-plot');
             const i = p.data.findIndex(t => String((t.customdata || [''])[0]).startsWith('predictions|'));
             return i < 0 ? null : [i, Math.floor(p.data[i].x.length / 2)]; }"""
    )
    assert estimate is not None, "the live chart draws no estimate"
    # a click on the point, as Plotly reports it (the same event a mouse click fires)
    page.evaluate(
        """([i, k]) => { const p = document.querySelector('#chart .js-plotly-plot');
             const t = p.data[i];
             p.emit('plotly_click', {points: [{curveNumber: i, pointNumber: k, pointIndex: k,
               x: t.x[k], y: t.y[k], customdata: t.customdata[k], data: t, fullData: p._fullData[i]}]}); }""",
        estimate,
    )
    page.locator("[data-testid=explanation-figures]").wait_for(timeout=60_000)


def drive_data(page, downloads: Path) -> None:
    """The data sources: the summary table with units, the counts chart."""
    page.locator("#summary").get_by_text("aeration_rate").first.wait_for()
    wait_for_plot(page, "#counts")
    assert "m3/min" in page.inner_text("#summary")


def drive_sensors(page, downloads: Path) -> None:
    """The soft sensors: both registered, the production alias, the registry link, the newest version's training
    facts unfolded, its importance."""
    page.get_by_text("0002_[python]_penicillin_ridge").first.wait_for()
    assert "production" in page.inner_text("[data-testid=sensors]")
    assert "/registry/P0001/models/" in page.locator("[data-testid=registry-link]").first.get_attribute("href")
    training = page.locator("[data-testid=training]").first
    training.wait_for()
    assert "Training batches" in training.inner_text() and "batch_92, batch_93" in training.inner_text()
    page.locator("[data-testid=importance]").first.wait_for()


def drive_drift(page, downloads: Path) -> None:
    """A drift run with the defaults (the training batches as reference, KS, the model's inputs): a verdict, what
    it means, its plots; each parameter explained by its tooltip."""
    page.locator("[data-testid=params] .param").first.wait_for()
    tooltip = page.locator("[data-testid=params] .param").first.get_attribute("title")
    assert tooltip and len(tooltip) > 10
    page.wait_for_function("() => document.querySelector('#reference')?.innerText.includes('batch_92')", timeout=60_000)
    page.click("#run")
    verdict = page.locator("[data-testid=verdict]")
    verdict.wait_for(timeout=60_000)
    assert verdict.inner_text() in ("DRIFT", "NO DRIFT")
    explanation = page.inner_text("[data-testid=explanation]")
    assert "reference" in explanation.lower() or "score" in explanation
    page.wait_for_function("() => document.querySelectorAll('[data-testid=drift-result] .js-plotly-plot').length > 0")


def drive_divergence(page, downloads: Path) -> None:
    """Two versions on the live batch: the pair matrix and the plot."""
    page.wait_for_function("() => document.querySelector('#versions')?.innerText.includes('ridge')")
    page.click("#run")
    page.locator("[data-testid=pair-matrix]").wait_for(timeout=60_000)
    assert "vs" in page.inner_text("[data-testid=pair-matrix]")
    wait_for_plot(page, "[data-testid=divergence-result]")


def drive_simulation(page, downloads: Path) -> None:
    """A simulation: "Flag row" with no row selected is refused and the results stay; a selected row is flagged
    and listed under "Flagged rows"; the Excel export has the three sheets, the flag among them."""
    page.wait_for_function("() => document.querySelector('#version')?.innerText.includes('penicillin')", timeout=60_000)
    page.click("#run")
    page.locator("[data-testid=rows-scored]").wait_for(timeout=60_000)
    page.click("#flag-save")  # no row selected: a message, and the simulation stays
    page.locator("[data-testid=flag-message] .dash-error").wait_for(timeout=60_000)
    assert page.locator("[data-testid=rows-scored]").count() == 1
    assert page.locator("[data-testid=export-link]").count() == 1
    page.wait_for_function("() => document.querySelectorAll('#table td').length > 0")
    page.locator("#table input[type=radio]").first.click()
    page.fill("#flag-description", "Estimate lags the lab sample")
    page.click("#flag-save")
    page.locator("[data-testid=flag-message] .dash-ok").wait_for(timeout=60_000)
    page.check("#show input[value=flagged]")  # show only the flagged rows: fewer than a page of them
    page.wait_for_function(
        "() => { const rows = document.querySelectorAll('#table tbody tr input[type=radio]');"
        " return rows.length > 0 && rows.length < 15; }"
    )
    page.locator("#table").get_by_text("flagged by a person").first.wait_for()
    with page.expect_download() as info:
        page.click("[data-testid=export-link]")
    target = downloads / "simulation.xlsx"
    info.value.save_as(target)
    book = load_workbook(io.BytesIO(target.read_bytes()))
    assert book.sheetnames == ["Metadata", "Simulation", "Flagged measurements"]
    assert book["Simulation"].max_row > 100
    flagged = " ".join(str(c.value) for row in book["Flagged measurements"].iter_rows() for c in row if c.value)
    assert "Estimate lags the lab sample" in flagged


#: How each page is brought to the state worth checking (results on screen), with what it must then show.
DRIVERS: dict[str, Callable[[Any, Path], None]] = {
    "/operator/live/": drive_live,
    "/modeler/data/": drive_data,
    "/modeler/soft-sensors/": drive_sensors,
    "/modeler/drift/": drive_drift,
    "/modeler/divergence/": drive_divergence,
    "/modeler/simulation/": drive_simulation,
}


def screenshot(page, cdp, name: str) -> None:
    """The whole page as ``test-artifacts/<name>.png``, as ``tests.browser.screenshot`` takes it (Playwright's
    full-page size, captured beyond the viewport) but with Chromium's fast PNG encoding: still lossless, a
    larger file, a third less time per screenshot."""
    width, height = page.evaluate(
        """() => { const b = document.body, e = document.documentElement;
             return [Math.max(b.scrollWidth, e.scrollWidth, b.offsetWidth, e.offsetWidth, b.clientWidth, e.clientWidth),
                     Math.max(b.scrollHeight, e.scrollHeight, b.offsetHeight, e.offsetHeight, b.clientHeight,
                              e.clientHeight)]; }"""
    )
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    shot = cdp.send(
        "Page.captureScreenshot",
        {"format": "png", "clip": clip, "captureBeyondViewport": True, "optimizeForSpeed": True},
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def signed_in_pages(page, base_url: str, role: str) -> list[str]:
    """Sign ``role`` in through the login form; the pages its home links to (its home first)."""
    page.context.clear_cookies()
    sign_in(page, base_url, f"test-{role}", home=role)
    links = page.evaluate("() => [...document.querySelectorAll('a.tile')].map(a => a.href)")
    paths = [f"/home/{role}/"] + [
        urlparse(url).path
        for url in links
        if urlparse(url).netloc == urlparse(base_url).netloc
        and not urlparse(url).path.startswith(SKIPPED_PREFIXES)
        and not urlparse(url).path.endswith((".xlsx", ".zip", ".csv"))
    ]
    return list(dict.fromkeys(paths))


def walk(
    page, base_url: str, sessions: dict[str, list[dict]], visits: list[tuple[str, str]], downloads: Path
) -> dict[tuple[str, str], list[str]]:
    """Each ``(role, path)`` of ``visits`` in the role's session: load the page, settle it, drive it
    (``DRIVERS``, into ``downloads``), then at each width measure it (and screenshot it: ``SCREENSHOT_WIDTH``).
    The problems found, by ``(role, path)``: a driver's failed check raises at once."""
    problems: dict[tuple[str, str], list[str]] = {}
    cdp = page.context.new_cdp_session(page)
    requests: set = set()  # in flight
    host = urlparse(base_url).netloc
    left: list[str] = []  # requests to anywhere but the server, since the last visit's check

    def started(request) -> None:
        requests.add(request)
        url = urlparse(request.url)
        if url.scheme in ("http", "https") and url.netloc != host:
            left.append(request.url)

    def ended(request) -> None:
        requests.discard(request)

    listeners = {"request": started, "requestfinished": ended, "requestfailed": ended}
    for event, listener in listeners.items():
        page.on(event, listener)
    try:
        signed_in = None
        for role, path in visits:
            if role != signed_in:  # one context for every role, only its cookies change (its HTTP cache stays)
                page.context.clear_cookies()
                page.context.add_cookies(sessions[role])
                signed_in = role
            found = problems.setdefault((role, path), [])
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                if width == WIDTHS[0]:  # loaded and driven once, then only widened
                    response = page.goto(f"{base_url}{path}")
                    assert response is not None and response.status == 200, f"{role} {path}: {response.status}"
                    settle(page, requests)
                    if path in DRIVERS:
                        DRIVERS[path](page, downloads)
                        settle(page, requests)
                else:
                    settle(page, requests)
                measured = page.evaluate(MEASURE)
                if width == SCREENSHOT_WIDTH or measured:
                    name = path.strip("/").replace("/", "-") or "root"
                    screenshot(page, cdp, f"layout-{role}-{name}-{width}")
                found += [f"{role} {path} @{width}px: {p}" for p in measured]
            found += [f"{role} {path}: a request left the server: {url}" for url in left[:5]]
            left.clear()
    finally:  # the page serves the process's later tests
        for event, listener in listeners.items():
            page.remove_listener(event, listener)
        cdp.detach()
    return problems


def test_every_page_fits_from_1280_to_1920_px_with_readable_plots(live_server, role_users, indpensim_dir, tmp_path):
    seed_demo()
    visits: list[tuple[str, str]] = []
    seen: set[str] = set()
    sessions: dict[str, list[dict]] = {}  # role -> its session's cookies
    with browser_page(width=WIDTHS[0], height=900) as page:
        page.set_default_timeout(30_000)
        for role in ROLES:
            for path in signed_in_pages(page, live_server.url, role):
                if role == "admin" and path in seen:
                    continue  # the administrator sees the pages the others already showed
                seen.add(path)
                visits.append((role, path))
            sessions[role] = page.context.cookies()
        favicon = page.goto(f"{live_server.url}/favicon.ico")
        assert favicon is not None and favicon.status == 200 and "icon" in favicon.headers["content-type"]
        problems = walk(page, live_server.url, sessions, visits, tmp_path)
        page.context.clear_cookies()
        page.context.add_cookies(sessions["operator"])
        refused = page.goto(f"{live_server.url}/modeler/drift/")
        assert refused is not None and refused.status == 403, "an operator reaches the modeler's drift page"
    assert problems.keys() == set(visits), "some pages were not walked"
    assert {"/manager/overview/", *DRIVERS} <= seen, "a page with checks of its own was not walked"
    assert not any(problems.values()), "\n".join(p for visit in visits for p in problems[visit])

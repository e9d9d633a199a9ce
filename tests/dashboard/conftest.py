"""Dashboard fixtures: the IndPenSim demo seeded through the other apps' services."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .seed import seed_demo


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Units are cached per project; each test starts without them."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="module")
def _module_demo(django_db_setup, django_db_blocker):
    """The demo seeded once for the module, inside a transaction that is rolled back when the module ends. Each
    test's own transaction (``db``) is then a savepoint in it: what a test writes (a flag, a drift job) is rolled
    back after it, and the next test finds the demo as seeded. Seeding it for each test cost about 0.6 s of CPU
    per test (two models trained, explained and scored)."""
    from django.db import transaction

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield seed_demo()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def demo(request, _module_demo, db, role_users, indpensim_dir):
    """The module's demo (``_module_demo``). For tests that run in a transaction only: a live-server test's
    database is emptied after it, which would take the module's demo with it, so those seed their own
    (``test_browser.demo``)."""
    marker = request.node.get_closest_marker("django_db")
    assert not (marker and marker.kwargs.get("transaction")), "a transactional test seeds its own demo"
    return _module_demo


def dash_update(
    client,
    app: str,
    output: str,
    inputs: list[dict[str, Any]],
    state: list[dict[str, Any]] | None = None,
    changed: list[str] | None = None,
):
    """POST one callback to django-plotly-dash's update endpoint, as the browser does."""
    body = {
        "output": output,
        "outputs": _outputs(output),
        "inputs": inputs,
        "state": state or [],
        "changedPropIds": changed or [],
    }
    return client.post(
        f"/django_plotly_dash/app/{app}/_dash-update-component", data=json.dumps(body), content_type="application/json"
    )


def _outputs(output: str):
    if output.startswith(".."):
        parts = output[2:-2].split("...")
        return [{"id": p.split(".")[0], "property": p.split(".")[1]} for p in parts]
    item, prop = output.split(".")
    return {"id": item, "property": prop}


def response_json(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    return json.loads(response.content)["response"]

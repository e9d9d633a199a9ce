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


@pytest.fixture
def demo(db, role_users, indpensim_dir):
    return seed_demo()


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

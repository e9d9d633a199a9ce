"""The plant-connectivity page in Debian's Chromium: a modeler follows the home link and sees a live source
(connected, its counts) and the error a malformed message caused."""

from __future__ import annotations

import pytest

from apps.connectors import services
from apps.connectors.models import SourceError, SourceStatus
from tests.browser import browser_page, javascript_errors, screenshot, sign_in

from .peers import MqttPeer, topic_prefix, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_modeler_sees_a_live_source_and_its_errors(live_server, role_users, mqtt_broker, runner_threads):
    prefix = topic_prefix()
    source = services.data_source_create(
        name="reactor-hall",
        kind="mqtt",
        url=f"mqtt://{mqtt_broker[0]}:{mqtt_broker[1]}",
        client_id=f"c-{prefix}",
        rules=[{"pattern": f"{prefix}/{{device_id}}/{{observed_property}}", "project_name": "plant", "batch_id": "b"}],
    )
    runner_threads()
    wait_for(lambda: SourceStatus.objects.filter(data_source=source, connected=True).exists(), 10, "the connection")
    peer = MqttPeer(*mqtt_broker)
    peer.publish(f"{prefix}/R1/temperature", b"21.5")
    peer.publish(f"{prefix}/R1/temperature", b"not-a-number")
    wait_for(lambda: SourceError.objects.filter(data_source=source).exists(), 10, "the error")
    wait_for(lambda: SourceStatus.objects.get(data_source=source).points_total == 1, 10, "the report")
    peer.close()

    with browser_page() as page, javascript_errors(page) as errors:
        sign_in(page, live_server.url, "test-modeler", home="modeler")
        page.click("[data-testid=link-connectors]")
        page.wait_for_url(f"{live_server.url}/connectors/")
        row = page.locator("[data-testid=source-reactor-hall]")
        assert row.locator("[data-testid=connected]").text_content().strip() == "yes"
        assert row.locator("[data-testid=errors]").text_content().strip() == "1"
        assert "neither a number nor JSON" in page.text_content("[data-testid=source-errors]")
        assert "not-a-number" in page.text_content("[data-testid=source-errors]")
        screenshot(page, "connectors-page")
        assert errors == []

"""OPC UA in and out against a real asyncua server started by the test: browse-path mapping, subscriptions,
source timestamps and status codes kept, Bad/Uncertain stored as such, estimates written with their status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.connectors import services
from apps.connectors.models import QualitySample, SourceStatus
from apps.tsdb.backends import get_backend
from apps.tsdb.types import Collection, SeriesFilter

from .peers import OpcUaServer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def module_server():
    server = OpcUaServer({"R1": ["temperature", "ph"], "R2": ["temperature"]})
    yield server
    server.stop()


@pytest.fixture
def server(module_server):
    """The module's server, every node back to 0.0 and Good, as a new server has them (what a test wrote, a Bad
    status included, would otherwise reach the next test's subscriptions as their first values). Starting a
    server costs about 2 s of CPU: asyncua builds its whole standard address space."""
    for device, variable in module_server.nodes:
        module_server.write(device, variable, 0.0, when=datetime.now(UTC))
    return module_server


def raw_points(device: str, variable: str) -> list[tuple[int, float]]:
    backend = get_backend()
    found = [
        i.series
        for i in backend.list_series(
            collection=Collection.RAW, where=SeriesFilter(project_name="plant", device_id=device)
        )
        if i.series.observed_property == variable
    ]
    if not found:
        return []
    data = backend.read(
        collection=Collection.RAW, series=found[0], start=T0 - timedelta(days=1), end=T0 + timedelta(days=1)
    )
    return list(zip(data.times_ns.tolist(), data.values.tolist(), strict=True))


def test_subscribed_nodes_are_stored_with_source_timestamps_and_bad_status_is_kept_as_such(server, runner_threads):
    source = services.data_source_create(
        name="opc",
        kind="opcua",
        url=server.url,
        rules=[
            {
                "pattern": "Plant/{device_id}/{observed_property}",
                "project_name": "plant",
                "batch_id": "run-1",
                "sampling_interval_ms": 50,
                "unit": "degC",
            }
        ],
    )
    runner_threads()
    wait_for(lambda: SourceStatus.objects.filter(data_source=source, connected=True).exists(), 20, "the session")
    assert "3 node(s) monitored" in SourceStatus.objects.get(data_source=source).state
    server.write("R1", "temperature", 30.5, when=T0)
    wait_for(lambda: (int(T0.timestamp() * 1e9), 30.5) in raw_points("R1", "temperature"), 10, "the good value")
    server.write("R1", "temperature", 99.0, status=0x808C0000, when=T0 + timedelta(seconds=1))  # BadSensorFailure
    server.write(
        "R2", "temperature", 41.0, status=0x40900000, when=T0 + timedelta(seconds=2)
    )  # UncertainLastUsableValue
    wait_for(lambda: QualitySample.objects.count() == 2, 10, "two quality samples")
    bad = QualitySample.objects.get(device_id="R1")
    assert (bad.quality, bad.status_name, bad.status_code) == ("bad", "BadSensorFailure", 0x808C0000)
    assert bad.time_ns == int((T0 + timedelta(seconds=1)).timestamp() * 1e9)  # the source timestamp
    assert QualitySample.objects.get(device_id="R2").quality == "uncertain"
    assert [v for _, v in raw_points("R1", "temperature")] == [30.5]  # never stored as a value
    assert all(v != 41.0 for _, v in raw_points("R2", "temperature"))


def test_node_ids_map_directly_and_a_deadband_filters_small_changes(server, runner_threads):
    node = server.node_id("R1", "ph")
    source = services.data_source_create(
        name="opc-ids",
        kind="opcua",
        url=server.url,
        rules=[
            {
                "pattern": node,
                "project_name": "plant",
                "device_id": "R7",
                "batch_id": "b",
                "observed_property": "ph",
                "sampling_interval_ms": 20,
                "deadband": 0.5,
            }
        ],
    )
    runner_threads()
    wait_for(lambda: SourceStatus.objects.filter(data_source=source, connected=True).exists(), 20, "the session")
    for i, value in enumerate((7.0, 7.1, 7.2, 8.0)):
        server.write("R1", "ph", value, when=T0 + timedelta(seconds=10 + i))
        wait_for(lambda: True, 0.3, "")
    wait_for(lambda: [v for _, v in raw_points("R7", "ph")][-1:] == [8.0], 10, "the large change")
    assert 7.1 not in [v for _, v in raw_points("R7", "ph")] and 7.2 not in [v for _, v in raw_points("R7", "ph")]


def test_an_unreachable_server_is_reported_and_retried(runner_threads):
    from .peers import free_port

    source = services.data_source_create(name="opc-down", kind="opcua", url=f"opc.tcp://127.0.0.1:{free_port()}/")
    runner_threads()
    status = wait_for(
        lambda: SourceStatus.objects.filter(data_source=source).exclude(last_error="").first(), 20, "the error"
    )
    assert not status.connected and "reconnecting in" in status.state


def test_an_estimate_is_written_to_a_node_with_its_status_code_and_source_timestamp(server, deployment):
    from apps.connectors.publishers import Outgoing, publish

    connection = services.data_source_create(name="opc-out", kind="opcua", url=server.url)
    when = datetime(2026, 5, 1, 12, 0, 5, tzinfo=UTC)
    publish(
        connection=connection,
        messages=[Outgoing(server.node_id("R2", "temperature"), b"", 12.75, 0x40940000, when)],
        timeout=10,
    )
    value = server.read("R2", "temperature")
    assert value.Value.Value == 12.75
    assert value.StatusCode.value == 0x40940000
    assert value.SourceTimestamp.replace(tzinfo=UTC) == when

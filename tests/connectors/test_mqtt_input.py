"""MQTT in, against the real Mosquitto broker: mapping, payloads, errors, config changes, restarts, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.connectors import services
from apps.connectors.models import SourceError, SourceStatus
from apps.tsdb.backends import get_backend
from apps.tsdb.types import Collection, SeriesFilter

from .peers import MqttPeer, PrivateBroker, topic_prefix, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def stored(project: str = "plant") -> dict[tuple, list[tuple[datetime, float]]]:
    backend = get_backend()
    result = {}
    for info in backend.list_series(collection=Collection.RAW, where=SeriesFilter(project_name=project)):
        data = backend.read(
            collection=Collection.RAW,
            series=info.series,
            start=T0 - timedelta(days=3650),
            end=T0 + timedelta(days=3650),
        )
        key = (info.series.device_id, info.series.batch_id, info.series.source, info.series.observed_property)
        result[key] = [
            (datetime.fromtimestamp(t / 1e9, tz=UTC), float(v)) for t, v in zip(data.times_ns, data.values, strict=True)
        ]
    return result


def stored_count(project: str = "plant") -> int:
    return sum(len(v) for v in stored(project).values())


def source_for(url: str, prefix: str, **extra):
    rules = extra.pop(
        "rules",
        [
            {
                "pattern": f"{prefix}/{{device_id}}/{{observed_property}}",
                "project_name": "plant",
                "batch_id": "run-1",
                "unit": "degC",
                "scale": 2.0,
                "offset": 1.0,
            }
        ],
    )
    return services.data_source_create(
        name=extra.pop("name", "line-1"), kind="mqtt", url=url, client_id=f"c-{prefix}", rules=rules, **extra
    )


def status_of(source) -> SourceStatus:
    return SourceStatus.objects.get(data_source=source)


def test_values_are_stored_with_the_mapped_tags_unit_and_scale(mqtt_broker, runner_threads):
    prefix = topic_prefix()
    source_for(f"mqtt://{mqtt_broker[0]}:{mqtt_broker[1]}", prefix)
    runner_threads()
    wait_for(lambda: SourceStatus.objects.filter(connected=True).exists(), 10, "the connection")
    peer = MqttPeer(*mqtt_broker)
    peer.publish(f"{prefix}/R1/temperature", {"value": 20.5, "timestamp": T0.isoformat()})
    peer.publish(f"{prefix}/R1/temperature", {"value": 21.0, "timestamp": (T0 + timedelta(seconds=1)).timestamp()})
    peer.publish(f"{prefix}/R2/ph", b"7.25")
    wait_for(lambda: stored_count() == 3, 10, "three stored points")
    data = stored()
    assert data[("R1", "run-1", "sensor", "temperature")] == [(T0, 42.0), (T0 + timedelta(seconds=1), 43.0)]
    [(moment, value)] = data[("R2", "run-1", "sensor", "ph")]
    assert value == 15.5 and abs((datetime.now(UTC) - moment).total_seconds()) < 30  # stamped on arrival
    metadata = {m.observed_property: m.unit for m in get_backend().metadata_read(project_name="plant", device_id="R1")}
    assert metadata == {"temperature": "degC"}
    wait_for(lambda: SourceStatus.objects.get().points_total == 3, 5, "the report")
    from apps.connectors.health_checks import check_connectors

    health = check_connectors()
    assert health.ok and health.detail.startswith("1 source(s) connected")
    [part] = health.data["sources"]
    assert (part["name"], part["connected"], part["messages_total"], part["errors_total"]) == ("line-1", True, 3, 0)
    peer.close()


def test_a_malformed_payload_is_an_error_of_its_source_and_nothing_is_stored(mqtt_broker, runner_threads):
    prefix = topic_prefix()
    source = source_for(f"mqtt://{mqtt_broker[0]}:{mqtt_broker[1]}", prefix)
    runner_threads()
    wait_for(lambda: SourceStatus.objects.filter(data_source=source, connected=True).exists(), 10, "the connection")
    peer = MqttPeer(*mqtt_broker)
    peer.publish(f"{prefix}/R1/temperature", b"twelve")
    peer.publish(f"{prefix}/R1/temperature", {"value": "hot"})
    peer.publish(f"{prefix}/R1/temperature", {"value": 1, "timestamp": "yesterday"})
    peer.publish(f"{prefix}/R1/temperature", {"value": 3.0, "timestamp": T0.isoformat()})  # the connector keeps going
    wait_for(lambda: stored_count() == 1, 10, "the one good point")
    wait_for(lambda: SourceError.objects.filter(data_source=source).count() == 3, 5, "three logged errors")
    errors = list(SourceError.objects.filter(data_source=source).order_by("id"))
    assert [e.kind for e in errors] == ["payload"] * 3
    assert "neither a number nor JSON" in errors[0].message and errors[0].excerpt == "twelve"
    assert "value must be a number" in errors[1].message
    assert "not ISO 8601" in errors[2].message and errors[2].address == f"{prefix}/R1/temperature"
    wait_for(lambda: status_of(source).errors_total == 3 and status_of(source).messages_total == 4, 5, "the counters")
    assert status_of(source).connected
    peer.close()


def test_a_configuration_change_applies_without_a_restart(mqtt_broker, runner_threads):
    prefix = topic_prefix()
    source = source_for(f"mqtt://{mqtt_broker[0]}:{mqtt_broker[1]}", prefix)
    runner_threads()
    wait_for(lambda: SourceStatus.objects.filter(data_source=source, connected=True).exists(), 10, "the connection")
    services.data_source_update(
        data_source=source,
        data={},
        rules=[
            {
                "pattern": f"{prefix}/v2/+/{{observed_property}}",
                "project_name": "plant",
                "device_id": "R9",
                "batch_id": "run-2",
            }
        ],
    )
    version = source.config_version + 1
    wait_for(
        lambda: status_of(source).config_version == version and status_of(source).connected, 10, "the new configuration"
    )
    peer = MqttPeer(*mqtt_broker)
    peer.publish(f"{prefix}/v2/anything/pressure", {"value": 1.5, "timestamp": T0.isoformat()})
    wait_for(lambda: ("R9", "run-2", "sensor", "pressure") in stored(), 10, "the point under the new rule")
    services.data_source_update(data_source=source, data={"enabled": False})
    wait_for(lambda: not status_of(source).connected, 10, "the source to stop")
    peer.close()


def test_the_connector_reconnects_by_itself_after_the_broker_restarts(tmp_path, private_broker, runner_threads):
    prefix = topic_prefix()
    source = source_for(private_broker.url, prefix)
    runner_threads()
    wait_for(lambda: SourceStatus.objects.filter(data_source=source, connected=True).exists(), 10, "the connection")
    peer = MqttPeer("127.0.0.1", private_broker.port)
    peer.publish(f"{prefix}/R1/temperature", {"value": 1.0, "timestamp": T0.isoformat()})
    wait_for(lambda: stored_count() == 1, 10, "the first point")
    peer.close()
    private_broker.stop()
    wait_for(lambda: not status_of(source).connected, 10, "the disconnection to be reported")
    private_broker.start()
    wait_for(lambda: status_of(source).connected, 40, "the reconnection")
    peer = MqttPeer("127.0.0.1", private_broker.port)
    peer.publish(f"{prefix}/R1/temperature", {"value": 2.0, "timestamp": (T0 + timedelta(seconds=1)).isoformat()})
    wait_for(lambda: stored_count() == 2, 10, "the point after the restart")
    peer.close()


def test_wrong_credentials_show_the_brokers_refusal(tmp_path, runner_threads):
    from tests.services import mosquitto_available, require

    require(mosquitto_available(), "Mosquitto")
    broker = PrivateBroker(tmp_path, users={"plant": "right-password-123"})
    try:
        source = source_for(broker.url, topic_prefix(), username="plant", password="wrong-password")
        runner_threads()
        wait_for(
            lambda: SourceStatus.objects.filter(data_source=source).exclude(last_error="").exists(), 15, "the refusal"
        )
        status = status_of(source)
        assert not status.connected
        assert "refused" in status.last_error and "Not authorized" in status.last_error
        assert SourceError.objects.filter(data_source=source, kind="refused").exists()
        services.data_source_update(data_source=source, data={}, password="right-password-123")
        wait_for(lambda: status_of(source).connected, 15, "the connection with the right password")
    finally:
        broker.stop()

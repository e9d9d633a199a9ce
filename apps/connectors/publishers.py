"""Sending estimates out: to an MQTT topic (QoS 1, waiting for the broker's PUBACK) or to an OPC UA node
(a write of value, status code and source timestamp). A send either completes for every message or raises
``PublishFailed``; the caller logs and retries, so delivery is at least once.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .models import DataSource, SourceKind
from .transports import mqtt_client, mqtt_target, opcua_client


class PublishFailed(Exception):
    """The peer did not take every message (refused, unreachable, timed out)."""


@dataclass(frozen=True)
class Outgoing:
    """One estimate to send: the JSON body for MQTT, the value/status/time for OPC UA; ``retain`` (MQTT only)
    is the publication's, so messages of several publications share one send."""

    destination: str
    body: bytes
    value: float | None
    status_code: int
    source_time: datetime
    retain: bool = False


_mqtt_clients: dict[tuple[int, int, int], Any] = {}
#: One lock per client key, so a broker slow to answer holds up only its own sends (a delivery batch sends
#: to its connections side by side); ``_mqtt_lock`` guards only this dict.
_mqtt_locks: dict[tuple[int, int, int], threading.Lock] = {}
_mqtt_lock = threading.Lock()


def _mqtt_connected(source: DataSource, timeout: float) -> Any:
    """One connected publishing client per source configuration and process (workers are long-lived)."""
    key = (source.pk, source.config_version, os.getpid())
    with _mqtt_lock:
        lock = _mqtt_locks.setdefault(key, threading.Lock())
    with lock:
        client = _mqtt_clients.get(key)
        if client is not None and client.is_connected():
            return client
        if client is not None:
            client.loop_stop()
            client.disconnect()
        # Unique per client: a broker drops the older of two connections with one client id, and a process
        # may hold one client per configuration of a source (or per source of one name, recreated).
        client_id = f"stamm-out-{source.name}-{source.pk}-{os.getpid()}-{secrets.token_hex(3)}"[-100:]
        client = mqtt_client(source=source, client_id=client_id)
        result: dict[str, Any] = {}
        ready = threading.Event()

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            result["reason"] = reason
            ready.set()

        client.on_connect = on_connect
        target = mqtt_target(source.url)
        try:
            client.connect(target.host, target.port, keepalive=30)
        except OSError as exc:
            raise PublishFailed(f"cannot reach {source.url}: {exc}") from exc
        client.loop_start()
        if not ready.wait(timeout):
            client.loop_stop()
            raise PublishFailed(f"{source.url} did not answer the connection within {timeout:.0f} s")
        if result["reason"].is_failure:
            client.loop_stop()
            raise PublishFailed(f"{source.url} refused the connection: {result['reason']}")
        _mqtt_clients[key] = client
        return client


def _send_mqtt(source: DataSource, messages: list[Outgoing], *, timeout: float) -> None:
    client = _mqtt_connected(source, timeout)
    infos = [client.publish(m.destination, m.body, qos=1, retain=m.retain) for m in messages]
    deadline = time.monotonic() + timeout
    for message, info in zip(messages, infos, strict=True):
        try:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        except (RuntimeError, ValueError) as exc:
            raise PublishFailed(f"{message.destination}: {exc}") from exc
        if not info.is_published():
            raise PublishFailed(f"{source.url} did not acknowledge {message.destination} within {timeout:.0f} s")


async def _write_opcua(source: DataSource, messages: list[Outgoing], timeout: float) -> None:
    from asyncua import ua

    client = opcua_client(source=source, timeout=timeout)
    async with client:
        for message in messages:
            node = client.get_node(message.destination)
            variant = ua.Variant(message.value if message.value is not None else 0.0, ua.VariantType.Double)
            await node.write_value(
                ua.DataValue(
                    variant, StatusCode=ua.StatusCode(message.status_code), SourceTimestamp=message.source_time
                )
            )


def _send_opcua(source: DataSource, messages: list[Outgoing], *, timeout: float) -> None:
    try:
        asyncio.run(asyncio.wait_for(_write_opcua(source, messages, timeout), timeout * 2))
    except Exception as exc:  # noqa: BLE001 - any client or server error is a failed send, retried
        raise PublishFailed(f"{source.url}: {type(exc).__name__}: {exc}") from exc


def publish(*, connection: DataSource, messages: list[Outgoing], timeout: float) -> None:
    """Send every message or raise ``PublishFailed`` (MQTT: all published at once, then every PUBACK awaited
    within ``timeout``, so a batch costs about one round trip, not one per message)."""
    if not messages:
        return
    if connection.kind == SourceKind.MQTT:
        _send_mqtt(connection, messages, timeout=timeout)
    else:
        _send_opcua(connection, messages, timeout=timeout)

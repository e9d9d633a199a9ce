"""Building MQTT and OPC UA clients from a ``DataSource``: one place for URLs, TLS and credentials, used by
the connectors process (inputs) and by the workers that publish estimates (outputs).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .credentials import secret_open
from .models import DataSource

#: MQTT v5 Receive Maximum the connectors process announces: how many unacknowledged QoS 1 messages the
#: broker may send at once. Messages are acknowledged only after they are stored, so this is the window
#: that keeps a broker streaming while a batch commits (Mosquitto's max_inflight_messages applies to v3 only).
RECEIVE_MAXIMUM = 5000


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    tls: bool


def mqtt_target(url: str) -> MqttTarget:
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return MqttTarget(parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls)


def mqtt_client(*, source: DataSource, client_id: str, manual_ack: bool = False) -> Any:
    """A paho MQTT v5 client with the source's credentials and TLS set (not connected)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if source.username:
        client.username_pw_set(source.username, secret_open(source.password_sealed) or None)
    if mqtt_target(source.url).tls:
        context = ssl.create_default_context(cadata=source.tls_ca_certificate or None)
        client.tls_set_context(context)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def mqtt_connect_properties(*, session_expiry_seconds: int | None) -> Any:
    """CONNECT properties: a persistent session (when given an expiry) and our receive window."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)
    if session_expiry_seconds:
        properties.SessionExpiryInterval = int(session_expiry_seconds)
    properties.ReceiveMaximum = RECEIVE_MAXIMUM
    return properties


def opcua_client(*, source: DataSource, timeout: float = 10.0) -> Any:
    """An asyncua client with the source's user and password set (not connected)."""
    from asyncua import Client

    client = Client(url=source.url, timeout=timeout)
    if source.username:
        client.set_user(source.username)
        client.set_password(secret_open(source.password_sealed))
    return client

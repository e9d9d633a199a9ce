"""MQTT input: QoS 1 subscriptions on a persistent MQTT v5 session, acknowledged only after storing.

paho-mqtt runs its network loop in its own thread (it reconnects by itself, 1 → 30 s backoff); messages
cross into the event loop with ``call_soon_threadsafe``. The client sets ``manual_ack``: a message is
acknowledged once its batch is committed, so a connector killed before that gets the message again from the
broker (persistent session, ``clean_start=False``), and the upsert on (series, time) stores it once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..credentials import CredentialsUnreadable
from ..mapping import PayloadError, payload_parse
from ..models import ErrorKind
from ..transports import mqtt_client, mqtt_connect_properties, mqtt_target
from .base import CompiledRule, Incoming, SourceInput

#: Topics remembered with their rule and series key (bounded: a topic explosion cannot grow memory).
TOPIC_CACHE_SIZE = 100_000


class MqttInput(SourceInput):
    client: Any = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._accepting = True
        self._refused = False
        self._topics: dict[str, tuple[CompiledRule, Any] | None] = {}
        try:
            client = mqtt_client(source=self.source, client_id=self.source.mqtt_client_id, manual_ack=True)
        except CredentialsUnreadable as exc:
            self.stats.refused(str(exc))
            return
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        target = mqtt_target(self.source.url)
        self.stats.down(f"connecting to {target.host}:{target.port}")
        client.connect_async(
            target.host,
            target.port,
            keepalive=30,
            clean_start=False,
            properties=mqtt_connect_properties(session_expiry_seconds=self.source.session_expiry_seconds),
        )
        client.loop_start()
        self.client = client

    async def stop(self) -> None:
        """Stop taking messages (unacknowledged ones stay with the broker's session), then disconnect."""
        self._accepting = False
        if self.client is not None:
            client, self.client = self.client, None
            await asyncio.to_thread(self._close, client)
        self.stats.down("stopped")

    @staticmethod
    def _close(client: Any) -> None:
        client.disconnect()
        client.loop_stop()

    # -- paho callbacks (network thread) -------------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = True  # the disconnect that follows is this refusal, not a new error
            message = f"broker refused the connection: {reason}"
            self.loop.call_soon_threadsafe(self.stats.refused, message)
            return
        self._refused = False
        filters = sorted({rule.pattern.subscription() for rule in self.rules})
        if filters:
            client.subscribe([(f, 1) for f in filters])
        resumed = getattr(flags, "session_present", False)
        state = f"connected, {len(filters)} subscription(s)" + (", session resumed" if resumed else "")
        self.loop.call_soon_threadsafe(self.stats.up, state)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self._accepting and not self._refused:
            message = f"disconnected: {reason}; reconnecting"
            self.loop.call_soon_threadsafe(self._disconnected, message, not reason.is_failure)

    def _disconnected(self, message: str, clean: bool) -> None:
        self.stats.down(message)
        if not clean:
            self.stats.error(ErrorKind.CONNECTION, message)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        arrival_ns = time.time_ns()
        self.loop.call_soon_threadsafe(
            self._handle, message.topic, message.payload, message.mid, message.qos, arrival_ns
        )

    # -- event loop --------------------------------------------------------------------------------------
    def _ack(self, mid: int, qos: int) -> Any:
        client = self.client

        def ack() -> None:
            if client is not None and qos:
                client.ack(mid, qos)

        return ack

    def _route(self, topic: str) -> tuple[CompiledRule, Any] | None:
        if topic in self._topics:
            return self._topics[topic]
        found = None
        path = topic.split("/")
        for rule in self.rules:
            captures = rule.pattern.match(path)
            if captures is not None:
                found = (rule, rule.key(captures))
                break
        if len(self._topics) < TOPIC_CACHE_SIZE:
            self._topics[topic] = found
        return found

    def _handle(self, topic: str, payload: bytes, mid: int, qos: int, arrival_ns: int) -> None:
        if not self._accepting or self.paused:
            return  # not acknowledged: the broker keeps it for the next session
        self.stats.message()
        ack = self._ack(mid, qos)
        try:
            routed = self._route(topic)
            if routed is None:
                raise PayloadError("no mapping rule matches this topic")
            reading = payload_parse(payload)
        except (PayloadError, ValueError) as exc:
            kind = ErrorKind.PAYLOAD if isinstance(exc, PayloadError) else ErrorKind.MAPPING
            self.stats.error(kind, str(exc), address=topic, excerpt=payload[:200].decode("utf-8", "replace"))
            ack()  # a malformed message will not get better: acknowledge it, nothing stored
            return
        rule, key = routed
        self.sink(Incoming(self.source.pk, key, rule, reading, arrival_ns, ack))

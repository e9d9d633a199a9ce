"""Real peers for the connectors tests: private Mosquitto brokers, an MQTT publisher/collector, an asyncua
server in its own thread, and the connectors runner in a thread of this process.

The shared broker (``STAMM_TEST_MQTT_URL``) is only ever used with a random topic prefix per test; a test
that restarts a broker or needs passwords starts its own ``mosquitto`` on a free port.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tests.services import MOSQUITTO, MQTT_URL, _port_open


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def topic_prefix() -> str:
    return f"stamm-test-{uuid.uuid4().hex[:10]}"


def shared_broker() -> tuple[str, int]:
    parsed = urlparse(MQTT_URL)
    return parsed.hostname or "127.0.0.1", parsed.port or 1883


class PrivateBroker:
    """A ``mosquitto`` of this test only, on a free port; optional password file; restartable."""

    def __init__(self, tmp: Path, *, users: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.conf = tmp / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {tmp}/"]
        if os.geteuid() == 0:  # as root mosquitto would switch to its own user, who cannot read pytest's tmp dir
            lines.append("user root")
        if users:
            passwd = tmp / "passwd"
            passwd.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
            os.chmod(passwd, 0o644)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.tmp / "mosquitto.log").open("ab") as log:  # the broker has its own copy of the file
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: _port_open("127.0.0.1", self.port), 10, "the private broker")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


class MqttPeer:
    """A plain paho client (the plant side): publishes QoS 1 and collects what arrives on a filter."""

    def __init__(self, host: str, port: int, *, subscribe: str | None = None, username: str = "", password: str = ""):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.received: list[tuple[str, dict | bytes, bool]] = []
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"peer-{secrets.token_hex(4)}"
        )
        if username:
            self.client.username_pw_set(username, password)
        ready = threading.Event()
        self.client.on_connect = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert ready.wait(10), "the peer could not connect"
        if subscribe:
            done = threading.Event()
            self.client.on_subscribe = lambda *a: done.set()
            self.client.subscribe(subscribe, qos=1)
            assert done.wait(10)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            body: dict | bytes = json.loads(message.payload)
        except ValueError:
            body = message.payload
        self.received.append((message.topic, body, bool(message.retain)))

    def publish(self, topic: str, payload: Any, *, qos: int = 1) -> None:
        data = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        self.client.publish(topic, data, qos=qos).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class RunnerThread:
    """The connectors runner in a background thread with its own event loop (stopped like Ctrl-C)."""

    def __init__(self, **options: Any) -> None:
        from apps.connectors.runner import Runner

        options.setdefault("poll", 0.2)
        options.setdefault("status_interval", 0.3)
        options.setdefault("flush_ms", 30)
        self.runner = Runner(**options)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)

            async def run() -> None:
                self.stop_event = asyncio.Event()
                started.set()
                await self.runner.run(self.stop_event)

            try:
                self.loop.run_until_complete(run())
            except BaseException as exc:  # surfaced by stop()
                self.error = exc
            finally:
                from django.db import connections

                connections.close_all()
                self.loop.close()  # an unclosed loop warns (ResourceWarning) in whichever test collects it

        self.thread = threading.Thread(target=main, name="connectors-runner", daemon=True)
        self.thread.start()
        assert started.wait(10)

    def stop(self) -> None:
        if self.stop_event is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
            self.thread.join(30)
        assert not self.thread.is_alive(), "the runner did not stop"
        if self.error is not None:
            raise self.error


class OpcUaServer:
    """An asyncua server in its own thread and event loop, with a Plant/<device>/<variable> address space.

    ``nodes[(device, variable)]`` are Double variables (writable, so estimates can be written back too).
    ``write(device, variable, value, status=0, when=None)`` changes one from the server side.
    """

    def __init__(self, devices: dict[str, list[str]]) -> None:
        self.port = free_port()
        self.url = f"opc.tcp://127.0.0.1:{self.port}/stamm/"
        self.nodes: dict[tuple[str, str], Any] = {}
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stopping: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.devices = devices
        self.thread = threading.Thread(target=self._main, name="opcua-server", daemon=True)
        self.thread.start()
        assert self.ready.wait(30), f"the OPC UA server did not start: {self.error}"

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:
            self.error = exc
            self.ready.set()
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        from asyncua import Server, ua

        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        namespace = await server.register_namespace("urn:stamm:test")
        plant = await server.nodes.objects.add_object(namespace, "Plant")
        for device, variables in self.devices.items():
            folder = await plant.add_object(namespace, device)
            for variable in variables:
                node = await folder.add_variable(namespace, variable, 0.0, varianttype=ua.VariantType.Double)
                await node.set_writable()
                self.nodes[(device, variable)] = node
        self.namespace = namespace
        self.stopping = asyncio.Event()
        async with server:
            self.ready.set()
            await self.stopping.wait()

    def call(self, coroutine: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def write(self, device: str, variable: str, value: float | None, *, status: int = 0, when: Any = None) -> None:
        from asyncua import ua

        node = self.nodes[(device, variable)]
        data_value = ua.DataValue(
            ua.Variant(value, ua.VariantType.Double) if value is not None else ua.Variant(0.0, ua.VariantType.Double),
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=when,
            ServerTimestamp=when,
        )
        self.call(node.write_value(data_value))

    def read(self, device: str, variable: str) -> Any:
        return self.call(self.nodes[(device, variable)].read_data_value(raise_on_bad_status=False))

    def node_id(self, device: str, variable: str) -> str:
        return self.nodes[(device, variable)].nodeid.to_string()

    def stop(self) -> None:
        if self.stopping is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)

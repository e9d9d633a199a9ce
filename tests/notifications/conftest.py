"""Real servers for the notification tests, each on a port the OS picks (safe under xdist): an SMTP server
(aiosmtpd's SMTP protocol on an asyncio loop in a thread) and an HTTP webhook receiver that answers with
scripted status codes and keeps every request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.services import aiosmtpd_available, require


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@pytest.fixture
def smtp_server(settings) -> Iterator[Mailbox]:
    """A real SMTP server; Django's SMTP backend is pointed at it."""
    require(aiosmtpd_available(), "aiosmtpd (requirements/dev.txt)")
    from aiosmtpd.smtp import SMTP

    loop = asyncio.new_event_loop()
    box = Mailbox("127.0.0.1", 0)

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            box.messages.append(message_from_bytes(envelope.content))
            return "250 Message accepted for delivery"

    server = loop.run_until_complete(loop.create_server(lambda: SMTP(Handler()), host=box.host, port=0))
    box.port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = box.host, box.port, False
    try:
        yield box
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()  # an unclosed loop warns (ResourceWarning) in whichever later test collects it


@dataclass
class Receiver:
    url: str
    statuses: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    """A local HTTP server: each POST is kept and answered with the next scripted status (200 when none left)."""
    receiver = Receiver("", [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(({k: v for k, v in self.headers.items()}, body))
            code = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def deployment(db, role_users):
    from apps.orchestrator.services import deployment_create
    from tests.drift.conftest import register_model

    version = register_model(user=role_users["modeler"])
    return deployment_create(user=role_users["modeler"], name="penicillin-ridge", soft_sensor=version.soft_sensor,
                             alias="production", max_input_age_seconds=900)


@pytest.fixture
def eager_celery():
    """Tasks queued on commit run in-process (retries included, at once)."""
    from stamm_site.celery import app

    saved = {k: app.conf[k] for k in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=False)
    yield app
    app.conf.update(saved)

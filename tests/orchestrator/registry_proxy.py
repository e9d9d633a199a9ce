"""A real HTTP proxy in front of the registry, for injecting failures and delays into predict calls."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class RegistryProxy:
    """Relays GET and POST to ``target``; the next ``fail_next`` POSTs get ``status`` with ``body``
    instead, and each relayed POST waits ``delay`` seconds. Counts ``posts`` and ``failed``.

    Serves from construction until ``close`` (or the end of a ``with`` block).
    """

    def __init__(
        self,
        target: str,
        *,
        failures: int = 0,
        status: int = 500,
        body: bytes = b'{"error": {"message": "injected failure"}}',
        delay: float = 0.0,
    ) -> None:
        self.target = target.rstrip("/")
        self.fail_next, self.status, self.body, self.delay = failures, status, body, delay
        self.posts = 0
        self.failed = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _relay(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                if method == "POST":
                    proxy.posts += 1
                    if proxy.fail_next > 0:
                        proxy.fail_next -= 1
                        proxy.failed += 1
                        self._send(proxy.status, "application/json", proxy.body)
                        return
                    time.sleep(proxy.delay)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type", "accept")
                }
                upstream = requests.request(method, proxy.target + self.path, data=data, headers=headers, timeout=60)
                self._send(
                    upstream.status_code, upstream.headers.get("Content-Type", "application/json"), upstream.content
                )

            def do_GET(self):
                self._relay("GET")

            def do_POST(self):
                self._relay("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RegistryProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

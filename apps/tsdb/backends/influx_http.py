"""InfluxDB's HTTP API as the backend speaks it: requests with the backend's credentials and timeout,
chunked ``/query`` answers merged back into one result per statement, gzip-compressed ``/write`` requests.

A mixin of ``InfluxBackend`` (which sets ``session``, ``url``, ``timeout`` and ``batch_size``), kept apart
so the transport is read in one place and the backend module holds what the data mean.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from typing import Any

import requests

from .base import BackendError

#: Rows per chunk of a chunked /query answer.
CHUNK_ROWS = 10_000


class InfluxHttp:
    """``/query`` and ``/write`` over the backend's session; every failure is a ``BackendError``."""

    session: requests.Session
    url: str
    timeout: float
    batch_size: int

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise BackendError(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        if response.status_code in (401, 403):
            raise BackendError(f"InfluxDB at {self.url} refused the credentials ({response.status_code})")
        return response

    @staticmethod
    def _error_text(response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text.strip()[:500] or response.reason
        if isinstance(body, dict):
            return str(body.get("error") or body.get("message") or body)[:500]
        return str(body)[:500]

    def query(self, statements: str | Sequence[str], *, database: str | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL statements in one request; one result dict per statement (errors raise).

        Asks for a chunked answer (a stream of JSON documents of at most ``CHUNK_ROWS`` rows each), so a
        server's ``max-row-limit`` cannot silently truncate a long read; the chunks are merged back into
        one result per statement. A server that ignores ``chunked`` answers one document: same code path.
        """
        text = statements if isinstance(statements, str) else ";\n".join(statements)
        data = {"q": text, "epoch": "ns", "chunked": "true", "chunk_size": str(CHUNK_ROWS)}
        if database is not None:
            data["db"] = database
        response = self._request("POST", "/query", data=data, stream=True)
        if response.status_code != 200:
            raise BackendError(f"InfluxDB query failed ({response.status_code}): {self._error_text(response)}")
        merged: dict[int, dict[str, Any]] = {}
        try:
            for raw in response.iter_lines():
                if not raw.strip():
                    continue
                body = json.loads(raw)
                if "error" in body:
                    raise BackendError(f"InfluxDB query failed: {body['error']}")
                for result in body.get("results", []):
                    if "error" in result:
                        raise BackendError(f"InfluxDB refused a statement: {result['error']}")
                    target = merged.setdefault(result.get("statement_id", 0), {"series": []})
                    for series in result.get("series", []):
                        last = target["series"][-1] if target["series"] else None
                        if (
                            last is not None
                            and last.get("name") == series.get("name")
                            and last.get("tags") == series.get("tags")
                            and last.get("columns") == series.get("columns")
                        ):
                            last["values"].extend(series.get("values") or [])
                        else:
                            target["series"].append({**series, "values": list(series.get("values") or [])})
        except (requests.RequestException, ValueError) as exc:
            raise BackendError(f"InfluxDB answered a malformed query result: {exc}") from exc
        finally:
            response.close()
        return [merged.get(i, {"series": []}) for i in range(max(merged, default=-1) + 1)] or [{"series": []}]

    def _write_lines(self, database: str, lines: list[str], *, already: int = 0, total: int | None = None) -> int:
        """Send lines in gzip-compressed requests of ``batch_size``; returns the lines sent."""
        sent = 0
        total = len(lines) if total is None else total
        for start in range(0, len(lines), self.batch_size):
            chunk = lines[start : start + self.batch_size]
            body = gzip.compress(("\n".join(chunk) + "\n").encode("utf-8"), compresslevel=1)
            response = self._request(
                "POST",
                "/write",
                params={"db": database, "precision": "ns"},
                data=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
            )
            if response.status_code != 204:
                raise BackendError(
                    f"InfluxDB refused a write to {database} ({response.status_code}): {self._error_text(response)}; "
                    f"{already + sent} of {total} points were written before (re-sending the batch is safe)"
                )
            sent += len(chunk)
        return sent

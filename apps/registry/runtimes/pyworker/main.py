"""The Python model worker process: one JSON request line (plus raw bytes) in, one JSON reply line (plus raw
bytes) out, until stdin closes. Protocol: ``docs/registry.md`` ("Model runtimes"); the client side is
``apps/registry/runtimes/python.py``.

Started as ``<environment python> -I -B .../pyworker/main.py`` inside the sandbox of ``sandbox.py``. The real
stdout is kept for the protocol and file descriptor 1 is pointed at stderr, so whatever a model or a library
prints can never corrupt a reply. Every request is handled inside ``try``: a bad artefact or a failing
``predict`` answers ``{"ok": false, "error": ...}`` and the worker goes on.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import traceback
import warnings
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: never shadows the environment's packages

from pyworker import explain, models  # noqa: E402


class RequestError(Exception):
    """A malformed request (the stream stays in step: the payload has been read)."""


def _protocol_streams():
    """The protocol's stdin/stdout as raw binary files; fd 1 then points at stderr."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return sys.stdin.buffer, os.fdopen(out_fd, "wb", buffering=0)


def _read_exact(stream, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("stdin ended inside a payload")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _reply(out, request_id, fields: dict, payload: bytes | None = None) -> None:
    body = {"id": request_id, **fields}
    if payload is not None:
        body["payload_bytes"] = len(payload)
    line = json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode("utf-8") + b"\n"
    out.write(line + payload if payload is not None else line)


def _ping() -> dict:
    return {
        "python": platform.python_version(),
        "pid": os.getpid(),
        "executable": sys.executable,
        "loaded": len(models.LOADED),
        "packages": models.package_versions(),
        "cwd": os.getcwd(),
    }


def handle(request: dict, payload: bytes | None) -> tuple[dict, bytes | None]:
    op = request.get("op")
    if op == "ping":
        return _ping(), None
    if op == "load":
        return models.load(request), None
    if op == "predict":
        if payload is None:
            raise RequestError("predict needs the input matrix as payload")
        return models.predict(request, payload)
    if op == "explain":
        if payload is None:
            raise RequestError("explain needs the input rows as payload")
        return explain.explain(request, payload)
    if op == "to_onnx":
        return models.to_onnx(request)
    if op == "unload":
        models.LOADED.pop(str(request.get("key")), None)
        explain.EXPLAINERS.pop(str(request.get("key")), None)
        return {}, None
    raise RequestError(f"unknown op {op!r}")


def main() -> int:
    stdin, out = _protocol_streams()
    warnings.simplefilter("default")
    while True:
        line = stdin.readline()
        if not line:
            return 0  # stdin closed: the owner is gone or closed us
        if not line.strip():
            continue
        request_id = None
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise RequestError("a request is a JSON object with an 'op'")
            request_id = request.get("id")
            size = request.get("payload_bytes")
            payload = _read_exact(stdin, int(size)) if isinstance(size, int) and size >= 0 else None
            if request.get("op") == "quit":
                _reply(out, request_id, {"ok": True})
                return 0
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fields, data = handle(request, payload)
            notes = sorted({f"{w.category.__name__}: {w.message}" for w in caught})[:20]
            _reply(out, request_id, {"ok": True, "warnings": notes, **fields}, data)
        except EOFError:
            return 0
        except (models.ModelError, RequestError, ValueError) as exc:
            _reply(out, request_id, {"ok": False, "error": str(exc), "warnings": []})
        except Exception as exc:  # noqa: BLE001 - any failure of model code is that request's error
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            print(traceback.format_exc(), file=sys.stderr)
            _reply(out, request_id, {"ok": False, "error": detail, "warnings": []})


if __name__ == "__main__":
    sys.exit(main())

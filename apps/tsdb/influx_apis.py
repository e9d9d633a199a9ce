"""InfluxDB-compatible write endpoints, so Telegraf, Node-RED and the influxdb-client libraries write here.

``POST /api/v2/write?bucket=&org=&precision=`` (InfluxDB 2.x) and ``POST /write?db=&precision=``
(InfluxDB 1.x, also 2.x's v1 compatibility API): line protocol, optionally gzip-compressed.

Unlike the rest of the API these two endpoints answer with InfluxDB's status codes and error body,
``{"code": "invalid", "message": "line 3: ..."}`` (plus ``"line"`` when one line is at fault, and, on
``/write``, the 1.x ``"error"`` key), because the clients they exist for parse that shape:

- 204 written; 400 ``invalid`` (bad line protocol: the line number and the problem; bad precision;
  missing bucket/db); 401 ``unauthorized``; 403 ``forbidden`` (the token's user lacks the
  ``ingest_data`` capability); 404 ``not found`` (unknown bucket/db); 413 ``request too large`` (over
  ``settings.TSDB_LINE_PROTOCOL_MAX_BYTES`` after decompression); 415 ``unsupported media type``
  (Content-Type or Content-Encoding); 503 ``unavailable`` (the time-series store is down).
- Auth: ``Authorization: Token <API token>`` (this platform's API token; ``Bearer`` too), or the token
  as the password of HTTP basic auth; on ``/write`` only, also as ``p=`` (with ``u=``, the 1.x way; the
  user name is not checked): the one place a key is accepted in a URL, because 1.x clients know no other.
- Buckets/databases: ``stamm_raw``, ``stamm_predictions``, ``stamm_metadata`` (a ``/<rp>`` suffix and
  ``rp=`` are accepted and ignored; ``org``/``orgID`` too: the platform has one organisation).

The body is read in 1 MiB pieces, decompressed in bounded steps and parsed as it arrives; a web
process's memory does not grow with the body (``benchmarks/ingest.py`` measures it). Either way a
rejected body writes nothing and the after-commit hook fires once the whole body is stored:

- On a ``transactional`` backend (SQL), each ``FEED_SIZE`` piece is written as soon as it has parsed,
  through ``points_stream``, inside one transaction: a bad line later in the body rolls everything back.
  On PostgreSQL the database inserts one piece while the next parses (``backends/sql/stream.py``).
- On the others (InfluxDB, which cannot roll back), nothing is written until the whole body has parsed
  and validated. A body of up to ``CHUNK_POINTS`` points is then written by one ``points_ingest`` call;
  a larger one is re-read from a spool (memory, then a temporary file) and written ``CHUNK_POINTS`` at a
  time.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
import time
import zlib
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import transaction
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, TokenAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.common.errors import ApplicationError
from apps.common.permissions import capability

from .backends import TimeSeriesBackend, get_backend
from .lineprotocol import LineProtocolError, LineProtocolParser, MetadataLineParser
from .services import points_ingest, points_stream, variable_metadata_store
from .types import DEFAULT_BUCKETS, Collection

READ_SIZE = 1024 * 1024
#: Bytes parsed, then written, per step on a transactional backend: small enough that PostgreSQL inserts
#: one step while the next one parses, large enough that the vectorised parser pays its setup rarely.
FEED_SIZE = 256 * 1024
#: Points written per ``points_ingest`` call for large bodies (bounds the memory of one request).
CHUNK_POINTS = 50_000
#: Decompressed body bytes kept in memory before the spool for the second pass moves to a temporary file.
SPOOL_MEMORY = 8 * 1024 * 1024
#: Decompressed bytes produced per zlib call, so a small gzip body cannot expand all at once in memory.
INFLATE_STEP = 4 * 1024 * 1024
BUCKETS = {name: collection for collection, name in DEFAULT_BUCKETS.items()}
#: Content types line-protocol clients send (curl --data-binary sends the form type); anything else is 415.
ACCEPTED_CONTENT_TYPES = frozenset(
    {"", "text/plain", "application/octet-stream", "application/x-www-form-urlencoded", "application/vnd.influx"}
)
#: InfluxDB's error code per HTTP status.
CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "request too large",
    415: "unsupported media type",
    429: "too many requests",
    503: "unavailable",
}


class InfluxError(Exception):
    """An error answered in InfluxDB's shape."""

    def __init__(self, status: int, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.line = line


def _token_authenticator() -> TokenAuthentication:
    """The project's token authentication (the first ``TokenAuthentication`` in the DRF settings): this
    app checks no token itself, it only finds the key where InfluxDB clients put it."""
    for authentication_class in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        if issubclass(authentication_class, TokenAuthentication):
            return authentication_class()
    raise exceptions.AuthenticationFailed("token authentication is not configured")


class InfluxTokenAuthentication(BaseAuthentication):
    """This platform's API token, presented the ways InfluxDB clients present theirs.

    ``Authorization: Token|Bearer <key>`` or HTTP basic auth with the key as password, on both endpoints;
    the ``p`` query parameter (the key; ``u`` is not checked) only where ``query_password`` is set — the
    1.x ``/write``, whose clients know no other way. Nowhere else does the platform read a key from a URL.
    """

    keywords = ("token", "bearer")
    query_password = False

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, credential = header.partition(" ")
        scheme = scheme.lower()
        if scheme in self.keywords:
            key = credential.strip()
        elif scheme == "basic":
            try:
                decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise exceptions.AuthenticationFailed("malformed basic authorization header") from None
            key = decoded.partition(":")[2]
        elif not header and self.query_password and request.query_params.get("p"):
            key = request.query_params["p"]
        else:
            return None
        if not key:
            raise exceptions.AuthenticationFailed("empty token")
        try:
            return _token_authenticator().authenticate_credentials(key)
        except exceptions.AuthenticationFailed as exc:
            detail = str(exc.detail)
            raise exceptions.AuthenticationFailed(
                detail if "expired" in detail else "unauthorized access"
            ) from None

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="stamm"'


class InfluxV1TokenAuthentication(InfluxTokenAuthentication):
    query_password = True


_HEADER_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Authorization",
    "description": "`Token <API token>` (also `Bearer <API token>`, or basic auth with the token as password)",
}


class InfluxTokenScheme(OpenApiAuthenticationExtension):
    target_class = InfluxTokenAuthentication
    name = "influxToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return _HEADER_SCHEME


class InfluxV1TokenScheme(OpenApiAuthenticationExtension):
    target_class = InfluxV1TokenAuthentication
    name = "influxV1Password"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "query",
            "name": "p",
            "description": "The API token as the 1.x `p` password (with any `u`); only on `/write`.",
        }

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"influxToken": []}, {self.name: []}]


class _GzipStream:
    """Incremental gzip decompression in bounded steps; several gzip members in a row (``cat a.gz b.gz``,
    valid gzip that InfluxDB reads whole) are decompressed one after the other."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=31)

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Decompress ``chunk`` ``INFLATE_STEP`` bytes at a time, yielding each step as it is produced."""
        data = chunk
        while data:
            if self._inflater.eof:  # the next member starts here
                self._inflater = zlib.decompressobj(wbits=31)
            try:
                piece = self._inflater.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                raise InfluxError(400, f"body is not valid gzip: {exc}") from None
            data = self._inflater.unconsumed_tail or (self._inflater.unused_data if self._inflater.eof else b"")
            yield piece

    def finish(self) -> bytes:
        try:
            tail = self._inflater.flush()
        except zlib.error as exc:
            raise InfluxError(400, f"body is not valid gzip: {exc}") from None
        if not self._inflater.eof:
            raise InfluxError(400, "body is not valid gzip: truncated stream")
        return tail


def influx_error_body(status: int, message: str, *, line: int | None = None, v1: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"code": CODES.get(status, "internal error"), "message": message}
    if line:
        body["line"] = line
    if v1:
        body["error"] = message
    return body


class _LineProtocolWriteApi(APIView):
    """Shared machinery of the two write endpoints; subclasses say where bucket and errors go."""

    authentication_classes = [InfluxTokenAuthentication]
    permission_classes = [capability("ingest_data")]
    renderer_classes = [JSONRenderer]
    parser_classes: list = []
    throttle_classes: list = []
    v1 = False

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # Clients send all sorts of Accept headers; the answer is always InfluxDB's JSON (or nothing).
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    def get_exception_handler(self):  # noqa: ANN201 (DRF's handler signature)
        return self._handle_error

    def _handle_error(self, exc: Exception, context: dict[str, Any]) -> Response | None:
        line = None
        if isinstance(exc, InfluxError):
            status, message, line = exc.status, exc.message, exc.line
        elif isinstance(exc, ApplicationError):
            status, message = exc.status_code, exc.message
        elif isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            status = 401
            message = "unauthorized access" if isinstance(exc, exceptions.NotAuthenticated) else str(exc.detail)
        elif isinstance(exc, exceptions.PermissionDenied):
            status, message = 403, "this token's user may not write data (the ingest_data capability is missing)"
        elif isinstance(exc, exceptions.APIException):
            status, message = exc.status_code, str(exc.detail)
        else:
            return None
        response = Response(influx_error_body(status, message, line=line, v1=self.v1), status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Token realm="stamm"'
        return response

    # --- request pieces ---------------------------------------------------------------------------
    def _collection(self, name: str | None, what: str) -> Collection:
        if not name:
            raise InfluxError(400, f"{what} is required")
        collection = BUCKETS.get(name.split("/", 1)[0])
        if collection is None:
            if self.v1:
                raise InfluxError(404, f'database not found: "{name}"')
            raise InfluxError(404, f'bucket "{name}" not found')
        return collection

    @staticmethod
    def _check_headers(request: Request, limit: int) -> bool:
        """Validate Content-Type, Content-Encoding and Content-Length; True when the body is gzip."""
        content_type, _, params = request.META.get("CONTENT_TYPE", "").partition(";")
        if content_type.strip().lower() not in ACCEPTED_CONTENT_TYPES:
            raise InfluxError(
                415, f"unsupported Content-Type {content_type.strip()!r}: send line protocol as text/plain"
            )
        charset = params.strip().lower()
        if charset.startswith("charset=") and charset[8:].strip('"') not in ("utf-8", "utf8"):
            raise InfluxError(415, f"unsupported charset {charset[8:]!r}: line protocol is UTF-8")
        encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding not in ("", "identity", "gzip"):
            raise InfluxError(415, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise InfluxError(400, "invalid Content-Length") from None
        if length > limit:
            raise InfluxError(413, f"request body of {length} bytes is over the limit of {limit} bytes")
        return encoding == "gzip"

    @staticmethod
    def _raw_chunks(request: Request) -> Iterator[bytes]:
        django_request = request._request
        if request.META.get("CONTENT_LENGTH"):
            read = django_request.read
        elif request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            read = request.META["wsgi.input"].read  # the WSGI server de-chunks; Django would see no body
        else:
            return
        while chunk := read(READ_SIZE):
            yield chunk

    def _body(self, request: Request, *, gzipped: bool, limit: int) -> Iterator[bytes]:
        """The decompressed body in pieces of at most ``INFLATE_STEP``; 413 as soon as it exceeds ``limit``.

        Each decompression step is handed on before the next one runs, so a small gzip body that expands
        a thousandfold (a gzip of zeros or newlines) never sits in memory, and the limit stops it at once.
        """
        total = 0
        inflater = _GzipStream() if gzipped else None
        for chunk in self._raw_chunks(request):
            for piece in inflater.feed(chunk) if inflater is not None else (chunk,):
                total += len(piece)
                if total > limit:
                    raise InfluxError(413, f"request body is over the limit of {limit} bytes (after decompression)")
                if piece:
                    yield piece
        if inflater is not None:
            tail = inflater.finish()
            if tail:
                total += len(tail)
                if total > limit:
                    raise InfluxError(413, f"request body is over the limit of {limit} bytes (after decompression)")
                yield tail

    @classmethod
    def _drain(cls, request: Request) -> None:
        """Read what is left of a rejected body, raw (never decompressed), so that clients which send the
        whole body before reading the answer get it. Only a body with a Content-Length, which the header
        check bounded; a chunked one could go on for ever and is left to the server to discard."""
        if request.META.get("CONTENT_LENGTH"):
            for _ in cls._raw_chunks(request):
                pass

    # --- the operation ----------------------------------------------------------------------------
    def _write(self, request: Request, *, target: str | None, what: str) -> Response:
        collection = self._collection(target, what)
        limit = int(getattr(settings, "TSDB_LINE_PROTOCOL_MAX_BYTES", 256 * 1024 * 1024))
        gzipped = self._check_headers(request, limit)
        precision = request.query_params.get("precision") or "ns"
        body = self._body(request, gzipped=gzipped, limit=limit)
        if collection is Collection.METADATA:
            meta_parser = MetadataLineParser()
            try:
                for piece in body:
                    meta_parser.feed(piece)
                items = meta_parser.finish()
            except LineProtocolError as exc:
                self._drain(request)
                raise InfluxError(400, str(exc), line=exc.line or None) from None
            variable_metadata_store(items=items)
            return Response(status=204)
        self._ingest_points(request, collection, precision, body)
        return Response(status=204)

    @classmethod
    def _ingest_points(cls, request: Request, collection: Collection, precision: str, body: Iterator[bytes]) -> None:
        backend = get_backend()
        if backend.transactional:
            cls._stream_points(request, collection, precision, body, backend)
        else:
            cls._validate_then_write(request, collection, precision, body)

    @staticmethod
    def _stream_points(
        request: Request, collection: Collection, precision: str, body: Iterator[bytes], backend: TimeSeriesBackend
    ) -> None:
        """Parse ``FEED_SIZE`` bytes, write what parsed, repeat; one transaction, rolled back on any error."""
        try:
            parser = LineProtocolParser(collection, precision=precision, now_ns=time.time_ns())
            with points_stream(collection=collection, user=request.user, backend=backend) as write:
                for piece in body:
                    for offset in range(0, len(piece), FEED_SIZE):
                        parser.feed(piece[offset : offset + FEED_SIZE] if len(piece) > FEED_SIZE else piece)
                        if parser.buffered_points:
                            write(parser.take())
                parser.close()
                if parser.buffered_points:
                    write(parser.take())
        except LineProtocolError as exc:
            _LineProtocolWriteApi._drain(request)
            raise InfluxError(400, str(exc), line=exc.line or None) from None

    @staticmethod
    def _validate_then_write(request: Request, collection: Collection, precision: str, body: Iterator[bytes]) -> None:
        """Parse and validate the whole body, then write it: in one batch, or in pieces when it is large.

        Pass 1 parses every line; the decompressed body is also spooled (in memory up to
        ``SPOOL_MEMORY``, then to a temporary file). A body of at most ``CHUNK_POINTS`` points is written
        from pass 1's columns in one ``points_ingest``. A larger one has had its points dropped once
        validated, and pass 2 re-parses the spool and writes ``CHUNK_POINTS`` at a time, in order (so the
        last duplicate still wins), inside one transaction: the SQL backend commits all or nothing.
        Memory stays bounded by the chunk, whatever the body size.
        """
        now = time.time_ns()
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
            try:
                parser = LineProtocolParser(
                    collection, precision=precision, now_ns=now, max_buffered_points=CHUNK_POINTS
                )
                for piece in body:
                    spool.write(piece)
                    parser.feed(piece)
                parser.close()
            except LineProtocolError as exc:
                _LineProtocolWriteApi._drain(request)
                raise InfluxError(400, str(exc), line=exc.line or None) from None
            if not parser.overflowed:
                points_ingest(batch=parser.take(), user=request.user)
                return
            spool.seek(0)
            again = LineProtocolParser(collection, precision=precision, now_ns=now)
            with transaction.atomic():
                while block := spool.read(READ_SIZE):
                    again.feed(block)
                    if again.buffered_points >= CHUNK_POINTS:
                        points_ingest(batch=again.take(), user=request.user)
                again.close()
                if again.buffered_points:
                    points_ingest(batch=again.take(), user=request.user)


_COMMON_RESPONSES = {
    204: OpenApiResponse(description="Written (every point, or none on any error)."),
    400: OpenApiResponse(OpenApiTypes.OBJECT, description='`{"code": "invalid", "message": "line 3: ...", "line": 3}`'),
    401: OpenApiResponse(OpenApiTypes.OBJECT, description="Missing or unknown token."),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="The token's user lacks the ingest_data capability."),
    404: OpenApiResponse(OpenApiTypes.OBJECT, description="Unknown bucket / database."),
    413: OpenApiResponse(OpenApiTypes.OBJECT, description="Body over TSDB_LINE_PROTOCOL_MAX_BYTES."),
    415: OpenApiResponse(OpenApiTypes.OBJECT, description="Unsupported Content-Type or Content-Encoding."),
}
_PRECISION = OpenApiParameter(
    "precision", str, enum=["ns", "us", "ms", "s"], description="Timestamp precision (default ns; 1.x also n, u, m, h)."
)


class LineProtocolWriteV2Api(_LineProtocolWriteApi):
    """InfluxDB 2.x write: ``POST /api/v2/write?bucket=stamm_raw&org=any&precision=ns``."""

    @extend_schema(
        operation_id="influx_v2_write",
        summary="Write line protocol (InfluxDB 2.x compatible)",
        tags=["influxdb"],
        parameters=[
            OpenApiParameter("bucket", str, required=True, enum=sorted(BUCKETS)),
            OpenApiParameter("org", str, description="Accepted and ignored (one organisation)."),
            _PRECISION,
        ],
        request={"text/plain": OpenApiTypes.STR},
        responses=_COMMON_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        return self._write(request, target=request.query_params.get("bucket"), what="bucket")


class LineProtocolWriteV1Api(_LineProtocolWriteApi):
    """InfluxDB 1.x write: ``POST /write?db=stamm_raw&precision=ns`` (errors also carry 1.x's ``error`` key)."""

    v1 = True
    authentication_classes = [InfluxV1TokenAuthentication]

    @extend_schema(
        operation_id="influx_v1_write",
        summary="Write line protocol (InfluxDB 1.x compatible)",
        tags=["influxdb"],
        parameters=[
            OpenApiParameter("db", str, required=True, enum=sorted(BUCKETS)),
            OpenApiParameter("rp", str, description="Accepted and ignored."),
            OpenApiParameter("u", str, description="User name (not checked)."),
            OpenApiParameter("p", str, description="The API token, when not sent in the Authorization header."),
            _PRECISION,
        ],
        request={"text/plain": OpenApiTypes.STR},
        responses=_COMMON_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        return self._write(request, target=request.query_params.get("db"), what="database (db)")

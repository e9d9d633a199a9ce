"""Request-body parsers with a size bound, used by every API view instead of DRF's own.

DRF hands JSON and form parsers ``request.body``, which Django caps at ``DATA_UPLOAD_MAX_MEMORY_SIZE``
(a larger ``Content-Length`` is refused unread: 413 through the exception handler), but a JSON nested a
few thousand levels deep raised ``RecursionError``, a 500, and a multipart upload was read to the end
whatever its size. These answer instead, before any work that grows with the body:

- 413 when ``Content-Length`` is over the view's limit (nothing is read), or when a body without one
  goes past it (reading stops at ``limit + 1`` bytes);
- 400 for malformed JSON, JSON nested deeper than Python's parser allows, and malformed forms.

The limit is the view's ``max_body_bytes`` (JSON and url-encoded forms; at most Django's cap) or
``max_upload_bytes`` (multipart, which streams files to disk), else ``DATA_UPLOAD_MAX_MEMORY_SIZE``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import QueryDict
from rest_framework import exceptions, parsers
from rest_framework.settings import api_settings
from rest_framework.utils import json


class RequestTooLarge(exceptions.APIException):
    """A body over the endpoint's limit (HTTP 413)."""

    status_code = 413
    default_detail = "The request body is too large."
    default_code = "too_large"


def body_limit(parser_context: dict[str, Any] | None, attribute: str = "max_body_bytes") -> int:
    """The largest body the view behind ``parser_context`` accepts, in bytes."""
    view = (parser_context or {}).get("view")
    limit = getattr(view, attribute, None)
    return int(limit) if limit else int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def declared_length(request: Any) -> int:
    """The request's ``Content-Length`` (0 when absent or malformed: then nothing is read)."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except (TypeError, ValueError):
        return 0


def read_bounded(stream: Any, request: Any, limit: int) -> bytes:
    """The whole body, or 413 as soon as it is known to be larger than ``limit``."""
    length = declared_length(request)
    if length > limit:
        raise RequestTooLarge(f"The request body is {length} bytes; this endpoint accepts at most {limit}.")
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise RequestTooLarge(f"The request body is over {limit} bytes, the most this endpoint accepts.")
    return data


def _encoding(parser_context: dict[str, Any] | None) -> str:
    return (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, bounded in size and never a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        data = read_bounded(stream, request, body_limit(parser_context))
        try:
            text = data.decode(_encoding(parser_context))
        except (UnicodeDecodeError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - the body is not {_encoding(parser_context)} text") from exc
        parse_constant = json.strict_constant if api_settings.STRICT_JSON else None
        try:
            return json.loads(text, parse_constant=parse_constant)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None


class FormParser(parsers.FormParser):
    """DRF's url-encoded form parser, bounded in size."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        data = read_bounded(stream, request, body_limit(parser_context))
        try:
            return QueryDict(data, encoding=_encoding(parser_context))
        except SuspiciousOperation as exc:  # too many fields
            raise exceptions.ParseError(f"Form parse error - {exc}") from None


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser; a body whose ``Content-Length`` is over the view's limit is refused unread.

    Files stream to disk as Django receives them; the per-file limits are the view's business (it knows
    how many files it takes), this bound stops an oversized request before any byte is stored.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        limit = body_limit(parser_context, "max_upload_bytes")
        length = declared_length(request)
        if length > limit:
            raise RequestTooLarge(f"The request body is {length} bytes; this endpoint accepts at most {limit}.")
        try:
            return super().parse(stream, media_type, parser_context)
        except RequestDataTooBig as exc:
            raise RequestTooLarge(str(exc)) from None
        except SuspiciousOperation as exc:  # too many fields or files
            raise exceptions.ParseError(f"Multipart form parse error - {exc}") from None

"""One JSON body for every API error.

Shape: ``{"error": {"status": 400, "code": "invalid", "message": "...", "details": ...}}``.
``details`` carries field errors (DRF validation) or the service's description of what and where.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .errors import ApplicationError


def error_body(*, status_code: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The common error body, also used by non-DRF views that answer JSON."""
    body: dict[str, Any] = {"status": status_code, "code": code, "message": message}
    if details not in (None, {}, []):
        body["details"] = details
    return {"error": body}


def _message_from_details(details: Any) -> str:
    """A one-line summary of DRF's nested error details, naming the first field at fault."""
    if isinstance(details, dict):
        for key, value in details.items():
            inner = _message_from_details(value)
            return inner if key in ("non_field_errors", "detail") else f"{key}: {inner}"
        return "Invalid input."
    if isinstance(details, list) and details:
        return _message_from_details(details[0])
    return str(details)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: maps application, Django and DRF errors to the common body."""
    if isinstance(exc, ApplicationError):
        return Response(
            error_body(status_code=exc.status_code, code=exc.code, message=exc.message, details=exc.details),
            status=exc.status_code,
        )
    if isinstance(exc, RequestDataTooBig):  # Django refused a body over DATA_UPLOAD_MAX_MEMORY_SIZE, unread
        return Response(
            error_body(status_code=413, code="too_large", message=f"The request body is too large: {exc}"),
            status=413,
        )
    if isinstance(exc, DataError):  # the database refused a value (a number out of its range, say)
        return Response(
            error_body(status_code=400, code="invalid", message=f"A value in the request is out of range: {exc}"),
            status=400,
        )
    if isinstance(exc, SuspiciousOperation):  # too many form fields or files, a malformed multipart body
        return Response(error_body(status_code=400, code="invalid", message=str(exc)), status=400)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail
        message = _message_from_details(details)
        code = "invalid"
    else:
        details = None
        message = str(getattr(exc, "detail", exc))
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
    response.data = error_body(status_code=response.status_code, code=code, message=message, details=details)
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Token realm="api"'
    return response

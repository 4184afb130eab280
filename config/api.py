"""One JSON error shape for the whole API: ``{"error": {"code", "message", "fields"}}``."""

from __future__ import annotations

import sys
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from booking.errors import BookingError


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        flat = [_flatten(item) for item in detail]
        return flat[0] if len(flat) == 1 and isinstance(flat[0], str) else flat
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, BookingError):
        fields = {exc.field: exc.message} if exc.field else {}
        answer = Response(error_body(exc.code, exc.message, fields), status=exc.status)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            answer["Retry-After"] = str(retry_after)
        return answer
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        # A service's refusal says why ("Only a prescriber can…"); a bare one gets DRF's words.
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if not isinstance(fields, dict):
            fields = {"non_field_errors": fields}
        names = ", ".join(sorted(fields))
        response.data = error_body("invalid", f"Check these fields: {names}.", fields)
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes()
        response.data = error_body(
            code if isinstance(code, str) else "error", str(_flatten(exc.detail))
        )
    return response


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)


# How long a client should wait before retrying when the database is away (a restart, a
# failover): long enough for a restart, short enough that nobody gives up.
RETRY_AFTER_SECONDS = 5


def json_500(request: HttpRequest) -> JsonResponse:
    """Django's last answer to an unhandled error (``handler500``, called while handling it).

    A lost or refused database connection is not a bug but a moment: 503 with ``Retry-After``,
    so clients and proxies retry. Anything else is a 500. Neither says more than that.
    """
    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        response = JsonResponse(
            error_body("unavailable", "The service is briefly unavailable. Please try again."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return JsonResponse(
        error_body("server_error", "Something went wrong on our side."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )

"""What every FHIR endpoint shares: the ``application/fhir+json`` wire, token sign-in with the
staff API's tokens, errors as an OperationOutcome (never the house error shape, never a 500 for
bad input), and strict reading of search parameters and references.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, NoReturn

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils.cache import add_never_cache_headers
from knox.auth import TokenAuthentication
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking.access.roles import VIEW, is_staff_member
from booking.errors import BookingError
from booking.fhir.resources import FHIR_JSON, operation_outcome, validated
from booking.validators import EARLIEST_DATE, LATEST_DATE, parse_aware_instant

# Search parameters and operation inputs named in one error, at most.
MAX_REPORTED = 10


class FHIRError(Exception):
    """An answer other than success: ``status``, the OperationOutcome's issue ``code``, and the
    elements or parameters at fault (``expression``)."""

    def __init__(
        self, status_code: int, code: str, diagnostics: str, expression: Iterable[str] = ()
    ) -> None:
        super().__init__(diagnostics)
        self.status_code, self.code, self.diagnostics = status_code, code, diagnostics
        self.expression = [str(item)[:200] for item in list(expression)[:MAX_REPORTED]]


def invalid(diagnostics: str, *expression: str) -> NoReturn:
    """A search parameter that cannot be read: 400."""
    raise FHIRError(status.HTTP_400_BAD_REQUEST, "invalid", diagnostics, expression)


def unprocessable(diagnostics: str, *expression: str) -> NoReturn:
    """An operation's input that is well-formed JSON but not what the operation takes: 422."""
    raise FHIRError(status.HTTP_422_UNPROCESSABLE_ENTITY, "invalid", diagnostics, expression)


# A domain error's field, as the element of the Appointment a client sent.
_ELEMENTS = {
    "start": "Appointment.start",
    "status": "Appointment.status",
    "appointment_type": "Appointment.participant.actor",
    "patient": "Appointment.participant.actor",
    "phone": "Patient.telecom",
    "token": "appt-id",
}
_ISSUE_BY_STATUS = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "business-rule",
    429: "throttled",
}


def _outcome(
    status_code: int, code: str, diagnostics: str, expression: Iterable[str] = ()
) -> Response:
    return Response(validated(operation_outcome(code, diagnostics, expression)), status=status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every refusal as an OperationOutcome; a domain error keeps the status the staff API gives
    it (a taken slot 409 ``conflict``, a rule 422 ``business-rule``)."""
    if isinstance(exc, FHIRError):
        return _outcome(exc.status_code, exc.code, exc.diagnostics, exc.expression)
    if isinstance(exc, BookingError):
        expression = [_ELEMENTS.get(exc.field, exc.field)] if exc.field else []
        answer = _outcome(
            exc.status, _ISSUE_BY_STATUS.get(exc.status, "invalid"), exc.message, expression
        )
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            answer["Retry-After"] = str(retry_after)
        return answer
    if isinstance(exc, Http404):
        return _outcome(status.HTTP_404_NOT_FOUND, "not-found", "Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, exceptions.APIException):
        code = _ISSUE_BY_STATUS.get(exc.status_code, "exception")
        if isinstance(exc, exceptions.ParseError):
            code = "structure"
        answer = _outcome(exc.status_code, code, str(exc.detail))
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            answer["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait:
            answer["Retry-After"] = str(int(wait))
        return answer
    return None


class FHIRRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "fhir"


class FHIRParser(JSONParser):
    """FHIR's JSON, with a 400 rather than a crash for input that overflows the decoder."""

    media_type = FHIR_JSON

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from exc


class PlainJSONParser(FHIRParser):
    media_type = "application/json"


class AlwaysFHIR(BaseContentNegotiation):
    """Answers are FHIR JSON whatever ``Accept`` says: a client asking for ``application/json``
    (or anything else) must still be able to read the OperationOutcome it gets."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return next(iter(renderers)), FHIR_JSON


class StaffReader(BasePermission):
    """Signed-in staff whose role may see visits, as the staff API's lists ask."""

    message = "Your role cannot read this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_staff_member(request.user) and bool(request.user.has_perm(VIEW))


class FHIRView(APIView):
    """A FHIR endpoint: staff API tokens only (a session would need CSRF, and an integration
    has no browser), so a missing or expired token answers 401 with ``WWW-Authenticate``."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [StaffReader]
    renderer_classes = [FHIRRenderer]
    parser_classes = [FHIRParser, PlainJSONParser]
    content_negotiation_class = AlwaysFHIR
    # Not part of the v1 OpenAPI schema: FHIR describes itself at /fhir/metadata.
    schema = None

    def get_exception_handler(self) -> Any:
        return exception_handler

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        # Patient data, as on the staff API (config.caching): no browser or proxy keeps it.
        response = super().finalize_response(request, response, *args, **kwargs)
        add_never_cache_headers(response)
        return response


def answer(resource: dict[str, Any], status_code: int = status.HTTP_200_OK) -> Response:
    """``resource``, checked against its R4 model, as the response."""
    return Response(validated(resource), status=status_code)


# --- Search parameters ---------------------------------------------------------------------


def query(
    request: Request, allowed: Iterable[str], *, repeatable: Iterable[str] = ()
) -> dict[str, list[str]]:
    """The request's search parameters, each a list; any other parameter is a 400 naming it
    (a misspelt filter must not quietly widen a search), as is a repeated one that may not be."""
    allowed, repeatable = set(allowed), set(repeatable)
    params = {name: request.query_params.getlist(name) for name in request.query_params}
    unknown = sorted(name for name in params if name not in allowed)
    if unknown:
        invalid(f"Unknown search parameter: {', '.join(unknown[:MAX_REPORTED])}.", *unknown)
    for name, values in params.items():
        if len(values) > 1 and name not in repeatable:
            invalid(f"Give {name} once.", name)
        if any(not value for value in values):
            invalid(f"{name} is empty.", name)
    return params


def one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def local_date(value: str, name: str) -> date:
    """A date written YYYY-MM-DD, within the dates the clinic keeps."""
    try:
        day = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        day = None
    if day is None:
        invalid(f"{name}: give a date as YYYY-MM-DD.", name)
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        invalid(
            f"{name}: must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}.",
            name,
        )
    return day


def aware_instant(value: Any, element: str) -> datetime:
    """An ISO 8601 date and time with its offset, in UTC; a naive one is never guessed."""
    try:
        return parse_aware_instant(value)
    except ValidationError as error:
        if error.code == "naive":
            unprocessable(f"{element}: give the time with its UTC offset.", element)
        if error.code == "range":
            unprocessable(
                f"{element}: must be between {EARLIEST_DATE.isoformat()} and "
                f"{LATEST_DATE.isoformat()}.",
                element,
            )
        unprocessable(f"{element}: give a date and time in ISO 8601 with its offset.", element)


def reference_id(value: str, resource_type: str, name: str) -> int:
    """The number in ``"<resource_type>/<n>"`` (or a bare ``n``); a 400 naming ``name``."""
    raw = value.removeprefix(f"{resource_type}/")
    if not (raw.isascii() and raw.isdecimal() and 0 < len(raw) <= 9):
        invalid(f"{name}: give a {resource_type} id.", name)
    return int(raw)

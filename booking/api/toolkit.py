"""The DRF toolkit every endpoint module shares: the error shape for the schema, strict
serializers (an unknown field is an error), fields that refuse control characters and naive
datetimes, related fields scoped to what the caller may reach, date ranges, and the body limit.

Validation errors name the field that failed; a field inside ``patient`` or ``intake`` is named by
nesting, as the request nests it: ``{"fields": {"patient": {"phone": "..."}}}``; an item of a
list by its index: ``{"fields": {"intake": {"screening": {"0": {"answer": "..."}}}}}``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request

from booking.validators import EARLIEST_DATE, LATEST_DATE, parse_aware_instant
from scheduling.models import AppointmentType, Location

MAX_RANGE_DAYS = 62


# The one error shape of config.api, for the schema.
ERROR = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorDetail",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    help_text="Field name to message; nested fields nest."
                ),
            },
        )
    },
)


class DateRangeQuery(serializers.Serializer[Any]):
    """``start`` and ``end``, local dates in the clinic's calendar, ``end`` inclusive and at
    most ``max_days`` days from ``start``."""

    max_days = MAX_RANGE_DAYS
    start = serializers.DateField(input_formats=["%Y-%m-%d"], help_text="First local date.")
    end = serializers.DateField(input_formats=["%Y-%m-%d"], help_text="Last local date, inclusive.")

    def validate_start(self, value: date) -> date:
        return _bounded(value)

    def validate_end(self, value: date) -> date:
        return _bounded(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "Must not be before start."})
        if (attrs["end"] - attrs["start"]).days + 1 > self.max_days:
            raise serializers.ValidationError(
                {"end": f"A range covers at most {self.max_days} days."}
            )
        return attrs


def _bounded(value: date) -> date:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise serializers.ValidationError(
            f"Must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}."
        )
    return value


# A booking is a few hundred bytes; anything near this is not a booking. Django's
# DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default) would answer a larger body with an HTML 400 from
# deep inside the parser, so the length is checked first, against the lower of the two.
MAX_BODY_BYTES = 64 * 1024
# Unknown fields named in one error, at most.
MAX_UNKNOWN_REPORTED = 10


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def body_limit() -> int:
    django_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return MAX_BODY_BYTES if django_limit is None else min(MAX_BODY_BYTES, django_limit)


def check_body_length(request: Request) -> None:
    """Refuse an oversized body on its declared length, before a byte of it is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0  # Django then reads no body at all
    limit = body_limit()
    if length > limit:
        raise PayloadTooLarge(f"The request body may be at most {limit} bytes.")


class BoundedJSONParser(JSONParser):
    """JSON, with a 400 rather than a crash for input that overflows the decoder's stack."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from exc


def _no_control_characters(value: str, *, multiline: bool = False) -> str:
    allowed = {"\n", "\r", "\t"} if multiline else set()
    if any(unicodedata.category(char) == "Cc" and char not in allowed for char in value):
        raise serializers.ValidationError("Must not contain control characters.")
    return value


class Text(serializers.CharField):
    """A JSON string and nothing else: DRF's CharField would quietly turn 42 into "42"."""

    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, *, multiline: bool = False, **kwargs: Any) -> None:
        self.multiline = multiline
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return _no_control_characters(super().to_internal_value(data), multiline=self.multiline)


class Email(serializers.EmailField):
    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class Slug(serializers.SlugField):
    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictBoolean(serializers.BooleanField):
    """JSON true or false only: "no" and 0 are too easy to misread for a consent or a yes/no
    screening answer."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class AwareDateTime(serializers.DateTimeField):
    """An ISO 8601 instant that carries its UTC offset; returned in UTC.

    DRF would read a time without an offset in the server's zone. A booking's time must never
    be guessed, so a naive one is refused.
    """

    default_error_messages = {
        "invalid": "Give a date and time in ISO 8601, e.g. 2026-06-03T10:00:00-04:00.",
        "naive": "Give the time with its UTC offset, e.g. 2026-06-03T10:00:00-04:00.",
        "range": f"Must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}.",
    }

    def to_internal_value(self, value: Any) -> datetime:
        try:
            return parse_aware_instant(value)
        except DjangoValidationError as error:
            self.fail(error.code or "invalid")


def appointment_type_at(location: Location, slug: str) -> AppointmentType:
    """The active appointment type ``slug`` at ``location``, or a 400 naming the field."""
    appointment_type = (
        AppointmentType.objects.select_related("location")
        .filter(location=location, slug=slug, is_active=True)
        .first()
    )
    if appointment_type is None:
        raise serializers.ValidationError(
            {"appointment_type": "No appointment type by that name at this location."}
        )
    return appointment_type


class ScopedRelatedMixin:
    """A related-object field whose choices are what the requesting staff member may see:
    ``scope(user)`` (e.g. ``booking.access.scoping.patients_for``). Any other id reads as unknown,
    exactly like one that does not exist. ``queryset`` (all rows) is kept for the schema."""

    def __init__(
        self,
        *,
        scope: Callable[[Any], QuerySet[Any]],
        related: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        self.scope, self.related = scope, related
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        request = self.context.get("request")  # type: ignore[attr-defined]
        return self.scope(getattr(request, "user", None)).select_related(*self.related)


class ScopedPrimaryKey(ScopedRelatedMixin, serializers.PrimaryKeyRelatedField[Any]):
    pass


class ScopedSlug(ScopedRelatedMixin, serializers.SlugRelatedField[Any]):
    pass


class StrictSerializer(serializers.Serializer[Any]):
    # Unknown keys are refused, not ignored: a misspelt "sms_consnet" must not silently mean no.

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, str] = {}
        if isinstance(data, Mapping):
            names = [name for name in data if name not in self.fields]
            unknown = {str(name)[:100]: "Unknown field." for name in names[:MAX_UNKNOWN_REPORTED]}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**unknown, **exc.detail}) from exc
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StrictSerializerSchema(OpenApiSerializerExtension):
    """Tells clients what ``StrictSerializer`` enforces: a request may carry no other keys."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


def django_check(check: Any, value: Any, **kwargs: Any) -> Any:
    try:
        return check(value, **kwargs)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from exc


class StrictInteger(serializers.IntegerField):
    """A JSON number and nothing else: DRF would read "12" and true as numbers."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)

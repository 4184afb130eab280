"""Public API v1: locations, appointment types, availability and online booking (DESIGN §4).

Views translate HTTP to one selector or service call; errors take the shape set in
``config.api``. Validation errors name the field that failed; a field inside ``patient`` or
``intake`` is named by nesting, as the request nests it:
``{"fields": {"patient": {"phone": "..."}}}``; an item of a list by its index:
``{"fields": {"intake": {"screening": {"0": {"answer": "..."}}}}}``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    Direction,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions, generics, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from booking.idempotency import HEADER as IDEMPOTENCY_HEADER
from booking.idempotency import MAX_KEY_LENGTH, Answer, idempotent, key_problem
from booking.models import Appointment, AppointmentStatus
from booking.selectors import available_slots
from booking.services import IntakeAnswers, PatientDetails, consultation_book_online
from booking.throttle import booking_rate_limit
from booking.validators import normalize_phone, validate_date_of_birth
from scheduling.models import AppointmentType, Location

MAX_RANGE_DAYS = 62
# Dates outside this span are refused rather than searched: nothing is bookable there, and
# the bound keeps date arithmetic far from datetime's limits.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)

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


class LocationSerializer(serializers.ModelSerializer[Location]):
    name = serializers.CharField(source="public_name")

    class Meta:
        model = Location
        fields = ["slug", "name", "timezone"]


class AppointmentTypeSerializer(serializers.ModelSerializer[AppointmentType]):
    name = serializers.CharField(source="public_name")

    class Meta:
        model = AppointmentType
        fields = ["slug", "name", "duration_minutes", "bookable_online", "needs_approval"]


class LocationList(generics.ListAPIView[Location]):
    """Active clinic locations."""

    serializer_class = LocationSerializer
    queryset = Location.objects.filter(is_active=True).order_by("slug")


class LocationQuery(serializers.Serializer[Any]):
    location = serializers.SlugField(max_length=50)

    def validate_location(self, value: str) -> Location:
        location = Location.objects.filter(slug=value, is_active=True).first()
        if location is None:
            raise serializers.ValidationError("Unknown location.")
        return location


class AppointmentTypeList(generics.ListAPIView[AppointmentType]):
    """Appointment types offered at one location, under their neutral public names."""

    serializer_class = AppointmentTypeSerializer

    @extend_schema(
        parameters=[LocationQuery],
        responses={
            200: AppointmentTypeSerializer(many=True),
            400: OpenApiResponse(ERROR, "`location` is missing or names no active location."),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = LocationQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return AppointmentType.objects.filter(
            location=query.validated_data["location"], is_active=True
        ).order_by("slug")


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


class AvailabilityQuery(LocationQuery, DateRangeQuery):
    appointment_type = serializers.SlugField(max_length=50)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        appointment_type = (
            AppointmentType.objects.select_related("location")
            .filter(
                location=attrs["location"],
                slug=attrs["appointment_type"],
                is_active=True,
                bookable_online=True,
            )
            .first()
        )
        if appointment_type is None:
            raise serializers.ValidationError(
                {"appointment_type": "No appointment type by that name is bookable online here."}
            )
        attrs["appointment_type"] = appointment_type
        return attrs


def _bounded(value: date) -> date:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise serializers.ValidationError(
            f"Must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}."
        )
    return value


class SlotSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class Availability(APIView):
    """Free visit times on the local dates ``start`` to ``end`` (inclusive, at most 62 days).

    Times carry the clinic's UTC offset; ``timezone`` is its IANA zone.
    """

    @extend_schema(
        parameters=[AvailabilityQuery],
        responses={
            200: inline_serializer(
                "AvailabilityResponse",
                {"timezone": serializers.CharField(), "slots": SlotSerializer(many=True)},
            ),
            400: OpenApiResponse(ERROR, "Bad input; `error.fields` names each field."),
        },
    )
    def get(self, request: Request) -> Response:
        query = AvailabilityQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        appointment_type: AppointmentType = query.validated_data["appointment_type"]
        zone = appointment_type.location.zone
        slots = available_slots(
            appointment_type=appointment_type,
            first_day=query.validated_data["start"],
            last_day=query.validated_data["end"],
            now=timezone.now(),
        )
        return Response(
            {
                "timezone": appointment_type.location.timezone,
                "slots": [
                    {
                        "start": start.astimezone(zone).isoformat(),
                        "end": end.astimezone(zone).isoformat(),
                    }
                    for start, end in slots
                ],
            }
        )


# --- POST /api/v1/bookings/: a new or returning patient books a consultation ------------------

# A booking is a few hundred bytes; anything near this is not a booking. Django's
# DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default) would answer a larger body with an HTML 400 from
# deep inside the parser, so the length is checked first, against the lower of the two.
MAX_BODY_BYTES = 64 * 1024
# Requests per client address and hour, refused or not: a person books a handful of times at
# most, and a script probing slots or patients is slowed to a crawl.
IDEMPOTENCY_SCOPE = "api.bookings.create"
MAX_CONDITIONS = 20
MAX_SCREENING_ANSWERS = 40
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


class BookingThrottle(BaseThrottle):
    """Bookings per client address, counted in the shared cache so every worker sees them."""

    def __init__(self) -> None:
        self.retry_after: int | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        self.retry_after = booking_rate_limit(request)
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after


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
        if not isinstance(value, str) or len(value) > 64:
            self.fail("invalid")
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            self.fail("invalid")
        if parsed.utcoffset() is None:
            self.fail("naive")
        try:
            instant = parsed.astimezone(UTC)
        except OverflowError:
            self.fail("range")
        if not EARLIEST_DATE <= instant.date() <= LATEST_DATE:
            self.fail("range")
        return instant


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
    ``scope(user)`` (e.g. ``booking.staff.patients_for``). Any other id reads as unknown,
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


def _django_check(check: Any, value: Any, **kwargs: Any) -> Any:
    try:
        return check(value, **kwargs)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from exc


class PatientInput(StrictSerializer):
    """Who the visit is for. A returning patient is recognised by email and date of birth."""

    first_name = Text(max_length=100)
    last_name = Text(max_length=100)
    email = Email(max_length=254)
    phone = Text(
        max_length=32,
        help_text="A mobile number; without a country code it is read "
        "as a number of the clinic's country.",
    )
    date_of_birth = serializers.DateField(input_formats=["%Y-%m-%d"], help_text="YYYY-MM-DD")

    def validate_phone(self, value: str) -> str:
        return str(_django_check(normalize_phone, value))

    def validate_date_of_birth(self, value: date) -> date:
        today = self.context["now"].date()
        result: date = _django_check(validate_date_of_birth, value, today=today)
        return result


class ScreeningAnswerInput(StrictSerializer):
    """A yes/no screening question, worded as shown to the patient, and their answer."""

    question = Text(max_length=300, help_text="The question as shown to the patient.")
    answer = StrictBoolean()


class IntakeInput(StrictSerializer):
    """What the patient tells the clinic before the visit. Seen by clinic staff only."""

    conditions = serializers.ListField(
        child=Text(max_length=300), max_length=MAX_CONDITIONS, required=False, default=list
    )
    medications = Text(max_length=2000, multiline=True, allow_blank=True, required=False)
    prior_treatments = Text(max_length=2000, multiline=True, allow_blank=True, required=False)
    screening = serializers.ListField(
        child=ScreeningAnswerInput(),
        max_length=MAX_SCREENING_ANSWERS,
        required=False,
        default=list,
    )


class NewBooking(StrictSerializer):
    """A visit to book: the times come from the availability endpoint. Unknown keys are
    refused."""

    location = Slug(max_length=50)
    appointment_type = Slug(max_length=50)
    start = AwareDateTime(help_text="ISO 8601 with its UTC offset, as the availability lists it.")
    patient = PatientInput()
    intake = IntakeInput(required=False, help_text="Seen by clinic staff only.")
    sms_consent = StrictBoolean(
        help_text="The patient agreed to appointment reminders by text message."
    )

    def validate_location(self, value: str) -> Location:
        location = Location.objects.filter(slug=value, is_active=True).first()
        if location is None:
            raise serializers.ValidationError("Unknown location.")
        return location

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Types not offered online are found here and refused by the service (422), so the
        # page and the API give the same answer for them.
        attrs["appointment_type"] = appointment_type_at(
            attrs["location"], attrs["appointment_type"]
        )
        intake = attrs.get("intake") or {}
        attrs["intake"] = IntakeAnswers(
            conditions=list(dict.fromkeys(intake.get("conditions", []))),
            medications=intake.get("medications", ""),
            prior_treatments=intake.get("prior_treatments", ""),
            screening=[dict(answer) for answer in intake.get("screening", [])],
        )
        attrs["patient"] = PatientDetails(**attrs["patient"])
        return attrs

    def canonical(self) -> dict[str, Any]:
        """The validated request as plain JSON values: what an idempotent retry must repeat."""
        data = self.validated_data
        patient: PatientDetails = data["patient"]
        intake: IntakeAnswers = data["intake"]
        return {
            "location": data["location"].slug,
            "appointment_type": data["appointment_type"].slug,
            "start": data["start"].isoformat(),
            "patient": {
                "first_name": patient.first_name,
                "last_name": patient.last_name,
                "email": patient.email,
                "phone": patient.phone,
                "date_of_birth": patient.date_of_birth.isoformat(),
            },
            "intake": {
                "conditions": intake.conditions,
                "medications": intake.medications,
                "prior_treatments": intake.prior_treatments,
                "screening": intake.screening,
            },
            "sms_consent": data["sms_consent"],
        }


class Booking(serializers.Serializer[Any]):
    """Schema of the 201 answer; nothing about the patient or their intake."""

    reference = serializers.CharField(help_text="Quote it to the clinic.")
    start = serializers.DateTimeField(help_text="In the clinic's local time, with its offset.")
    end = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=AppointmentStatus.choices)


def booking_body(appointment: Appointment, appointment_type: AppointmentType) -> dict[str, Any]:
    zone = appointment_type.location.zone
    return {
        "reference": appointment.reference,
        "start": appointment.start.astimezone(zone).isoformat(),
        "end": appointment.end.astimezone(zone).isoformat(),
        "status": appointment.status,
    }


class BookingCreate(APIView):
    """Book a visit (the consultation) for a new or returning patient.

    A returning patient is recognised only by the same email and date of birth; anything else
    makes a new record. Send an `Idempotency-Key` to retry safely: the same key with the same
    request answers with the same booking (marked `Idempotent-Replayed: true`); with a different
    request, 422.
    """

    # Public: no session, so no CSRF dance; cross-site forms cannot send JSON anyway.
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [BoundedJSONParser]
    throttle_classes = [BookingThrottle]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # the rate limit counts oversized bodies too
        check_body_length(request)

    @extend_schema(
        operation_id="bookings_create",
        request=NewBooking,
        parameters=[
            OpenApiParameter(
                name=IDEMPOTENCY_HEADER,
                type={
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_KEY_LENGTH,
                    "pattern": "^[!-~]+$",
                },
                location=OpenApiParameter.HEADER,
                required=False,
                description="Up to 255 visible ASCII characters, e.g. a UUID. Retrying with the "
                "same key and body returns the first answer; no second booking is made.",
            )
        ],
        responses={
            201: OpenApiResponse(Booking, "Booked. `start` and `end` carry the clinic's offset."),
            400: OpenApiResponse(ERROR, "Bad input; `error.fields` names each field, nested."),
            409: OpenApiResponse(ERROR, "`slot_taken`, or `patient_busy` at that time."),
            413: OpenApiResponse(ERROR, "The body is over 64 KiB."),
            415: OpenApiResponse(ERROR, "The body is not `application/json`."),
            422: OpenApiResponse(
                ERROR,
                "`policy_violation` (not bookable online, notice, horizon, too many pending "
                "visits) or `idempotency_key_reused`.",
            ),
            429: OpenApiResponse(ERROR, "Too many bookings from this address; see Retry-After."),
        },
    )
    def post(self, request: Request) -> Response:
        now = timezone.now()
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and (problem := key_problem(key)):
            raise serializers.ValidationError({IDEMPOTENCY_HEADER: problem})
        booking = NewBooking(data=request.data, context={"now": now})
        booking.is_valid(raise_exception=True)
        data = booking.validated_data

        def book() -> Answer:
            appointment = consultation_book_online(
                appointment_type=data["appointment_type"],
                start=data["start"],
                details=data["patient"],
                intake=data["intake"],
                sms_consent=data["sms_consent"],
                now=now,
            )
            return Answer(
                status.HTTP_201_CREATED, booking_body(appointment, data["appointment_type"])
            )

        answer = idempotent(
            scope=IDEMPOTENCY_SCOPE, key=key, payload=booking.canonical(), operation=book, now=now
        )
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
        return Response(answer.body, status=answer.status, headers=headers)

"""Public API v1: locations, appointment types, availability and online booking (DESIGN §4).

Views translate HTTP to one selector or service call; errors take the shape set in
``config.api``, with fields named as ``booking.api.toolkit`` describes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import F
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from booking.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from booking.api.idempotency import MAX_KEY_LENGTH, Answer, idempotent, key_problem
from booking.api.toolkit import (
    ERROR,
    AwareDateTime,
    BoundedJSONParser,
    DateRangeQuery,
    Email,
    Slug,
    StrictBoolean,
    StrictSerializer,
    Text,
    check_body_length,
    django_check,
)
from booking.models import Appointment, AppointmentStatus
from booking.online import consultation_request_online
from booking.pow import MAX_PAYLOAD_LENGTH, challenge_new, proof_gate
from booking.selectors import available_slots
from booking.services import IntakeAnswers, PatientDetails
from booking.throttle import booking_rate_limit, client_key
from booking.validators import normalize_phone, validate_date_of_birth, validate_text_region
from scheduling.models import AppointmentType, Location


class LocationSerializer(serializers.ModelSerializer[Location]):
    name = serializers.CharField(source="public_name")

    class Meta:
        model = Location
        fields = ["slug", "name", "timezone"]


class AppointmentTypeSerializer(serializers.ModelSerializer[AppointmentType]):
    # The public slug: the staff's own may name the treatment ("spravato").
    slug = serializers.CharField(source="patient_slug")
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
    """Appointment types bookable online at one location, under their neutral public names and
    slugs. The clinic's other types (its treatments) are nobody's business here."""

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
            location=query.validated_data["location"], is_active=True, bookable_online=True
        ).order_by(Coalesce(NullIf(F("public_slug"), models.Value("")), F("slug")))


class AvailabilityQuery(LocationQuery, DateRangeQuery):
    appointment_type = serializers.SlugField(max_length=50)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        appointment_type = (
            AppointmentType.objects.select_related("location")
            .filter(location=attrs["location"], is_active=True, bookable_online=True)
            .with_patient_slug(attrs["appointment_type"])
            .first()
        )
        if appointment_type is None:
            raise serializers.ValidationError(
                {"appointment_type": "No appointment type by that name is bookable online here."}
            )
        attrs["appointment_type"] = appointment_type
        return attrs


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

IDEMPOTENCY_SCOPE = "api.bookings.create"
MAX_CONDITIONS = 20
MAX_SCREENING_ANSWERS = 40


class BookingThrottle(BaseThrottle):
    """Bookings per client address, counted in the shared cache so every worker sees them."""

    def __init__(self) -> None:
        self.retry_after: int | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        self.retry_after = booking_rate_limit(request)
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after


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
        return str(django_check(normalize_phone, value))

    def validate_date_of_birth(self, value: date) -> date:
        today = self.context["now"].date()
        result: date = django_check(validate_date_of_birth, value, today=today)
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
    altcha = serializers.CharField(
        max_length=MAX_PAYLOAD_LENGTH,
        required=False,
        help_text="A solved proof-of-work challenge (`GET /api/v1/pow/challenge/`), the base64 "
        "payload the ALTCHA widget or solver makes. Needed once this network has tried a "
        "booking in the hour (400 naming `altcha` without it); spent on use.",
    )

    def validate_location(self, value: str) -> Location:
        location = Location.objects.filter(slug=value, is_active=True).first()
        if location is None:
            raise serializers.ValidationError("Unknown location.")
        return location

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        location: Location = attrs["location"]
        # Types not offered online are found here (by their public slug) and refused by the
        # service (422), so the page and the API give the same answer for them.
        attrs["appointment_type"] = (
            AppointmentType.objects.select_related("location")
            .filter(location=location, is_active=True)
            .with_patient_slug(attrs["appointment_type"])
            .first()
        )
        if attrs["appointment_type"] is None:
            raise serializers.ValidationError(
                {"appointment_type": "No appointment type by that name at this location."}
            )
        try:
            validate_text_region(attrs["patient"]["phone"], location.text_regions)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"patient": {"phone": exc.messages}}) from exc
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
            "appointment_type": data["appointment_type"].patient_slug,
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
    """Schema of the 201 answer (a location that books online bookings at once); nothing about
    the patient or their intake."""

    reference = serializers.CharField(help_text="Quote it to the clinic.")
    start = serializers.DateTimeField(help_text="In the clinic's local time, with its offset.")
    end = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=AppointmentStatus.choices)


class TentativeBooking(serializers.Serializer[Any]):
    """Schema of the 202 answer: the time is held until the patient follows the link e-mailed to
    them. Nothing in it depends on who the patient is (no reference before confirmation), so a
    returning patient and a stranger get the same answer."""

    status = serializers.ChoiceField(choices=[AppointmentStatus.TENTATIVE.value])
    start = serializers.DateTimeField(help_text="In the clinic's local time, with its offset.")
    end = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(
        help_text="The time is released if not confirmed by then."
    )
    message = serializers.CharField()


CHECK_EMAIL = (
    "Check your e-mail: the time is held for you until you confirm it with the link we sent."
)


def tentative_body(
    appointment: Appointment, expires_at: datetime, appointment_type: AppointmentType
) -> dict[str, Any]:
    zone = appointment_type.location.zone
    return {
        "status": AppointmentStatus.TENTATIVE.value,
        "start": appointment.start.astimezone(zone).isoformat(),
        "end": appointment.end.astimezone(zone).isoformat(),
        "expires_at": expires_at.astimezone(zone).isoformat(),
        "message": CHECK_EMAIL,
    }


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

    Where the location verifies online bookings (the default) the answer is 202: the time is
    held (`tentative`) until the patient follows the link e-mailed to them, and released if they
    do not by `expires_at`. The answer is the same whoever the patient is; only after the
    address is proven is the patient matched (same email and date of birth) and their own visits
    taken into account. Elsewhere the answer is 201, booked at once. Send an `Idempotency-Key`
    to retry safely: the same key with the same request answers with the same booking (marked
    `Idempotent-Replayed: true`); with a different request, 422.
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
            201: OpenApiResponse(
                Booking,
                "Booked at once (the location does not verify online bookings). `start` and "
                "`end` carry the clinic's offset.",
            ),
            202: OpenApiResponse(
                TentativeBooking, "Held until the patient confirms with the e-mailed link."
            ),
            400: OpenApiResponse(
                ERROR,
                "Bad input; `error.fields` names each field, nested (`patient.phone` for a "
                "number outside the countries the clinic texts). `pow_required`: this network "
                "has tried a booking in the hour, and `altcha` is missing, wrong, expired or "
                "used before.",
            ),
            409: OpenApiResponse(
                ERROR,
                "`slot_taken`; `day_held` (unconfirmed bookings hold as much of that day as "
                "they may); `patient_busy` where bookings are not verified.",
            ),
            413: OpenApiResponse(ERROR, "The body is over 64 KiB."),
            415: OpenApiResponse(ERROR, "The body is not `application/json`."),
            422: OpenApiResponse(
                ERROR,
                "`policy_violation` (not bookable online, notice, horizon, too many pending "
                "visits) or `idempotency_key_reused`.",
            ),
            429: OpenApiResponse(
                ERROR,
                "Too many bookings from this network (`throttled`), or too many of them "
                "unconfirmed (`too_many_holds`); see Retry-After.",
            ),
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
            # Inside the idempotent operation: a retry that only replays the stored answer
            # needs no fresh proof.
            proof_gate(request, data.get("altcha"))
            online = consultation_request_online(
                appointment_type=data["appointment_type"],
                start=data["start"],
                details=data["patient"],
                intake=data["intake"],
                sms_consent=data["sms_consent"],
                client=client_key(request),
                now=now,
            )
            if online.expires_at is not None:
                return Answer(
                    status.HTTP_202_ACCEPTED,
                    tentative_body(online.appointment, online.expires_at, data["appointment_type"]),
                )
            return Answer(
                status.HTTP_201_CREATED, booking_body(online.appointment, data["appointment_type"])
            )

        answer = idempotent(
            scope=IDEMPOTENCY_SCOPE, key=key, payload=booking.canonical(), operation=book, now=now
        )
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
        return Response(answer.body, status=answer.status, headers=headers)


class ProofOfWorkChallenge(APIView):
    """A fresh ALTCHA proof-of-work challenge (self-hosted, SHA-256), to solve before a booking
    once this network has tried one in the hour. It expires after 10 minutes (by default) and
    its solution is accepted once, as `altcha` in `POST /api/v1/bookings/` or the booking page."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="pow_challenge",
        responses={
            200: inline_serializer(
                "PowChallenge",
                {
                    "parameters": serializers.DictField(
                        help_text="algorithm, cost, keyLength, keyPrefix, nonce, salt, expiresAt"
                    ),
                    "signature": serializers.CharField(),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        return Response(challenge_new(), headers={"Cache-Control": "no-store"})

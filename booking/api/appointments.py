"""Staff API for appointments (DESIGN §4, ``/api/v1/appointments/``): the calendar's list, book,
move and cancel, and the visit at the desk (checklist, check-in, chair, recovery, escort,
discharge, no-show); and ``/api/v1/patients/?q=`` to find the patient to book.

Staff sign in with a session (and send ``X-CSRFToken``) or a token (``Authorization: Token
<key>``; ``manage.py staff_token <username>`` makes one). A staff member sees only the
locations on their profile:

- an appointment elsewhere answers 404, whatever the role, exactly as if it did not exist;
- a ``location`` that does not exist is a 400 naming ``location``; one that exists but is not
  the user's is a 404;
- the role is checked before anything else for the list and for booking (there is no object
  yet), and after the appointment is found for everything done to one (so out of scope stays
  404). The desk's steps check their own permissions in ``booking.desk``.

Every read and write is recorded in the audit log. Times are ISO 8601 with the clinic's offset;
errors take the shape set in ``config.api``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any, ClassVar, cast

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking import checkin
from booking.access.audit import audit
from booking.access.roles import BOOK, CHANGE, VIEW
from booking.access.scoping import (
    appointments_for,
    get_scoped,
    location_ids,
    patients_find,
    patients_for,
)
from booking.api.permissions import StaffMember
from booking.api.toolkit import (
    ERROR,
    MAX_RANGE_DAYS,
    AwareDateTime,
    DateRangeQuery,
    Slug,
    StrictInteger,
    StrictSerializer,
    Text,
    appointment_type_at,
)
from booking.eligibility import treatment_authorisations
from booking.models import Appointment, AppointmentStatus, Patient
from booking.series.changes import visit_move
from booking.services import appointment_book, appointment_cancel
from scheduling.models import Location, Resource


def _require(request: Request, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise exceptions.PermissionDenied("Your role cannot do this.")


def _audit(request: Request, action: str, obj: Appointment | None = None, **kwargs: Any) -> None:
    # DRF's request stands in for Django's: it answers .user, .method, .META and the path.
    audit(cast(HttpRequest, request), action, obj, **kwargs)


def _appointments(user: Any) -> QuerySet[Appointment]:
    # One query for any number of rows: everything the body and the checklist read comes along.
    return appointments_for(user).select_related(
        "location", "appointment_type", "patient", "series__protocol"
    )


def _scoped(request: Request, reference: str) -> Appointment:
    appointment: Appointment = get_scoped(_appointments(request.user), reference=reference)
    return appointment


def _staff_location(slug: str, user: Any) -> Location:
    location = Location.objects.filter(slug=slug).first()
    if location is None:
        raise serializers.ValidationError("Unknown location.")
    if location.pk not in location_ids(user):
        raise Http404("Not found.")
    return location


# --- Output ------------------------------------------------------------------------------------


class StaffAppointmentTypeSerializer(serializers.Serializer[Any]):
    slug = serializers.SlugField()
    name = serializers.CharField(help_text="The clinic's internal name, for staff.")


class StaffPatientSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()


class PatientFoundSerializer(StaffPatientSerializer):
    date_of_birth = serializers.DateField(help_text="To tell namesakes apart.")


class SeriesPlaceSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The series (see `/api/v1/series/{id}/`).")
    index = serializers.IntegerField(help_text="This session's number, from 1.")
    of = serializers.IntegerField(help_text="Sessions in the series' protocol.")


class StaffAppointmentSerializer(serializers.Serializer[Any]):
    reference = serializers.CharField()
    location = serializers.SlugField()
    appointment_type = StaffAppointmentTypeSerializer()
    # The codes alone, as the series API lists them: one choice set, one enum in the schema.
    status = serializers.ChoiceField(choices=AppointmentStatus.values)
    start = serializers.DateTimeField(help_text="In the clinic's local time, with its offset.")
    end = serializers.DateTimeField()
    patient = StaffPatientSerializer()
    series = SeriesPlaceSerializer(allow_null=True, help_text="Null unless a series session.")
    checklist = inline_serializer(
        "ChecklistEntry",
        {
            "key": serializers.ChoiceField(
                choices=["authorised", "fasting", "escort", "medications", "consent"]
            ),
            "label": serializers.CharField(),
            "done": serializers.BooleanField(),
            "detail": serializers.CharField(
                help_text="Why a computed item is not done (treatment authorised); else empty."
            ),
        },
        many=True,
        help_text="What check-in waits for; empty when the visit needs nothing.",
    )
    version = serializers.IntegerField(help_text="Raised on every change of time or status.")


def appointment_body(appointment: Appointment, authorisation: str | None = None) -> dict[str, Any]:
    """``authorisation``: the visit's "treatment authorised" answer when the caller computed it
    for many visits at once (``treatment_authorisations``)."""
    zone = appointment.location.zone
    series = appointment.series
    return {
        "reference": appointment.reference,
        "location": appointment.location.slug,
        "appointment_type": {
            "slug": appointment.appointment_type.slug,
            "name": appointment.appointment_type.name,
        },
        "status": appointment.status,
        "start": appointment.start.astimezone(zone).isoformat(),
        "end": appointment.end.astimezone(zone).isoformat(),
        "patient": {
            "id": appointment.patient_id,
            "first_name": appointment.patient.first_name,
            "last_name": appointment.patient.last_name,
        },
        "series": None
        if series is None
        else {"id": series.pk, "index": appointment.series_index, "of": series.protocol.sessions},
        "checklist": [
            {"key": item.key, "label": item.label, "done": item.done, "detail": item.detail}
            for item in checkin.appointment_checklist(appointment, authorisation)
        ],
        "version": appointment.version,
    }


class AppointmentListQuery(StrictSerializer, DateRangeQuery):
    location = Slug(max_length=50, help_text="A location you work at.")
    end = serializers.DateField(
        input_formats=["%Y-%m-%d"],
        help_text=f"Last local date, inclusive; at most {MAX_RANGE_DAYS} days from `start`.",
    )
    resource = serializers.IntegerField(
        min_value=1, required=False, help_text="Only visits that hold this resource."
    )
    status = serializers.ChoiceField(
        choices=AppointmentStatus.values, required=False, help_text="Only visits in this status."
    )

    def validate_location(self, value: str) -> Location:
        return _staff_location(value, self.context["user"])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        resource = attrs.get("resource")
        if (
            resource is not None
            and not Resource.objects.at(attrs["location"]).filter(pk=resource).exists()
        ):
            raise serializers.ValidationError({"resource": "No such resource at this location."})
        return attrs


RULE_OVERRIDE_HELP = (
    "A prescriber's reason to set aside the minimum age or a treatment's spacing (one a day, "
    "the plan's gap), kept in the visit's history; anybody else giving one is refused."
)


def rule_override_field() -> Text:
    return Text(
        max_length=500, required=False, default="", allow_blank=True, help_text=RULE_OVERRIDE_HELP
    )


class NewAppointment(StrictSerializer):
    location = Slug(max_length=50, help_text="A location you work at.")
    appointment_type = Slug(max_length=50)
    patient = StrictInteger(min_value=1, help_text="The patient's id.")
    start = AwareDateTime(help_text="ISO 8601 with its UTC offset.")
    override_reason = rule_override_field()

    def validate_location(self, value: str) -> Location:
        return _staff_location(value, self.context["user"])

    def validate_patient(self, value: int) -> Patient:
        # Patients with a visit at the user's locations, or none anywhere yet (registered at the
        # desk); one whose visits are all elsewhere is not theirs, and reads as unknown.
        patient = patients_for(self.context["user"]).filter(pk=value).first()
        if patient is None:
            raise serializers.ValidationError("Unknown patient.")
        return patient

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["appointment_type"] = appointment_type_at(
            attrs["location"], attrs["appointment_type"]
        )
        return attrs


class PatientSearchQuery(StrictSerializer):
    q = Text(
        max_length=100,
        help_text="Words that must all match: part of a name or e-mail address, four or more "
        "digits of a phone number, a record number, or a date of birth (YYYY-MM-DD). At least "
        "two characters, unless a record number.",
    )

    def validate_q(self, value: str) -> str:
        if len(value) < 2 and not value.isdecimal():
            raise serializers.ValidationError("Type at least two characters.")
        return value


class NoInput(StrictSerializer):
    """No fields: anything sent is refused by name."""


class AppointmentMoveInput(StrictSerializer):
    start = AwareDateTime(help_text="The new start, ISO 8601 with its UTC offset.")
    override_reason = rule_override_field()


class AppointmentCancelInput(StrictSerializer):
    reason = Text(max_length=500, help_text="Why, for the visit's history.")


class ChecklistItemInput(StrictSerializer):
    item = serializers.ChoiceField(
        choices=["fasting", "medications", "consent"],
        help_text="The escort is confirmed through the escort details, not here.",
    )


class CheckInInput(StrictSerializer):
    override_reason = Text(
        max_length=500,
        required=False,
        default="",
        allow_blank=True,
        help_text="A nurse's or prescriber's reason to check in with the checklist incomplete.",
    )


class DischargeInput(StrictSerializer):
    override_reason = Text(
        max_length=500,
        required=False,
        default="",
        allow_blank=True,
        help_text="A prescriber's reason to discharge before the observation time is over.",
    )


# --- Views -------------------------------------------------------------------------------------


_BAD_INPUT = OpenApiResponse(ERROR, "Bad input; `error.fields` names each field.")
_FORBIDDEN = OpenApiResponse(ERROR, "Not signed in as staff, or the role cannot do this.")
_NOT_FOUND = OpenApiResponse(ERROR, "No such appointment (or location) among yours.")


class AppointmentList(APIView):
    """The visits at one location on the local dates `start` to `end` (inclusive), by start."""

    permission_classes = [StaffMember]

    @extend_schema(
        parameters=[AppointmentListQuery],
        responses={
            200: StaffAppointmentSerializer(many=True),
            400: _BAD_INPUT,
            403: _FORBIDDEN,
            404: OpenApiResponse(ERROR, "Not a location you work at."),
        },
    )
    def get(self, request: Request) -> Response:
        _require(request, VIEW)
        query = AppointmentListQuery(data=request.query_params, context={"user": request.user})
        query.is_valid(raise_exception=True)
        data = query.validated_data
        location: Location = data["location"]
        zone = location.zone
        # Local midnights, converted to UTC at once: a day is 23 or 25 hours around DST.
        since = datetime.combine(data["start"], time(), tzinfo=zone)
        until = datetime.combine(data["end"] + timedelta(days=1), time(), tzinfo=zone)
        rows = _appointments(request.user).filter(
            location=location, start__gte=since, start__lt=until
        )
        if "resource" in data:
            rows = rows.filter(allocations__resource_id=data["resource"]).distinct()
        if "status" in data:
            rows = rows.filter(status=data["status"])
        appointments = list(rows.order_by("start", "reference"))
        _audit(
            request,
            "view",
            object_type="appointment_list",
            location_id=location.pk,
            location=location.slug,
            start=data["start"].isoformat(),
            end=data["end"].isoformat(),
            resource=data.get("resource"),
            status=data.get("status"),
            count=len(appointments),
        )
        authorisations = treatment_authorisations(appointments)
        return Response([appointment_body(a, authorisations[a.pk]) for a in appointments])

    @extend_schema(
        request=NewAppointment,
        responses={
            201: StaffAppointmentSerializer,
            400: _BAD_INPUT,
            403: _FORBIDDEN,
            404: OpenApiResponse(ERROR, "Not a location you work at."),
            409: OpenApiResponse(ERROR, "`slot_taken` or `patient_busy`."),
            422: OpenApiResponse(
                ERROR, "`policy_violation` (in the past, beyond the horizon) or `not_eligible`."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        """Book a visit for a patient at one of your locations (any free slot, no online
        notice)."""
        _require(request, BOOK)
        incoming = NewAppointment(data=request.data, context={"user": request.user})
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        try:
            appointment = appointment_book(
                appointment_type=data["appointment_type"],
                patient=data["patient"],
                start=data["start"],
                source="staff",
                by=request.user,
                override_reason=data["override_reason"],
            )
        except DjangoPermissionDenied as refused:
            raise exceptions.PermissionDenied(str(refused) or None) from refused
        appointment = _scoped(request, appointment.reference)
        _audit(request, "create", appointment)
        return Response(appointment_body(appointment), status=status.HTTP_201_CREATED)


class AppointmentDetail(APIView):
    """One visit."""

    permission_classes = [StaffMember]

    @extend_schema(responses={200: StaffAppointmentSerializer, 403: _FORBIDDEN, 404: _NOT_FOUND})
    def get(self, request: Request, reference: str) -> Response:
        appointment = _scoped(request, reference)
        _require(request, VIEW)
        _audit(request, "view", appointment)
        return Response(appointment_body(appointment))


class _Change(APIView):
    """``POST appointments/<reference>/<change>/``: find the visit among the user's (404),
    check the role, validate the body, call one service, answer with the visit as it is now."""

    permission_classes = [StaffMember]
    # Checked here; None when the service checks its own (the desk's steps).
    permission: ClassVar[str | None] = None
    incoming: ClassVar[type[StrictSerializer]] = NoInput
    # Called with the visit, ``by`` and the validated body.
    service: ClassVar[Callable[..., Any]]
    change: ClassVar[str]

    def post(self, request: Request, reference: str) -> Response:
        appointment = _scoped(request, reference)
        if self.permission is not None:
            _require(request, self.permission)
        incoming = self.incoming(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            type(self).service(appointment=appointment, by=request.user, **incoming.validated_data)
        except DjangoPermissionDenied as refused:
            # The desk says which role may (e.g. only a nurse or prescriber overrides).
            raise exceptions.PermissionDenied(str(refused) or None) from refused
        appointment = _scoped(request, reference)
        _audit(request, "update", appointment, change=self.change)
        return Response(appointment_body(appointment))


def _responses(conflict: str, unprocessable: str | None = None) -> dict[int, Any]:
    answers: dict[int, Any] = {
        200: StaffAppointmentSerializer,
        400: _BAD_INPUT,
        403: _FORBIDDEN,
        404: _NOT_FOUND,
        409: OpenApiResponse(ERROR, conflict),
    }
    if unprocessable is not None:
        answers[422] = OpenApiResponse(ERROR, unprocessable)
    return answers


_NOT_NOW = "`invalid_transition`: the visit's status does not allow this."


@extend_schema(
    request=AppointmentMoveInput,
    responses=_responses(
        "`slot_taken` (the time is not free), `patient_busy` or `invalid_transition`.",
        "`policy_violation`, or a series session breaking its protocol's spacing.",
    ),
)
class AppointmentReschedule(_Change):
    """Move a visit. A session of a series keeps its protocol's spacing (a prescriber allows an
    exception through `/api/v1/series/sessions/{reference}/reschedule/`)."""

    permission = CHANGE
    incoming = AppointmentMoveInput
    service = visit_move
    change = "rescheduled"


@extend_schema(request=AppointmentCancelInput, responses=_responses(_NOT_NOW))
class AppointmentCancel(_Change):
    """Cancel a visit and free its chair and staff. Cancelling twice is harmless."""

    permission = CHANGE
    incoming = AppointmentCancelInput
    service = appointment_cancel
    change = "cancelled"


@extend_schema(request=ChecklistItemInput, responses=_responses(_NOT_NOW))
class AppointmentChecklist(_Change):
    """Tick one item of the pre-visit checklist: `fasting` and `consent` are the desk's,
    `medications` a nurse's or prescriber's."""

    incoming = ChecklistItemInput
    service = checkin.appointment_checklist_record
    change = "checklist"


@extend_schema(
    request=CheckInInput,
    responses=_responses(
        "`checklist_incomplete` (the message lists what is missing) or `invalid_transition`.",
        "`policy_violation`: not the day of the visit.",
    ),
)
class AppointmentCheckIn(_Change):
    """The patient has arrived. Waits for the checklist, unless a nurse or prescriber gives an
    `override_reason` (kept with the visit)."""

    incoming = CheckInInput
    service = checkin.appointment_check_in
    change = "checked_in"


@extend_schema(request=None, responses=_responses(_NOT_NOW))
class AppointmentInChair(_Change):
    """Checked in → in the chair."""

    service = checkin.appointment_seat
    change = "in_chair"


@extend_schema(request=None, responses=_responses(_NOT_NOW))
class AppointmentRecovering(_Change):
    """In the chair → recovering."""

    service = checkin.appointment_recover
    change = "recovering"


@extend_schema(request=None, responses=_responses(_NOT_NOW))
class AppointmentEscortPresent(_Change):
    """The patient's escort is here, in person."""

    service = checkin.appointment_escort_arrived
    change = "escort_present"


@extend_schema(
    request=DischargeInput,
    responses=_responses(
        _NOT_NOW,
        "`policy_violation`: the escort is not here yet, or the observation time is not over "
        "(`fields.observation` says when the patient may leave).",
    ),
)
class AppointmentDischarge(_Change):
    """In the chair or recovering → discharged; a visit that needs an escort waits for them,
    and the type's observation time must be over unless a prescriber gives a reason."""

    incoming = DischargeInput
    service = checkin.appointment_discharge
    change = "discharged"


@extend_schema(
    request=None,
    responses=_responses(_NOT_NOW, "`policy_violation`: the late threshold has not passed."),
)
class AppointmentNoShow(_Change):
    """The patient did not come: possible once the location's late threshold has passed; the
    chair and staff are freed."""

    service = checkin.appointment_no_show
    change = "no_show"


class PatientSearch(APIView):
    """Find a patient to book: the first few of yours (see ``patients_for``) matching `q`."""

    permission_classes = [StaffMember]

    @extend_schema(
        parameters=[PatientSearchQuery],
        responses={200: PatientFoundSerializer(many=True), 400: _BAD_INPUT, 403: _FORBIDDEN},
    )
    def get(self, request: Request) -> Response:
        _require(request, VIEW)
        query = PatientSearchQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        patients = patients_find(cast(HttpRequest, request), query.validated_data["q"])
        return Response(
            [
                {
                    "id": patient.pk,
                    "first_name": patient.first_name,
                    "last_name": patient.last_name,
                    "date_of_birth": patient.date_of_birth.isoformat(),
                }
                for patient in patients
            ]
        )

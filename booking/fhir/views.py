"""The FHIR endpoints: each reads its input, calls one selector or service, and answers a
resource checked against its R4 model.

Who may see what is the staff API's rule: a token's staff member reaches only their locations,
and anything elsewhere answers 404 ``not-found``, exactly as if it did not exist. Every read is
recorded in the audit log as the staff API records its reads (``view``); ``$hold`` and ``$book``
as it records a booking (``create``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from booking.access.audit import audit
from booking.access.roles import BOOK
from booking.access.scoping import appointments_for, get_scoped, location_ids, patients_for
from booking.fhir.resources import (
    APPOINTMENT_TYPE_SYSTEM,
    FHIR_JSON,
    FHIR_VERSION,
    STATUSES_OF,
    InvalidResource,
    appointment_resource,
    healthcare_service_resource,
    location_resource,
    patient_resource,
    proposed_appointment,
    schedule_resource,
    searchset,
    validated,
)
from booking.fhir.toolkit import (
    FHIRError,
    FHIRView,
    answer,
    aware_instant,
    invalid,
    local_date,
    one,
    query,
    reference_id,
    unprocessable,
)
from booking.models import Appointment, AppointmentStatus, Patient
from booking.online import consultation_request_online, tentative_confirm, tentative_token_issue
from booking.selectors import available_slots
from booking.services import IntakeAnswers, PatientDetails, appointment_book
from scheduling.availability import from_minutes, local_day_bounds
from scheduling.models import AppointmentType, Location

# The longest range one search or ``$find`` covers, in local days: the availability API's.
MAX_RANGE_DAYS = 62
# A search by patient alone has no date range; past this many visits, narrow it.
MAX_SEARCH_RESULTS = 500
ARGONAUT = "http://fhir.org/guides/argonaut-scheduling/OperationDefinition"


def _audit(request: Request, action: str, obj: Any = None, **kwargs: Any) -> None:
    # DRF's request stands in for Django's: it answers .user, .method, .META and the path.
    audit(cast(HttpRequest, request), action, obj, **kwargs)


def _url(request: Request, resource_type: str, resource_id: object) -> str:
    return request.build_absolute_uri(f"/fhir/{resource_type}/{resource_id}")


def _locations(request: Request) -> QuerySet[Location]:
    return Location.objects.filter(id__in=location_ids(request.user))


def _types(request: Request) -> QuerySet[AppointmentType]:
    return AppointmentType.objects.select_related("location").filter(
        location_id__in=location_ids(request.user)
    )


def _appointments(request: Request) -> QuerySet[Appointment]:
    return appointments_for(request.user).select_related("location", "appointment_type")


def _require(request: Request, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise exceptions.PermissionDenied("Your role cannot do this.")


def _location_param(request: Request, value: str, name: str) -> Location:
    location: Location = get_scoped(_locations(request), pk=reference_id(value, "Location", name))
    return location


# --- CapabilityStatement ----------------------------------------------------------------------

# When this statement last changed (FHIR asks for one).
CAPABILITIES_DATE = "2026-12-07"


def _resource(
    kind: str, search: dict[str, str], *, operations: tuple[str, ...] = ()
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": kind,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": name, "type": kind_} for name, kind_ in search.items()],
    }
    if operations:
        entry["operation"] = [
            {"name": name, "definition": f"{ARGONAUT}/appointment-{name}"} for name in operations
        ]
    return entry


def capability_statement() -> dict[str, Any]:
    patient: dict[str, Any] = {"type": "Patient", "interaction": [{"code": "read"}]}
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITIES_DATE,
        "publisher": "Chairside",
        "kind": "instance",
        "software": {"name": "Chairside"},
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Argonaut Scheduling: $find proposes appointments from the "
                "clinic's availability, $hold holds one, $book books it.",
                "security": {
                    "description": "A staff API token: `Authorization: Token <key>` "
                    "(`manage.py staff_token <username>`). A token reaches only its staff "
                    "member's locations."
                },
                "resource": [
                    _resource("Location", {"name": "string"}),
                    _resource("HealthcareService", {"location": "reference"}),
                    _resource("Schedule", {"actor": "reference"}),
                    _resource(
                        "Appointment",
                        {
                            "location": "reference",
                            "patient": "reference",
                            "date": "date",
                            "status": "token",
                        },
                        operations=("find", "hold", "book"),
                    ),
                    patient,
                ],
            }
        ],
    }


class Metadata(FHIRView):
    """``GET /fhir/metadata``: what this server does; open to all, as FHIR expects."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        query(request, [])
        return answer(capability_statement())


# --- Location, HealthcareService, Schedule ---------------------------------------------------


class LocationRead(FHIRView):
    def get(self, request: Request, pk: str) -> Response:
        query(request, [])
        location = get_scoped(_locations(request), pk=pk)
        _audit(request, "view", location, object_type="fhir_location")
        return answer(location_resource(location))


class LocationSearch(FHIRView):
    """Your locations; ``name`` narrows them to those whose name contains it."""

    def get(self, request: Request) -> Response:
        params = query(request, ["name"])
        rows = _locations(request)
        if (name := one(params, "name")) is not None:
            rows = rows.filter(Q(name__icontains=name) | Q(public_name__icontains=name))
        locations = list(rows.order_by("pk"))
        _audit(request, "view", object_type="fhir_location_search", count=len(locations))
        return answer(
            searchset(
                (_url(request, "Location", loc.pk), location_resource(loc)) for loc in locations
            )
        )


def _types_search(request: Request) -> list[AppointmentType]:
    """The appointment types at your locations, ``location=`` narrowing them to one."""
    params = query(request, ["location"])
    rows = _types(request)
    if (location := one(params, "location")) is not None:
        rows = rows.filter(location=_location_param(request, location, "location"))
    return list(rows.order_by("location_id", "slug"))


class HealthcareServiceRead(FHIRView):
    def get(self, request: Request, pk: str) -> Response:
        query(request, [])
        appointment_type = get_scoped(_types(request), pk=pk)
        _audit(request, "view", appointment_type, object_type="fhir_healthcareservice")
        return answer(healthcare_service_resource(appointment_type))


class HealthcareServiceSearch(FHIRView):
    def get(self, request: Request) -> Response:
        found = _types_search(request)
        _audit(request, "view", object_type="fhir_healthcareservice_search", count=len(found))
        return answer(
            searchset(
                (_url(request, "HealthcareService", t.pk), healthcare_service_resource(t))
                for t in found
            )
        )


class ScheduleRead(FHIRView):
    def get(self, request: Request, pk: str) -> Response:
        query(request, [])
        appointment_type = get_scoped(_types(request), pk=pk)
        _audit(request, "view", appointment_type, object_type="fhir_schedule")
        return answer(schedule_resource(appointment_type))


class ScheduleSearch(FHIRView):
    """Schedules by ``actor``: a Location (its types' schedules) or a HealthcareService."""

    def get(self, request: Request) -> Response:
        params = query(request, ["actor"])
        rows = _types(request)
        if (actor := one(params, "actor")) is not None:
            if actor.startswith("HealthcareService/"):
                rows = rows.filter(pk=reference_id(actor, "HealthcareService", "actor"))
            else:
                rows = rows.filter(location=_location_param(request, actor, "actor"))
        found = list(rows.order_by("location_id", "slug"))
        _audit(request, "view", object_type="fhir_schedule_search", count=len(found))
        return answer(
            searchset((_url(request, "Schedule", t.pk), schedule_resource(t)) for t in found)
        )


# --- Appointment -------------------------------------------------------------------------------


class AppointmentRead(FHIRView):
    def get(self, request: Request, reference: str) -> Response:
        query(request, [])
        appointment = get_scoped(_appointments(request), reference=reference)
        _audit(request, "view", appointment)
        return answer(appointment_resource(appointment))


_PREFIXES = ("eq", "ge", "gt", "le", "lt")


def _date_bounds(values: list[str], location: Location) -> tuple[datetime | None, datetime | None]:
    """``date`` values (``[eq|ge|gt|le|lt]YYYY-MM-DD``, local days at ``location``) as the
    range [since, until) of a visit's start."""
    zone = location.zone
    since: datetime | None = None
    until: datetime | None = None
    for value in values:
        prefix = value[:2] if value[:2] in _PREFIXES else "eq"
        day = local_date(value.removeprefix(prefix), "date")
        lo, hi = (from_minutes(minute) for minute in local_day_bounds(zone, day))
        low = {"eq": lo, "ge": lo, "gt": hi}.get(prefix)
        high = {"eq": hi, "le": hi, "lt": lo}.get(prefix)
        if low is not None:
            since = low if since is None else max(since, low)
        if high is not None:
            until = high if until is None else min(until, high)
    return since, until


class AppointmentSearch(FHIRView):
    """Visits at one ``location``, by start: within a ``date`` range of at most 62 days, or all
    of one ``patient``'s there; ``status`` narrows either."""

    def get(self, request: Request) -> Response:
        params = query(
            request, ["location", "patient", "date", "status"], repeatable=["date", "status"]
        )
        location_param = one(params, "location")
        if location_param is None:
            invalid("Give the location to search.", "location")
        location = _location_param(request, location_param, "location")
        rows = _appointments(request).filter(location=location)
        since, until = _date_bounds(params.get("date", []), location)
        patient = one(params, "patient")
        if patient is not None:
            rows = rows.filter(patient_id=reference_id(patient, "Patient", "patient"))
        elif since is None or until is None:
            invalid("Give a date range (date=geYYYY-MM-DD&date=leYYYY-MM-DD) or a patient.", "date")
        # An hour's slack: a range across a DST change is an hour longer than its days.
        too_long = timedelta(days=MAX_RANGE_DAYS, hours=1)
        if since is not None and until is not None and until - since > too_long:
            invalid(f"A date range covers at most {MAX_RANGE_DAYS} days.", "date")
        if since is not None:
            rows = rows.filter(start__gte=since)
        if until is not None:
            rows = rows.filter(start__lt=until)
        if statuses := params.get("status"):
            unknown = [code for code in statuses if code not in STATUSES_OF]
            if unknown:
                invalid(f"Unknown status: {', '.join(unknown)}.", "status")
            rows = rows.filter(status__in=[ours for code in statuses for ours in STATUSES_OF[code]])
        appointments = list(rows.order_by("start", "reference")[: MAX_SEARCH_RESULTS + 1])
        if len(appointments) > MAX_SEARCH_RESULTS:
            raise FHIRError(
                400, "too-costly", "More than 500 visits match: narrow the search.", ["date"]
            )
        _audit(
            request,
            "view",
            object_type="fhir_appointment_search",
            location_id=location.pk,
            query=request.GET.urlencode()[:300],
            count=len(appointments),
        )
        return answer(
            searchset(
                (_url(request, "Appointment", a.reference), appointment_resource(a))
                for a in appointments
            )
        )


def _service_type(request: Request, value: str, location: Location) -> AppointmentType:
    system, _, code = value.rpartition("|")
    if system not in ("", APPOINTMENT_TYPE_SYSTEM):
        invalid(f"service-type: codes of {APPOINTMENT_TYPE_SYSTEM} only.", "service-type")
    appointment_type = _types(request).filter(location=location, slug=code, is_active=True).first()
    if appointment_type is None:
        invalid("service-type: no appointment type by that code at this location.", "service-type")
    return appointment_type


class AppointmentFind(FHIRView):
    """Argonaut's ``$find``: the visits of ``service-type`` that could be booked at
    ``location`` on the local dates ``start`` to ``end`` (inclusive, at most 62 days), as
    proposed Appointments each containing its free Slot. The same engine and rules as
    ``/api/v1/availability/`` (minimum notice and horizon included): the same query gives the
    same times."""

    def get(self, request: Request) -> Response:
        params = query(request, ["start", "end", "service-type", "location"])
        for name in ("start", "end", "service-type", "location"):
            if name not in params:
                invalid(f"{name} is required.", name)
        location = _location_param(request, params["location"][0], "location")
        appointment_type = _service_type(request, params["service-type"][0], location)
        first_day = local_date(params["start"][0], "start")
        last_day = local_date(params["end"][0], "end")
        if last_day < first_day:
            invalid("end: must not be before start.", "end")
        if (last_day - first_day).days + 1 > MAX_RANGE_DAYS:
            invalid(f"end: a range covers at most {MAX_RANGE_DAYS} days.", "end")
        slots = available_slots(
            appointment_type=appointment_type,
            first_day=first_day,
            last_day=last_day,
            now=timezone.now(),
        )
        _audit(
            request,
            "view",
            object_type="fhir_appointment_find",
            location_id=location.pk,
            appointment_type=appointment_type.slug,
            start=first_day.isoformat(),
            end=last_day.isoformat(),
            count=len(slots),
        )
        return answer(
            searchset(
                (None, proposed_appointment(appointment_type, start, end)) for start, end in slots
            )
        )


# --- $hold and $book --------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """What a client asks ``$hold`` or ``$book`` for: a visit of ``appointment_type`` for
    ``patient`` at ``start``."""

    appointment_type: AppointmentType
    patient: Patient
    start: datetime


def _parameters(request: Request) -> dict[str, Any]:
    """The body's ``appt-id`` or ``appt-resource`` (its raw JSON), once the Parameters resource
    it sits in passes the R4 model: one of the two, nothing else."""
    body = request.data
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        unprocessable("Send a Parameters resource.", "Parameters")
    try:
        validated(body)
    except InvalidResource as exc:
        where = [element for element, _ in exc.problems]
        unprocessable(f"Not a valid R4 Parameters resource: {exc}"[:1000], *where)
    found: dict[str, Any] = {}
    for index, parameter in enumerate(body.get("parameter") or []):
        name = parameter.get("name")
        if name not in ("appt-id", "appt-resource"):
            unprocessable(f"Unknown parameter {name!r}.", f"Parameters.parameter[{index}].name")
        if name in found:
            unprocessable(f"Give {name} once.", f"Parameters.parameter[{index}]")
        found[name] = parameter
    if len(found) != 1:
        unprocessable("Give either appt-id or appt-resource.", "Parameters.parameter")
    return found


def _actor_ids(appointment: dict[str, Any]) -> dict[str, list[tuple[int, str]]]:
    """Each participant's actor, by resource type: (id, element) pairs."""
    actors: dict[str, list[tuple[int, str]]] = {}
    for index, participant in enumerate(appointment.get("participant") or []):
        element = f"Appointment.participant[{index}].actor"
        ref = (participant.get("actor") or {}).get("reference")
        if not isinstance(ref, str) or ref.count("/") != 1:
            unprocessable("Each participant's actor needs a reference, e.g. Patient/12.", element)
        kind, raw = ref.split("/")
        if not (raw.isascii() and raw.isdecimal() and 0 < len(raw) <= 9):
            unprocessable(f"{ref!r} is not a reference this server knows.", element)
        actors.setdefault(kind, []).append((int(raw), element))
    return actors


def _only(actors: dict[str, list[tuple[int, str]]], kind: str) -> tuple[int, str]:
    found = actors.get(kind, [])
    if len(found) != 1:
        unprocessable(f"Name exactly one {kind} among the participants.", "Appointment.participant")
    return found[0]


def _proposal(request: Request, appointment: dict[str, Any]) -> Proposal:
    """The proposed Appointment a client sends back from ``$find``, with a Patient added."""
    actors = _actor_ids(appointment)
    unknown = sorted(set(actors) - {"Patient", "Location", "HealthcareService"})
    if unknown:
        unprocessable(f"Unexpected participant: {', '.join(unknown)}.", "Appointment.participant")
    type_id, type_element = _only(actors, "HealthcareService")
    appointment_type = _types(request).filter(pk=type_id, is_active=True).first()
    if appointment_type is None:
        unprocessable("Unknown HealthcareService.", type_element)
    for location_id, element in actors.get("Location", []):
        if location_id != appointment_type.location_id:
            unprocessable("The HealthcareService is not offered at this Location.", element)
    patient_id, patient_element = _only(actors, "Patient")
    # A patient of the user's locations, or one with no visit anywhere yet, as the staff API
    # books; any other reads as unknown.
    patient = patients_for(request.user).filter(pk=patient_id).first()
    if patient is None:
        unprocessable("Unknown Patient.", patient_element)
    start = aware_instant(appointment.get("start"), "Appointment.start")
    if "end" in appointment:
        end = aware_instant(appointment["end"], "Appointment.end")
        if end - start != timedelta(minutes=appointment_type.duration_minutes):
            unprocessable(
                f"A visit of this type lasts {appointment_type.duration_minutes} minutes.",
                "Appointment.end",
            )
    return Proposal(appointment_type=appointment_type, patient=patient, start=start)


def _bundle(request: Request, appointment: Appointment, **overrides: Any) -> Response:
    resource = appointment_resource(appointment)
    resource.update(overrides)
    return answer(searchset([(_url(request, "Appointment", appointment.reference), resource)]))


class AppointmentHold(FHIRView):
    """Argonaut's ``$hold``: the time of a proposed Appointment held for its patient, for the
    location's ``tentative_hold_minutes``, through the public booking's hold (the one hold
    concept Chairside has): the patient is e-mailed the link that would confirm it, and
    ``$book`` with the answer's id books it. Only for types booked online (a consultation); a
    location that does not verify online bookings books it at once (status ``booked``)."""

    def post(self, request: Request) -> Response:
        _require(request, BOOK)
        found = _parameters(request)
        if "appt-resource" not in found:
            unprocessable("$hold takes an appt-resource.", "Parameters.parameter")
        proposal = _proposal(request, found["appt-resource"]["resource"])
        patient = proposal.patient
        now = timezone.now()
        online = consultation_request_online(
            appointment_type=proposal.appointment_type,
            start=proposal.start,
            details=PatientDetails(
                first_name=patient.first_name,
                last_name=patient.last_name,
                email=patient.email,
                phone=patient.phone,
                date_of_birth=patient.date_of_birth,
            ),
            intake=IntakeAnswers(),
            sms_consent=patient.sms_consent,
            # One token holds as few times at once as one network may.
            client=f"fhir-user:{request.user.pk}",
            now=now,
        )
        appointment = online.appointment
        # The hold's own patient row is a provisional copy, deleted once booked or lapsed:
        # the log and the answer name the patient it is for.
        _audit(
            request,
            "create",
            object_type="appointment",
            object_id=appointment.reference,
            patient=patient,
            location_id=appointment.location_id,
            operation="$hold",
        )
        appointment = Appointment.objects.select_related("location", "appointment_type").get(
            pk=appointment.pk
        )
        overrides: dict[str, Any] = {}
        if online.expires_at is not None:
            resource = appointment_resource(appointment)
            participants = resource["participant"]
            participants[0]["actor"] = {"reference": f"Patient/{patient.pk}"}
            expires = online.expires_at.astimezone(appointment.location.zone).isoformat()
            overrides = {"participant": participants, "comment": f"Held until {expires}."}
        return _bundle(request, appointment, **overrides)


class AppointmentBook(FHIRView):
    """Argonaut's ``$book``: ``appt-resource`` (a proposed Appointment with its Patient) is
    booked through the staff API's booking service and rules; ``appt-id`` books a time
    ``$hold`` held. A time taken meanwhile answers 409 ``conflict``; a rule that refuses it
    (notice, horizon, approval) 422 naming the element."""

    def post(self, request: Request) -> Response:
        _require(request, BOOK)
        found = _parameters(request)
        if "appt-id" in found:
            appointment = self._book_held(request, found["appt-id"])
        else:
            proposal = _proposal(request, found["appt-resource"]["resource"])
            appointment = appointment_book(
                appointment_type=proposal.appointment_type,
                patient=proposal.patient,
                start=proposal.start,
                source="staff",
                by=request.user,
            )
        appointment = get_scoped(_appointments(request), pk=appointment.pk)
        _audit(request, "create", appointment, operation="$book")
        return _bundle(request, appointment)

    def _book_held(self, request: Request, parameter: dict[str, Any]) -> Appointment:
        value = parameter.get("valueUri") or parameter.get("valueString") or ""
        reference = str(value).rsplit("/", 1)[-1]
        held = (
            Appointment.objects.filter(
                reference=reference,
                location_id__in=location_ids(request.user),
                status=AppointmentStatus.TENTATIVE,
            )
            .only("pk")
            .first()
        )
        if held is None:
            raise FHIRError(404, "not-found", "No held appointment by that id.", ["appt-id"])
        # The hold is confirmed as the patient's own link would confirm it: their record is
        # matched then, and what depends on it checked (their other visits, the clinic's rules).
        token = tentative_token_issue(appointment=held)
        return tentative_confirm(token=token)


class NotFound(FHIRView):
    """Anything else under /fhir/: FHIR's 404, not the house's."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise FHIRError(404, "not-found", "No such resource type or operation here.")

    post = put = patch = delete = get


class PatientRead(FHIRView):
    """A patient's name and date of birth: enough to tell namesakes apart, nothing clinical and
    no contact details."""

    def get(self, request: Request, pk: str) -> Response:
        query(request, [])
        patient = get_scoped(patients_for(request.user), pk=pk)
        _audit(request, "view", patient, object_type="fhir_patient")
        return answer(patient_resource(patient))

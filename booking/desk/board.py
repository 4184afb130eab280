"""The front desk's day: the board of one location's visits on one local day, one visit's detail
page, and the one-click steps of a visit at the desk.

Every step is a CSRF-protected POST that calls one ``booking.checkin`` service and redirects
back to the board (post/redirect/get) with the service's own message on refusal. Visits are
looked up through ``booking.access.scoping.appointments_for``: a visit at another location is a
404. What was sent to the patient comes from the function the ``VISIT_MESSAGES`` setting names
(notifications'), so booking shows reminders without importing the app that sends them. The
forms on a visit's page that complete the patient's record post to ``booking.desk.record``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, IntegerField, OuterRef, Q, Subquery, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from booking import checkin
from booking.access.audit import audit
from booking.access.decorators import staff_required
from booking.access.roles import (
    CARE,
    CHANGE,
    CHECK_IN,
    OVERRIDE_CHECKLIST,
    VIEW,
    VIEW_AUDIT,
    is_prescriber,
    may_flag_contraindication,
    may_record_allergies,
)
from booking.access.scoping import (
    appointments_for,
    audit_events_for,
    get_scoped,
    location_ids,
    locations_for,
)
from booking.checkin import ITEM_PERMISSIONS
from booking.desk.forms import AllergiesForm, ContraindicationFlagForm, DeskForm, EscortByPhoneForm
from booking.eligibility import treatment_authorisations
from booking.errors import BookingError
from booking.models import (
    ACTIVE_STATUSES,
    CHANGEABLE_STATUSES,
    Appointment,
    AppointmentStatus,
    AuditAction,
    Intake,
)
from booking.patients import contraindications_flagged
from booking.validators import EARLIEST_DATE, LATEST_DATE
from scheduling.models import Location

S = AppointmentStatus


# What the board lists: the day's visits, including the ones that did not come. Cancelled visits
# and slots held for a waitlist offer are not visits; sessions on hold are not expected.
# On-hold visits stay on the board, flagged: the desk calls those patients.
BOARD_STATUSES = ACTIVE_STATUSES | {S.NO_SHOW, S.ON_HOLD}
# Message states that still mean "will be sent".
_WAITING = ("pending", "sending")

# AppointmentEvent.kind → how the history reads it.
EVENT_LABELS = {
    "booked": "Booked",
    "rescheduled": "Moved",
    "cancelled": "Cancelled",
    "confirmed": "Confirmed by the patient",
    "on_hold": "Put on hold",
    "resumed": "Resumed",
    "checklist_fasting": "Fasting acknowledged",
    "checklist_medications": "Medications reviewed",
    "checklist_consent": "Consent recorded",
    "checklist_override": "Checklist overridden",
    "checked_in": "Checked in",
    "in_chair": "In chair",
    "recovering": "Recovering",
    "escort_present": "Escort present",
    "discharged": "Discharged",
    "discharge_override": "Discharged before the observation time",
    "rule_override": "Clinical rule set aside by a prescriber",
    "no_show": "No-show",
    "escort_recorded": "Escort's details recorded",
}


# --- Messages, from notifications --------------------------------------------------------------


def visit_messages(appointment_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """What was or will be sent about each visit: ``{appointment_id: [message, ...]}``, a message
    being a dict with ``kind``, ``kind_label``, ``channel``, ``channel_label``, ``status``,
    ``status_label``, ``due_at``, ``sent_at`` and ``detail``, from the one function the
    ``VISIT_MESSAGES`` setting names (one query for all the ids)."""
    ids = list(appointment_ids)
    if not ids:
        return {}
    found: dict[int, list[dict[str, Any]]] = import_string(settings.VISIT_MESSAGES)(ids)
    return found


@dataclass(frozen=True)
class ReminderState:
    """A visit's messages at a glance: how many went out, wait, or failed, and what is next."""

    sent: int = 0
    pending: int = 0
    failed: int = 0
    next_kind: str = ""

    @classmethod
    def of(cls, found: list[dict[str, Any]]) -> ReminderState:
        waiting = sorted((m for m in found if m["status"] in _WAITING), key=lambda m: m["due_at"])
        return cls(
            sent=sum(m["status"] == "sent" for m in found),
            pending=len(waiting),
            failed=sum(m["status"] == "failed" for m in found),
            next_kind=waiting[0]["kind_label"] if waiting else "",
        )


# --- The board ------------------------------------------------------------------------------


def _series_sizes() -> Subquery:
    return Subquery(
        Appointment.objects.filter(series_id=OuterRef("series_id"))
        .order_by()
        .values("series_id")
        .annotate(n=Count("id"))
        .values("n"),
        output_field=IntegerField(),
    )


@dataclass(frozen=True)
class Step:
    """A one-click action on a visit: ``name`` is its address, ``label`` its button."""

    name: str
    label: str
    needs_reason: bool = False
    danger: bool = False


@dataclass
class BoardRow:
    appointment: Appointment
    series: str
    checklist: list[checkin.ChecklistItem]
    complete: bool
    late: bool
    reminders: ReminderState
    steps: list[Step] = field(default_factory=list)


def _steps(
    appointment: Appointment, items: list[checkin.ChecklistItem], late: bool, user: Any
) -> list[Step]:
    """The buttons this user gets for this visit now; the services still decide."""
    status = appointment.status
    steps: list[Step] = []
    if status in (S.BOOKED, S.CONFIRMED):
        for item in items:
            permission = ITEM_PERMISSIONS.get(item.key)
            if not item.done and permission is not None and user.has_perm(permission):
                steps.append(Step(item.key, f"Tick: {item.label.lower()}"))
        if user.has_perm(CHECK_IN):
            steps.append(Step("check-in", "Check in"))
            if late:
                steps.append(Step("no-show", "No-show", danger=True))
        unauthorised = any(i.key == "authorised" and not i.done for i in items)
        may_override = is_prescriber(user) if unauthorised else user.has_perm(OVERRIDE_CHECKLIST)
        if not all(i.done for i in items) and may_override:
            steps.append(Step("override", "Check in anyway", needs_reason=True))
    if user.has_perm(CARE):
        if status == S.CHECKED_IN:
            steps.append(Step("in-chair", "In chair"))
        if status == S.IN_CHAIR:
            steps.append(Step("recovering", "Recovering"))
        if status in (S.CHECKED_IN, S.IN_CHAIR, S.RECOVERING) and not appointment.escort_present_at:
            steps.append(Step("escort-present", "Escort present"))
        if status in (S.IN_CHAIR, S.RECOVERING):
            steps.append(Step("discharge", "Discharge"))
    return steps


def board_url(location: Location, day: date) -> str:
    query = urlencode({"location": location.slug, "date": day.isoformat()})
    return f"{reverse('staff-board')}?{query}"


def _day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    # Local midnights, converted to UTC at once: a DST day is 23 or 25 hours long.
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "staff/board.html", {"nav": "board", "error": message}, status=400)


@require_GET
@never_cache
@staff_required(VIEW)
def board(request: HttpRequest) -> HttpResponse:
    user = request.user
    locations = list(locations_for(user).order_by("name"))
    if not locations:
        return render(request, "staff/board.html", {"nav": "board", "locations": []})
    wanted = request.GET.get("location")
    location = (
        next((loc for loc in locations if loc.slug == wanted), None) if wanted else locations[0]
    )
    if location is None:
        raise Http404("Not found.")  # another location's board, or none: as if it did not exist
    zone = location.zone
    now = timezone.now()
    raw_day = request.GET.get("date")
    try:
        day = date.fromisoformat(raw_day) if raw_day else now.astimezone(zone).date()
    except ValueError:
        return _bad_request(request, "The date must look like 2026-12-01.")
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        return _bad_request(
            request,
            f"The date must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}.",
        )
    start, end = _day_bounds(day, zone)
    visits = list(
        appointments_for(user)
        .filter(location=location, start__gte=start, start__lt=end, status__in=BOARD_STATUSES)
        .select_related("patient", "appointment_type", "location")
        .annotate(series_size=_series_sizes())
        .order_by("start", "id")
    )
    found = visit_messages(a.pk for a in visits)
    authorisations = treatment_authorisations(visits)
    rows = []
    for appointment in visits:
        items = checkin.appointment_checklist(appointment, authorisations[appointment.pk])
        late = appointment.is_late(now)
        rows.append(
            BoardRow(
                appointment=appointment,
                series=appointment.series_label,
                checklist=items,
                complete=all(i.done for i in items),
                late=late,
                reminders=ReminderState.of(found.get(appointment.pk, [])),
                steps=_steps(appointment, items, late, user),
            )
        )
    needs_new_time = needs_new_time_for(user, location, now)
    audit(
        request,
        AuditAction.VIEW,
        object_type="day_board",
        object_id=f"{location.slug}/{day.isoformat()}",
        location_id=location.pk,
        date=day.isoformat(),
        visits=len(rows),
    )
    return render(
        request,
        "staff/board.html",
        {
            "nav": "board",
            "locations": locations,
            "location": location,
            "day": day,
            "day_start": start,
            "previous_url": board_url(location, day - timedelta(days=1)),
            "next_url": board_url(location, day + timedelta(days=1)),
            "today_url": board_url(location, now.astimezone(zone).date()),
            "rows": rows,
            "needs_new_time": needs_new_time,
        },
    )


def needs_new_time_for(user: Any, location: Location, now: datetime) -> list[Appointment]:
    """The location's visits to come that a setup change left without a resource (an admin
    confirmed it): the desk moves or cancels each, and that clears the flag. One query."""
    return list(
        appointments_for(user)
        .filter(
            location=location,
            needs_new_time_since__isnull=False,
            end__gt=now,
            status__in=sorted(CHANGEABLE_STATUSES),
        )
        .select_related("appointment_type")
        .order_by("start", "id")
    )


# --- The steps --------------------------------------------------------------------------------


Run = Callable[[Appointment, Any, str], Appointment]


def _tick(item: str) -> Run:
    return lambda appointment, by, reason: checkin.appointment_checklist_record(
        appointment=appointment, item=item, by=by
    )


def _override(appointment: Appointment, by: Any, reason: str) -> Appointment:
    if not reason.strip():
        raise BookingError(
            "Give a reason to check in with an incomplete checklist.", field="reason"
        )
    return checkin.appointment_check_in(appointment=appointment, by=by, override_reason=reason)


# name → (what to call, what the desk is told when it worked)
ACTIONS: dict[str, tuple[Run, str]] = {
    "fasting": (_tick("fasting"), "Fasting acknowledged for {name}."),
    "medications": (_tick("medications"), "Medications reviewed for {name}."),
    "consent": (_tick("consent"), "Consent recorded for {name}."),
    "check-in": (
        lambda a, by, _r: checkin.appointment_check_in(appointment=a, by=by),
        "{name} checked in.",
    ),
    "override": (_override, "{name} checked in; the checklist override is on record."),
    "in-chair": (
        lambda a, by, _r: checkin.appointment_seat(appointment=a, by=by),
        "{name} is in the chair.",
    ),
    "recovering": (
        lambda a, by, _r: checkin.appointment_recover(appointment=a, by=by),
        "{name} is recovering.",
    ),
    "escort-present": (
        lambda a, by, _r: checkin.appointment_escort_arrived(appointment=a, by=by),
        "{name}'s escort is here.",
    ),
    "discharge": (
        lambda a, by, r: checkin.appointment_discharge(appointment=a, by=by, override_reason=r),
        "{name} discharged.",
    ),
    "no-show": (
        lambda a, by, _r: checkin.appointment_no_show(appointment=a, by=by),
        "{name} marked no-show.",
    ),
}


@require_POST
@staff_required(VIEW)
def board_step(request: HttpRequest, reference: str, step: str) -> HttpResponse:
    appointment = get_scoped(
        appointments_for(request.user).select_related("patient", "location", "appointment_type"),
        reference=reference,
    )
    back = board_url(
        appointment.location, appointment.start.astimezone(appointment.location.zone).date()
    )
    if step not in ACTIONS:
        return _bad_request(request, f"Unknown action {step!r}.")
    run, done = ACTIONS[step]
    name = f"{appointment.patient.first_name} {appointment.patient.last_name}"
    try:
        run(appointment, request.user, request.POST.get("reason", "")[:500])
    except BookingError as refused:
        messages.error(request, f"{name}: {refused.message}")
    except PermissionDenied as refused:
        messages.error(request, f"{name}: {refused or 'Your role cannot do this.'}")
    else:
        audit(request, AuditAction.UPDATE, appointment, step=step)
        messages.success(request, done.format(name=name))
    return redirect(f"{back}#visit-{appointment.reference}")


# --- One visit --------------------------------------------------------------------------------


def appointment_visit(user: Any, reference: str) -> Appointment:
    """The visit ``reference`` as its page shows it: a visit at another location is a 404."""
    visit: Appointment = get_scoped(
        appointments_for(user)
        .select_related(
            "patient",
            "patient__allergies_recorded_by",
            "location",
            "appointment_type",
            "checklist_override_by",
            "medications_reviewed_by",
            "escort_recorded_by",
        )
        .annotate(series_size=_series_sizes()),
        reference=reference,
    )
    return visit


@require_GET
@never_cache
@staff_required(VIEW)
def appointment_detail(request: HttpRequest, reference: str) -> HttpResponse:
    return appointment_page(request, appointment_visit(request.user, reference))


def _record_forms(user: Any, appointment: Appointment) -> dict[str, DeskForm | None]:
    """The forms completing the record that this user may use here (None for the others)."""
    patient = appointment.patient
    escort = None
    if user.has_perm(CHANGE) and appointment.status in CHANGEABLE_STATUSES:
        escort = EscortByPhoneForm(
            prefix="escort",
            patient_phone=patient.phone,
            initial={
                "escort_name": appointment.escort_name,
                "escort_phone": appointment.escort_phone,
            },
        )
    allergies = None
    if may_record_allergies(user):
        allergies = AllergiesForm(
            prefix="allergies",
            initial={
                "allergies": patient.allergies,
                "none_known": patient.allergies_recorded_at is not None and not patient.allergies,
            },
        )
    flag = ContraindicationFlagForm(prefix="flag") if may_flag_contraindication(user) else None
    return {"escort_form": escort, "allergies_form": allergies, "flag_form": flag}


def appointment_page(
    request: HttpRequest,
    appointment: Appointment,
    *,
    refused: Mapping[str, DeskForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The visit's page (read, so audited), with each form in ``refused`` shown with its errors
    in place of a fresh one."""
    user = request.user
    audit(request, AuditAction.VIEW, appointment)
    # A session of a series keeps no intake of its own: the consultation's answers are the
    # patient's, shown from a visit at one of this user's locations only.
    intake = (
        Intake.objects.filter(
            appointment__patient=appointment.patient,
            appointment__location_id__in=location_ids(user),
        )
        .annotate(own=Case(When(appointment=appointment, then=Value(0)), default=Value(1)))
        .order_by("own", "-created_at")
        .first()
    )
    events = [
        (event, EVENT_LABELS.get(event.kind, event.kind.replace("_", " ").capitalize()))
        for event in appointment.events.select_related("by").order_by("at", "id")
    ]
    trail = None
    if user.has_perm(VIEW_AUDIT):
        trail = list(
            audit_events_for(user)
            .filter(
                Q(object_type="appointment", object_id=str(appointment.pk))
                | Q(patient=appointment.patient)
            )
            .select_related("patient", "location")
            .order_by("-at", "-id")[:200]
        )
    items = checkin.appointment_checklist(appointment)
    zone = appointment.location.zone
    return render(
        request,
        "staff/appointment.html",
        {
            "nav": "board",
            "appointment": appointment,
            "patient": appointment.patient,
            "zone": appointment.location.timezone,
            "series": appointment.series_label,
            "allocations": appointment.allocations.select_related("resource").order_by(
                "start", "resource__name"
            ),
            "intake": intake,
            "checklist": items,
            "events": events,
            "messages_sent": visit_messages([appointment.pk]).get(appointment.pk, []),
            "trail": trail,
            "board_url": board_url(appointment.location, appointment.start.astimezone(zone).date()),
            "flags": contraindications_flagged(appointment.patient),
            **_record_forms(user, appointment),
            **(refused or {}),
        },
        status=status,
    )

"""The public booking pages, /book/: place -> visit -> day and time -> details -> review -> done.

Server-rendered and complete without JavaScript. Every step before confirmation is a GET that
changes nothing, or a POST that only validates and re-renders: the answers travel in hidden
fields rather than in the session, so no intake answer is stored anywhere before the patient
confirms. Confirmation calls the same service as ``POST /api/v1/bookings/``: where the location
verifies online bookings it holds the time and the done page says "check your e-mail", the same
page whoever the patient is (``booking.online``; the e-mailed link leads to ``portal.confirm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from booking.errors import BookingError, PatientBusy, SlotTaken
from booking.models import ACTIVE_STATUSES, Appointment, AppointmentStatus
from booking.online import (
    DayHeld,
    OnlineBooking,
    TooManyHolds,
    consultation_request_online,
    tentative_holds_on,
)
from booking.portal.forms import BookingDetailsForm, parse_start
from booking.pow import FIELD as POW_FIELD
from booking.pow import ProofOfWorkRequired, proof_gate, proof_required
from booking.selectors import available_slots
from booking.throttle import booking_rate_limit, client_key
from scheduling.models import AppointmentType, Location

STRIP_DAYS = 7
SESSION_KEY = "book_done"


@dataclass(frozen=True)
class Day:
    date: date
    slots: int
    bookable: bool
    url: str
    current: bool


@dataclass(frozen=True)
class Slot:
    start: datetime
    iso: str
    url: str


@dataclass(frozen=True)
class HeldSlot:
    """A time another patient's unconfirmed booking holds: free again at ``until`` unless they
    confirm."""

    start: datetime
    until: datetime


# --- Lookups ----------------------------------------------------------------------------------


def _locations() -> list[Location]:
    return list(Location.objects.filter(is_active=True).order_by("public_name", "pk"))


def _location(slug: str) -> Location | None:
    return Location.objects.filter(slug=slug, is_active=True).first()


def _bookable_types(location: Location) -> list[AppointmentType]:
    return list(
        AppointmentType.objects.filter(
            location=location, is_active=True, bookable_online=True
        ).order_by("public_name", "pk")
    )


def _appointment_type(location: Location, slug: str) -> AppointmentType | None:
    return (
        AppointmentType.objects.select_related("location")
        .filter(location=location, is_active=True, bookable_online=True)
        .with_patient_slug(slug)
        .first()
    )


def _bookable(location_slug: str, type_slug: str) -> tuple[Location, AppointmentType] | None:
    location = _location(location_slug)
    appointment_type = _appointment_type(location, type_slug) if location else None
    return (location, appointment_type) if location and appointment_type else None


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "booking/book/not_found.html", status=404)


def _today(location: Location, now: datetime) -> date:
    return now.astimezone(location.zone).date()


def _last_day(appointment_type: AppointmentType, now: datetime) -> date:
    horizon = now + timedelta(days=appointment_type.horizon_days)
    return horizon.astimezone(appointment_type.location.zone).date()


def _slots_url(location: Location, appointment_type: AppointmentType, day: date | None) -> str:
    url = reverse("book-slots", args=[location.slug, appointment_type.patient_slug])
    return f"{url}?{urlencode({'date': day.isoformat()})}" if day else url


def _steps(current: str) -> list[tuple[str, bool]]:
    names = ["Place", "Visit", "Day and time", "Your details", "Review"]
    if Location.objects.filter(is_active=True).count() <= 1:
        names.remove("Place")
    return [(name, name == current) for name in names]


def _base_context(
    location: Location, appointment_type: AppointmentType | None, step: str
) -> dict[str, Any]:
    return {
        "location": location,
        "appointment_type": appointment_type,
        "steps": _steps(step),
        "zone": location.timezone,
    }


def _parse_day(value: str | None) -> date | None:
    if not value or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _day_slots(
    appointment_type: AppointmentType, first: date, last: date, now: datetime
) -> dict[date, list[datetime]]:
    zone = appointment_type.location.zone
    by_day: dict[date, list[datetime]] = {}
    if last < first:
        return by_day
    for start, _end in available_slots(
        appointment_type=appointment_type, first_day=first, last_day=last, now=now
    ):
        by_day.setdefault(start.astimezone(zone).date(), []).append(start)
    return by_day


def _slot(location: Location, appointment_type: AppointmentType, start: datetime) -> Slot:
    iso = start.astimezone(location.zone).isoformat()
    url = reverse("book-details", args=[location.slug, appointment_type.patient_slug])
    return Slot(start=start, iso=iso, url=f"{url}?{urlencode({'start': iso})}")


def _is_open(appointment_type: AppointmentType, start: datetime, now: datetime) -> bool:
    day = start.astimezone(appointment_type.location.zone).date()
    return start in _day_slots(appointment_type, day, day, now).get(day, [])


def _form(
    location: Location, now: datetime, data: Any = None, initial: dict[str, Any] | None = None
) -> BookingDetailsForm:
    return BookingDetailsForm(data, initial=initial, location=location, today=_today(location, now))


# --- Steps --------------------------------------------------------------------------------------


@require_GET
def book_start(request: HttpRequest) -> HttpResponse:
    locations = _locations()
    if len(locations) == 1:
        return redirect("book-types", locations[0].slug)
    return render(
        request,
        "booking/book/locations.html",
        {"locations": locations, "steps": _steps("Place")},
    )


@require_GET
def book_types(request: HttpRequest, location_slug: str) -> HttpResponse:
    location = _location(location_slug)
    if location is None:
        return _not_found(request)
    context = _base_context(location, None, "Visit")
    context["types"] = _bookable_types(location)
    context["several_locations"] = len(_locations()) > 1
    return render(request, "booking/book/types.html", context)


@require_GET
def book_slots(request: HttpRequest, location_slug: str, type_slug: str) -> HttpResponse:
    found = _bookable(location_slug, type_slug)
    if found is None:
        return _not_found(request)
    location, appointment_type = found
    now = timezone.now()
    today = _today(location, now)
    last = _last_day(appointment_type, now)
    requested = _parse_day(request.GET.get("date"))
    if requested is None:
        strip_start = today
    else:
        requested = min(max(requested, today), last)
        # Weeks are counted from today, so the strip and its prev/next links stay put.
        strip_start = today + timedelta(days=STRIP_DAYS * ((requested - today).days // STRIP_DAYS))
    strip_end = strip_start + timedelta(days=STRIP_DAYS - 1)
    by_day = _day_slots(appointment_type, strip_start, min(strip_end, last), now)
    # With no day asked for, open on the first one that has a free time.
    selected = requested or (min(by_day) if by_day else today)
    days = [
        Day(
            date=day,
            slots=len(by_day.get(day, [])),
            bookable=day <= last,
            url=_slots_url(location, appointment_type, day),
            current=day == selected,
        )
        for day in (strip_start + timedelta(days=n) for n in range(STRIP_DAYS))
    ]
    previous_week = strip_start - timedelta(days=STRIP_DAYS)
    next_week = strip_start + timedelta(days=STRIP_DAYS)
    free = by_day.get(selected, [])
    held_until: dict[datetime, datetime] = {}
    for start, until in tentative_holds_on(appointment_type=appointment_type, day=selected):
        if start not in free and until > now:
            held_until[start] = min(until, held_until.get(start, until))
    held = [HeldSlot(start=start, until=until) for start, until in held_until.items()]
    context = _base_context(location, appointment_type, "Day and time")
    context.update(
        {
            "days": days,
            "selected": selected,
            "slots": [_slot(location, appointment_type, s) for s in free],
            "held": held,
            "previous_url": (
                _slots_url(location, appointment_type, previous_week)
                if strip_start > today
                else None
            ),
            "next_url": (
                _slots_url(location, appointment_type, next_week) if next_week <= last else None
            ),
            "types_url": reverse("book-types", args=[location.slug]),
        }
    )
    return render(request, "booking/book/slots.html", context)


@require_http_methods(["GET", "POST"])
def book_details(request: HttpRequest, location_slug: str, type_slug: str) -> HttpResponse:
    """GET: the empty form for a time picked from the list. POST: the review page's "Change",
    the form filled with the answers carried so far."""
    found = _bookable(location_slug, type_slug)
    if found is None:
        return _not_found(request)
    location, appointment_type = found
    now = timezone.now()
    source = request.POST if request.method == "POST" else request.GET
    start = parse_start(source.get("start"))
    if start is None:
        messages.error(request, "Choose a time first.")
        return redirect(_slots_url(location, appointment_type, None))
    if request.method == "GET" and not _is_open(appointment_type, start, now):
        messages.error(request, "That time is no longer available. Please choose another.")
        return redirect(
            _slots_url(location, appointment_type, start.astimezone(location.zone).date())
        )
    initial = BookingDetailsForm.initial_from(request.POST) if request.method == "POST" else {}
    initial["start"] = start.isoformat()
    return _render_details(
        request, location, appointment_type, _form(location, now, initial=initial)
    )


def _render_details(
    request: HttpRequest,
    location: Location,
    appointment_type: AppointmentType,
    form: BookingDetailsForm,
    status: int = 200,
    *,
    pow_required: bool | None = None,
) -> HttpResponse:
    context = _base_context(location, appointment_type, "Your details")
    start = parse_start(str(form["start"].value() or ""))
    if pow_required is None:
        pow_required = proof_required(request, counted=False)
    context.update(
        {
            "form": form,
            "pow_required": pow_required,
            "start": start,
            "slots_url": _slots_url(
                location,
                appointment_type,
                start.astimezone(location.zone).date() if start else None,
            ),
        }
    )
    return render(request, "booking/book/details.html", context, status=status)


def _render_review(
    request: HttpRequest,
    location: Location,
    appointment_type: AppointmentType,
    form: BookingDetailsForm,
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    context = _base_context(location, appointment_type, "Review")
    data = form.cleaned_data
    context.update(
        {
            "form": form,
            "start": form.start_at,
            "carried": list(form.carried()),
            "conditions": [form.condition_options[pk] for pk in data.get("conditions", [])],
            "screening": [
                (text, data[name] == "yes") for name, text in form.screening_questions.items()
            ],
            "problem": problem,
        }
    )
    return render(request, "booking/book/review.html", context, status=status)


def _render_times(
    request: HttpRequest,
    location: Location,
    appointment_type: AppointmentType,
    carried: list[tuple[str, str]],
    first: date,
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    """Free times for a week from ``first`` as buttons that post the carried answers on to
    review: choosing another time keeps everything the patient typed."""
    now = timezone.now()
    today = _today(location, now)
    last = _last_day(appointment_type, now)
    first = min(max(first, today), last)
    end = min(first + timedelta(days=STRIP_DAYS - 1), last)
    by_day = _day_slots(appointment_type, first, end, now)
    later = end + timedelta(days=1)
    earlier = max(first - timedelta(days=STRIP_DAYS), today)
    context = _base_context(location, appointment_type, "Day and time")
    context.update(
        {
            "carried": carried,
            "days": [
                (day, [_slot(location, appointment_type, s) for s in starts])
                for day, starts in sorted(by_day.items())
            ],
            "first": first,
            "end": end,
            "earlier": earlier if first > today else None,
            "later": later if later <= last else None,
            "problem": problem,
        }
    )
    return render(request, "booking/book/times.html", context, status=status)


def _carry_raw(request: HttpRequest) -> list[tuple[str, str]]:
    skip = {"csrfmiddlewaretoken", "start", "date"}
    return [
        (name, value)
        for name in request.POST
        if name not in skip
        for value in request.POST.getlist(name)
    ]


@require_http_methods(["GET", "POST"])
def book_review(request: HttpRequest, location_slug: str, type_slug: str) -> HttpResponse:
    found = _bookable(location_slug, type_slug)
    if found is None:
        return _not_found(request)
    location, appointment_type = found
    if request.method == "GET":
        # A reload or a bookmark of a step that only answers a form: start from the times.
        return redirect(_slots_url(location, appointment_type, None))
    form = _form(location, timezone.now(), data=request.POST)
    if not form.is_valid():
        if "start" in form.errors:
            messages.error(request, "Choose a time first.")
            return redirect(_slots_url(location, appointment_type, None))
        return _render_details(request, location, appointment_type, form)
    return _render_review(request, location, appointment_type, form)


@require_http_methods(["GET", "POST"])
def book_times(request: HttpRequest, location_slug: str, type_slug: str) -> HttpResponse:
    found = _bookable(location_slug, type_slug)
    if found is None:
        return _not_found(request)
    location, appointment_type = found
    if request.method == "GET":
        # A reload or a bookmark of a step that only answers a form: start from the times.
        return redirect(_slots_url(location, appointment_type, None))
    first = _parse_day(request.POST.get("date"))
    if first is None:
        start = parse_start(request.POST.get("start"))
        first = (
            start.astimezone(location.zone).date() if start else _today(location, timezone.now())
        )
    return _render_times(request, location, appointment_type, _carry_raw(request), first)


@require_http_methods(["GET", "POST"])
def book_confirm(request: HttpRequest, location_slug: str, type_slug: str) -> HttpResponse:
    found = _bookable(location_slug, type_slug)
    if found is None:
        return _not_found(request)
    location, appointment_type = found
    if request.method == "GET":
        # A reload or a bookmark of a step that only answers a form: start from the times.
        return redirect(_slots_url(location, appointment_type, None))
    wait = booking_rate_limit(request)
    if wait is not None:
        return _too_many(request, location, wait)
    now = timezone.now()
    form = _form(location, now, data=request.POST)
    if not form.is_valid():
        if "start" in form.errors:
            messages.error(request, "Choose a time first.")
            return redirect(_slots_url(location, appointment_type, None))
        return _render_details(request, location, appointment_type, form)
    if form.is_spam:
        # Whoever filled the invisible field gets the same page a patient would, and nothing
        # is booked: telling a robot it was caught only teaches it.
        expires_at = None
        if location.verify_online_bookings:
            expires_at = now + timedelta(minutes=location.tentative_hold_minutes)
        _remember(request, location, appointment_type, form, None, expires_at=expires_at)
        return HttpResponseRedirect(reverse("book-done"), status=303)
    if _booked_here(request, form):
        # A reload or a second click of "Confirm": the visit (or the time held) is this
        # session's own. Held times are matched to nobody, so nothing else would notice.
        return HttpResponseRedirect(reverse("book-done"), status=303)
    try:
        proof_gate(request, form.cleaned_data[POW_FIELD])
    except ProofOfWorkRequired as exc:
        # Back to the details, where the check is shown; nothing is held.
        form.add_error(POW_FIELD, exc.message)
        return _render_details(
            request, location, appointment_type, form, status=exc.status, pow_required=True
        )
    try:
        booking = consultation_request_online(
            appointment_type=appointment_type,
            start=form.start_at,
            details=form.patient_details(),
            intake=form.intake_answers(),
            sms_consent=form.cleaned_data["sms_consent"],
            client=client_key(request),
            now=now,
        )
    except TooManyHolds as exc:
        return _too_many(request, location, exc.retry_after)
    except (SlotTaken, PatientBusy, DayHeld) as exc:
        if isinstance(exc, PatientBusy) and _booked_here(request, form):
            # Two clicks at once: the other one booked it for this session.
            return HttpResponseRedirect(reverse("book-done"), status=303)
        carried = [(n, v) for n, v in form.carried() if n != "start"]
        day = form.start_at.astimezone(location.zone).date()
        problem = (
            "You already have an appointment at that time. Please choose another."
            if isinstance(exc, PatientBusy)
            else exc.message
        )
        return _render_times(
            request, location, appointment_type, carried, day, problem=problem, status=409
        )
    except BookingError as exc:
        if exc.field == "phone":
            form.add_error("phone", exc.message)
            return _render_details(request, location, appointment_type, form)
        return _render_review(
            request, location, appointment_type, form, problem=exc.message, status=exc.status
        )
    _remember(request, location, appointment_type, form, booking, expires_at=booking.expires_at)
    return HttpResponseRedirect(reverse("book-done"), status=303)


def _too_many(request: HttpRequest, location: Location, wait: int) -> HttpResponse:
    response = render(
        request,
        "booking/book/rate_limited.html",
        {"location": location, "minutes": max(1, -(-wait // 60))},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


def _booked_here(request: HttpRequest, form: BookingDetailsForm) -> bool:
    done = request.session.get(SESSION_KEY)
    if not isinstance(done, dict) or not done.get("appointment"):
        return False
    return Appointment.objects.filter(
        pk=done["appointment"],
        status__in=[*ACTIVE_STATUSES, AppointmentStatus.TENTATIVE],
        start=form.start_at,
        patient__email__iexact=form.cleaned_data["email"],
        patient__date_of_birth=form.cleaned_data["date_of_birth"],
    ).exists()


def _remember(
    request: HttpRequest,
    location: Location,
    appointment_type: AppointmentType,
    form: BookingDetailsForm,
    booking: OnlineBooking | None,
    *,
    expires_at: datetime | None,
) -> None:
    # The confirmation is shown to this browser session only: its URL carries nothing, so
    # nobody can read a booking by guessing or sharing an address. A tentative booking shows
    # nothing that came from the register (it has no reference yet), so its page is the same
    # whoever typed what.
    request.session.cycle_key()
    booked = booking is not None and not booking.tentative
    request.session[SESSION_KEY] = {
        "reference": booking.appointment.reference if booking and booked else "",
        "appointment": booking.appointment.pk if booking else None,
        "location": location.pk,
        "type": appointment_type.pk,
        "start": form.start_at.isoformat(),
        "email": form.cleaned_data["email"],
        "expires_at": expires_at.isoformat() if expires_at else "",
    }


@require_GET
def book_done(request: HttpRequest) -> HttpResponse:
    done = request.session.get(SESSION_KEY)
    if not isinstance(done, dict):
        return render(request, "booking/book/done_missing.html", status=404)
    appointment = None
    if done.get("reference"):
        appointment = (
            Appointment.objects.select_related("location", "appointment_type")
            .filter(reference=done["reference"])
            .first()
        )
        if appointment is None:
            return render(request, "booking/book/done_missing.html", status=404)
        location = appointment.location
        type_name = appointment.appointment_type.public_name
        start = appointment.start
    else:
        location_or_none = Location.objects.filter(pk=int(done.get("location") or 0)).first()
        appointment_type = AppointmentType.objects.filter(pk=int(done.get("type") or 0)).first()
        start_or_none = parse_start(done.get("start"))
        if location_or_none is None or appointment_type is None or start_or_none is None:
            return render(request, "booking/book/done_missing.html", status=404)
        location, type_name, start = location_or_none, appointment_type.public_name, start_or_none
    context = {
        "location": location,
        "zone": location.timezone,
        "appointment": appointment,
        "type_name": type_name,
        "start": start,
        "email": done.get("email", ""),
        "book_again_url": reverse("book-start"),
    }
    held_until = parse_start(done.get("expires_at"))
    if held_until is not None:
        context["held_until"] = held_until
        return render(request, "booking/book/check_email.html", context)
    return render(request, "booking/book/done.html", context)

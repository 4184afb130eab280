"""The patient's secure-link pages: /a/<token>/ and the request for a new link at /a/.

The token in the address is the patient's only key, so every page here is private: never
cached, never indexed, and never sent to another site as a Referer. Every appointment is looked
up through the patient the token resolves to; an unknown, expired, revoked or forged token, and
anybody else's visit, get the same 404 page. GET only reads; every change is a CSRF-protected
POST that calls one booking service and redirects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from booking.errors import BookingError
from booking.ics import appointment_ics
from booking.links import patient_link_resolve
from booking.models import (
    ACTIVE_STATUSES,
    CHANGEABLE_STATUSES,
    Appointment,
    AppointmentStatus,
    Patient,
)
from booking.portal.forms import CancelForm, EscortForm, LinkRequestForm, RescheduleForm
from booking.preparation import Preparation, appointment_preparation
from booking.selectors import available_slots
from booking.series.changes import visit_move
from booking.services import appointment_cancel, appointment_confirm, appointment_escort_update
from booking.tasks import link_request_queue
from booking.throttle import client_key, rate_limit_hit
from scheduling.clock import clinic_datetime

# Enough for a patient who mistypes twice; too few to probe who is a patient here.
LINK_REQUEST_LIMIT = 5
LINK_REQUEST_WINDOW = 60 * 60
# Days of open times shown at once on the reschedule page: one bounded availability query.
RESCHEDULE_DAYS = 14
# Visits the page lists: everything still to come that the patient may need to know about.
LISTED_STATUSES = ACTIVE_STATUSES | {AppointmentStatus.ON_HOLD}

View = Callable[..., HttpResponse]


class _NotFound(Exception):
    def __init__(self, back: str = "") -> None:
        super().__init__()
        self.back = back


def private(view: View) -> View:
    """Headers for pages whose address is a credential, and one 404 page for every refusal."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except _NotFound as missing:
            response = render(
                request, "booking/link/not_found.html", {"back": missing.back}, status=404
            )
        add_never_cache_headers(response)  # Cache-Control: ... no-store ...
        # Not "no-referrer": under it browsers send "Origin: null" with the page's own form
        # POSTs, and CSRF protection rightly refuses those. "same-origin" keeps the address
        # (the token) from every other site, and our own server already has it.
        response["Referrer-Policy"] = "same-origin"
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapper


def see_other(url: str) -> HttpResponseRedirect:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def link_patient(token: str, now: datetime) -> Patient:
    patient = patient_link_resolve(token=token, now=now)
    if patient is None:
        raise _NotFound()
    return patient


def _visit(patient: Patient, token: str, reference: str) -> Appointment:
    # Scoped to the token's patient: another patient's reference is simply not found.
    appointment = (
        Appointment.objects.select_related("location", "appointment_type")
        .filter(patient=patient, reference=reference)
        .first()
    )
    if appointment is None:
        raise _NotFound(back=reverse("patient-link", args=[token]))
    return appointment


def _page_url(token: str, appointment: Appointment | None = None) -> str:
    url = reverse("patient-link", args=[token])
    return f"{url}#visit-{appointment.reference}" if appointment else url


@dataclass
class VisitCard:
    """One visit as its patient sees it, with what they may still do about it."""

    appointment: Appointment
    prep: Preparation
    zone: str
    can_confirm: bool
    change_open: bool
    change_closed: bool
    solids_day_before: bool
    liquids_day_before: bool
    escort_form: EscortForm | None


def _card(
    appointment: Appointment, patient: Patient, now: datetime, escort_form: EscortForm | None = None
) -> VisitCard:
    prep = appointment_preparation(appointment)
    local_day = appointment.start.astimezone(appointment.location.zone).date()
    future = appointment.start > now
    changeable = appointment.status in CHANGEABLE_STATUSES and future
    change_open = changeable and now <= appointment.online_changes_close_at
    if escort_form is None and changeable and prep.escort_required:
        escort_form = EscortForm(
            prefix=appointment.reference,
            patient_phone=patient.phone,
            initial={
                "escort_name": appointment.escort_name,
                "escort_phone": appointment.escort_phone,
            },
        )
    return VisitCard(
        appointment=appointment,
        prep=prep,
        zone=appointment.location.timezone,
        can_confirm=appointment.status == AppointmentStatus.BOOKED and future,
        change_open=change_open,
        change_closed=changeable and not change_open,
        solids_day_before=bool(prep.solids_until and prep.solids_until.date() < local_day),
        liquids_day_before=bool(
            prep.clear_liquids_until and prep.clear_liquids_until.date() < local_day
        ),
        escort_form=escort_form if changeable else None,
    )


def _visits_page(
    request: HttpRequest,
    *,
    token: str,
    patient: Patient,
    now: datetime,
    escort_forms: dict[int, EscortForm] | None = None,
) -> HttpResponse:
    escort_forms = escort_forms or {}
    visits = list(
        Appointment.objects.select_related("location", "appointment_type")
        .filter(patient=patient, status__in=LISTED_STATUSES, end__gt=now)
        .order_by("start")
    )
    cards = [_card(a, patient, now, escort_forms.get(a.pk)) for a in visits]
    location = visits[0].location if visits else None
    if location is None:
        last = (
            Appointment.objects.select_related("location")
            .filter(patient=patient)
            .order_by("-start")
            .first()
        )
        location = last.location if last else None
    # Imported here: the series pages build on this module's token and visit helpers.
    from booking.series.selectors import series_offers

    return render(
        request,
        "booking/link/visits.html",
        {
            "patient": patient,
            "cards": cards,
            "location": location,
            "token": token,
            "series_offers": series_offers(patient=patient, now=now),
        },
    )


@private
@require_GET
def visits(request: HttpRequest, token: str) -> HttpResponse:
    now = timezone.now()
    return _visits_page(request, token=token, patient=link_patient(token, now), now=now)


@private
@require_POST
def visit_confirm(request: HttpRequest, token: str, reference: str) -> HttpResponse:
    now = timezone.now()
    appointment = _visit(link_patient(token, now), token, reference)
    try:
        appointment_confirm(appointment=appointment, now=now)
    except BookingError as refused:
        messages.error(request, refused.message)
    else:
        messages.success(request, "Thank you: your visit is confirmed.")
    return see_other(_page_url(token, appointment))


@private
@require_POST
def visit_escort(request: HttpRequest, token: str, reference: str) -> HttpResponse:
    now = timezone.now()
    patient = link_patient(token, now)
    appointment = _visit(patient, token, reference)
    form = EscortForm(request.POST, prefix=appointment.reference, patient_phone=patient.phone)
    if not form.is_valid():
        return _visits_page(
            request, token=token, patient=patient, now=now, escort_forms={appointment.pk: form}
        )
    try:
        appointment_escort_update(
            appointment=appointment,
            name=form.cleaned_data["escort_name"],
            phone=form.cleaned_data["escort_phone"],
            now=now,
        )
    except BookingError as refused:
        messages.error(request, refused.message)
    else:
        messages.success(request, "Thank you: we have your escort's details.")
    return see_other(_page_url(token, appointment))


def _day_param(request: HttpRequest, name: str) -> date | None:
    try:
        return date.fromisoformat(request.GET.get(name, ""))
    except ValueError:
        return None


@private
@require_http_methods(["GET", "POST"])
def visit_reschedule(request: HttpRequest, token: str, reference: str) -> HttpResponse:
    now = timezone.now()
    patient = link_patient(token, now)
    appointment = _visit(patient, token, reference)
    here = reverse("patient-link-reschedule", args=[token, reference])
    zone = appointment.location.zone
    if request.method == "POST":
        form = RescheduleForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose one of the times shown.")
            return see_other(here)
        start: datetime = form.cleaned_data["start"]
        try:
            # A session of a series keeps the protocol's cadence with its neighbours.
            moved = visit_move(appointment=appointment, start=start, online=True, now=now)
        except BookingError as refused:
            # Taken meanwhile, clashing with another of their visits, or past the cutoff:
            # back to the times of that day, which now show what is really open.
            messages.error(request, refused.message)
            return see_other(f"{here}?day={start.astimezone(zone).date().isoformat()}")
        messages.success(
            request,
            "Your visit has moved to "
            f"{clinic_datetime(moved.start, appointment.location.timezone)}.",
        )
        return see_other(_page_url(token, appointment))

    card = _card(appointment, patient, now)
    context: dict[str, Any] = {
        "patient": patient,
        "card": card,
        "location": appointment.location,
        "token": token,
    }
    if card.change_open:
        appointment_type = appointment.appointment_type
        today = now.astimezone(zone).date()
        horizon = today + timedelta(days=appointment_type.horizon_days)
        first = min(max(_day_param(request, "from") or today, today), horizon)
        last = min(first + timedelta(days=RESCHEDULE_DAYS - 1), horizon)
        by_day: dict[date, list[datetime]] = {}
        for slot_start, _ in available_slots(
            appointment_type=appointment_type, first_day=first, last_day=last, now=now
        ):
            by_day.setdefault(slot_start.astimezone(zone).date(), []).append(slot_start)
        wanted = _day_param(request, "day")
        day = wanted if wanted in by_day else next(iter(by_day), None)
        context.update(
            days=list(by_day),
            day=day,
            slots=by_day.get(day, []) if day else [],
            earlier=first - timedelta(days=RESCHEDULE_DAYS) if first > today else None,
            later=last + timedelta(days=1) if last < horizon else None,
        )
    return render(request, "booking/link/reschedule.html", context)


@private
@require_http_methods(["GET", "POST"])
def visit_cancel(request: HttpRequest, token: str, reference: str) -> HttpResponse:
    now = timezone.now()
    patient = link_patient(token, now)
    appointment = _visit(patient, token, reference)
    form = CancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            appointment_cancel(
                appointment=appointment, reason=form.reason_text(), online=True, now=now
            )
        except BookingError as refused:
            messages.error(request, refused.message)
            return see_other(reverse("patient-link-cancel", args=[token, reference]))
        messages.success(
            request,
            "Your visit on "
            f"{clinic_datetime(appointment.start, appointment.location.timezone)} is cancelled.",
        )
        return see_other(_page_url(token))
    return render(
        request,
        "booking/link/cancel.html",
        {
            "patient": patient,
            "card": _card(appointment, patient, now),
            "form": form,
            "location": appointment.location,
            "token": token,
        },
    )


@private
@require_GET
def visit_calendar(request: HttpRequest, token: str, reference: str) -> HttpResponse:
    now = timezone.now()
    appointment = _visit(link_patient(token, now), token, reference)
    link = settings.PUBLIC_BASE_URL + reverse("patient-link", args=[token])
    response = HttpResponse(
        appointment_ics(appointment, now=now, link=link),
        content_type="text/calendar; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="appointment-{reference}.ics"'
    return response


def too_many(request: HttpRequest, wait: int) -> HttpResponse:
    response = render(
        request,
        "booking/link/too_many.html",
        {"minutes": max(1, math.ceil(wait / 60))},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


@private
@require_http_methods(["GET", "POST"])
def link_request(request: HttpRequest) -> HttpResponse:
    """Ask for a new link with email and date of birth.

    The answer is the same redirect whether or not a patient matched: only the inbox of the
    address on record learns the result. Limited per client address and per email, so the form
    can neither be used to probe for patients nor to flood somebody's inbox.
    """
    form = LinkRequestForm(request.POST or None)
    if request.method == "POST":
        wait = rate_limit_hit(
            f"link-request:address:{client_key(request)}",
            limit=LINK_REQUEST_LIMIT,
            window=LINK_REQUEST_WINDOW,
        )
        if wait:
            return too_many(request, wait)
        if form.is_valid():
            email = form.cleaned_data["email"].strip().lower()
            wait = rate_limit_hit(
                f"link-request:email:{email}",
                limit=LINK_REQUEST_LIMIT,
                window=LINK_REQUEST_WINDOW,
            )
            if wait:
                return too_many(request, wait)
            if not form.is_bot:
                # Nobody is looked up here: a worker does that, so that the answer takes as
                # long for a patient's address as for a stranger's (booking.tasks).
                link_request_queue(email=email, date_of_birth=form.cleaned_data["date_of_birth"])
            return see_other(reverse("patient-link-requested"))
    return render(request, "booking/link/request.html", {"form": form})


@private
@require_GET
def link_requested(request: HttpRequest) -> HttpResponse:
    return render(request, "booking/link/requested.html", {})

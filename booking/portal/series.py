"""The patient books their treatment series through their secure link: /a/<token>/series/.

Only a patient with a plan in force (approved, not expired or revoked, sessions left, no series
already running under it) is offered this; everybody else gets a 404, and so does a plan that is
not the token's patient's. The page is a GET form of preferences (first day, days of the week,
time of day) that shows the proposed dates in the clinic's time without changing anything; one
CSRF-protected POST books the whole series through ``booking.series.services.series_book``, all or
nothing. A refusal (a time taken meanwhile, the spacing broken by a chosen alternative) shows
the page again with the reason and a fresh proposal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from booking.errors import BookingError
from booking.models import Patient, Protocol, TreatmentPlan
from booking.portal.link import link_patient, private, see_other
from booking.series.selectors import series_offers
from booking.series.services import Proposal, SeriesPreferences, series_book, series_propose
from booking.validators import EARLIEST_DATE, LATEST_DATE

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Times of day as a patient thinks of them; the proposal keeps as close to the time as it can.
TIMES_OF_DAY = {
    "morning": (time(9), "Morning (around 9 AM)"),
    "midday": (time(12), "Midday (around 12 PM)"),
    "afternoon": (time(15), "Afternoon (around 3 PM)"),
}
# A series' sessions are posted as session_1, session_2, ...: never more than this many.
MAX_SESSIONS = 100


class PreferencesForm(forms.Form):
    plan = forms.TypedChoiceField(coerce=int, required=False, label="Treatment")
    first_day = forms.DateField(
        label="First day you could come",
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    weekdays = forms.MultipleChoiceField(
        label="Days that suit you", widget=forms.CheckboxSelectMultiple
    )
    time_of_day = forms.ChoiceField(
        label="Time of day",
        required=False,
        choices=[("", "Any time"), *((key, label) for key, (_, label) in TIMES_OF_DAY.items())],
        widget=forms.RadioSelect,
    )

    def __init__(
        self, *args: Any, offers: list[TreatmentPlan], plan: TreatmentPlan, today: date, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.today = today
        cast(forms.TypedChoiceField, self.fields["plan"]).choices = [
            (offer.pk, offer.protocol.appointment_type.public_name) for offer in offers
        ]
        # Only the protocol's own days: a box for a day it never uses would propose nothing.
        cast(forms.MultipleChoiceField, self.fields["weekdays"]).choices = [
            (day, WEEKDAY_NAMES[int(day)]) for day in sorted(plan.protocol.allowed_weekdays)
        ]
        self.fields["first_day"].widget.attrs["min"] = today.isoformat()

    def clean_first_day(self) -> date:
        first_day: date = self.cleaned_data["first_day"]
        if first_day < self.today:
            raise ValidationError("Choose a day from today on.")
        if first_day > self.today + timedelta(days=366):
            raise ValidationError("Choose a day within the next year.")
        return first_day

    def preferences(self) -> SeriesPreferences:
        key = self.cleaned_data.get("time_of_day") or ""
        return SeriesPreferences(
            weekdays={int(day) for day in self.cleaned_data["weekdays"]},
            time_of_day=TIMES_OF_DAY[key][0] if key in TIMES_OF_DAY else None,
        )


@dataclass
class SessionRow:
    """One line of the proposal: a placed session, or one to choose among alternatives."""

    number: int
    start: datetime | None
    alternatives: list[datetime]
    tentative: bool


def _rows(plan: TreatmentPlan, proposal: Proposal) -> list[SessionRow]:
    review = plan.protocol.review_after_session
    placed = {n: start for n, start, _ in proposal.sessions}
    total = len(proposal.sessions) + len(proposal.missing)
    return [
        SessionRow(
            number=n,
            start=placed.get(n),
            alternatives=proposal.alternatives.get(n, []) if n not in placed else [],
            tentative=review is not None and n > review,
        )
        for n in range(1, total + 1)
    ]


def _spacing(protocol: Protocol) -> str:
    """The protocol's gaps as a patient reads them."""
    low, high = protocol.min_gap_days, protocol.max_gap_days
    if low == high == 1:
        return "on consecutive days"
    if low == high:
        return f"{low} days apart"
    return f"{low} to {high} days apart"


def _chosen_plan(offers: list[TreatmentPlan], raw: str | None) -> TreatmentPlan | None:
    """The offered plan the request names (the first when it names none); None otherwise:
    another patient's plan, or one not on offer, is simply not found."""
    if not raw:
        return offers[0] if offers else None
    return next((offer for offer in offers if str(offer.pk) == raw), None)


def _unavailable(request: HttpRequest, token: str, patient: Patient) -> HttpResponse:
    return render(
        request,
        "booking/link/series_unavailable.html",
        {"patient": patient, "token": token},
        status=404,
    )


def _series_page(
    request: HttpRequest,
    *,
    token: str,
    patient: Patient,
    offers: list[TreatmentPlan],
    plan: TreatmentPlan,
    data: QueryDict | None,
    now: datetime,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    """The preferences form, and with valid preferences the proposal to book. Reads only."""
    appointment_type = plan.protocol.appointment_type
    location = appointment_type.location
    today = now.astimezone(location.zone).date()
    bound = data is not None and "first_day" in data
    form = PreferencesForm(
        data if bound else None,
        offers=offers,
        plan=plan,
        today=today,
        initial={
            "plan": plan.pk,
            "first_day": today + timedelta(days=1),
            "weekdays": list(plan.protocol.allowed_weekdays),
            "time_of_day": "",
        },
    )
    proposal = None
    rows: list[SessionRow] = []
    later_url = ""
    if bound and form.is_valid():
        try:
            proposal = series_propose(
                plan=plan,
                first_day=form.cleaned_data["first_day"],
                preferences=form.preferences(),
                source="link",
                now=now,
            )
        except BookingError as refused:
            error = error or refused.message
        else:
            rows = _rows(plan, proposal)
            if proposal.missing and proposal.later_first_day is not None:
                query = QueryDict(mutable=True)
                query.setlist("weekdays", form.cleaned_data["weekdays"])
                query.update(
                    {
                        "plan": str(plan.pk),
                        "first_day": proposal.later_first_day.isoformat(),
                        "time_of_day": form.cleaned_data.get("time_of_day") or "",
                    }
                )
                later_url = f"{reverse('patient-link-series', args=[token])}?{query.urlencode()}"
    return render(
        request,
        "booking/link/series_book.html",
        {
            "patient": patient,
            "token": token,
            "location": location,
            "zone": location.timezone,
            "plan": plan,
            "protocol": plan.protocol,
            "appointment_type": appointment_type,
            "offers": offers,
            "form": form,
            "proposal": proposal,
            "rows": rows,
            "missing": any(row.start is None for row in rows),
            "later_url": later_url,
            "spacing": _spacing(plan.protocol),
            "error": error,
        },
        status=status,
    )


@private
@require_GET
def series_page(request: HttpRequest, token: str) -> HttpResponse:
    now = timezone.now()
    patient = link_patient(token, now)
    offers = series_offers(patient=patient, now=now)
    plan = _chosen_plan(offers, request.GET.get("plan"))
    if plan is None:
        return _unavailable(request, token, patient)
    return _series_page(
        request, token=token, patient=patient, offers=offers, plan=plan, data=request.GET, now=now
    )


def _posted_starts(data: QueryDict) -> list[datetime] | None:
    """session_1, session_2, … as aware datetimes, in order; None if any is missing or bad."""
    starts = []
    for n in range(1, MAX_SESSIONS + 1):
        raw = data.get(f"session_{n}")
        if raw is None:
            break
        try:
            start = datetime.fromisoformat(raw)
        except ValueError:
            return None
        if timezone.is_naive(start) or not EARLIEST_DATE <= start.date() <= LATEST_DATE:
            return None  # far dates would overflow the search's arithmetic
        starts.append(start)
    return starts or None


@private
@require_POST
def series_book_view(request: HttpRequest, token: str) -> HttpResponse:
    now = timezone.now()
    patient = link_patient(token, now)
    offers = series_offers(patient=patient, now=now)
    plan = _chosen_plan(offers, request.POST.get("plan"))
    if plan is None:
        return _unavailable(request, token, patient)
    starts = _posted_starts(request.POST)
    if starts is None:
        return _series_page(
            request,
            token=token,
            patient=patient,
            offers=offers,
            plan=plan,
            data=request.POST,
            now=now,
            error="Choose a time for every session.",
            status=400,
        )
    try:
        series = series_book(plan=plan, starts=starts, source="link", now=now)
    except BookingError as refused:
        # A time taken meanwhile, or an alternative that breaks the spacing: the reason, and a
        # fresh proposal that shows what is really free now.
        return _series_page(
            request,
            token=token,
            patient=patient,
            offers=offers,
            plan=plan,
            data=request.POST,
            now=now,
            error=refused.message,
            status=refused.status,
        )
    count = series.sessions.count()
    messages.success(
        request,
        f"Your {count} sessions are booked. You will find each one below, with how to prepare.",
    )
    return see_other(reverse("patient-link", args=[token]))

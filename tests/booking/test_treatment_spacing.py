"""At most one treatment a day, and a plan's spacing between sessions, on every path.

One rule check (``booking.eligibility.treatment_check``) stands behind every way a treatment
is booked or moved: the staff API (the desk's calendar creates and drags through it), the
patient's secure link, the waitlist, series booking and series session moves. Each path is
tried here with the two cases a clinic met: a mood infusion the day after another (the
protocol asks for a free day between sessions) and a second one the same day.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from booking.access.roles import Role
from booking.errors import NotEligible
from booking.links import patient_link_issue
from booking.models import Appointment, Patient, TreatmentPlan
from booking.series.services import series_book
from booking.services import appointment_book, appointment_cancel
from booking.waitlist import offer_freed_slot, waitlist_add
from scheduling.models import AppointmentType, Location
from tests.booking.test_waitlist import offer_tokens
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
DAY = date(2026, 6, 10)  # Wednesday: the patient's infusion at 10:00


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=NEW_YORK)


FIRST = at(DAY, 10)
# The two refusals every path must give, and the field's rule in words.
CASES = {
    "the next day": (at(DAY + timedelta(days=1), 10), "at least 2 days between"),
    "the same day": (at(DAY, 15), "At most one treatment a day"),
}


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def patient(make_approved_patient: Callable[..., Patient]) -> Patient:
    return make_approved_patient()


@pytest.fixture
def treated(infusion: AppointmentType, patient: Patient) -> Appointment:
    """The patient's mood infusion on ``DAY`` at 10:00."""
    return appointment_book(appointment_type=infusion, patient=patient, start=FIRST, now=NOW)


@pytest.fixture
def staff(clinic: Location) -> Client:
    return client_for(staff_user(Role.PRESCRIBER, clinic))


def post(client: Client, path: str, body: dict[str, Any]):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def refused(response, rule: str) -> None:
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "not_eligible"
    assert rule in error["message"]


def infusions(patient: Patient) -> list[datetime]:
    return sorted(
        Appointment.objects.active()
        .filter(patient=patient, appointment_type__slug="iv-mood")
        .values_list("start", flat=True)
    )


def mood_plan(patient: Patient) -> TreatmentPlan:
    return TreatmentPlan.objects.get(patient=patient, protocol__slug="mood-induction")


def wait_for_a_time(clinic: Location, infusion: AppointmentType, patient: Patient) -> None:
    """The patient waits for an infusion on ``DAY`` or the day after."""
    waitlist_add(
        patient=patient,
        location=clinic,
        appointment_type=infusion,
        earliest_date=DAY,
        latest_date=DAY + timedelta(days=1),
        now=NOW,
    )


def series_days(first: date) -> list[date]:
    """Six mood sessions from ``first``, each two or three days after the last."""
    return [first + timedelta(days=n) for n in (0, 2, 5, 7, 9, 12)]


@pytest.mark.parametrize("case", CASES)
def test_the_desk_cannot_book_it(case, staff, patient, treated):
    start, rule = CASES[case]
    body = {"location": "midtown", "appointment_type": "iv-mood", "patient": patient.pk}

    refused(post(staff, "/api/v1/appointments/", {**body, "start": start.isoformat()}), rule)
    assert infusions(patient) == [FIRST]

    later = at(DAY + timedelta(days=2), 10)  # a free day between: allowed
    assert (
        post(staff, "/api/v1/appointments/", {**body, "start": later.isoformat()}).status_code
        == 201
    )


@pytest.mark.parametrize("case", CASES)
def test_the_desk_cannot_move_a_visit_there(case, staff, infusion, patient, treated):
    start, rule = CASES[case]
    other = appointment_book(
        appointment_type=infusion, patient=patient, start=at(DAY + timedelta(days=5), 10), now=NOW
    )
    path = f"/api/v1/appointments/{other.reference}/reschedule/"

    refused(post(staff, path, {"start": start.isoformat()}), rule)
    other.refresh_from_db()
    assert other.start == at(DAY + timedelta(days=5), 10)
    # A visit is not its own neighbour: moving it by an hour on its day is allowed.
    assert (
        post(staff, path, {"start": at(DAY + timedelta(days=5), 11).isoformat()}).status_code == 200
    )


@pytest.mark.parametrize("case", CASES)
def test_the_patient_cannot_move_a_visit_there_from_their_link(
    case, client, infusion, patient, treated
):
    start, rule = CASES[case]
    other = appointment_book(
        appointment_type=infusion, patient=patient, start=at(DAY + timedelta(days=5), 10), now=NOW
    )
    token = patient_link_issue(patient=patient, now=NOW)

    page = client.post(
        f"/a/{token}/{other.reference}/reschedule/", {"start": start.isoformat()}, follow=True
    )

    assert rule in page.content.decode()
    other.refresh_from_db()
    assert other.start == at(DAY + timedelta(days=5), 10)


@pytest.mark.parametrize("case", CASES)
def test_a_waitlist_offer_cannot_be_accepted_for_it(case, client, clinic, infusion, patient):
    start, rule = CASES[case]
    wait_for_a_time(clinic, infusion, patient)
    with offer_tokens() as tokens:
        offer = offer_freed_slot(appointment_type=infusion, start=start, now=NOW)
    assert offer is not None
    # Booked by the desk after the offer went out.
    appointment_book(appointment_type=infusion, patient=patient, start=FIRST, now=NOW)

    page = client.post(f"/w/{tokens[offer.pk]}/accept/")

    assert page.status_code == 422
    assert rule in page.content.decode()
    assert infusions(patient) == [FIRST]


def test_no_offer_is_made_for_a_time_the_patient_could_not_take(clinic, infusion, patient, treated):
    wait_for_a_time(clinic, infusion, patient)
    for start, _rule in CASES.values():
        assert offer_freed_slot(appointment_type=infusion, start=start, now=NOW) is None


@pytest.mark.parametrize("case", CASES)
def test_a_series_cannot_be_booked_with_a_session_there(case, staff, patient, treated):
    start, rule = CASES[case]
    starts = [at(day, start.astimezone(NEW_YORK).hour) for day in series_days(start.date())]

    response = post(
        staff,
        "/api/v1/series/",
        {"plan": mood_plan(patient).pk, "starts": [s.isoformat() for s in starts]},
    )

    refused(response, rule)
    assert list(response.json()["error"]["fields"]) == ["starts.0"]  # the first session
    assert infusions(patient) == [FIRST]


@pytest.mark.parametrize("case", CASES)
def test_a_series_session_cannot_move_there(case, staff, patient, treated):
    start, rule = CASES[case]
    series = series_book(
        plan=mood_plan(patient),
        starts=[at(day, 10) for day in series_days(DAY + timedelta(days=5))],
        now=NOW,
    )
    first = series.sessions.get(series_index=1)

    response = post(
        staff,
        f"/api/v1/series/sessions/{first.reference}/reschedule/",
        {"start": start.isoformat()},
    )

    refused(response, rule)
    first.refresh_from_db()
    assert first.start == at(DAY + timedelta(days=5), 10)


def test_a_series_proposal_leaves_out_the_days_the_rule_rules_out(staff, patient, treated):
    response = post(
        staff,
        "/api/v1/series/proposals/",
        {"plan": mood_plan(patient).pk, "first_day": (DAY - timedelta(days=1)).isoformat()},
    )

    assert response.status_code == 200, response.content
    days = {datetime.fromisoformat(s["start"]).date() for s in response.json()["sessions"]}
    assert days.isdisjoint({DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)})


def test_consecutive_days_are_allowed_where_the_protocol_allows_them(clinic, patient):
    pain = AppointmentType.objects.get(location=clinic, slug="iv-pain")
    appointment_book(appointment_type=pain, patient=patient, start=at(DAY, 9), now=NOW)
    next_day = at(DAY + timedelta(days=1), 9)

    appointment_book(appointment_type=pain, patient=patient, start=next_day, now=NOW)

    with pytest.raises(NotEligible, match="At most one treatment a day"):
        appointment_book(
            appointment_type=pain, patient=patient, start=next_day + timedelta(hours=6), now=NOW
        )


def test_a_cancelled_visit_leaves_its_day_free(staff, patient, treated):
    appointment_cancel(appointment=treated, now=NOW)
    start, _rule = CASES["the same day"]
    body = {"location": "midtown", "appointment_type": "iv-mood", "patient": patient.pk}

    response = post(staff, "/api/v1/appointments/", {**body, "start": start.isoformat()})

    assert response.status_code == 201, response.content


# --- A prescriber's override -------------------------------------------------------------------


def test_a_prescriber_sets_the_spacing_aside_with_a_reason_kept_in_the_history(
    clinic, patient, treated
):
    prescriber = staff_user(Role.PRESCRIBER, clinic, username="dr.override")
    start, rule = CASES["the next day"]
    body = {"location": "midtown", "appointment_type": "iv-mood", "patient": patient.pk}

    response = post(
        client_for(prescriber),
        "/api/v1/appointments/",
        {**body, "start": start.isoformat(), "override_reason": "Protocol B, reviewed today"},
    )

    assert response.status_code == 201, response.content
    booked = Appointment.objects.get(reference=response.json()["reference"])
    override = booked.events.get(kind="rule_override")
    assert override.by == prescriber
    assert override.detail.startswith("Protocol B, reviewed today (overriding: ")
    assert rule in override.detail


@pytest.mark.parametrize("case", CASES)
def test_nobody_else_may_set_a_rule_aside(case, clinic, infusion, patient, treated):
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))
    start, _rule = CASES[case]
    other = appointment_book(
        appointment_type=infusion, patient=patient, start=at(DAY + timedelta(days=5), 10), now=NOW
    )
    body = {"location": "midtown", "appointment_type": "iv-mood", "patient": patient.pk}
    reason = {"start": start.isoformat(), "override_reason": "The patient insists"}

    created = post(desk, "/api/v1/appointments/", {**body, **reason})
    moved = post(desk, f"/api/v1/appointments/{other.reference}/reschedule/", reason)

    for response in (created, moved):
        assert response.status_code == 403, response.content
        assert "Only a prescriber" in response.json()["error"]["message"]
    assert infusions(patient) == [FIRST, at(DAY + timedelta(days=5), 10)]


def test_a_prescriber_moves_a_visit_there_with_a_reason(staff, infusion, patient, treated):
    start, _rule = CASES["the same day"]
    other = appointment_book(
        appointment_type=infusion, patient=patient, start=at(DAY + timedelta(days=5), 10), now=NOW
    )

    response = post(
        staff,
        f"/api/v1/appointments/{other.reference}/reschedule/",
        {"start": start.isoformat(), "override_reason": "Two short sessions, as prescribed"},
    )

    assert response.status_code == 200, response.content
    other.refresh_from_db()
    assert other.start == start
    assert other.events.filter(kind="rule_override").count() == 1


def test_the_plan_itself_is_no_rule_to_set_aside(staff, clinic, make_patient):
    unapproved = make_patient()
    body = {"location": "midtown", "appointment_type": "iv-mood", "patient": unapproved.pk}

    response = post(
        staff,
        "/api/v1/appointments/",
        {**body, "start": FIRST.isoformat(), "override_reason": "Approved by phone"},
    )

    refused(response, "No eligibility decision is on file")

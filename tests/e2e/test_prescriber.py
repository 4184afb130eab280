"""The prescriber's pages in a real browser: a prescriber approves a patient after their
consultation and the patient books the series through their link; the day board tells the
nurse when a Spravato patient may leave."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from booking import checkin
from booking.access.roles import Role
from booking.defaults import protocols_install_defaults
from booking.eligibility import contraindications_asked
from booking.links import patient_link_issue
from booking.models import (
    AppointmentStatus,
    DecisionOutcome,
    EligibilityDecision,
    Intake,
    Series,
)
from booking.services import appointment_book, appointment_escort_update
from scheduling.models import AppointmentType, Location
from tests.e2e.staff_sign_in import submit_sign_in
from tests.staff_helpers import staff_user

pytestmark = pytest.mark.django_db(transaction=True)

# The clock stands at Tuesday 1 December 2026, 09:00 EST (tests/e2e/conftest.py).
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
WEEK_AGO = NOW - timedelta(days=7)
MONDAY = date(2026, 12, 7)


def sign_in(page: Page, live_server, username: str, then: str) -> None:
    page.goto(f"{live_server.url}/staff/login/?next={then}")
    submit_sign_in(page, username)


def test_a_prescriber_approves_after_the_consultation_and_the_patient_books_the_series(
    new_page, snapshot, live_server, clinic: Location, consultation: AppointmentType, make_patient
) -> None:
    protocols_install_defaults(location=clinic)
    staff_user(Role.PRESCRIBER, clinic, username="dr.e2e")
    patient = make_patient(first_name="Rosalind", last_name="Franklin")
    # Yesterday's consultation, with what the patient said when booking it.
    seen = appointment_book(
        appointment_type=consultation,
        patient=patient,
        start=NOW - timedelta(days=1, hours=-1),
        now=WEEK_AGO,
    )
    Intake.objects.create(
        appointment=seen,
        conditions=["Depression"],
        medications="Sertraline 50 mg",
        screening=[{"question": "Are you pregnant?", "answer": False}],
    )

    page = new_page()
    sign_in(page, live_server, "dr.e2e", "/staff/prescriber/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Consultations awaiting a decision")
    staff_nav = page.get_by_role("navigation", name="Staff")
    expect(staff_nav.get_by_role("link", name="Prescriber")).to_be_visible()
    page.get_by_role("link", name="Decide for Rosalind Franklin").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Decision for Rosalind Franklin")
    expect(page.locator("#intake")).to_contain_text("Sertraline 50 mg")
    noes = page.locator("#contraindications").get_by_label("No", exact=True)
    expect(noes).to_have_count(len(contraindications_asked()))
    for n in range(noes.count()):
        noes.nth(n).check()
    page.get_by_label("Approved", exact=True).check()
    page.get_by_label("Protocol").select_option(
        label="Mood induction series (IV ketamine infusion (mood), Midtown Ketamine Clinic)"
    )
    page.get_by_label("Sessions authorised").fill("6")
    page.get_by_label("Valid until").fill("2027-01-31")
    snapshot(page, "decision")
    page.get_by_role("button", name="Record the decision").click()

    expect(page.get_by_role("status")).to_contain_text(
        "Decision recorded for Rosalind Franklin: approved."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Rosalind Franklin")
    expect(page.locator("#plans")).to_contain_text("In force")
    decision = EligibilityDecision.objects.get(patient=patient)
    assert decision.outcome == DecisionOutcome.APPROVED
    assert decision.consultation == seen
    assert decision.answers.count() == len(contraindications_asked())
    snapshot(page, "patient")

    token = patient_link_issue(patient=patient)
    link = new_page()
    link.goto(live_server.url + reverse("patient-link-series", args=[token]))
    expect(link.get_by_role("heading", level=1)).to_have_text("Book your treatment sessions")
    link.get_by_label("First day you could come").fill(MONDAY.isoformat())
    for day in ("Tuesday", "Thursday", "Saturday"):
        link.get_by_label(day, exact=True).uncheck()
    link.get_by_label("Morning (around 9 AM)").check()
    link.get_by_role("button", name="Show proposed dates").click()
    sessions = link.get_by_role("list", name="Your sessions").get_by_role("listitem")
    expect(sessions).to_have_count(6)
    link.get_by_role("button", name="Book these 6 sessions").click()

    expect(link.get_by_text("Your 6 sessions are booked")).to_be_visible()
    series = Series.objects.get(plan__patient=patient)
    assert series.plan == decision.plan
    booked = list(series.sessions.order_by("series_index"))
    assert [s.status for s in booked] == [AppointmentStatus.BOOKED] * 6
    assert booked[0].start == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # 9:00 AM EST


def test_the_day_board_shows_when_a_seated_spravato_patient_may_leave(
    new_page, live_server, clinic: Location, make_approved_patient
) -> None:
    spravato = AppointmentType.objects.select_related("location").get(
        location=clinic, slug="spravato"
    )
    nurse = staff_user(Role.NURSE, clinic, username="nurse.e2e")
    desk = staff_user(Role.FRONT_DESK, clinic, username="desk.e2e")
    visit = appointment_book(
        appointment_type=spravato,
        patient=make_approved_patient(first_name="Katherine", last_name="Johnson"),
        start=NOW + timedelta(minutes=30),
        now=WEEK_AGO,
    )
    for item, by in (("fasting", desk), ("medications", nurse), ("consent", desk)):
        checkin.appointment_checklist_record(appointment=visit, item=item, by=by, now=NOW)
    appointment_escort_update(
        appointment=visit, name="Sam Escort", phone="+12125550177", now=WEEK_AGO
    )
    checkin.appointment_check_in(appointment=visit, by=desk, now=NOW)
    # Dosed at 9:05: two hours of observation from then.
    checkin.appointment_seat(appointment=visit, by=nurse, now=NOW + timedelta(minutes=5))

    page = new_page()
    sign_in(page, live_server, "nurse.e2e", "/staff/board/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tuesday 1 December 2026")
    row = page.locator(f"#visit-{visit.reference}")
    expect(row).to_contain_text("Katherine Johnson")
    expect(row).to_contain_text("In chair")
    expect(row.locator(".may-leave")).to_have_text("may leave 11:05 AM EST")
    # Nurses do not see the prescriber's pages.
    staff_nav = page.get_by_role("navigation", name="Staff")
    expect(staff_nav.get_by_role("link", name="Prescriber")).to_have_count(0)

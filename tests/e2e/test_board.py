"""The day board in a real browser: the front desk checks a patient in once the checklist is
complete, and a nurse takes them from the chair to discharge."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F
from playwright.sync_api import Page, expect

from booking import checkin
from booking.access.roles import Role
from booking.models import Appointment, AppointmentStatus
from booking.services import appointment_book, appointment_escort_update
from scheduling.models import AppointmentType
from tests.e2e.staff_sign_in import submit_sign_in
from tests.staff_helpers import staff_user

pytestmark = pytest.mark.django_db(transaction=True)

# The clock stands at Tuesday 1 December 2026, 09:00 EST; the visit is at 10:00 the same day,
# booked a week before.
TEN_AM = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
BOOKED_AT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def sign_in(page: Page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/staff/login/?next=/staff/board/")
    submit_sign_in(page, username)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tuesday 1 December 2026")


def click(page: Page, appointment: Appointment, label: str) -> None:
    page.locator(f"#visit-{appointment.reference}").get_by_role("button", name=label).click()


def test_the_desk_checks_in_and_a_nurse_discharges(
    new_page, snapshot, live_server, infusion: AppointmentType, make_approved_patient
) -> None:
    staff_user(Role.FRONT_DESK, infusion.location, username="desk")
    nurse = staff_user(Role.NURSE, infusion.location, username="nurse")
    visit = appointment_book(
        appointment_type=infusion,
        patient=make_approved_patient(first_name="Grace", last_name="Hopper"),
        start=TEN_AM,
        now=BOOKED_AT,
    )
    # Before the day: the escort was named through the patient's link, the nurse reviewed the
    # medications on the pre-visit call.
    appointment_escort_update(
        appointment=visit, name="Sam Escort", phone="+12125550177", now=BOOKED_AT
    )
    checkin.appointment_checklist_record(appointment=visit, item="medications", by=nurse)

    page = new_page()
    sign_in(page, live_server, "desk")
    row = page.locator(f"#visit-{visit.reference}")
    expect(row).to_contain_text("Grace Hopper")
    expect(row).to_contain_text("10:00 AM EST")
    expect(row).to_contain_text("Fasting acknowledged: missing")

    click(page, visit, "Check in")
    expect(page.get_by_role("status")).to_contain_text(
        "Check-in waits for the checklist: fasting acknowledged, consent current."
    )
    snapshot(page, "blocked")
    click(page, visit, "Tick: fasting acknowledged")
    expect(row).to_contain_text("Fasting acknowledged: done")
    click(page, visit, "Tick: consent current")
    expect(row).to_contain_text("Consent current: done")
    click(page, visit, "Check in")
    expect(page.get_by_role("status")).to_contain_text("Grace Hopper checked in.")
    expect(row).to_contain_text("Arrived")
    snapshot(page, "checked-in")

    page = new_page()
    sign_in(page, live_server, "nurse")
    row = page.locator(f"#visit-{visit.reference}")
    for label, shown in (
        ("In chair", "In chair"),
        ("Recovering", "Recovering"),
        ("Escort present", "escort present"),
    ):
        click(page, visit, label)
        expect(row).to_contain_text(shown)
    expect(row).to_contain_text("may leave")
    click(page, visit, "Discharge")
    expect(page.get_by_role("status")).to_contain_text("40 minutes of observation")
    # Forty minutes later: the recovery is over.
    Appointment.objects.filter(pk=visit.pk).update(
        recovering_at=F("recovering_at") - timedelta(minutes=40)
    )
    click(page, visit, "Discharge")
    expect(page.get_by_role("status")).to_contain_text("Grace Hopper discharged.")
    expect(row.locator(".badge.status")).to_have_text(re.compile("^Discharged$"))

    visit.refresh_from_db()
    assert visit.status == AppointmentStatus.DISCHARGED

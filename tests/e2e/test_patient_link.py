"""A patient manages their visits through the secure link in a real browser."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from booking.links import patient_link_issue
from booking.models import Appointment, AppointmentStatus
from booking.services import appointment_book
from scheduling.models import AppointmentType

pytestmark = pytest.mark.django_db(transaction=True)

# The clock stands at Tuesday 1 December 2026, 09:00 EST; online changes close 24 hours ahead.
FRIDAY_10AM = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
MONDAY_2PM = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)
WEDNESDAY_8AM = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)  # 23 hours away: inside the cutoff


def _link(live_server, patient) -> str:
    return live_server.url + reverse("patient-link", args=[patient_link_issue(patient=patient)])


def _visit(page: Page, appointment: Appointment):
    return page.locator(f"#visit-{appointment.reference}")


def test_a_patient_moves_and_then_cancels_a_visit_through_their_link(
    page: Page, snapshot, live_server, consultation: AppointmentType, make_patient
):
    patient = make_patient(first_name="Grace")
    appointment = appointment_book(
        appointment_type=consultation, patient=patient, start=FRIDAY_10AM
    )
    page.goto(_link(live_server, patient))

    expect(page.get_by_role("heading", level=1)).to_contain_text("Grace")
    visit = _visit(page, appointment)
    expect(visit).to_contain_text("Friday 4 December 2026 at 10:00 AM EST")
    visit.get_by_role("link", name=re.compile("change time", re.I)).click()

    page.get_by_role("link", name=re.compile("Mon 7 Dec")).click()
    snapshot(page, "reschedule")
    page.get_by_role("button", name="2:00 PM EST", exact=True).click()

    expect(
        page.get_by_text(re.compile("moved to Monday 7 December 2026 at 2:00 PM EST"))
    ).to_be_visible()
    appointment.refresh_from_db()
    assert appointment.start == MONDAY_2PM
    assert appointment.status == AppointmentStatus.BOOKED
    visit = _visit(page, appointment)
    expect(visit).to_contain_text("Monday 7 December 2026 at 2:00 PM EST")
    snapshot(page, "moved")

    visit.get_by_role("link", name=re.compile("^cancel", re.I)).click()
    page.get_by_role("radio").first.check()
    page.get_by_role("button", name=re.compile("cancel this appointment", re.I)).click()

    expect(page.get_by_text(re.compile("is cancelled"))).to_be_visible()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert appointment.cancel_reason
    expect(page.locator(f"#visit-{appointment.reference}")).to_have_count(0)


def test_inside_the_cutoff_the_page_offers_the_clinic_phone_instead_of_changes(
    page: Page, live_server, consultation: AppointmentType, make_patient
):
    patient = make_patient(first_name="Alan")
    soon = appointment_book(appointment_type=consultation, patient=patient, start=WEDNESDAY_8AM)
    later = appointment_book(appointment_type=consultation, patient=patient, start=FRIDAY_10AM)
    page.goto(_link(live_server, patient))

    closed = _visit(page, soon)
    expect(closed).to_contain_text("Wednesday 2 December 2026 at 8:00 AM EST")
    expect(closed.get_by_role("link", name=re.compile("change time", re.I))).to_have_count(0)
    expect(closed.get_by_role("link", name=re.compile("^cancel", re.I))).to_have_count(0)
    expect(closed).to_contain_text("Online changes close 24 hours before your visit")
    notice = closed.locator("p", has_text="Online changes close")
    expect(notice.get_by_role("link", name="+12125550100")).to_be_visible()
    # The visit outside the cutoff still has its buttons: the rule is per visit, by time.
    open_visit = _visit(page, later)
    expect(open_visit.get_by_role("link", name=re.compile("change time", re.I))).to_be_visible()
    expect(open_visit.get_by_role("link", name=re.compile("^cancel", re.I))).to_be_visible()

    # Going to the change page directly (the open visit's address, the other reference) does
    # not get round it either.
    cancel_href = open_visit.get_by_role("link", name=re.compile("^cancel", re.I)).get_attribute(
        "href"
    )
    assert cancel_href
    assert later.reference in cancel_href
    page.goto(live_server.url + cancel_href.replace(later.reference, soon.reference))
    expect(
        page.get_by_role("button", name=re.compile("cancel this appointment", re.I))
    ).to_have_count(0)
    expect(page.get_by_role("link", name="+12125550100").first).to_be_visible()
    soon.refresh_from_db()
    assert soon.status == AppointmentStatus.BOOKED

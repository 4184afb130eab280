"""A new patient books a consultation in a real browser, and confirms it from the e-mail."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from booking.defaults import intake_options_install_defaults
from booking.models import SMS_CONSENT_VERSION, SMS_CONSENT_WORDINGS, Appointment, AppointmentStatus
from booking.online import consultation_request_online
from booking.services import IntakeAnswers, PatientDetails
from scheduling.models import Location

pytestmark = pytest.mark.django_db(transaction=True)

# With 12 hours' notice, the first free consultation after Tuesday 09:00 is on Wednesday.
WEDNESDAY_9AM = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


@pytest.fixture
def clinic_with_intake(clinic: Location) -> Location:
    intake_options_install_defaults(location=clinic)
    return clinic


def test_a_new_patient_books_a_consultation_from_start_to_confirmation(
    page: Page, snapshot, live_server, clinic_with_intake: Location
):
    page.goto(f"{live_server.url}/book/")

    # One location: the place step is skipped.
    expect(page.get_by_role("heading", level=1)).to_have_text("What would you like to book?")
    page.get_by_role("link", name=re.compile("New patient consultation")).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a day and time")
    expect(page.get_by_role("link", name=re.compile("2 Dec"))).to_have_attribute(
        "aria-current", "date"
    )
    expect(page.locator("#zone-notice")).to_contain_text(
        "Times are shown in the clinic's time zone (America/New_York)"
    )
    page.get_by_role("link", name="9:00 AM EST", exact=True).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")
    expect(page.get_by_text("Wednesday 2 December 2026 at 9:00 AM EST")).to_be_visible()
    # Sent empty, the form says what to fix, takes the focus there, and links to each field.
    page.get_by_role("button", name="Continue").click()
    summary = page.get_by_role("alert")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Mobile phone: This field is required.")
    snapshot(page, "errors")
    summary.get_by_role("link", name=re.compile("^First name")).click()
    expect(page.get_by_label("First name")).to_be_focused()
    page.keyboard.type("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_label("Date of birth").fill("1985-12-10")
    page.get_by_label("Email", exact=True).fill("ada@example.com")
    page.get_by_label("Mobile phone").fill("212 555 0199")
    page.get_by_label("Depression").check()
    page.get_by_label("Current medications").fill("Sertraline 50 mg")
    questions = page.locator("fieldset.inline")
    expect(questions).to_have_count(5)
    for n in range(5):
        questions.nth(n).get_by_label("No", exact=True).check()
    page.get_by_label(SMS_CONSENT_WORDINGS[SMS_CONSENT_VERSION]).check()
    expect(page.locator(".hp input")).not_to_be_in_viewport()
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers")
    expect(page.get_by_text("Wednesday 2 December 2026 at 9:00 AM EST")).to_be_visible()
    expect(page.get_by_text("Ada Lovelace")).to_be_visible()
    expect(page.get_by_text("+12125550199")).to_be_visible()
    snapshot(page, "review")
    assert Appointment.objects.count() == 0
    page.get_by_role("button", name="Confirm booking").click()

    # Held, not booked, until the patient proves the address: the same page whoever they are.
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your e-mail to confirm")
    expect(page.get_by_text("Wednesday 2 December 2026 at 9:00 AM EST")).to_be_visible()
    expect(page.get_by_text("until 9:15 AM EST")).to_be_visible()
    assert page.url == f"{live_server.url}/book/done/"
    snapshot(page, "check-email")
    appointment = Appointment.objects.select_related("patient", "intake").get()
    assert appointment.status == AppointmentStatus.TENTATIVE
    assert appointment.start == WEDNESDAY_9AM
    assert appointment.patient.provisional
    assert appointment.intake.conditions == ["Depression"]
    (verify,) = mail.outbox
    assert verify.to == ["ada@example.com"]
    assert appointment.reference not in verify.body
    (link,) = set(re.findall(r"https?://[^\s]+/book/confirm/[\w-]+/", str(verify.body)))

    page.goto(live_server.url + urlsplit(link).path)

    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your appointment")
    expect(page.get_by_text("Wednesday 2 December 2026 at 9:00 AM EST")).to_be_visible()
    snapshot(page, "confirm")
    page.get_by_role("button", name="Confirm", exact=True).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("You're booked")
    expect(page.get_by_text("We've e-mailed you a confirmation")).to_be_visible()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    assert not appointment.patient.provisional
    assert appointment.patient.sms_consent
    expect(page.get_by_text(appointment.reference)).to_be_visible()
    confirmations = [m for m in mail.outbox if appointment.reference in m.body]
    assert [m.to for m in confirmations] == [["ada@example.com"]]
    assert "Wednesday 2 December 2026 at 9:00 AM EST" in confirmations[0].body


def test_someone_who_did_not_ask_releases_the_time_from_the_email(
    page: Page, live_server, clinic_with_intake: Location
):
    consultation = clinic_with_intake.appointment_types.get(slug="consultation")
    consultation_request_online(
        appointment_type=consultation,
        start=WEDNESDAY_9AM,
        details=PatientDetails(
            first_name="Ada",
            last_name="Lovelace",
            email="ada@example.com",
            phone="+12125550199",
            date_of_birth=date(1985, 12, 10),
        ),
        intake=IntakeAnswers(),
        sms_consent=False,
    )
    (verify,) = mail.outbox
    (link,) = set(re.findall(r"https?://[^\s]+/book/confirm/[\w-]+/", str(verify.body)))

    page.goto(live_server.url + urlsplit(link).path)
    page.get_by_role("button", name=re.compile("I did not ask for this")).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("The time has been released")
    assert not Appointment.objects.exists()
    page.goto(f"{live_server.url}/book/{clinic_with_intake.slug}/consultation/?date=2026-12-02")
    expect(page.get_by_role("link", name="9:00 AM EST", exact=True)).to_be_visible()


def test_a_patient_in_another_zone_sees_clinic_time_and_their_own(
    new_page, snapshot, live_server, clinic_with_intake: Location
):
    page = new_page(timezone_id="America/Los_Angeles")

    page.goto(f"{live_server.url}/book/{clinic_with_intake.slug}/consultation/?date=2026-12-02")

    notice = page.locator("#zone-notice")
    expect(notice).to_contain_text("Times are shown in the clinic's time zone (America/New_York)")
    expect(notice).to_contain_text("Your device is set to America/Los_Angeles")
    slot = page.get_by_role("link", name=re.compile(r"^9:00 AM EST"))
    expect(slot.locator(".clinic")).to_have_text("9:00 AM EST")
    expect(slot.locator(".theirs")).to_have_text("6:00 AM PST your time")
    snapshot(page, "slots")
    slot.click()

    # The chosen time stays in clinic time, with its zone, through the rest of the way.
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")
    expect(page.get_by_text("Wednesday 2 December 2026 at 9:00 AM EST")).to_be_visible()


def test_a_patient_in_the_clinic_zone_sees_one_time_per_slot(
    page: Page, live_server, clinic_with_intake: Location
):
    page.goto(f"{live_server.url}/book/{clinic_with_intake.slug}/consultation/?date=2026-12-02")

    expect(page.get_by_role("link", name="9:00 AM EST", exact=True)).to_be_visible()
    expect(page.locator(".slots .theirs")).to_have_count(0)
    expect(page.locator("#zone-notice")).not_to_contain_text("Your device")

"""A clinic sets itself up from nothing to its first online booking, in a real browser (issue #16).

From an empty database: ``clinic_create`` makes one location with the defaults (types, reminder
rules, intake questions) and no people or places. An admin signs in with a password and the code
of their authenticator app, then, on the setup pages only, adds the people and places the
online consultation needs (a prescriber and a room) with a nurse and a chair, gives them weekly
hours and the prescriber one Saturday's extra hours, moves a reminder of the consultation and
watches its preview, and adds a screening question. A patient then books that Saturday online,
answers the new question, and confirms from the e-mail.

Screenshots of the main steps go to ``test-artifacts/e2e/`` on every run; with
``E2E_SCREENSHOTS=docs/screenshots/setup`` they are also written there at 1280x800, for the docs
(not on CI, which would otherwise change the tree).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Locator, Page, expect

from booking.access.roles import Role
from booking.clinic import clinic_create
from booking.models import Appointment, AppointmentStatus, IntakeOption, IntakeOptionKind
from notifications.models import MessageKind, ReminderRule, ReplanJob
from scheduling.models import DateOverride, Location, Resource, ResourceKind, WorkingHours
from tests.staff_helpers import PASSWORD, staff_user

pytestmark = pytest.mark.django_db(transaction=True)

# The authenticator's shared secret (RFC 6238's test key, hex): the admin's app is "enrolled"
# with it, and the test reads the code it would show at the pinned clock.
TOTP_KEY = "3132333435363738393031323334353637383930"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
# The clock is pinned on Tuesday 1 December 2026; nobody works on Saturdays but this one.
SATURDAY = "2026-12-05"
SATURDAY_10AM = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)  # 10:00 EST
QUESTION = "Do you use a CPAP machine at night?"
VIEWPORT = {"width": 1280, "height": 800}

Shot = Callable[..., None]


@pytest.fixture
def shot(snapshot: Callable[[Page, str], None], request: pytest.FixtureRequest) -> Shot:
    """Photograph a step: always into the test's artifacts (the whole page), and, when
    ``E2E_SCREENSHOTS`` names a folder, the window as the person sees it there, scrolled to
    ``focus``."""
    folder = os.environ.get("E2E_SCREENSHOTS", "").strip()
    target = Path(request.config.rootpath, folder) if folder else None

    def take(page: Page, name: str, *, focus: Locator | None = None) -> None:
        snapshot(page, name)
        if target is None:
            return
        if focus is not None:
            focus.scroll_into_view_if_needed()
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / f"{name}.png"))

    return take


def code_now() -> str:
    """What the admin's authenticator app shows now."""
    return f"{TOTP(bytes.fromhex(TOTP_KEY), step=30, digits=6).token():06d}"


def setup_nav(page: Page, location: Location) -> Locator:
    return page.get_by_role("navigation", name=f"Setup of {location.name}")


def add_resource(
    page: Page, location: Location, name: str, *, kind: str, role: str = "—", capacity: int = 1
) -> None:
    """From "People and places": add a staff member, chair or room; lands on its page."""
    setup_nav(page, location).get_by_role("link", name="People and places").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("People and places")
    form = page.get_by_role("region", name="Add a staff member, chair or room")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Kind").select_option(label=kind)
    form.get_by_label("Role").select_option(label=role)
    form.get_by_label("Patients at once").fill(str(capacity))
    form.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_role("status")).to_contain_text(f"{name} added")


def set_weekly_hours(
    page: Page, location: Location, name: str, days: tuple[str, ...], start: str, end: str
) -> None:
    """On a person's or place's page: the same first shift on each of ``days``."""
    week = page.get_by_role("region", name=f"Weekly hours at {location.name}")
    for day in days:
        week.get_by_label(f"{day}, first shift starts").fill(start)
        week.get_by_label(f"{day}, first shift ends").fill(end)
    week.get_by_role("button", name="Save the weekly hours").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"{name}: weekly hours at {location.name} saved."
    )


def test_an_admin_sets_up_a_new_clinic_and_a_patient_books_online(
    new_page, shot: Shot, live_server
):
    # --- An empty database, then the clean start -------------------------------------------
    assert not Location.objects.exists()
    location = clinic_create(
        name="Brookline", public_name="Brookline Wellness", timezone="America/New_York"
    )
    assert not Resource.objects.exists()
    consultation = location.appointment_types.get(slug="consultation")
    admin = staff_user(Role.ADMIN, location, username="avery")
    TOTPDevice.objects.create(user=admin, name="Avery's phone", key=TOTP_KEY, confirmed=True)

    page = new_page()
    page.set_viewport_size(VIEWPORT)

    # --- Sign in: the password, then the authenticator's code ------------------------------
    page.goto(f"{live_server.url}/staff/login/?next=/staff/setup/")
    page.get_by_label("Username").fill("avery")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in")
    page.get_by_label("Code").fill(code_now())
    page.get_by_role("button", name="Verify").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Setup")
    shot(page, "01-setup-home")
    page.get_by_role("link", name="Brookline", exact=True).click()

    # --- People and places, and their hours ------------------------------------------------
    add_resource(page, location, "Dr. Rivera", kind="Staff member", role="Prescriber")
    set_weekly_hours(page, location, "Dr. Rivera", WEEKDAYS, "09:00", "17:00")
    # One Saturday's extra hours: a date override.
    day = page.get_by_role("region", name="Date overrides")
    expect(day).to_contain_text("No date overrides to come.")
    day.get_by_label("Date", exact=True).fill(SATURDAY)
    day.get_by_label("Starts", exact=True).fill("10:00")
    day.get_by_label("Ends", exact=True).fill("13:00")
    day.get_by_label("Reason").fill("Saturday clinic")
    day.get_by_role("button", name="Save the day").click()
    expect(page.get_by_role("status")).to_contain_text(f"Dr. Rivera: hours on {SATURDAY} saved.")
    override = day.get_by_role("row").filter(has_text="Sat 5 Dec 2026")
    expect(override).to_contain_text("10:00\u201313:00")  # an en dash
    expect(override).to_contain_text("Saturday clinic")
    week = page.get_by_role("region", name="Weekly hours at Brookline")
    expect(week.get_by_label("Monday, first shift starts")).to_have_value("09:00")
    expect(week.get_by_label("Saturday, first shift starts")).to_have_value("")
    shot(page, "02-hours-and-date-override", focus=day)

    add_resource(page, location, "Sam Okafor", kind="Staff member", role="Nurse", capacity=2)
    set_weekly_hours(page, location, "Sam Okafor", WEEKDAYS, "08:00", "16:00")
    add_resource(page, location, "Chair 1", kind="Chair")
    set_weekly_hours(page, location, "Chair 1", WEEKDAYS, "08:00", "18:00")
    add_resource(page, location, "Room A", kind="Room")
    set_weekly_hours(page, location, "Room A", (*WEEKDAYS, "Saturday"), "08:00", "18:00")

    setup_nav(page, location).get_by_role("link", name="People and places").click()
    staff = page.get_by_role("region", name="Staff")
    cells = staff.get_by_role("row").filter(has_text="Sam Okafor").get_by_role("cell")
    expect(cells).to_have_text(["Sam Okafor", "Nurse", "2", "Here", "Active"])
    expect(page.get_by_role("region", name="Chairs")).to_contain_text("Chair 1")
    expect(page.get_by_role("region", name="Rooms")).to_contain_text("Room A")
    shot(page, "03-people-and-places")

    rivera = Resource.objects.get(name="Dr. Rivera")
    assert (rivera.kind, rivera.role, rivera.location_id) == (
        ResourceKind.STAFF,
        "prescriber",
        location.pk,
    )
    nurse = Resource.objects.get(name="Sam Okafor")
    assert (nurse.role, nurse.capacity) == ("nurse", 2)
    assert WorkingHours.objects.filter(resource=rivera, location=location).count() == 5
    (saturday,) = DateOverride.objects.filter(resource=rivera, location=location)
    assert (saturday.date.isoformat(), saturday.start, saturday.end) == (
        SATURDAY,
        time(10),
        time(13),
    )

    # --- A reminder of the consultation: edit, preview, save, re-plan ----------------------
    setup_nav(page, location).get_by_role("link", name="Reminders").click()
    page.get_by_role("link", name="Comprehensive evaluation").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Reminders for Comprehensive evaluation"
    )
    # The preview follows focus by a deferred script: it has run once the DOM is loaded.
    page.wait_for_load_state("domcontentloaded")
    morning = page.get_by_role("group", name="Morning of the visit", exact=True)
    expect(morning.get_by_label("Or at this time of day")).to_have_value("07:30")
    preview = page.get_by_role("complementary", name="Preview")
    # Editing a reminder turns the preview to it, and it follows the values as they are typed.
    morning.get_by_label("Or at this time of day").fill("08:15")
    expect(preview.get_by_label("Message", exact=True)).to_have_value(MessageKind.MORNING_OF)
    expect(preview.get_by_role("heading", name="Morning of the visit")).to_be_visible()
    expect(preview).to_contain_text("Goes out Wed 2 Dec at 08:15 EST")
    expect(preview).to_contain_text("Wording check passed")
    expect(preview.get_by_role("region", name="E-mail")).to_contain_text("Alex")
    expect(preview.get_by_role("region", name="Text message")).to_contain_text("Brookline")
    # Nothing is saved by a preview.
    assert ReminderRule.objects.get(
        appointment_type=consultation, kind=MessageKind.MORNING_OF
    ).local_time == time(7, 30)
    shot(page, "04-reminder-preview", focus=preview)

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Saved.")
    job = page.get_by_role("region", name="Booked visits and the new rules")
    expect(job.get_by_role("status")).to_contain_text(
        "Done: the messages of 0 booked visits follow these rules"
    )
    expect(job.get_by_role("progressbar")).to_have_attribute("value", "1")
    rule = ReminderRule.objects.get(appointment_type=consultation, kind=MessageKind.MORNING_OF)
    assert rule.local_time == time(8, 15)
    assert ReplanJob.objects.get(appointment_type=consultation).status == "done"
    shot(page, "05-reminders-saved", focus=job)

    # --- A screening question on the booking form ------------------------------------------
    setup_nav(page, location).get_by_role("link", name="Intake questions").click()
    add = page.get_by_role("region", name="Add a question")
    add.get_by_label("Yes/no screening question").check()
    add.get_by_label("Wording").fill(QUESTION)
    add.get_by_role("button", name="Add to the booking form").click()
    screening = page.get_by_role("region", name="Screening questions (yes or no)")
    added = screening.get_by_role("textbox").last
    expect(added).to_have_value(QUESTION)
    shot(page, "06-intake-questions", focus=added)
    others = list(
        IntakeOption.objects.filter(location=location, kind=IntakeOptionKind.SCREENING)
        .exclude(text=QUESTION)
        .values_list("text", flat=True)
    )
    assert others, "clinic_create installs the default screening questions"

    # --- A patient books that Saturday online ----------------------------------------------
    patient = new_page()
    patient.set_viewport_size(VIEWPORT)
    patient.goto(f"{live_server.url}/book/")
    expect(patient.get_by_role("heading", level=1)).to_have_text("What would you like to book?")
    patient.get_by_role("link", name=re.compile("New patient consultation")).click()
    expect(patient.get_by_role("heading", level=1)).to_have_text("Choose a day and time")
    patient.get_by_role("link", name=re.compile("5 Dec")).click()
    # Saturday's times are the prescriber's extra hours, nothing from the weekly ones.
    expect(patient.get_by_role("link", name="10:00 AM EST", exact=True)).to_be_visible()
    expect(patient.get_by_role("link", name="9:00 AM EST", exact=True)).to_have_count(0)
    expect(patient.get_by_role("link", name="1:00 PM EST", exact=True)).to_have_count(0)
    patient.get_by_role("link", name="10:00 AM EST", exact=True).click()

    expect(patient.get_by_role("heading", level=1)).to_have_text("Your details")
    expect(patient.get_by_text("Saturday 5 December 2026 at 10:00 AM EST")).to_be_visible()
    patient.get_by_label("First name").fill("Ada")
    patient.get_by_label("Last name").fill("Lovelace")
    patient.get_by_label("Date of birth").fill("1985-12-10")
    patient.get_by_label("Email", exact=True).fill("ada@example.com")
    patient.get_by_label("Mobile phone").fill("212 555 0199")
    patient.get_by_label("Depression").check()
    for text in others:
        patient.get_by_role("group", name=text, exact=True).get_by_label("No", exact=True).check()
    question = patient.get_by_role("group", name=QUESTION, exact=True)
    expect(question).to_be_visible()
    question.get_by_label("Yes", exact=True).check()
    shot(patient, "07-booking-form-question", focus=question)
    patient.get_by_role("button", name="Continue").click()

    expect(patient.get_by_role("heading", level=1)).to_have_text("Check your answers")
    expect(patient.get_by_text(QUESTION)).to_be_visible()
    patient.get_by_role("button", name="Confirm booking").click()
    expect(patient.get_by_role("heading", level=1)).to_have_text("Check your e-mail to confirm")
    links = {
        link
        for message in mail.outbox
        if message.to == ["ada@example.com"]
        for link in re.findall(r"https?://[^\s]+/book/confirm/[\w-]+/", str(message.body))
    }
    (link,) = links
    patient.goto(live_server.url + urlsplit(link).path)
    expect(patient.get_by_role("heading", level=1)).to_have_text("Confirm your appointment")
    patient.get_by_role("button", name="Confirm", exact=True).click()

    expect(patient.get_by_role("heading", level=1)).to_have_text("You're booked")
    appointment = Appointment.objects.select_related("intake").get()
    expect(patient.get_by_text(appointment.reference)).to_be_visible()
    shot(patient, "08-booked")
    assert appointment.status == AppointmentStatus.BOOKED
    assert appointment.appointment_type_id == consultation.pk
    assert appointment.start == SATURDAY_10AM
    assert {a.resource.name for a in appointment.allocations.select_related("resource")} == {
        "Dr. Rivera",
        "Room A",
    }
    assert {"question": QUESTION, "answer": True} in appointment.intake.screening

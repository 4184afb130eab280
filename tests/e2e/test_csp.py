"""The pages work in a real browser under the Content-Security-Policy, and it refuses nothing
they do: the booking steps (book.js), the staff calendar (EventCalendar and calendar.js) and
the API docs (Swagger UI)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from booking.access.roles import Role
from booking.defaults import intake_options_install_defaults
from booking.models import Appointment
from booking.services import appointment_book
from scheduling.models import AppointmentType
from tests.e2e.staff_sign_in import submit_sign_in
from tests.staff_helpers import staff_user

pytestmark = pytest.mark.django_db(transaction=True)

TEN_AM = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # the clock's day, 10:00 in New York

# The browser's own report of each refusal: what a page did that the policy stopped.
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def watch(page: Page) -> list[str]:
    """Console lines about the policy, for ``refusals``."""
    console: list[str] = []

    def heard(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            console.append(message.text)

    page.on("console", heard)
    page.add_init_script(WATCH_VIOLATIONS)
    return console


def refusals(page: Page, console: list[str]) -> list[str]:
    return console + page.evaluate("window.__cspViolations || []")


def test_the_booking_pages_run_under_the_policy(page: Page, live_server, consultation) -> None:
    console = watch(page)
    page.goto(f"{live_server.url}/book/")
    page.get_by_role("link", name=re.compile("New patient consultation")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a day and time")
    expect(page.locator("#zone-notice")).to_contain_text("America/New_York")  # book.js ran
    page.get_by_role("link", name="9:00 AM EST", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")

    assert refusals(page, console) == []


def test_the_staff_calendar_runs_under_the_policy(
    page: Page, live_server, infusion: AppointmentType, make_approved_patient
) -> None:
    staff_user(Role.FRONT_DESK, infusion.location, username="desk")
    appointment_book(
        appointment_type=infusion,
        patient=make_approved_patient(first_name="Grace", last_name="Hopper"),
        start=TEN_AM,
        now=datetime(2026, 11, 24, 15, 0, tzinfo=UTC),
    )
    console = watch(page)
    page.goto(f"{live_server.url}/staff/login/?next=/staff/calendar/")
    submit_sign_in(page, "desk")
    # EventCalendar drew the day and calendar.js filled it from the data endpoint.
    expect(page.get_by_text("Grace Hopper").first).to_be_visible()

    assert refusals(page, console) == []


def test_the_api_docs_run_under_the_policy(page: Page, live_server) -> None:
    console = watch(page)
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.get_by_text("/api/v1/bookings/").first).to_be_visible()  # Swagger UI started

    assert refusals(page, console) == []


def test_the_proof_of_work_check_runs_under_the_policy(
    page: Page, live_server, consultation, settings
) -> None:
    intake_options_install_defaults(location=consultation.location)
    settings.POW_AFTER_ATTEMPTS = 0  # asked of every booking
    settings.POW_MAX_NUMBER = 2000
    console = watch(page)
    page.goto(f"{live_server.url}/book/")
    page.get_by_role("link", name=re.compile("New patient consultation")).click()
    page.get_by_role("link", name="9:00 AM EST", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")
    # The widget fetches a challenge and solves it in its worker, from our own files.
    solved = page.locator("altcha-widget input[name=altcha]")
    expect(solved).to_have_value(re.compile(r"^[A-Za-z0-9+/=]{40,}$"), timeout=15_000)
    # ... and the server takes the solution: the booking is held.
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_label("Date of birth").fill("1985-12-10")
    page.get_by_label("Email", exact=True).fill("ada@example.com")
    page.get_by_label("Mobile phone").fill("212 555 0199")
    page.get_by_label("Depression").check()
    questions = page.locator("fieldset.inline")
    for n in range(questions.count()):
        questions.nth(n).get_by_label("No", exact=True).check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Confirm booking").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your e-mail to confirm")
    assert Appointment.objects.count() == 1

    assert refusals(page, console) == []

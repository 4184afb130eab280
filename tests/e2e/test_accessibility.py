"""Every page passes axe-core's WCAG 2.0, 2.1 and 2.2 rules at levels A and AA (tests/e2e/axe.py),
in the states a visitor meets it in: empty and full, sent with mistakes, and each step of the
patient's ways through booking, their link and a waitlist offer.

The staff pages and the setup pages are found by the same walks of the URL configuration that
check their audit trail and their permissions (tests/booking/access/test_audit_coverage.py,
tests/booking/desk/setup/test_every_page.py), so a new page is checked as soon as it is routed.
A patient's page is reached through its flow; ``test_every_public_page_has_a_state_here`` fails
when one is routed that no test below opens. The staff calendar has its own checks in
tests/e2e/test_calendar.py and test_calendar_views.py; the Django admin's pages are Django's
own and are not checked here.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.urls import get_resolver, reverse
from playwright.sync_api import Error, Page, expect

from booking.access.roles import Role
from booking.defaults import intake_options_install_defaults
from booking.links import patient_link_issue
from booking.models import (
    SMS_CONSENT_VERSION,
    SMS_CONSENT_WORDINGS,
    Appointment,
    AppointmentStatus,
)
from booking.services import appointment_book
from booking.staff_accounts import invitation_link
from booking.waitlist import offer_freed_slot, waitlist_add
from scheduling.models import AppointmentType, Location
from tests.booking.access import test_audit_coverage as audit_walk
from tests.booking.desk.setup import test_every_page as setup_walk
from tests.booking.test_waitlist import offer_tokens
from tests.e2e.axe import assert_accessible, axe_violations
from tests.e2e.staff_sign_in import submit_sign_in
from tests.e2e.test_setup_keyboard import tab_to
from tests.staff_helpers import PASSWORD, client_for, staff_user

pytestmark = pytest.mark.django_db(transaction=True)

NEW_YORK = ZoneInfo("America/New_York")
# The clock stands at Tuesday 1 December 2026, 09:00 EST (tests/e2e/conftest.py).
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
FRIDAY_10AM = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
THURSDAY_10AM = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)

# The walks' clinics, as fixtures of this module: the same data the walks read their pages from.
audit_world = pytest.fixture(name="audit_world")(inspect.unwrap(audit_walk.world))
setup_world = pytest.fixture(name="setup_world")(inspect.unwrap(setup_walk.world))

# Staff routes outside setup that are no page of their own to a signed-in staff member's GET.
NOT_A_PAGE = {
    "staff-home": "redirects to the board",
    "staff-login": "redirects a signed-in visitor (checked signed out below)",
    "staff-logout": "a form's target: signing out takes a POST",
    "staff-calendar": "checked by tests/e2e/test_calendar.py and test_calendar_views.py",
    "staff-audit-export": "a CSV file",
    "two-factor-enrol": "redirects an enrolled account (checked for a new one below)",
    "two-factor-verify": "redirects a verified session (checked before the code below)",
}
# Addresses that only take a form's POST (405 to a GET): the page whose form posts there is
# checked, and so is what it answers when that form is sent with mistakes.
FORM_TARGETS = {
    "staff-appointment-allergies",
    "staff-appointment-contraindication",
    "staff-appointment-escort",
    "staff-board-step",
    "staff-prescriber-rems",
    "staff-prescriber-series",
    "staff-waitlist-remove",
    "setup-account-active",
    "setup-account-resend",
    "setup-closure-remove",
    "setup-contraindication",
    "setup-intake-option",
    "setup-person-change-remove",
    "setup-person-hours",
    "setup-person-hours-from",
    "setup-person-override",
    "setup-person-override-remove",
    "setup-person-time-off",
    "setup-person-time-off-remove",
    "setup-type-needs",
    "setup-location-feed",
    "setup-location-feed-revoke",
    "setup-person-feed",
    "setup-person-feed-revoke",
}
# Setup addresses that are no page of their own.
NOT_A_SETUP_PAGE = {
    "setup-reminders-preview": "the HTML fragment the reminder editor fetches into its page",
    "setup-reminders-job": "the JSON the re-plan progress bar reads",
    "setup-first-run": "redirects once a location exists (checked before one does below)",
}
# The APIs for programs (JSON, FHIR): no pages; their documentation is checked below.
MACHINE_APIS = ("api/v1/", "fhir/")
# Routes with no page at all: files and machine endpoints.
NOT_HTML = {"healthz", "metrics", "schema", "sms-webhook", "patient-link-ics"}

# The page's own form, sent back to it with nothing filled in but the CSRF token: the state with
# every field's error showing (or, for a confirmation, the page it leads to).
# (Attributes, not properties: a field named "action" or "method" shadows the form's own.)
HAS_OWN_FORM = """() => [...document.querySelectorAll("form")].some(
  (form) => (form.getAttribute("method") || "").toLowerCase() === "post"
    && new URL(form.getAttribute("action") || "", location.href).pathname === location.pathname
)"""
SEND_EMPTY = """() => {
  const token = document.querySelector("input[name=csrfmiddlewaretoken]");
  const form = document.createElement("form");
  form.method = "post";
  form.action = location.href;
  if (token) form.append(token.cloneNode());
  document.body.append(form);
  form.submit();
}"""


def sign_in_as(page: Page, live_server: Any, user: User) -> None:
    """Give the page's browser the session of ``user``, signed in and past the second factor,
    without the sign-in form (checked in its own tests)."""
    session = client_for(user).cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )


def check_sent_empty(page: Page, what: str) -> None:
    """If the page posts a form to itself, send it empty and check what comes back."""
    if not page.evaluate(HAS_OWN_FORM):
        return
    with page.expect_navigation():
        page.evaluate(SEND_EMPTY)
    assert_accessible(page, f"{what}, sent empty")


def heading(page: Page) -> Any:
    return expect(page.get_by_role("heading", level=1))


# --- the checker itself -----------------------------------------------------------------------


def test_axe_runs_under_the_pages_policy(page: Page, live_server) -> None:
    response = page.goto(f"{live_server.url}/book/")
    assert response is not None
    script_src = response.headers["content-security-policy"].split("script-src", 1)[1]
    assert "'unsafe-inline'" not in script_src.split(";", 1)[0]
    with pytest.raises(Error):
        page.add_script_tag(content="window.injected = true;")  # refused by the policy

    assert axe_violations(page) == []
    assert page.evaluate("() => window.axe.version") == "4.14.1"


def test_axe_reports_what_breaks_a_rule(page: Page, live_server) -> None:
    page.goto(f"{live_server.url}/book/")
    page.evaluate(
        """() => {
          const image = document.createElement("img");
          image.id = "unnamed";
          image.src = "/static/nothing.png";
          document.querySelector("main").append(image);
        }"""
    )

    with pytest.raises(AssertionError, match=r"image-alt \(critical\).*\n    #unnamed: <img"):
        assert_accessible(page, "the booking start with an image without text")
    assert axe_violations(page, exclude=["#unnamed"]) == []


# --- staff pages, from the audit walk ---------------------------------------------------------

STAFF_ROUTES = {
    route.name: route
    for route in audit_walk.staff_routes()
    if route.route.startswith("staff/")
    and route.name not in NOT_A_PAGE
    and route.name not in FORM_TARGETS
}


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("auditor", "auditor@example.com", PASSWORD)


@pytest.mark.parametrize("name", sorted(STAFF_ROUTES))
def test_staff_page(name: str, page: Page, live_server, audit_world: Any, superuser: User) -> None:
    url = audit_walk.concrete(STAFF_ROUTES[name], audit_world)
    assert url is not None
    sign_in_as(page, live_server, superuser)

    response = page.goto(live_server.url + url)

    assert response is not None
    assert response.status == 200, f"{url}: {response.status}"
    assert_accessible(page, name)
    check_sent_empty(page, name)


# The lists, with nothing in them yet.
EMPTY_LISTS = ["staff-board", "staff-waitlist", "staff-audit", "staff-messages", "staff-prescriber"]


@pytest.mark.parametrize("name", EMPTY_LISTS)
def test_staff_list_when_empty(
    name: str, page: Page, live_server, clinic: Location, superuser: User
) -> None:
    sign_in_as(page, live_server, superuser)

    page.goto(live_server.url + reverse(name))

    assert_accessible(page, f"{name}, empty")


# --- setup pages, from the setup walk ---------------------------------------------------------

SETUP_ROUTES = {
    route.name: route
    for route in setup_walk.setup_routes()
    if route.name not in FORM_TARGETS and route.name not in NOT_A_SETUP_PAGE
}


@pytest.mark.parametrize("name", sorted(SETUP_ROUTES))
def test_setup_page(name: str, page: Page, live_server, setup_world: Any, superuser: User) -> None:
    route = SETUP_ROUTES[name]
    url = setup_walk.url_of(route, setup_world)
    # A location's pages as its admin; the clinic-wide ones (a new location…) are a superuser's.
    sign_in_as(page, live_server, setup_world.admin if route.kwargs else superuser)

    response = page.goto(live_server.url + url)

    assert response is not None
    assert response.status == 200, f"{url}: {response.status}"
    assert_accessible(page, name)
    check_sent_empty(page, name)


def test_first_run_setup(page: Page, live_server, superuser: User) -> None:
    sign_in_as(page, live_server, superuser)

    page.goto(live_server.url + reverse("setup-first-run"))

    assert urlsplit(page.url).path == reverse("setup-first-run")
    assert_accessible(page, "the first run, no location yet")
    check_sent_empty(page, "the first run")


# --- signing in -------------------------------------------------------------------------------


def test_sign_in_and_its_mistakes(page: Page, live_server, clinic: Location) -> None:
    staff_user(Role.FRONT_DESK, clinic, username="desk")
    page.goto(f"{live_server.url}/staff/login/")
    assert_accessible(page, "the sign-in form")

    page.get_by_label("Username").fill("desk")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page, "the sign-in form, refused")


def test_setting_a_password_from_an_invitation(page: Page, live_server, clinic: Location) -> None:
    invited = staff_user(Role.NURSE, clinic)
    invited.set_unusable_password()  # invited, and not yet in: no password of their own
    invited.save()
    page.goto(live_server.url + urlsplit(invitation_link(invited)).path)
    assert_accessible(page, "the invitation's set-password form")

    page.get_by_role("button").last.click()

    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page, "the invitation's set-password form, sent empty")


def test_the_second_factor_pages(page: Page, live_server, clinic: Location) -> None:
    admin = staff_user(Role.ADMIN, clinic, username="admin")
    page.goto(f"{live_server.url}/staff/login/")
    page.get_by_label("Username").fill(admin.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # No authenticator yet: an admin must enrol one before anything else.
    heading(page).to_be_visible()
    assert urlsplit(page.url).path == reverse("two-factor-enrol")
    assert_accessible(page, "enrolling an authenticator")
    page.get_by_role("button", name=re.compile("Confirm|Verify|Turn on", re.I)).first.click()
    assert_accessible(page, "enrolling an authenticator, sent empty")


def test_the_second_factor_code_page(page: Page, live_server, clinic: Location) -> None:
    staff_user(Role.ADMIN, clinic, username="admin")
    page.goto(f"{live_server.url}/staff/login/")
    submit_sign_in(page, "admin")  # enrols, then signs in with a code
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/staff/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    heading(page).to_have_text("Two-factor sign-in")
    assert_accessible(page, "the code page")
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page, "the code page, refused")


# --- the patient's pages ----------------------------------------------------------------------

PUBLIC_PAGES: set[str] = set()


def covers(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The public routes a test below opens, for ``test_every_public_page_has_a_state_here``."""
    PUBLIC_PAGES.update(names)
    return lambda test: test


def test_every_public_page_has_a_state_here() -> None:
    public = {
        route.name
        for route in audit_walk.routes(get_resolver().url_patterns)
        if route.name
        and not route.route.startswith(("staff/", "admin/", *MACHINE_APIS))
        and route.name not in NOT_HTML
    }
    assert public - PUBLIC_PAGES == set()


@pytest.fixture
def clinic_with_intake(clinic: Location) -> Location:
    intake_options_install_defaults(location=clinic)
    return clinic


@covers(
    "book-start",
    "book-types",
    "book-slots",
    "book-details",
    "book-review",
    "book-times",
    "book-confirm",
    "book-done",
)
def test_booking_steps(page: Page, live_server, clinic_with_intake: Location) -> None:
    page.goto(f"{live_server.url}/book/")
    heading(page).to_have_text("What would you like to book?")
    assert_accessible(page, "the visit types (one location)")
    page.goto(f"{live_server.url}/book/{clinic_with_intake.slug}/")
    assert_accessible(page, "the visit types of a location")
    page.get_by_role("link", name=re.compile("New patient consultation")).click()

    heading(page).to_have_text("Choose a day and time")
    assert_accessible(page, "the days and times")
    page.get_by_role("link", name="9:00 AM EST", exact=True).click()

    heading(page).to_have_text("Your details")
    assert_accessible(page, "the details form")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_be_focused()
    assert_accessible(page, "the details form with errors")
    fill_details(page)
    page.get_by_role("button", name="Continue").click()

    heading(page).to_have_text("Check your answers")
    assert_accessible(page, "the review")
    page.get_by_role("button", name="Change time").click()
    assert_accessible(page, "the times, carrying the details")
    page.get_by_role("button", name="9:00 AM EST", exact=True).first.click()
    heading(page).to_have_text("Check your answers")
    page.get_by_role("button", name="Confirm booking").click()

    heading(page).to_have_text("Check your e-mail to confirm")
    assert_accessible(page, "check your e-mail")


def fill_details(page: Page) -> None:
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_label("Date of birth").fill("1985-12-10")
    page.get_by_label("Email", exact=True).fill("ada@example.com")
    page.get_by_label("Mobile phone").fill("212 555 0199")
    page.get_by_label("Depression").check()
    page.get_by_label("Current medications").fill("Sertraline 50 mg")
    questions = page.locator("fieldset.inline")
    for n in range(questions.count()):
        questions.nth(n).get_by_label("No", exact=True).check()
    page.get_by_label(SMS_CONSENT_WORDINGS[SMS_CONSENT_VERSION]).check()


@covers("book-start")
def test_booking_with_more_than_one_location(
    page: Page, live_server, clinic: Location, make_location
) -> None:
    make_location()
    page.goto(f"{live_server.url}/book/")
    assert_accessible(page, "the locations")
    page.goto(f"{live_server.url}/book/no-such-place/")
    assert_accessible(page, "an unknown location")
    page.goto(f"{live_server.url}/book/done/")
    assert_accessible(page, "the last step, with nothing booked")


@covers("book-verify", "book-verify-confirm", "book-verify-release")
def test_confirming_from_the_email(page: Page, live_server, clinic_with_intake: Location) -> None:
    for answer, then in (("Confirm", "You're booked"), ("I did not ask", "released")):
        mail.outbox.clear()
        page.goto(f"{live_server.url}/book/{clinic_with_intake.slug}/consultation/?date=2026-12-02")
        page.get_by_role("link", name=re.compile(r"AM EST$")).first.click()
        fill_details(page)
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Confirm booking").click()
        heading(page).to_have_text("Check your e-mail to confirm")
        (link,) = set(re.findall(r"https?://[^\s]+/book/confirm/[\w-]+/", str(mail.outbox[0].body)))

        page.goto(live_server.url + urlsplit(link).path)
        heading(page).to_have_text("Confirm your appointment")
        assert_accessible(page, "the confirmation link")
        page.get_by_role("button", name=re.compile(f"^{answer}")).click()
        heading(page).to_contain_text(re.compile(then))
        assert_accessible(page, f"the confirmation link, answered {answer!r}")

    page.goto(f"{live_server.url}/book/confirm/not-a-token/")
    assert_accessible(page, "an unknown confirmation link")


@covers("patient-link-request", "patient-link-requested")
def test_asking_for_a_link(page: Page, live_server, clinic: Location) -> None:
    page.goto(f"{live_server.url}/a/")
    assert_accessible(page, "asking for a link")
    page.get_by_role("button").last.click()
    assert_accessible(page, "asking for a link, sent empty")
    page.get_by_label(re.compile("e-?mail", re.I)).first.fill("someone@example.com")
    page.get_by_role("button").last.click()
    assert_accessible(page, "asking for a link, sent")
    page.goto(f"{live_server.url}/a/sent/")
    assert_accessible(page, "a link sent")


@covers(
    "patient-link",
    "patient-link-confirm",
    "patient-link-escort",
    "patient-link-reschedule",
    "patient-link-cancel",
)
def test_a_patients_link(
    page: Page,
    live_server,
    consultation: AppointmentType,
    infusion: AppointmentType,
    make_approved_patient,
) -> None:
    patient = make_approved_patient(first_name="Grace")
    visit = appointment_book(appointment_type=consultation, patient=patient, start=FRIDAY_10AM)
    appointment_book(appointment_type=infusion, patient=patient, start=THURSDAY_10AM)
    link = live_server.url + reverse("patient-link", args=[patient_link_issue(patient=patient)])

    page.goto(link)
    assert_accessible(page, "the patient's visits")
    page.locator("form[action$='/escort/'] button").first.click()
    assert_accessible(page, "the escort form, sent empty")
    page.goto(link)
    page.locator(f"#visit-{visit.reference}").get_by_role(
        "link", name=re.compile("change time", re.I)
    ).click()
    assert_accessible(page, "moving a visit")
    page.goto(link)
    page.locator(f"#visit-{visit.reference}").get_by_role(
        "link", name=re.compile("^cancel", re.I)
    ).click()
    assert_accessible(page, "cancelling a visit")
    page.get_by_role("button", name=re.compile("cancel this appointment", re.I)).click()
    assert_accessible(page, "cancelling a visit, sent without a reason")
    page.goto(link)
    page.get_by_role("button", name="Confirm I will attend").first.click()
    expect(page.get_by_text("your visit is confirmed")).to_be_visible()
    assert_accessible(page, "a visit confirmed")

    page.goto(f"{live_server.url}/a/not-a-token/")
    assert_accessible(page, "an unknown link")


@covers("patient-link-series", "patient-link-series-book")
def test_a_patients_series(
    page: Page, live_server, clinic: Location, make_approved_patient
) -> None:
    patient = make_approved_patient(first_name="Rosalind")
    token = patient_link_issue(patient=patient, now=NOW)

    page.goto(live_server.url + reverse("patient-link-series", args=[token]))
    heading(page).to_have_text("Book your treatment sessions")
    assert_accessible(page, "the series preferences")
    page.get_by_role("button", name="Show proposed dates").click()
    assert_accessible(page, "the proposed series")
    page.get_by_role("button", name=re.compile(r"^Book these \d+ sessions")).click()
    expect(page.get_by_text(re.compile(r"sessions are booked"))).to_be_visible()
    assert_accessible(page, "the series booked")
    page.goto(live_server.url + reverse("patient-link-series", args=[token]))
    assert_accessible(page, "the series page with the series booked")


@covers("waitlist-offer", "waitlist-offer-accept", "waitlist-offer-decline")
def test_a_waitlist_offer(
    page: Page, live_server, consultation: AppointmentType, make_patient
) -> None:
    tokens: list[str] = []
    with offer_tokens() as heard:
        for name in ("Robin", "Sam"):
            waitlist_add(
                patient=make_patient(first_name=name),
                location=consultation.location,
                appointment_type=consultation,
                earliest_date=date(2026, 12, 2),
                latest_date=date(2026, 12, 4),
                now=NOW,
            )
        for day in (3, 4):
            start = datetime.combine(date(2026, 12, day), time(10), tzinfo=NEW_YORK)
            offer = offer_freed_slot(appointment_type=consultation, start=start, now=NOW)
            assert offer is not None
            tokens.append(heard[offer.pk])

    for token, answer in zip(tokens, ("Book this appointment", "No thanks"), strict=True):
        page.goto(f"{live_server.url}/w/{token}/")
        assert_accessible(page, "a waitlist offer")
        page.get_by_role("button", name=re.compile(f"^{answer}")).click()
        assert_accessible(page, f"a waitlist offer, answered {answer!r}")

    page.goto(f"{live_server.url}/w/not-a-token/")
    assert_accessible(page, "an unknown waitlist offer")


# --- the API's documentation ------------------------------------------------------------------


# Swagger UI draws an enumerated query parameter (``status``…) as a <select> with no label: the
# parameter's name sits in the row's first cell, not tied to the control, and Swagger UI offers no
# setting to tie it. Only that rule is waived, on those controls only.
SWAGGER_UNLABELLED_SELECT = {"select-name": ".parameters-col_description select"}


@covers("api-docs")
def test_the_api_docs(page: Page, live_server) -> None:
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert_accessible(page, "the API docs")

    page.locator("#operations-v1-v1_appointments_list .opblock-summary-control").click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    assert_accessible(page, "the API docs, an operation open", waive=SWAGGER_UNLABELLED_SELECT)
    page.get_by_role("button", name="Try it out").click()
    expect(page.get_by_role("button", name="Execute")).to_be_visible()
    assert_accessible(page, "the API docs, trying an operation", waive=SWAGGER_UNLABELLED_SELECT)


# --- the whole booking with a keyboard only ---------------------------------------------------


def test_a_new_patient_books_and_confirms_with_the_keyboard_alone(
    page: Page, live_server, clinic_with_intake: Location
) -> None:
    """Tab and Shift+Tab to move, Enter to follow or press, Space to tick, arrows within a group
    of radio buttons, and typing: every stop on the way shows where the focus is."""
    page.goto(f"{live_server.url}/book/")
    tab_to(page, page.get_by_role("link", name=re.compile("New patient consultation")))
    page.keyboard.press("Enter")

    heading(page).to_have_text("Choose a day and time")
    tab_to(page, page.get_by_role("link", name="9:00 AM EST", exact=True))
    page.keyboard.press("Enter")

    heading(page).to_have_text("Your details")
    for label, keys in (
        ("First name", "Ada"),
        ("Last name", "Lovelace"),
        ("Date of birth", "12101985"),  # month, day, year: the field moves on by itself
        ("Email", "ada@example.com"),
        ("Mobile phone", "212 555 0199"),
    ):
        tab_to(page, page.get_by_label(label, exact=True))
        page.keyboard.type(keys)
    tab_to(page, page.get_by_label("Depression"))
    page.keyboard.press("Space")
    tab_to(page, page.get_by_label("Current medications"))
    page.keyboard.type("Sertraline 50 mg")
    questions = page.locator("fieldset.inline")
    for n in range(questions.count()):
        no = questions.nth(n).get_by_label("No", exact=True)
        # Tab enters a group of radio buttons at its first; the arrows move and choose.
        tab_to(page, questions.nth(n).get_by_role("radio").first)
        for _ in range(questions.nth(n).get_by_role("radio").count()):
            if no.is_checked():
                break
            page.keyboard.press("ArrowDown")
        expect(no).to_be_checked()
    tab_to(page, page.get_by_label(SMS_CONSENT_WORDINGS[SMS_CONSENT_VERSION]))
    page.keyboard.press("Space")
    tab_to(page, page.get_by_role("button", name="Continue"))
    page.keyboard.press("Enter")

    heading(page).to_have_text("Check your answers")
    expect(page.get_by_text("Ada Lovelace")).to_be_visible()
    expect(page.get_by_text("Wednesday 2 December 2026 at 9:00 AM EST")).to_be_visible()
    tab_to(page, page.get_by_role("button", name="Confirm booking"))
    page.keyboard.press("Enter")

    heading(page).to_have_text("Check your e-mail to confirm")
    (link,) = set(re.findall(r"https?://[^\s]+/book/confirm/[\w-]+/", str(mail.outbox[0].body)))
    page.goto(live_server.url + urlsplit(link).path)
    heading(page).to_have_text("Confirm your appointment")
    tab_to(page, page.get_by_role("button", name="Confirm", exact=True))
    page.keyboard.press("Enter")

    heading(page).to_have_text("You're booked")
    appointment = Appointment.objects.select_related("patient").get()
    assert appointment.status == AppointmentStatus.BOOKED
    assert (appointment.patient.last_name, appointment.patient.date_of_birth) == (
        "Lovelace",
        date(1985, 12, 10),
    )
    assert appointment.patient.sms_consent

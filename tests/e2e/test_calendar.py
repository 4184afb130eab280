"""The front desk moves visits on the calendar in a real browser: a drag to a free time is saved,
a drag onto a taken time is refused with the API's message and the visit goes back."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, expect

from booking.access.roles import Role
from booking.models import Appointment, AppointmentEvent, Patient
from booking.services import appointment_book
from scheduling.models import AppointmentKind, AppointmentType, Location
from tests.conftest import approve
from tests.e2e.axe import assert_accessible
from tests.e2e.staff_sign_in import submit_sign_in
from tests.staff_helpers import staff_user

pytestmark = pytest.mark.django_db(transaction=True)

NEW_YORK = ZoneInfo("America/New_York")
# The conftest's clock: Tuesday 1 December 2026, 09:00 in New York. The visits are on Wednesday.
WEDNESDAY = (2026, 12, 2)
# Tall enough for a working day on screen: a drag that leaves the window scrolls the grid.
DESKTOP = {"width": 1280, "height": 1800}


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(*WEDNESDAY, hour, minute, tzinfo=NEW_YORK)


@pytest.fixture
def chair_week(one_chair: AppointmentType, make_patient: Callable[..., Patient]):
    """One chair; Ada at 10:00 and Grace at 13:00 on Wednesday, 90-minute infusions each (the
    treatment rules apply to them: both are approved)."""
    AppointmentType.objects.filter(pk=one_chair.pk).update(
        kind=AppointmentKind.INFUSION, needs_approval=True
    )
    one_chair.refresh_from_db()
    ada = appointment_book(
        appointment_type=one_chair,
        patient=approve(make_patient(first_name="Ada"), one_chair),
        start=at(10),
    )
    grace = appointment_book(
        appointment_type=one_chair,
        patient=approve(make_patient(first_name="Grace"), one_chair),
        start=at(13),
    )
    return one_chair.location, ada, grace


def sign_in_to_the_calendar(
    page: Page, live_server, location: Location, role: str = Role.FRONT_DESK
) -> list[str]:
    """Sign in through the login page and open the week with a column per chair and day; the
    console errors seen."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chrome also reports each 4xx answer as a console error; the 409 is the point here.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    staff_user(role, location, username="desk.dana")
    page.goto(
        f"{live_server.url}/staff/login/?next=/staff/calendar/%3Flocation%3D{location.slug}"
        "%26by%3Dchair%26view%3Dcolumns%26date%3D2026-12-02"
    )
    submit_sign_in(page, "desk.dana")
    expect(page.get_by_role("heading", level=1)).to_have_text("Calendar")
    expect(page.locator("#calendar")).to_have_attribute("data-loaded", "2026-11-30/chair")
    expect(page.get_by_role("radio", name="Chairs", exact=True)).to_be_checked()
    return errors


def event(page: Page, name: str) -> Locator:
    return page.locator(".ec-event", has_text=name)


def drag(page: Page, item: Locator, dy: float) -> None:
    box = item.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + 8
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y + dy / 2, steps=8)
    page.mouse.move(x, y + dy, steps=8)
    page.mouse.up()


def top(item: Locator) -> float:
    # In one step in the page, after the next frame: the calendar redraws as data arrives.
    return float(
        item.evaluate(
            "element => new Promise(done => requestAnimationFrame("
            "() => done(element.getBoundingClientRect().top)))"
        )
    )


def test_the_desk_moves_a_visit_to_a_free_time_and_a_taken_time_is_refused(
    new_page, snapshot, live_server, chair_week
):
    location, ada, grace = chair_week
    page = new_page()
    page.set_viewport_size(DESKTOP)  # a week of columns is a desk's screen, not a phone's
    errors = sign_in_to_the_calendar(page, live_server, location)

    ada_event, grace_event = event(page, "Ada"), event(page, "Grace")
    expect(ada_event).to_have_count(1)
    expect(grace_event).to_have_count(1)
    expect(page.locator("#calendar-zone")).to_contain_text("America/New_York")
    # Both visits in the one chair's Wednesday column: three hours apart on screen.
    per_minute = (top(grace_event) - top(ada_event)) / 180
    assert per_minute > 0
    snapshot(page, "week")

    # To 15:00, a free time: saved, and shown there once the week is read again.
    loads = int(page.locator("#calendar").get_attribute("data-loads") or 0)
    drag(page, ada_event, 300 * per_minute)
    expect(page.get_by_role("status")).to_contain_text(f"Moved {ada.reference}")
    expect(page.locator("#calendar")).to_have_attribute("data-loads", str(loads + 1))
    assert Appointment.objects.get(pk=ada.pk).start == at(15)
    moved = event(page, "Ada")
    expect(moved).to_contain_text("3:00")
    assert abs(top(moved) - (top(grace_event) + 120 * per_minute)) < per_minute * 8
    snapshot(page, "moved")

    # Onto Grace at 13:00: the API says the time is taken; the visit goes back to 15:00.
    before = top(moved) - top(grace_event)  # the alert moves the whole grid down
    drag(page, moved, -120 * per_minute)
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(re.compile("not available", re.IGNORECASE))
    expect(event(page, "Ada")).to_contain_text("3:00")
    assert abs(top(event(page, "Ada")) - top(grace_event) - before) < 2
    assert Appointment.objects.get(pk=ada.pk).start == at(15)
    assert Appointment.objects.get(pk=grace.pk).start == at(13)
    assert errors == []


def test_clicking_a_visit_opens_it_with_a_link_to_its_page(new_page, live_server, chair_week):
    location, ada, _ = chair_week
    page = new_page()
    page.set_viewport_size(DESKTOP)  # a week of columns is a desk's screen, not a phone's
    errors = sign_in_to_the_calendar(page, live_server, location)

    event(page, "Ada").click()

    panel = page.get_by_role("region", name=re.compile("Ada"))
    expect(panel).to_be_visible()
    expect(panel).to_contain_text(ada.reference)
    expect(panel).to_contain_text("Booked")
    expect(panel.get_by_role("link", name="Open the appointment")).to_have_attribute(
        "href", f"/staff/appointments/{ada.reference}/"
    )
    assert_accessible(page, "the week by column with a visit's panel open")
    assert errors == []


def test_the_desk_books_a_free_time_for_a_patient_found_by_name(
    new_page, snapshot, live_server, chair_week, make_patient
):
    location, _, grace = chair_week
    lin = approve(make_patient(first_name="Lin", last_name="Okafor"), grace.appointment_type)
    make_patient(first_name="Lindsay", last_name="Okafor")
    page = new_page()
    page.set_viewport_size(DESKTOP)
    errors = sign_in_to_the_calendar(page, live_server, location)

    # Select 16:00-16:30 in the chair's Wednesday column, three hours below Grace's 13:00.
    grace_event = event(page, "Grace")
    per_minute = (top(grace_event) - top(event(page, "Ada"))) / 180
    box = grace_event.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, top(grace_event) + 180 * per_minute + 4
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y + 25 * per_minute, steps=6)
    page.mouse.up()

    panel = page.get_by_role("region", name="New visit")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("4:00")
    # Booking with nobody chosen is refused on the page, before any request.
    panel.get_by_role("button", name="Book").click()
    expect(page.get_by_role("alert")).to_contain_text("choose them from the list")

    panel.get_by_label("Patient").fill("okafor")
    choices = panel.get_by_role("group", name="Choose the patient")
    expect(choices.get_by_role("radio")).to_have_count(2)
    # A number is a record number, and no record is number 0: nobody matches every word.
    panel.get_by_label("Patient").fill("lin okafor 0")
    expect(panel.get_by_role("status")).to_contain_text("No patient of yours matches")
    panel.get_by_label("Patient").fill("okafor lin")
    expect(choices.get_by_role("radio")).to_have_count(2)  # Lin and Lindsay
    choices.get_by_role("radio", name=re.compile(rf"Okafor, Lin · .* #{lin.pk}$")).check()
    snapshot(page, "new-visit")
    panel.get_by_role("button", name="Book").click()

    expect(page.get_by_role("status").first).to_contain_text("Booked")
    expect(event(page, "Lin")).to_have_count(1)
    booked = Appointment.objects.get(patient=lin)
    assert booked.start == at(16)
    assert booked.appointment_type_id == grace.appointment_type_id
    assert errors == []


def test_a_prescriber_moves_a_treatment_onto_a_day_the_spacing_rule_refuses_giving_a_reason(
    new_page, live_server, chair_week
):
    location, ada, _ = chair_week
    # Ada's next infusion, on Thursday at 15:00; dragged to Wednesday 15:00 it would be her
    # second treatment that day.
    thursday = appointment_book(
        appointment_type=ada.appointment_type,
        patient=ada.patient,
        start=datetime(2026, 12, 3, 15, tzinfo=NEW_YORK),
    )
    page = new_page()
    page.set_viewport_size(DESKTOP)
    errors = sign_in_to_the_calendar(page, live_server, location, role=Role.PRESCRIBER)
    wednesday_ada, grace_event = event(page, "Ada").first, event(page, "Grace")
    per_minute = (top(grace_event) - top(wednesday_ada)) / 180
    expect(event(page, "Ada")).to_have_count(2)
    later = event(page, "Ada").nth(1)
    start_box, later_box = wednesday_ada.bounding_box(), later.bounding_box()
    assert start_box is not None
    assert later_box is not None
    x, y = later_box["x"] + later_box["width"] / 2, later_box["y"] + 8
    target_x = start_box["x"] + start_box["width"] / 2
    target_y = top(wednesday_ada) + 300 * per_minute + 8
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move((x + target_x) / 2, (y + target_y) / 2, steps=8)
    page.mouse.move(target_x, target_y, steps=8)
    page.mouse.up()

    panel = page.get_by_role("region", name="A clinical rule refuses this move")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("At most one treatment a day")
    assert Appointment.objects.get(pk=thursday.pk).start == datetime(
        2026, 12, 3, 15, tzinfo=NEW_YORK
    )
    panel.get_by_label("Your reason to move it anyway").fill("Split dose, same day by plan")
    panel.get_by_role("button", name="Move anyway").click()

    expect(page.get_by_role("status").first).to_contain_text("overriding the rule")
    assert Appointment.objects.get(pk=thursday.pk).start == at(15)
    override = AppointmentEvent.objects.get(appointment=thursday, kind="rule_override")
    assert override.detail.startswith("Split dose, same day by plan (overriding: At most one")
    assert override.by is not None
    assert override.by.username == "desk.dana"
    assert errors == []

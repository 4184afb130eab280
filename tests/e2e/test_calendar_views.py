"""The calendar's timelines in a real browser: a visit found among fifty chairs and moved from the
keyboard (a taken time refused, the visit left where it was), the view kept in the address across
a reload, one resource's week, turnover drawn as turnover, a person's time at another site drawn
as time away, and axe on every view."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import ConsoleMessage, Page, ViewportSize, expect

from booking.access.roles import Role
from booking.models import Appointment, AppointmentStatus, Patient
from booking.services import appointment_book
from scheduling.models import Location, ResourceKind, StaffRole
from tests.e2e.axe import assert_accessible
from tests.e2e.staff_sign_in import submit_sign_in
from tests.staff_helpers import staff_user

pytestmark = pytest.mark.django_db(transaction=True)

NEW_YORK = ZoneInfo("America/New_York")
# The conftest's clock is Tuesday 1 December 2026; the visits are on Wednesday.
WEDNESDAY = "2026-12-02"
DESKTOP: ViewportSize = {"width": 1280, "height": 1000}
CHAIRS = 50
# The chair the visits need, by its place among the fifty: on the fourth page of twelve rows.
NAMED = 40
DASH = "\N{EN DASH}"  # between the first and last row shown


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 2, hour, minute, tzinfo=NEW_YORK)


@pytest.fixture
def fifty_chairs(make_location, make_resource, make_type, make_patient: Callable[..., Patient]):
    """Fifty chairs; a type that needs chair 40 with a quarter hour of turnover after; Ada at
    10:00 and Grace at 13:00 on Wednesday in it, and Lin at 11:00 in chair 03 by another type."""
    location = make_location()
    chairs = [
        make_resource(location, ResourceKind.CHAIR, name=f"Chair {n:02d}")
        for n in range(1, CHAIRS + 1)
    ]
    named = make_type(
        location,
        duration=60,
        needs=[
            {
                "resource_kind": ResourceKind.CHAIR,
                "resource": chairs[NAMED - 1],
                "buffer_after_minutes": 15,
            }
        ],
    )
    other = make_type(
        location,
        duration=60,
        needs=[{"resource_kind": ResourceKind.CHAIR, "resource": chairs[2]}],
    )
    ada = appointment_book(
        appointment_type=named, patient=make_patient(first_name="Ada"), start=at(10)
    )
    grace = appointment_book(
        appointment_type=named, patient=make_patient(first_name="Grace"), start=at(13)
    )
    lin = appointment_book(
        appointment_type=other, patient=make_patient(first_name="Lin"), start=at(11)
    )
    return location, chairs, ada, grace, lin


def open_calendar(page: Page, live_server, location: Location, query: str) -> list[str]:
    """Sign in as the front desk, straight to the calendar with ``query``; the console errors."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chrome also reports each 4xx answer as a console error; the 409 is the point here.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_viewport_size(DESKTOP)
    staff_user(Role.FRONT_DESK, location, username="desk.dana")
    target = (
        f"/staff/calendar/?location={location.slug}&{query}".replace("&", "%26")
        .replace("?", "%3F")
        .replace("=", "%3D")
    )
    page.goto(f"{live_server.url}/staff/login/?next={target}")
    submit_sign_in(page, "desk.dana")
    expect(page.get_by_role("heading", level=1)).to_have_text("Calendar")
    expect(page.locator("#calendar")).to_have_attribute("data-painted", re.compile("."))
    return errors


def painted(page: Page) -> None:
    """Wait for the calendar's next painting after an action that redraws it."""
    expect(page.locator("#calendar")).to_have_attribute("data-painted", re.compile("."))


def test_the_desk_finds_a_visit_among_fifty_chairs_moves_it_by_keyboard_and_sees_a_conflict(
    new_page, snapshot, live_server, fifty_chairs
):
    location, _, ada, grace, _ = fifty_chairs
    page = new_page()
    errors = open_calendar(page, live_server, location, f"by=chair&view=day&date={WEDNESDAY}")
    rows = page.locator("#calendar-rows-shown")
    expect(rows).to_have_text(f"Rows 1{DASH}12 of {CHAIRS}")
    expect(page.locator(".ec-event", has_text="Ada")).to_have_count(0)  # not on this page
    assert_accessible(page, "the day timeline")

    # Chair 40 is on the fourth page.
    for first, last in ((13, 24), (25, 36), (37, 48)):
        page.get_by_role("button", name="Next rows").click()
        expect(rows).to_have_text(f"Rows {first}{DASH}{last} of {CHAIRS}")
    ada_event = page.locator(".ec-event.cs-kind-visit", has_text="Ada")
    expect(ada_event).to_have_count(1)
    expect(ada_event).to_contain_text("10:00am")
    snapshot(page, "found")

    # From the keyboard: focus the visit, Enter opens it, "Move…" asks for a date and a time.
    ada_event.focus()
    page.keyboard.press("Enter")
    panel = page.get_by_role("region", name=re.compile("Ada"))
    expect(panel).to_be_visible()
    expect(panel).to_contain_text(ada.reference)
    assert_accessible(page, "the day timeline with a visit's panel open")
    panel.get_by_role("button", name="Move…").focus()
    page.keyboard.press("Enter")
    expect(panel.get_by_label("New date")).to_be_focused()
    expect(panel.get_by_label("New date")).to_have_value(WEDNESDAY)
    panel.get_by_label("New start time").fill("15:00")
    panel.get_by_label("New start time").press("Enter")
    expect(page.get_by_role("status").first).to_contain_text(f"Moved {ada.reference}")
    assert Appointment.objects.get(pk=ada.pk).start == at(15)
    expect(page.locator(".ec-event.cs-kind-visit", has_text="Ada")).to_contain_text("3:00pm")

    # Onto Grace's time in the same chair: the API's 409 is shown, Ada stays at 15:00.
    page.locator(".ec-event.cs-kind-visit", has_text="Ada").focus()
    page.keyboard.press("Enter")
    panel.get_by_role("button", name="Move…").click()
    panel.get_by_label("New start time").fill("13:00")
    panel.get_by_role("button", name="Move", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(re.compile("not available|taken", re.IGNORECASE))
    expect(page.locator(".ec-event.cs-kind-visit", has_text="Ada")).to_contain_text("3:00pm")
    assert Appointment.objects.get(pk=ada.pk).start == at(15)
    assert Appointment.objects.get(pk=grace.pk).start == at(13)
    snapshot(page, "conflict")
    assert errors == []


def test_the_view_page_and_rows_stay_in_the_address_across_a_reload(
    new_page, live_server, fifty_chairs
):
    location, *_ = fifty_chairs
    page = new_page()
    errors = open_calendar(page, live_server, location, f"by=chair&view=week&date={WEDNESDAY}")
    assert_accessible(page, "the week timeline")
    page.get_by_role("button", name="Day", exact=True).click()
    painted(page)
    page.get_by_role("button", name="Next rows").click()
    expect(page).to_have_url(re.compile(r"view=day"))
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page).to_have_url(re.compile(r"by=chair"))

    page.reload()
    painted(page)
    expect(page.locator("#calendar-rows-shown")).to_have_text(f"Rows 13{DASH}24 of {CHAIRS}")
    expect(page.locator(".ec-resourceTimelineDay")).to_have_class(re.compile("ec-active"))
    expect(page.get_by_role("radio", name="Chairs", exact=True)).to_be_checked()
    expect(page.locator(".ec-toolbar .ec-title")).to_contain_text("December 2")
    assert errors == []


def test_one_resources_week_shows_only_that_resource_and_its_turnover(
    new_page, snapshot, live_server, fifty_chairs
):
    location, chairs, *_ = fifty_chairs
    page = new_page()
    errors = open_calendar(
        page, live_server, location, f"by=chair&view=day&date={WEDNESDAY}&page=4"
    )
    chair = chairs[NAMED - 1]
    page.get_by_role("button", name=f"Week of {chair.name}").click()
    expect(page).to_have_url(re.compile(rf"resource={chair.pk}"))
    painted(page)
    expect(page.locator("#calendar-one-title")).to_have_text(f"Only {chair.name}.")
    toolbar = page.locator(".ec-toolbar")
    expect(toolbar.get_by_role("button", name="Week", exact=True)).to_have_class(
        re.compile("ec-resourceTimeGridWeek")
    )
    expect(toolbar.get_by_role("button", name="Week by column")).to_have_count(0)
    expect(page.locator(".ec-event.cs-kind-visit", has_text="Ada")).to_have_count(1)
    expect(page.locator(".ec-event.cs-kind-visit", has_text="Grace")).to_have_count(1)
    # Lin's visit holds chair 03, not this one.
    expect(page.locator(".ec-event", has_text="Lin")).to_have_count(0)
    assert page.locator(".ec-event.cs-kind-visit").count() == 2

    # Turnover: its own piece after each visit, hatched, labelled, never dragged.
    turnover = page.locator(".ec-event.cs-kind-turnover")
    expect(turnover).to_have_count(2)
    expect(turnover.first).to_have_text("Turnover")
    assert "ec-draggable" not in (turnover.first.get_attribute("class") or "")
    image = turnover.first.evaluate("element => getComputedStyle(element).backgroundImage")
    assert "repeating-linear-gradient" in image
    assert_accessible(page, "one resource's week")
    snapshot(page, "one-resource")

    page.reload()
    painted(page)
    expect(page.locator("#calendar-one-title")).to_have_text(f"Only {chair.name}.")
    page.get_by_role("button", name="Back to every row").click()
    expect(page).not_to_have_url(re.compile("resource="))
    painted(page)
    expect(page.locator("#calendar-rows-shown")).to_have_text(re.compile(f"of {CHAIRS}$"))
    assert errors == []


def test_a_visit_dragged_along_its_row_of_the_day_timeline_moves_the_whole_visit(
    new_page, live_server, fifty_chairs
):
    location, _, ada, _, _ = fifty_chairs
    page = new_page()
    errors = open_calendar(
        page, live_server, location, f"by=chair&view=day&date={WEDNESDAY}&page=4"
    )
    ada_event = page.locator(".ec-event.cs-kind-visit", has_text="Ada")
    grace_event = page.locator(".ec-event.cs-kind-visit", has_text="Grace")
    ada_box, grace_box = ada_event.bounding_box(), grace_event.bounding_box()
    assert ada_box is not None
    assert grace_box is not None
    per_minute = (grace_box["x"] - ada_box["x"]) / 180  # 10:00 to 13:00
    x, y = ada_box["x"] + 10, ada_box["y"] + ada_box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 30 * per_minute, y, steps=8)
    page.mouse.move(x + 60 * per_minute, y, steps=8)
    page.mouse.up()

    expect(page.get_by_role("status").first).to_contain_text(f"Moved {ada.reference}")
    assert Appointment.objects.get(pk=ada.pk).start == at(11)
    expect(page.locator(".ec-event.cs-kind-visit", has_text="Ada")).to_contain_text("11:00am")
    assert errors == []


@pytest.fixture
def nurse_and_chair(make_location, make_resource, make_type, make_patient):
    """A nurse watching up to three chairs and one chair; Ada's visit at 10:00 holds both."""
    location = make_location()
    chair = make_resource(location, ResourceKind.CHAIR, name="Chair Blue")
    nurse = make_resource(
        location, ResourceKind.STAFF, role=StaffRole.NURSE, capacity=3, name="Nurse Noor Haddad"
    )
    both = make_type(
        location,
        duration=60,
        needs=[
            {"resource_kind": ResourceKind.CHAIR, "resource": chair},
            {"resource_kind": ResourceKind.STAFF, "role": StaffRole.NURSE, "resource": nurse},
        ],
    )
    ada = appointment_book(
        appointment_type=both, patient=make_patient(first_name="Ada"), start=at(10)
    )
    return location, chair, nurse, ada


def test_a_visits_panel_lists_its_other_resources_each_opening_that_resources_week(
    new_page, live_server, nurse_and_chair
):
    location, _, nurse, ada = nurse_and_chair
    page = new_page()
    errors = open_calendar(page, live_server, location, f"by=chair&view=day&date={WEDNESDAY}")

    page.locator(".ec-event.cs-kind-visit", has_text="Ada").click()
    panel = page.get_by_role("region", name=re.compile("Ada"))
    expect(panel).to_contain_text(ada.reference)
    others = panel.get_by_role("list")
    expect(others.get_by_role("button")).to_have_count(1)
    others.get_by_role("button", name=f"Week of {nurse.name}").click()

    expect(page).to_have_url(re.compile(rf"resource={nurse.pk}"))
    painted(page)
    expect(page.locator("#calendar-one-title")).to_have_text(f"Only {nurse.name}.")
    expect(page.locator(".ec-event.cs-kind-visit", has_text="Ada")).to_have_count(1)
    # The nurse watches one of three chairs during Ada's visit: said in words.
    watch = page.locator(".ec-event.cs-kind-watch")
    expect(watch.first).to_have_text("1 of 3 chairs watched")
    assert "ec-draggable" not in (watch.first.get_attribute("class") or "")
    assert_accessible(page, "a nurse's week with watched chairs")
    assert errors == []


@pytest.fixture
def travelling_doctor(make_location, make_resource, make_type, make_patient):
    """Dr. Both, of uptown, also works downtown: Ada's and Bo's visits uptown at 09:00 and 11:30,
    and between them Zelda's downtown at 10:00 with ten minutes' turnover."""
    uptown = make_location(slug="uptown")
    downtown = make_location(slug="downtown", public_name="Downtown Health")
    doctor = make_resource(
        uptown, ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name="Dr. Both Ways"
    )
    doctor.sites.add(downtown)
    need = [{"resource_kind": ResourceKind.STAFF, "role": StaffRole.PRESCRIBER}]
    here = make_type(uptown, duration=60, needs=need)
    there = make_type(downtown, duration=60, needs=need)
    appointment_book(appointment_type=here, patient=make_patient(first_name="Ada"), start=at(9))
    appointment_book(appointment_type=here, patient=make_patient(first_name="Bo"), start=at(11, 30))
    zelda = Appointment.objects.create(
        location=downtown,
        appointment_type=there,
        patient=make_patient(first_name="Zelda"),
        start=at(10),
        end=at(11),
        status=AppointmentStatus.BOOKED,
    )
    zelda.allocations.create(resource=doctor, start=at(10), end=at(11) + timedelta(minutes=10))
    return uptown, downtown, zelda


def test_a_persons_visit_at_another_site_is_drawn_as_time_away_never_dragged(
    new_page, live_server, travelling_doctor
):
    uptown, downtown, zelda = travelling_doctor
    page = new_page()
    errors = open_calendar(page, live_server, uptown, f"by=staff&view=day&date={WEDNESDAY}")

    away = page.locator(".ec-event.cs-kind-elsewhere")
    expect(away).to_have_count(1)
    expect(away).to_have_text(f"At {downtown.public_name}")
    assert "ec-draggable" not in (away.get_attribute("class") or "")
    image = away.evaluate("element => getComputedStyle(element).backgroundImage")
    assert "repeating-linear-gradient" in image
    # Nothing of the visit there: not whose, nor its reference.
    text = page.locator("#calendar").inner_text()
    assert "Zelda" not in text
    assert zelda.reference not in text
    expect(page.locator(".ec-event.cs-kind-visit", has_text="Ada")).to_have_count(1)

    # Dragged along the row: nothing moves, nothing is sent.
    box = away.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 80, y, steps=8)
    page.mouse.up()
    assert list(zelda.allocations.values_list("start", "active")) == [(at(10), True)]
    # Opened: it says where and when, and opens no visit.
    away.click()
    expect(page.get_by_role("status").first).to_contain_text(f"At {downtown.public_name}")
    expect(page.get_by_role("region", name=re.compile("Ada|Zelda"))).to_have_count(0)
    assert_accessible(page, "the day timeline with time away")

    # The week timeline folds visits close together into runs; time away is not folded in (the
    # run would count it as a visit here and hide where the person is): it stays itself, and
    # parts the visits around it.
    page.get_by_role("button", name="Week", exact=True).click()
    expect(page.locator("#calendar")).to_have_attribute("data-painted", re.compile("/week/"))
    expect(page.locator(".ec-event.cs-kind-elsewhere")).to_have_text(f"At {downtown.public_name}")
    expect(page.locator(".ec-event.cs-kind-run")).to_have_count(0)
    expect(page.locator(".ec-event.cs-kind-visit")).to_have_count(2)
    assert_accessible(page, "the week timeline with time away")
    assert errors == []

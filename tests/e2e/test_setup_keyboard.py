"""The setup pages with a keyboard only, in a real browser (issue #16: "every page usable on a
laptop and keyboard-only").

The admin signs in as anyone does; from then on only keys are pressed: Tab and Shift+Tab to
move, Enter and Space to follow a link, tick a box or press a button, and typing into the field
that has the focus. Every link, button and field the walk lands on must show where the focus is
(the outline of ``:focus-visible``), or a keyboard user could not tell.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from booking.access.roles import Role
from scheduling.models import Closure, DateOverride, Location, Resource, ResourceKind
from tests.conftest import open_every_day
from tests.e2e.staff_sign_in import submit_sign_in
from tests.staff_helpers import staff_user

pytestmark = pytest.mark.django_db(transaction=True)

VIEWPORT = {"width": 1280, "height": 800}
# More Tab presses than any setup page has stops (a time field takes three: hour, minute,
# AM/PM; a person's page has two weeks of them): a control never reached fails the test.
MAX_STOPS = 400
NO_RING_CHECK = {"date", "time", "datetime-local"}
# What the focused element is, and how it shows its focus.
FOCUSED_JS = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {
    tag: el.tagName.toLowerCase(),
    type: el.getAttribute("type") || "",
    name: el.getAttribute("aria-label") || el.innerText?.trim() || el.name || el.id || "",
    outline: style.outlineStyle,
    outlineWidth: style.outlineWidth,
    shadow: style.boxShadow,
  };
}"""


def focused(page: Page) -> dict[str, Any]:
    return page.evaluate(FOCUSED_JS)


def assert_focus_visible(page: Page) -> None:
    """The focused link, button, box or text field draws a focus ring: an outline or a shadow.

    Date and time fields are left out: Tab moves through their parts (month, day, hour...) and
    Chromium highlights the part being typed; whether the field itself then matches ``:focus``
    (and so draws the page's ring) varies in headless Chromium from one press to the next.
    """
    el = focused(page)
    if el["type"] in NO_RING_CHECK:
        return
    outlined = el["outline"] != "none" and el["outlineWidth"] != "0px"
    assert outlined or el["shadow"] != "none", f"no visible focus on {el}"


def has_focus(target: Locator) -> bool:
    return bool(target.evaluate("el => el === document.activeElement"))


def tab_to(page: Page, target: Locator, *, backwards: bool = False) -> int:
    """Press Tab (or Shift+Tab) until ``target`` has the focus, checking the focus ring of every
    stop on the way; returns the number of presses. A date or time field takes several presses
    (one per part of it), all on the same element."""
    key = "Shift+Tab" if backwards else "Tab"
    for presses in range(1, MAX_STOPS + 1):
        page.keyboard.press(key)
        assert_focus_visible(page)
        if has_focus(target):
            return presses
    raise AssertionError(f"{target} not reached with {key} in {MAX_STOPS} presses")


def setup_nav(page: Page, location: Location) -> Locator:
    return page.get_by_role("navigation", name=f"Setup of {location.name}")


@pytest.fixture
def location(db: None) -> Location:
    return Location.objects.create(
        slug="brookline", name="Brookline", public_name="Brookline", timezone="America/New_York"
    )


@pytest.fixture
def admin_page(new_page, live_server, location: Location) -> Page:
    """A laptop-sized window, signed in as an admin of ``location`` (password and code)."""
    staff_user(Role.ADMIN, location, username="avery")
    page = new_page()
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{live_server.url}/staff/login/?next=/staff/setup/")
    submit_sign_in(page, "avery")
    expect(page.get_by_role("heading", level=1)).to_have_text("Setup")
    return page


def start_at_skip_link(page: Page) -> None:
    """On a freshly loaded page: the first Tab stop is "Skip to content", shown when focused,
    and Enter moves the focus to the main content."""
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()  # off-screen until focused
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()


def test_the_skip_link_then_closures_by_keyboard(admin_page: Page, live_server, location):
    page = admin_page
    page.goto(f"{live_server.url}/staff/setup/{location.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(location.name)
    start_at_skip_link(page)

    # From the main content into the setup navigation: Closures, and Enter follows the link.
    tab_to(page, setup_nav(page, location).get_by_role("link", name="Closures"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Closures")
    expect(page.get_by_text("No closures to come.")).to_be_visible()

    # The form: datetime-local fields, typed part by part (en-US: month, day, year, hour,
    # minute, AM/PM; each part moves on to the next when full).
    form = page.get_by_role("region", name="Add a closure")
    starts = form.get_by_label("Starts", exact=True)
    ends = form.get_by_label("Ends", exact=True)
    assert starts.get_attribute("type") == ends.get_attribute("type") == "datetime-local"
    tab_to(page, starts)
    page.keyboard.type("12242026")
    page.keyboard.press("Tab")
    page.keyboard.type("0100PM")
    expect(starts).to_have_value("2026-12-24T13:00")
    tab_to(page, ends)
    page.keyboard.type("12242026")
    page.keyboard.press("Tab")
    page.keyboard.type("0600PM")
    expect(ends).to_have_value("2026-12-24T18:00")
    tab_to(page, form.get_by_label("Reason"))
    page.keyboard.type("Staff training")
    tab_to(page, form.get_by_role("button", name="Add the closure"))
    page.keyboard.press("Enter")

    expect(page.get_by_role("status")).to_contain_text("Closure saved.")
    row = page.get_by_role("region", name="Closures to come").get_by_role("row")
    expect(row.filter(has_text="Staff training")).to_contain_text("24 December 2026 at 1:00 PM")
    (closure,) = Closure.objects.filter(location=location)
    assert (closure.start, closure.end, closure.reason) == (
        datetime(2026, 12, 24, 18, 0, tzinfo=UTC),
        datetime(2026, 12, 24, 23, 0, tzinfo=UTC),
        "Staff training",
    )


def test_a_day_off_by_keyboard(admin_page: Page, live_server, location):
    nurse = Resource.objects.create(
        location=location, kind=ResourceKind.STAFF, role="nurse", name="Sam Okafor"
    )
    open_every_day(nurse, time(8), time(16))
    page = admin_page
    page.goto(f"{live_server.url}/staff/setup/{location.pk}/people/{nurse.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sam Okafor")
    start_at_skip_link(page)

    day = page.get_by_role("region", name="Date overrides")
    expect(day).to_contain_text("No date overrides to come.")
    # Past the details, the weekly hours and the planned change: the override's date field.
    when = day.get_by_label("Date", exact=True)
    assert when.get_attribute("type") == "date"
    tab_to(page, when)
    page.keyboard.type("12082026")  # Tuesday 8 December 2026, a week from the pinned clock
    expect(when).to_have_value("2026-12-08")
    off = day.get_by_label("Not working that day")
    tab_to(page, off)
    page.keyboard.press("Space")
    expect(off).to_be_checked()
    tab_to(page, day.get_by_label("Reason"))
    page.keyboard.type("Training course")
    # One step back and forth: Shift+Tab leaves the field, Tab returns to it.
    tab_to(page, off, backwards=True)
    tab_to(page, day.get_by_role("button", name="Save the day"))
    page.keyboard.press("Space")

    expect(page.get_by_role("status")).to_contain_text("Sam Okafor: hours on 2026-12-08 saved.")
    row = page.get_by_role("region", name="Date overrides").get_by_role("row")
    expect(row.filter(has_text="Tue 8 Dec 2026")).to_contain_text("Not working")
    expect(row.filter(has_text="Tue 8 Dec 2026")).to_contain_text("Training course")
    (override,) = DateOverride.objects.filter(resource=nurse)
    assert (override.location_id, override.date, override.start, override.end) == (
        location.pk,
        date(2026, 12, 8),
        None,
        None,
    )
    assert override.reason == "Training course"

"""Working hours as a clinic keeps them: per location, changing from a date, and date overrides.

A person's weekly shifts belong to one location each (a prescriber working two sites has hours
at both); a shift applies from ``valid_from`` until the day before ``valid_until``; a date
override replaces that day's weekly shifts at its location (extra hours on a day off, a shorter
day, or, without times, a day off). Overrides are wall-clock times like shifts, so on a day
the clocks change they become the right UTC instants.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine

from booking.selectors import available_slots
from scheduling.availability import from_minutes
from scheduling.models import (
    AppointmentType,
    DateOverride,
    Location,
    Resource,
    ResourceKind,
    StaffRole,
    WorkingHours,
)
from scheduling.selectors import schedule_load
from tests.conftest import CHAIR_ONLY

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
EVERY_DAY = range(7)
PRESCRIBER = ({"resource_kind": ResourceKind.STAFF, "role": StaffRole.PRESCRIBER},)

pytestmark = pytest.mark.usefixtures("frozen")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def shift(
    resource: Resource,
    location: Location,
    start: str,
    end: str,
    *,
    weekdays: range | list[int] = EVERY_DAY,
    valid_from: date | None = None,
    valid_until: date | None = None,
) -> None:
    WorkingHours.objects.bulk_create(
        WorkingHours(
            resource=resource,
            location=location,
            weekday=weekday,
            start=time.fromisoformat(start),
            end=time.fromisoformat(end),
            valid_from=valid_from,
            valid_until=valid_until,
        )
        for weekday in weekdays
    )


def override(
    resource: Resource, location: Location, day: date, start: str = "", end: str = ""
) -> None:
    DateOverride.objects.create(
        resource=resource,
        location=location,
        date=day,
        start=time.fromisoformat(start) if start else None,
        end=time.fromisoformat(end) if end else None,
    )


def slots_by_day(
    appointment_type: AppointmentType, first: date, last: date
) -> dict[date, list[str]]:
    """The local start labels of each local date's slots, from one availability read."""
    zone = appointment_type.location.zone
    days: dict[date, list[str]] = defaultdict(list)
    for start, _ in available_slots(
        appointment_type=appointment_type, first_day=first, last_day=last, now=NOW
    ):
        local = start.astimezone(zone)
        days[local.date()].append(f"{local:%H:%M}")
    return dict(days)


def hourly(first: int, last: int) -> list[str]:
    return [f"{hour:02d}:00" for hour in range(first, last + 1)]


@pytest.fixture
def chair_site(make_location, make_resource, make_type):
    """An hour's visit on the one chair of a New York location, on the hour; the chair has no
    hours yet."""
    location = make_location(timezone="America/New_York")
    chair = make_resource(location, ResourceKind.CHAIR, hours=())
    visit = make_type(location, duration=60, grid_minutes=60, needs=CHAIR_ONLY)
    return location, chair, visit


# --- Per location ---------------------------------------------------------------------------


def test_a_person_at_two_sites_works_each_sites_own_hours(make_location, make_resource, make_type):
    home, other = make_location(), make_location()
    doctor = make_resource(home, ResourceKind.STAFF, role=StaffRole.PRESCRIBER, hours=())
    doctor.sites.add(other)
    shift(doctor, home, "08:00", "12:00")
    shift(doctor, other, "14:00", "17:00")
    at_home = make_type(home, duration=60, grid_minutes=60, needs=PRESCRIBER)
    at_other = make_type(other, duration=60, grid_minutes=60, needs=PRESCRIBER)
    monday = date(2026, 6, 8)

    assert slots_by_day(at_home, monday, monday) == {monday: hourly(8, 11)}
    assert slots_by_day(at_other, monday, monday) == {monday: hourly(14, 16)}


def test_hours_at_a_site_the_person_does_not_serve_offer_nothing_there(
    make_location, make_resource, make_type
):
    home, other = make_location(), make_location()
    doctor = make_resource(home, ResourceKind.STAFF, role=StaffRole.PRESCRIBER, hours=())
    shift(doctor, other, "08:00", "12:00")  # not among doctor.sites
    at_home = make_type(home, duration=60, grid_minutes=60, needs=PRESCRIBER)
    at_other = make_type(other, duration=60, grid_minutes=60, needs=PRESCRIBER)
    monday = date(2026, 6, 8)

    assert slots_by_day(at_home, monday, monday) == {}
    assert slots_by_day(at_other, monday, monday) == {}


# --- Hours that change from a date ----------------------------------------------------------


def test_new_hours_take_over_from_their_first_day(chair_site):
    location, chair, visit = chair_site
    change = date(2026, 6, 15)
    shift(chair, location, "08:00", "12:00", valid_until=change)
    shift(chair, location, "13:00", "17:00", valid_from=change)

    days = slots_by_day(visit, date(2026, 6, 13), date(2026, 6, 16))

    assert days == {
        date(2026, 6, 13): hourly(8, 11),
        date(2026, 6, 14): hourly(8, 11),
        date(2026, 6, 15): hourly(13, 16),
        date(2026, 6, 16): hourly(13, 16),
    }


def test_a_shift_valid_for_a_few_days_applies_only_then(chair_site):
    location, chair, visit = chair_site
    shift(chair, location, "08:00", "10:00")
    # Longer hours on 10 and 11 June only (until is the first day it no longer applies).
    shift(
        chair,
        location,
        "15:00",
        "17:00",
        valid_from=date(2026, 6, 10),
        valid_until=date(2026, 6, 12),
    )

    days = slots_by_day(visit, date(2026, 6, 9), date(2026, 6, 12))

    assert days == {
        date(2026, 6, 9): hourly(8, 9),
        date(2026, 6, 10): hourly(8, 9) + hourly(15, 16),
        date(2026, 6, 11): hourly(8, 9) + hourly(15, 16),
        date(2026, 6, 12): hourly(8, 9),
    }


# --- Date overrides -------------------------------------------------------------------------


def test_an_override_opens_a_day_without_weekly_hours(chair_site):
    location, chair, visit = chair_site
    shift(chair, location, "08:00", "18:00", weekdays=range(5))  # Monday to Friday
    override(chair, location, date(2026, 6, 14), "10:00", "12:00")  # a Sunday

    days = slots_by_day(visit, date(2026, 6, 13), date(2026, 6, 21))

    assert days[date(2026, 6, 14)] == hourly(10, 11)
    assert date(2026, 6, 13) not in days
    assert date(2026, 6, 20) not in days
    assert date(2026, 6, 21) not in days
    assert days[date(2026, 6, 15)] == hourly(8, 17)


def test_override_rows_of_a_day_replace_its_weekly_hours(chair_site):
    location, chair, visit = chair_site
    shift(chair, location, "08:00", "18:00")
    override(chair, location, date(2026, 6, 9), "09:00", "11:00")
    override(chair, location, date(2026, 6, 9), "14:00", "15:00")

    days = slots_by_day(visit, date(2026, 6, 8), date(2026, 6, 10))

    assert days == {
        date(2026, 6, 8): hourly(8, 17),
        date(2026, 6, 9): ["09:00", "10:00", "14:00"],
        date(2026, 6, 10): hourly(8, 17),
    }


def test_an_override_without_times_is_a_day_off_at_that_site_only(
    make_location, make_resource, make_type
):
    home, other = make_location(), make_location()
    doctor = make_resource(home, ResourceKind.STAFF, role=StaffRole.PRESCRIBER, hours=())
    doctor.sites.add(other)
    shift(doctor, home, "08:00", "12:00")
    shift(doctor, other, "14:00", "17:00")
    off = date(2026, 6, 10)
    override(doctor, other, off)
    at_home = make_type(home, duration=60, grid_minutes=60, needs=PRESCRIBER)
    at_other = make_type(other, duration=60, grid_minutes=60, needs=PRESCRIBER)

    other_days = slots_by_day(at_other, date(2026, 6, 9), date(2026, 6, 11))
    home_days = slots_by_day(at_home, off, off)

    assert other_days == {date(2026, 6, 9): hourly(14, 16), date(2026, 6, 11): hourly(14, 16)}
    assert home_days == {off: hourly(8, 11)}


def test_an_override_replaces_only_its_own_days_shifts_even_across_a_validity_change(chair_site):
    location, chair, visit = chair_site
    change = date(2026, 6, 15)
    shift(chair, location, "08:00", "12:00", valid_until=change)
    shift(chair, location, "13:00", "17:00", valid_from=change)
    override(chair, location, change, "07:00", "09:00")

    days = slots_by_day(visit, date(2026, 6, 14), date(2026, 6, 16))

    assert days == {
        date(2026, 6, 14): hourly(8, 11),
        date(2026, 6, 15): hourly(7, 8),
        date(2026, 6, 16): hourly(13, 16),
    }


# --- Overrides on the days clocks change --------------------------------------------------------


def working_on(visit: AppointmentType, resource: Resource, day: date) -> list[tuple[str, str]]:
    """The resource's working time loaded for ``day`` (and the days either side), in UTC."""
    problem = schedule_load(appointment_type=visit, days=[day], now=NOW, enforce_notice=False)
    return [
        (f"{from_minutes(s):%Y-%m-%d %H:%M}", f"{from_minutes(e):%Y-%m-%d %H:%M}")
        for s, e in sorted(problem.calendars[resource.pk].working)
    ]


def test_an_override_on_the_spring_forward_day_is_converted_on_that_day(chair_site):
    location, chair, visit = chair_site
    day = date(2026, 3, 8)  # 02:00 EST becomes 03:00 EDT
    override(chair, location, day, "01:00", "05:00")

    assert working_on(visit, chair, day) == [("2026-03-08 06:00", "2026-03-08 09:00")]
    slots = available_slots(
        appointment_type=visit, first_day=day, last_day=day, now=datetime(2026, 3, 1, tzinfo=UTC)
    )
    # Three real hours; 02:00 does not exist that night.
    assert [f"{s.astimezone(NEW_YORK):%H:%M %Z}" for s, _ in slots] == [
        "01:00 EST",
        "03:00 EDT",
        "04:00 EDT",
    ]


def test_an_override_on_the_fall_back_day_starts_at_the_first_of_the_repeated_hour(chair_site):
    location, chair, visit = chair_site
    day = date(2026, 11, 1)  # 02:00 EDT becomes 01:00 EST
    shift(chair, location, "08:00", "18:00")  # replaced on that day
    override(chair, location, day, "01:00", "03:00")

    working = working_on(visit, chair, day)

    # 01:00 EDT (05:00 UTC) to 03:00 EST (08:00 UTC): three real hours; the weekly shifts of
    # the days either side stay, shifted by their own offsets.
    assert working == [
        ("2026-10-31 12:00", "2026-10-31 22:00"),
        ("2026-11-01 05:00", "2026-11-01 08:00"),
        ("2026-11-02 13:00", "2026-11-02 23:00"),
    ]

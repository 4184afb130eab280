"""Slots and bookings on the days clocks change, in real zones, through the database.

The rule (``scheduling.availability``): slots are the local wall-clock grid from local midnight;
a local time that does not exist is never offered; a local time that happens twice is offered
once, at its first occurrence. Visits last real minutes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from booking.errors import PolicyViolation
from booking.models import Allocation
from booking.selectors import available_slots
from booking.services import appointment_book, appointment_cancel
from scheduling.models import AppointmentType, ResourceKind
from tests.conftest import CHAIR_ONLY

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
OPEN, CLOSE = time(0), time(6)
NINETY = timedelta(minutes=90)


@pytest.fixture
def night_chair(make_location, make_resource, make_type):
    """A 90-minute chair visit at a location open 00:00-06:00 local time, across the change."""

    def make(zone: str, *, grid: int = 15) -> AppointmentType:
        location = make_location(timezone=zone)
        make_resource(location, ResourceKind.CHAIR, hours=[(OPEN, CLOSE)])
        return make_type(location, duration=90, grid_minutes=grid, needs=CHAIR_ONLY)

    return make


def slots_on(appointment_type: AppointmentType, day: date, now: datetime):
    return available_slots(appointment_type=appointment_type, first_day=day, last_day=day, now=now)


def labels(slots, zone: ZoneInfo) -> list[str]:
    return [start.astimezone(zone).strftime("%H:%M") for start, _ in slots]


def quarter_hours(first: str, last: str) -> list[str]:
    start = datetime.strptime(first, "%H:%M")  # noqa: DTZ007 - wall-clock labels, no instant
    end = datetime.strptime(last, "%H:%M")  # noqa: DTZ007
    out = []
    while start <= end:
        out.append(start.strftime("%H:%M"))
        start += timedelta(minutes=15)
    return out


def assert_inside_local_hours(slots, zone: ZoneInfo, day: date) -> None:
    for start, end in slots:
        local_start, local_end = start.astimezone(zone), end.astimezone(zone)
        assert local_start.date() == local_end.date() == day
        assert local_start.time() >= OPEN
        assert local_end.time() <= CLOSE
        assert end - start == NINETY
        # On the grid of local midnight.
        assert local_start.minute % 15 == 0
        assert local_start.second == 0


MARCH = datetime(2026, 3, 1, 12, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 25, 12, tzinfo=UTC)


@time_machine.travel(MARCH, tick=False)
def test_new_york_spring_forward_never_offers_the_missing_hour(night_chair):
    visit = night_chair("America/New_York")

    slots = slots_on(visit, date(2026, 3, 8), MARCH)

    # 02:00-02:59 does not exist; the clinic is open five real hours, 00:00 EST to 06:00 EDT.
    assert labels(slots, NEW_YORK) == quarter_hours("00:00", "01:45") + quarter_hours(
        "03:00", "04:30"
    )
    assert_inside_local_hours(slots, NEW_YORK, date(2026, 3, 8))


@time_machine.travel(OCTOBER, tick=False)
def test_new_york_fall_back_offers_the_repeated_hour_once_at_its_first_occurrence(night_chair):
    visit = night_chair("America/New_York")

    slots = slots_on(visit, date(2026, 11, 1), OCTOBER)

    assert labels(slots, NEW_YORK) == quarter_hours("00:00", "04:30")
    starts = {start for start, _ in slots}
    # Compared in UTC: Python never calls an ambiguous local time equal to another zone's.
    first_one_am = datetime(2026, 11, 1, 1, tzinfo=NEW_YORK).astimezone(UTC)  # 01:00 EDT
    assert first_one_am == datetime(2026, 11, 1, 5, tzinfo=UTC)
    assert first_one_am in starts
    # The hour from 01:00 EST (06:00 UTC) repeats labels already offered.
    repeated = datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert not [s for s in starts if repeated <= s < repeated + timedelta(hours=1)]
    assert_inside_local_hours(slots, NEW_YORK, date(2026, 11, 1))


@time_machine.travel(MARCH, tick=False)
def test_berlin_spring_forward_never_offers_the_missing_hour(night_chair):
    visit = night_chair("Europe/Berlin")

    slots = slots_on(visit, date(2026, 3, 29), MARCH)

    assert labels(slots, BERLIN) == quarter_hours("00:00", "01:45") + quarter_hours(
        "03:00", "04:30"
    )
    assert_inside_local_hours(slots, BERLIN, date(2026, 3, 29))


@time_machine.travel(MARCH, tick=False)
def test_the_days_around_a_change_keep_their_own_offsets(night_chair):
    visit = night_chair("America/New_York")

    slots = available_slots(
        appointment_type=visit,
        first_day=date(2026, 3, 7),
        last_day=date(2026, 3, 9),
        now=MARCH,
    )

    by_day: dict[date, list[str]] = {}
    for start, _ in slots:
        by_day.setdefault(start.astimezone(NEW_YORK).date(), []).append(
            start.astimezone(NEW_YORK).strftime("%H:%M")
        )
    assert by_day[date(2026, 3, 7)] == quarter_hours("00:00", "04:30")
    assert by_day[date(2026, 3, 9)] == quarter_hours("00:00", "04:30")
    assert slots[0][0] == datetime(2026, 3, 7, 5, tzinfo=UTC)
    assert slots[-1][0] == datetime(2026, 3, 9, 8, 30, tzinfo=UTC)


@time_machine.travel(MARCH, tick=False)
def test_a_visit_across_spring_forward_lasts_ninety_real_minutes(night_chair, make_patient):
    visit = night_chair("America/New_York")
    start = datetime(2026, 3, 8, 1, 45, tzinfo=NEW_YORK)

    appointment = appointment_book(
        appointment_type=visit, patient=make_patient(), start=start, now=MARCH
    )

    allocation = Allocation.objects.get(appointment=appointment)
    assert allocation.end - allocation.start == NINETY
    assert allocation.end.astimezone(NEW_YORK).strftime("%H:%M %Z") == "04:15 EDT"


@time_machine.travel(OCTOBER, tick=False)
def test_a_visit_across_fall_back_lasts_ninety_real_minutes(night_chair, make_patient):
    visit = night_chair("America/New_York")
    start = datetime(2026, 11, 1, 0, 45, tzinfo=NEW_YORK)

    appointment = appointment_book(
        appointment_type=visit, patient=make_patient(), start=start, now=OCTOBER
    )

    allocation = Allocation.objects.get(appointment=appointment)
    assert allocation.end - allocation.start == NINETY
    assert allocation.end.astimezone(NEW_YORK).strftime("%H:%M %Z") == "01:15 EST"


@time_machine.travel(OCTOBER, tick=False)
def test_it_refuses_a_booking_at_the_second_occurrence_of_a_repeated_time(
    night_chair, make_patient
):
    visit = night_chair("America/New_York")
    second = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK)
    assert second.utcoffset() == timedelta(hours=-5)

    with pytest.raises(PolicyViolation) as refused:
        appointment_book(appointment_type=visit, patient=make_patient(), start=second, now=OCTOBER)

    assert refused.value.field == "start"


@pytest.mark.parametrize(
    ("zone", "day", "now"),
    [
        ("America/New_York", date(2026, 3, 8), MARCH),
        ("America/New_York", date(2026, 11, 1), OCTOBER),
        ("Europe/Berlin", date(2026, 3, 29), MARCH),
    ],
)
def test_every_slot_offered_on_a_change_day_can_be_booked(
    night_chair, make_patient, zone, day, now
):
    visit = night_chair(zone)
    patient = make_patient()

    with time_machine.travel(now, tick=False):
        slots = slots_on(visit, day, now)
        assert slots
        for start, end in slots:
            appointment = appointment_book(
                appointment_type=visit, patient=patient, start=start, now=now
            )
            assert (appointment.start, appointment.end) == (start, end)
            appointment_cancel(appointment=appointment, now=now)


@time_machine.travel(datetime(2026, 6, 1, tzinfo=UTC), tick=False)
def test_an_hourly_grid_follows_local_midnight_not_utc(night_chair, make_patient):
    visit = night_chair("Asia/Kolkata", grid=60)
    kolkata = ZoneInfo("Asia/Kolkata")
    now = datetime(2026, 6, 1, tzinfo=UTC)

    slots = slots_on(visit, date(2026, 6, 3), now)

    assert labels(slots, kolkata) == ["00:00", "01:00", "02:00", "03:00", "04:00"]
    assert {start.minute for start, _ in slots} == {30}  # UTC+05:30
    # A start on the hour in UTC is half past in Kolkata: off the clinic's grid.
    with pytest.raises(PolicyViolation):
        appointment_book(
            appointment_type=visit,
            patient=make_patient(),
            start=datetime(2026, 6, 2, 20, tzinfo=UTC),
            now=now,
        )

"""What a setup change does to visits already booked (booking.impact): which visits it leaves
without a resource they hold, refused unless confirmed, flagged once when confirmed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from booking.impact import ChangeOrphansVisits, orphaned_visits, setup_change
from booking.models import Allocation, Appointment
from booking.services import appointment_book, appointment_cancel
from scheduling.models import (
    AppointmentType,
    Closure,
    DateOverride,
    Location,
    Resource,
    ResourceKind,
    TimeOff,
    WorkingHours,
)

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)  # Wednesday 9 December 2026, 09:00 in New York
DAY = date(2026, 12, 15)  # the next Tuesday


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK).astimezone(UTC)


@pytest.fixture
def visit(consultation: AppointmentType, make_patient) -> Appointment:
    """A consultation on Tuesday 10:00-11:00: a prescriber and the consult room."""
    return appointment_book(appointment_type=consultation, patient=make_patient(), start=at(10))


def held(visit: Appointment, kind: str) -> Resource:
    return Resource.objects.get(allocations__appointment=visit, allocations__active=True, kind=kind)


def test_nothing_is_orphaned_while_the_setup_allows_every_visit(
    clinic: Location, visit: Appointment
) -> None:
    assert orphaned_visits(location_ids={clinic.pk}, now=NOW) == []


def test_time_off_of_a_resource_a_visit_holds_orphans_it(
    clinic: Location, visit: Appointment
) -> None:
    doctor = held(visit, ResourceKind.STAFF)
    TimeOff.objects.create(resource=doctor, start=at(9), end=at(10, 30))

    assert orphaned_visits(resource_ids={doctor.pk}, now=NOW) == [visit]
    assert orphaned_visits(location_ids={clinic.pk}, now=NOW) == [visit]


def test_time_off_of_another_person_or_on_another_day_orphans_nothing(
    clinic: Location, visit: Appointment
) -> None:
    doctor = held(visit, ResourceKind.STAFF)
    other = Resource.objects.filter(location=clinic, role=doctor.role).exclude(pk=doctor.pk).get()
    TimeOff.objects.create(resource=other, start=at(9), end=at(12))
    tomorrow = DAY + timedelta(days=1)
    TimeOff.objects.create(resource=doctor, start=at(9, day=tomorrow), end=at(12, day=tomorrow))

    assert orphaned_visits(location_ids={clinic.pk}, now=NOW) == []


def test_a_closure_orphans_the_visits_it_covers(
    clinic: Location, visit: Appointment, consultation: AppointmentType, make_patient
) -> None:
    later = appointment_book(
        appointment_type=consultation, patient=make_patient(), start=at(10, day=DAY + timedelta(1))
    )
    Closure.objects.create(location=clinic, start=at(0), end=at(0, day=DAY + timedelta(days=1)))

    assert orphaned_visits(location_ids={clinic.pk}, now=NOW) == [visit]
    assert later not in orphaned_visits(location_ids={clinic.pk}, now=NOW)


def test_reduced_weekly_hours_orphan_the_visits_outside_them(
    clinic: Location, visit: Appointment
) -> None:
    room = held(visit, ResourceKind.ROOM)
    WorkingHours.objects.filter(resource=room, weekday=DAY.weekday()).update(start=time(10, 30))

    assert orphaned_visits(resource_ids={room.pk}, now=NOW) == [visit]


def test_a_date_override_without_hours_orphans_that_days_visits(
    clinic: Location, visit: Appointment
) -> None:
    room = held(visit, ResourceKind.ROOM)
    DateOverride.objects.create(resource=room, location=clinic, date=DAY)

    assert orphaned_visits(resource_ids={room.pk}, now=NOW) == [visit]


def test_a_date_override_with_hours_keeping_the_visit_orphans_nothing(
    clinic: Location, visit: Appointment
) -> None:
    room = held(visit, ResourceKind.ROOM)
    DateOverride.objects.create(
        resource=room, location=clinic, date=DAY, start=time(9), end=time(12)
    )

    assert orphaned_visits(resource_ids={room.pk}, now=NOW) == []


def test_a_cancelled_visit_is_not_counted(clinic: Location, visit: Appointment) -> None:
    appointment_cancel(appointment=visit)
    Closure.objects.create(location=clinic, start=at(0), end=at(23))

    assert orphaned_visits(location_ids={clinic.pk}, now=NOW) == []


def test_an_unconfirmed_change_that_orphans_a_visit_is_refused_and_rolled_back(
    clinic: Location, visit: Appointment
) -> None:
    doctor = held(visit, ResourceKind.STAFF)

    def apply() -> TimeOff:
        return TimeOff.objects.create(resource=doctor, start=at(9), end=at(12), reason="ill")

    with pytest.raises(ChangeOrphansVisits) as refused:
        setup_change(
            apply, location_ids={clinic.pk}, resource_ids={doctor.pk}, confirm=False, reason="x"
        )

    assert refused.value.visits == [visit]
    assert refused.value.status == 409
    assert not TimeOff.objects.exists()
    visit.refresh_from_db()
    assert visit.needs_new_time_since is None


def test_a_confirmed_change_is_saved_and_flags_the_visit_once(
    clinic: Location, visit: Appointment
) -> None:
    doctor = held(visit, ResourceKind.STAFF)
    time_off, flagged = setup_change(
        lambda: TimeOff.objects.create(resource=doctor, start=at(9), end=at(12)),
        location_ids={clinic.pk},
        resource_ids={doctor.pk},
        confirm=True,
        reason="Dr. off",
        now=NOW,
    )
    assert TimeOff.objects.filter(pk=time_off.pk).exists()
    assert flagged == [visit]
    visit.refresh_from_db()
    assert visit.needs_new_time_since == NOW
    assert visit.needs_new_time_reason == "Dr. off"

    # A second change over the same visit: it is already on the list, not counted again.
    later = NOW + timedelta(hours=1)
    _, again = setup_change(
        lambda: Closure.objects.create(location=clinic, start=at(0), end=at(23)),
        location_ids={clinic.pk},
        confirm=False,
        reason="Closed",
        now=later,
    )
    assert again == []
    visit.refresh_from_db()
    assert (visit.needs_new_time_since, visit.needs_new_time_reason) == (NOW, "Dr. off")


def test_a_change_that_orphans_nothing_needs_no_confirmation(
    clinic: Location, visit: Appointment
) -> None:
    doctor = held(visit, ResourceKind.STAFF)
    _, flagged = setup_change(
        lambda: TimeOff.objects.create(resource=doctor, start=at(12), end=at(14)),
        location_ids={clinic.pk},
        resource_ids={doctor.pk},
        confirm=False,
        reason="lunch",
    )
    assert flagged == []
    assert TimeOff.objects.count() == 1


def test_lowering_a_capacity_orphans_the_visits_on_the_lanes_it_takes_away(
    clinic: Location, infusion: AppointmentType, make_approved_patient
) -> None:
    """The nurse watches three chairs: three infusions at once take lanes 0, 1 and 2. Watching
    two, the visit on lane 2 has no nurse; the other two keep theirs."""
    first, second = (
        appointment_book(appointment_type=infusion, patient=make_approved_patient(), start=at(h))
        for h in (9, 10)
    )
    nurse = Resource.objects.get(location=clinic, role="nurse")
    lanes = dict(
        Allocation.objects.filter(resource=nurse, appointment__in=[first, second]).values_list(
            "appointment_id", "lane"
        )
    )
    assert sorted(lanes.values()) == [0, 1]

    Resource.objects.filter(pk=nurse.pk).update(capacity=1)

    assert orphaned_visits(resource_ids={nurse.pk}, now=NOW) == [
        visit for visit in (first, second) if lanes[visit.pk] == 1
    ]

"""A realistic demo clinic: two locations in different zones, their staff, rooms and chairs."""

from __future__ import annotations

from datetime import date, time, timedelta

from django.db import transaction

from scheduling.models import Location, Resource, ResourceKind, StaffRole, WorkingHours

WEEKDAYS = range(0, 5)

DEMO_LOCATIONS = (
    {
        "slug": "riverside",
        "name": "Riverside Ketamine Clinic (NYC)",
        "public_name": "Riverside Health",
        "timezone": "America/New_York",
        "phone": "+12125550100",
        "address": "100 Hudson St, New York, NY",
    },
    {
        "slug": "foothills",
        "name": "Foothills Infusion Center (Denver)",
        "public_name": "Foothills Health",
        "timezone": "America/Denver",
        "phone": "+13035550100",
        "address": "200 Larimer St, Denver, CO",
    },
)


def _hours(resource: Resource, shifts: list[tuple[time, time]], days: range = WEEKDAYS) -> None:
    WorkingHours.objects.bulk_create(
        WorkingHours(
            resource=resource, location=resource.location, weekday=day, start=start, end=end
        )
        for day in days
        for start, end in shifts
    )


@transaction.atomic
def demo_resources_create(location: Location) -> None:
    """The demo's people, rooms and chairs at a new demo ``location``, with their weekly hours.
    The location itself, with its defaults, comes from ``booking.clinic.clinic_create`` (called
    by ``seed_demo``), as a real clinic's does; see :data:`DEMO_LOCATIONS`."""
    # Prescribers work a split shift around lunch; nurses watch three chairs each.
    for name in ("Dr. Amara Osei", "Dr. Lena Park"):
        prescriber = Resource.objects.create(
            location=location, kind=ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name=name
        )
        _hours(prescriber, [(time(8, 0), time(12, 0)), (time(13, 0), time(17, 30))])
    for name in ("Nurse Sam Rivera", "Nurse Jo Chen"):
        nurse = Resource.objects.create(
            location=location,
            kind=ResourceKind.STAFF,
            role=StaffRole.NURSE,
            name=name,
            capacity=3,
        )
        _hours(nurse, [(time(7, 30), time(18, 0))])
    for number in (1, 2):
        room = Resource.objects.create(
            location=location, kind=ResourceKind.ROOM, name=f"Consult room {number}"
        )
        _hours(room, [(time(8, 0), time(18, 0))])
    for number in range(1, 7):
        chair = Resource.objects.create(
            location=location, kind=ResourceKind.CHAIR, name=f"Chair {number}"
        )
        _hours(chair, [(time(7, 30), time(18, 0))])
        _hours(chair, [(time(9, 0), time(14, 0))], days=range(5, 6))


def demo_weekdays(today: date) -> list[date]:
    """The demo's three weeks around ``today`` (a clinic's local date): Monday of last week to
    Friday of next week, weekdays only, as the demo's staff work."""
    monday = today - timedelta(days=today.weekday() + 7)
    days = (monday + timedelta(days=n) for n in range(19))
    return [day for day in days if day.weekday() in WEEKDAYS]


def demo_board_day(today: date) -> date:
    """The day whose board shows a visit at every step: today, or the Friday before on a
    weekend, when the demo clinic is closed."""
    return today - timedelta(days=max(0, today.weekday() - 4))

"""Shared fixtures: a small clinic with known resources, and patients on demand."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, time

import pytest
from django.db import connection

from booking.models import Patient
from scheduling.defaults import appointment_types_install_defaults
from scheduling.models import (
    AppointmentType,
    Location,
    Resource,
    ResourceKind,
    StaffRole,
    WorkingHours,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL: set DATABASE_URL=postgres://... (CI always does)"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def open_every_day(resource: Resource, start: time = time(8), end: time = time(18)) -> None:
    WorkingHours.objects.bulk_create(
        WorkingHours(resource=resource, weekday=day, start=start, end=end) for day in range(7)
    )


@pytest.fixture
def location(db: None) -> Location:
    return Location.objects.create(
        slug="midtown",
        name="Midtown Ketamine Clinic",
        public_name="Midtown Health",
        timezone="America/New_York",
        phone="+12125550100",
    )


@pytest.fixture
def clinic(location: Location) -> Location:
    """Open 08:00-18:00 every day: two prescribers, one nurse watching three chairs, two
    chairs and a consult room, with the default appointment types."""
    appointment_types_install_defaults(location=location)
    for name in ("Dr. One", "Dr. Two"):
        open_every_day(
            Resource.objects.create(
                location=location, kind=ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name=name
            )
        )
    open_every_day(
        Resource.objects.create(
            location=location,
            kind=ResourceKind.STAFF,
            role=StaffRole.NURSE,
            name="Nurse",
            capacity=3,
        )
    )
    for name in ("Chair 1", "Chair 2"):
        open_every_day(
            Resource.objects.create(location=location, kind=ResourceKind.CHAIR, name=name)
        )
    open_every_day(
        Resource.objects.create(location=location, kind=ResourceKind.ROOM, name="Room 1")
    )
    return location


@pytest.fixture
def consultation(clinic: Location) -> AppointmentType:
    return AppointmentType.objects.select_related("location").get(
        location=clinic, slug="consultation"
    )


@pytest.fixture
def infusion(clinic: Location) -> AppointmentType:
    return AppointmentType.objects.select_related("location").get(location=clinic, slug="iv-mood")


_serial = itertools.count(1)


@pytest.fixture
def make_patient(db: None) -> Callable[..., Patient]:
    def make(**fields: object) -> Patient:
        n = next(_serial)
        values: dict[str, object] = {
            "first_name": f"Pat{n}",
            "last_name": "Example",
            "email": f"pat{n}@example.com",
            "phone": f"+1212555{n:04d}",
            "date_of_birth": date(1980, 1, 1),
        }
        values.update(fields)
        return Patient.objects.create(**values)

    return make

"""The demo clinic ``make run`` starts with: two locations, bookings, one staff sign-in per role."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from booking.access.roles import Role
from booking.access.scoping import location_ids
from booking.models import Appointment
from scheduling.models import Location


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_seeds_two_zones_bookings_and_one_sign_in_per_role(settings) -> None:
    settings.DEMO_STAFF_PASSWORD = "a demo passphrase"

    seed()

    assert sorted(Location.objects.values_list("timezone", flat=True)) == [
        "America/Denver",
        "America/New_York",
    ]
    assert Appointment.objects.count() == 8
    roles = {u.username: [g.name for g in u.groups.all()] for u in User.objects.all()}
    assert roles["desk"] == [Role.FRONT_DESK]
    assert roles["nurse"] == [Role.NURSE]
    assert roles["prescriber"] == [Role.PRESCRIBER]
    assert roles["admin"] == [Role.ADMIN]
    everywhere = set(Location.objects.values_list("id", flat=True))
    assert location_ids(User.objects.get(username="desk")) == everywhere
    assert len(location_ids(User.objects.get(username="nurse"))) == 1

    response = Client().post(
        "/staff/login/", {"username": "nurse", "password": "a demo passphrase"}
    )
    assert response.status_code == 302
    assert "/staff/login/" not in response["Location"]


@pytest.mark.django_db
def test_seeding_twice_changes_nothing() -> None:
    seed()
    users, appointments = User.objects.count(), Appointment.objects.count()

    assert "already seeded" in seed()
    assert (User.objects.count(), Appointment.objects.count()) == (users, appointments)

"""The demo clinic ``make run`` starts with: two locations, bookings, one staff sign-in per role."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from booking.access.roles import Role
from booking.access.scoping import location_ids
from booking.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Series,
    SeriesStatus,
    WaitlistOffer,
)
from notifications.models import MessageStatus, OutboundMessage
from scheduling.models import AppointmentKind, Location
from tests.staff_helpers import client_for

S = AppointmentStatus
# A Wednesday, 11:00 in New York and 09:00 in Denver.
NOW = datetime(2026, 10, 21, 15, 0, tzinfo=UTC)
EVERY_STEP = {
    S.BOOKED,
    S.CONFIRMED,
    S.CHECKED_IN,
    S.IN_CHAIR,
    S.RECOVERING,
    S.DISCHARGED,
    S.NO_SHOW,
}


def seed(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=err)
    assert not err.getvalue(), err.getvalue()  # every demo step went through the services
    return out.getvalue()


def local_day(appointment: Appointment):
    return appointment.start.astimezone(appointment.location.zone).date()


def what_was_built() -> list[tuple[str, ...]]:
    """The demo's visits as a person reads them, free of database ids."""
    return sorted(
        (
            a.location.slug,
            a.appointment_type.slug,
            a.start.isoformat(),
            a.status,
            a.patient.first_name,
            a.patient.last_name,
        )
        for a in Appointment.objects.select_related("location", "appointment_type", "patient")
    )


class _Undo(Exception):
    pass


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_it_seeds_two_zones_bookings_and_one_sign_in_per_role(settings, texts) -> None:
    settings.DEMO_STAFF_PASSWORD = "a demo passphrase"

    seed()

    assert sorted(Location.objects.values_list("timezone", flat=True)) == [
        "America/Denver",
        "America/New_York",
    ]
    assert Appointment.objects.count() >= 60
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
@time_machine.travel(NOW, tick=False)
def test_the_demo_day_has_a_visit_at_every_step_over_three_busy_weeks(texts) -> None:
    seed()

    riverside = Location.objects.get(slug="riverside")
    today = NOW.astimezone(riverside.zone).date()
    visits = list(Appointment.objects.select_related("location", "appointment_type"))
    board = {a.status for a in visits if a.location == riverside and local_day(a) == today}
    assert board >= EVERY_STEP | {S.ON_HOLD}
    monday = today - timedelta(days=today.weekday())
    for location in Location.objects.all():
        weeks = Counter((local_day(a) - monday).days // 7 for a in visits if a.location == location)
        # Last week, this one and the next (a series may run on after them).
        assert all(weeks[week] >= 8 for week in (-1, 0, 1)), (location.slug, weeks)
        # Weekends respected.
        assert all(local_day(a).weekday() < 5 for a in visits if a.location == location)
    # A series mid-way: sessions done and sessions to come.
    mid_way = [
        series
        for series in Series.objects.filter(status=SeriesStatus.BOOKED)
        if {s.status for s in series.sessions.all()} >= {S.DISCHARGED, S.BOOKED}
    ]
    assert mid_way
    held = Series.objects.get(status=SeriesStatus.ON_HOLD)
    assert held.hold_reason
    assert {s.status for s in held.sessions.all()} == {S.DISCHARGED, S.ON_HOLD}
    assert any(
        a.appointment_type.kind == AppointmentKind.BOOSTER and a.is_active and a.start > NOW
        for a in visits
    )
    outbox = Counter(OutboundMessage.objects.values_list("status", flat=True))
    assert outbox[MessageStatus.SENT]
    assert outbox[MessageStatus.PENDING]
    assert outbox[MessageStatus.FAILED] == 1
    assert WaitlistOffer.objects.filter(status="open").count() == 1
    assert AuditEvent.objects.exists()

    page = client_for(User.objects.get(username="desk")).get(
        f"/staff/board/?location=riverside&date={today}"
    )
    assert page.status_code == 200
    for label in ("Arrived", "In chair", "Recovering", "Discharged", "No-show", "Confirmed"):
        assert label in page.content.decode(), label


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_the_same_seed_builds_the_same_demo_and_seeding_twice_changes_nothing(texts) -> None:
    try:
        with transaction.atomic():
            seed("--seed", "7")
            first = what_was_built()
            raise _Undo
    except _Undo:
        pass
    assert not Appointment.objects.exists()

    seed("--seed", "7")
    assert what_was_built() == first
    users, appointments = User.objects.count(), Appointment.objects.count()
    messages = OutboundMessage.objects.count()

    assert "already seeded" in seed()
    assert (User.objects.count(), Appointment.objects.count()) == (users, appointments)
    assert OutboundMessage.objects.count() == messages

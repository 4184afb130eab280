"""The calendar endpoint's choice of columns: every kind at once (``by=all``), one group, one
resource (a week for one resource), and the 400s and 404s of asking wrongly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from booking.access.roles import Role
from booking.models import AuditEvent
from booking.services import appointment_book
from scheduling.models import Location, Resource, ResourceKind
from tests.booking.test_calendar import MONDAY, local
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
URL = "/api/v1/calendar/"


@pytest.fixture
def make_patient(make_approved_patient):
    return make_approved_patient


@pytest.fixture
def desk(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic, username="desk.dana")


def get(client: Client, **params: Any):
    query = {"location": "midtown", "start": "2026-10-26", "end": "2026-11-01", **params}
    return client.get(URL, query)


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [r["title"] for r in response.json()["resources"]]


def test_by_all_shows_staff_then_places_grouped(clinic, desk):
    body = get(client_for(desk), by="all").json()

    assert [r["title"] for r in body["resources"]] == [
        "Dr. One",
        "Dr. Two",
        "Nurse",
        "Chair 1",
        "Chair 2",
        "Room 1",
    ]
    assert [g["key"] for g in body["groups"]] == ["prescriber", "nurse", "chair", "room"]
    assert [r["groupTitle"] for r in body["resources"]][-3:] == ["Chairs", "Chairs", "Rooms"]


def test_by_chair_offers_only_the_chairs_group(clinic, desk):
    body = get(client_for(desk), by="chair").json()

    assert body["groups"] == [{"key": "chair", "title": "Chairs"}]


def test_a_group_shows_its_columns_only_whatever_by_says(clinic, desk):
    client = client_for(desk)

    assert titles(get(client, group="prescriber")) == ["Dr. One", "Dr. Two"]
    assert titles(get(client, group="nurse", by="chair")) == ["Nurse"]
    assert titles(get(client, group="room")) == ["Room 1"]
    # A known group nobody here is in: no columns, no events.
    body = get(client, group="staff").json()
    assert (body["resources"], body["events"]) == ([], [])


@time_machine.travel(NOW, tick=False)
def test_one_resource_shows_its_week_and_its_own_times(clinic, infusion, make_patient, desk):
    booked = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=local(MONDAY, 10)
    )
    prescriber = booked.allocations.get(resource__role="prescriber").resource

    response = get(client_for(desk), resource=str(prescriber.pk), by="chair")

    assert titles(response) == [prescriber.name]
    (event,) = response.json()["events"]
    assert (event["start"], event["end"]) == ("2026-10-26T10:00:00", "2026-10-26T10:15:00")
    assert event["resourceIds"] == [prescriber.pk]
    audit = AuditEvent.objects.get(object_type="calendar")
    assert audit.detail["resource"] == prescriber.pk


def test_an_inactive_resource_or_one_elsewhere_is_not_found(clinic, desk, make_location):
    gone = Resource.objects.create(
        location=clinic, kind=ResourceKind.CHAIR, name="Old chair", is_active=False
    )
    elsewhere = Resource.objects.create(
        location=make_location(), kind=ResourceKind.CHAIR, name="Their chair"
    )
    client = client_for(desk)

    for resource_id in (gone.pk, elsewhere.pk, 999999):
        response = get(client, resource=str(resource_id))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert not AuditEvent.objects.filter(object_type="calendar").exists()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group": "doctors"}, "group"),
        ({"resource": "abc"}, "resource"),
        ({"resource": "0"}, "resource"),
        ({"by": "rooms"}, "by"),
    ],
)
def test_bad_filters_are_400s_naming_the_field(clinic, desk, params, field):
    response = get(client_for(desk), **params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]


def test_an_empty_filter_is_no_filter(clinic, desk):
    assert titles(get(client_for(desk), group="", resource="")) == ["Dr. One", "Dr. Two", "Nurse"]


def test_another_locations_resource_is_not_reached_through_it(clinic, make_location):
    uptown = make_location(slug="uptown")
    chair = Resource.objects.create(location=uptown, kind=ResourceKind.CHAIR, name="Up chair")
    desk = staff_user(Role.FRONT_DESK, clinic)

    assert get(client_for(desk), resource=str(chair.pk)).status_code == 404
    assert get(client_for(desk), location="uptown", resource=str(chair.pk)).status_code == 404

"""The staff calendar page at /staff/calendar/: what the address asks for is what the page is
set up to show (view, rows, group, one resource, page), and a bad value is a 400 naming it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from booking.access.roles import Role
from scheduling.models import Location, Resource, ResourceKind
from tests.staff_helpers import client_for, staff_user

URL = "/staff/calendar/"


@pytest.fixture
def desk(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic)


def config_of(response: Any) -> dict[str, Any]:
    html = response.content.decode()
    text = html.split('id="calendar-config" type="application/json">')[1].split("<")[0]
    config: dict[str, Any] = json.loads(text)
    return config


def test_the_page_is_set_up_with_everything_the_address_chose(clinic, desk):
    chair = Resource.objects.filter(location=clinic, kind=ResourceKind.CHAIR).first()
    assert chair is not None

    response = client_for(desk).get(
        URL,
        {
            "location": clinic.slug,
            "view": "day",
            "by": "all",
            "group": "nurse",
            "resource": str(chair.pk),
            "page": "3",
            "date": "2026-12-02",
        },
    )

    assert response.status_code == 200
    config = config_of(response)
    assert (config["view"], config["by"], config["group"]) == ("day", "all", "nurse")
    assert (config["resource"], config["page"], config["date"]) == (chair.pk, 3, "2026-12-02")
    html = response.content.decode()
    assert '<option value="nurse" selected>' in html
    assert 'value="all" checked' in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ("week", "staff", "", None, 1)),
        ({"view": "columns", "by": "chair"}, ("columns", "chair", "", None, 1)),
        ({"view": "month", "by": "rooms", "page": "0"}, ("week", "staff", "", None, 1)),
        ({"page": "two"}, ("week", "staff", "", None, 1)),
    ],
)
def test_an_unknown_view_rows_or_page_falls_back_to_the_week_by_staff(
    clinic, desk, query, expected
):
    config = config_of(client_for(desk).get(URL, query))

    assert (
        config["view"],
        config["by"],
        config["group"],
        config["resource"],
        config["page"],
    ) == expected


def test_an_unknown_group_is_a_400_naming_the_group(clinic, desk):
    response = client_for(desk).get(URL, {"group": "surgeons"})

    assert response.status_code == 400
    assert "The group must be one of" in response.content.decode()


@pytest.mark.parametrize("resource", ["abc", "-1", "999999"])
def test_a_resource_that_does_not_serve_the_location_is_a_400_naming_it(
    clinic, desk, make_location, make_resource, resource
):
    response = client_for(desk).get(URL, {"resource": resource})

    assert response.status_code == 400
    assert "The resource must be" in response.content.decode()


def test_another_locations_resource_is_refused_like_an_unknown_one(
    clinic, desk, make_location, make_resource
):
    elsewhere = make_resource(make_location(slug="uptown"), ResourceKind.CHAIR)

    response = client_for(desk).get(URL, {"resource": str(elsewhere.pk)})

    assert response.status_code == 400
    assert str(elsewhere.name) not in response.content.decode()

"""A new location from the staff pages (issue #16): the first-run page of a fresh install, and a
superuser adding another location; both install the same defaults as ``clinic_create``."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from booking.access.roles import Role
from booking.models import AuditEvent, IntakeOption, Protocol, StaffProfile
from notifications.models import ReminderRule
from scheduling.defaults import DEFAULT_TYPES
from scheduling.models import AppointmentType, Location, Resource
from tests.staff_helpers import client_for, staff_user

FIRST_RUN = "/staff/setup/first-run/"
NEW = "/staff/setup/locations/new/"
DETAILS = {
    "name": "Riverside Ketamine Clinic (NYC)",
    "public_name": "Riverside Health",
    "timezone": "America/New_York",
    "slug": "",
    "address": "100 Hudson St, New York, NY",
    "phone": "+12125550100",
}


@pytest.fixture
def owner(db: None) -> User:
    return User.objects.create_superuser("owner", "owner@example.com", "unused-password")


def test_a_superuser_on_a_fresh_install_is_sent_to_the_first_run_page(owner: User) -> None:
    client = client_for(owner)

    assert client.get("/staff/")["Location"] == FIRST_RUN
    assert client.get("/staff/setup/")["Location"] == FIRST_RUN
    page = client.get(FIRST_RUN)
    assert page.status_code == 200
    assert b"Welcome to Chairside" in page.content
    assert b'<label for="id_public_name">' in page.content


def test_the_first_run_page_creates_the_first_location_with_the_defaults(owner: User) -> None:
    client = client_for(owner)

    response = client.post(FIRST_RUN, DETAILS)

    location = Location.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/staff/setup/{location.pk}/"
    assert location.slug == "riverside-ketamine-clinic-nyc"
    assert AppointmentType.objects.filter(location=location).count() > 0
    assert Protocol.objects.filter(appointment_type__location=location).exists()
    assert ReminderRule.objects.filter(appointment_type__location=location).exists()
    assert IntakeOption.objects.filter(location=location).exists()
    assert not Resource.objects.exists()
    event = AuditEvent.objects.get(object_type="location", object_id=str(location.pk))
    assert (event.action, event.user, event.location_id) == ("create", owner, location.pk)
    assert event.detail["setup"] is True
    # Once a location exists the staff pages open as usual, and first-run is done.
    assert client.get("/staff/")["Location"] == "/staff/board/"
    assert client.get(FIRST_RUN)["Location"] == "/staff/setup/"


def test_the_first_run_page_refuses_bad_details_naming_the_field(owner: User) -> None:
    client = client_for(owner)

    response = client.post(FIRST_RUN, {**DETAILS, "timezone": "Mars/Olympus", "public_name": ""})

    assert response.status_code == 400
    assert not Location.objects.exists()
    page = response.content.decode()
    assert 'href="#id_public_name"' in page
    assert 'href="#id_timezone"' in page


def test_a_slug_already_taken_is_shown_on_its_field(owner: User, location: Location) -> None:
    response = client_for(owner).post(NEW, {**DETAILS, "slug": location.slug})

    assert response.status_code == 400
    assert Location.objects.count() == 1
    assert 'href="#id_slug"' in response.content.decode()
    assert "already has this slug" in response.content.decode()


def test_a_superuser_adds_another_location_and_sees_it(owner: User, location: Location) -> None:
    client = client_for(owner)
    page = client.get(NEW)
    assert page.status_code == 200

    response = client.post(NEW, {**DETAILS, "slug": "riverside"})

    added = Location.objects.get(slug="riverside")
    assert response["Location"] == f"/staff/setup/{added.pk}/"
    assert client.get(f"/staff/setup/{added.pk}/").status_code == 200
    assert AppointmentType.objects.filter(location=added).count() == len(DEFAULT_TYPES)


def test_a_superuser_with_a_staff_profile_is_added_to_the_new_location(
    owner: User, location: Location
) -> None:
    profile = StaffProfile.objects.create(user=owner)

    client_for(owner).post(NEW, {**DETAILS, "slug": "riverside"})

    assert list(profile.locations.values_list("slug", flat=True)) == ["riverside"]


@pytest.mark.parametrize("path", [FIRST_RUN, NEW])
def test_an_admin_who_is_no_superuser_may_not_add_a_location(location: Location, path: str) -> None:
    admin = staff_user(Role.ADMIN, location)
    client = client_for(admin)

    assert client.get(path).status_code == 403
    assert client.post(path, {**DETAILS, "slug": "riverside"}).status_code == 403
    assert Location.objects.count() == 1


def test_the_setup_home_offers_a_superuser_to_add_a_location(
    owner: User, location: Location
) -> None:
    admin = staff_user(Role.ADMIN, location)

    assert NEW.encode() in client_for(owner).get("/staff/setup/").content
    assert NEW.encode() not in client_for(admin).get("/staff/setup/").content


def test_an_admin_on_a_fresh_install_is_not_sent_to_first_run(db: None) -> None:
    admin = staff_user(Role.ADMIN)

    assert client_for(admin).get("/staff/")["Location"] == "/staff/board/"
    assert client_for(admin).get(FIRST_RUN).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(db: None) -> None:
    for path in ("/staff/", FIRST_RUN, NEW):
        assert Client().get(path)["Location"].startswith("/staff/login/")

"""/staff/setup/<location>/: a location's own settings, edited by its admin, audited with the
fields that changed; a new time zone goes through the booked-visits check like new hours."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import time
from typing import Any

import pytest
import time_machine
from django.test import Client

from booking.access.roles import Role
from booking.desk.setup.forms import LocationForm
from booking.models import Appointment, AuditAction
from scheduling.models import AppointmentType, Location
from tests.booking.desk.setup.booked import NOW, book, messages_state, setup_audits
from tests.staff_helpers import client_for, staff_user


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin(clinic: Location) -> Client:
    return client_for(staff_user(Role.ADMIN, clinic))


def url(location: Location) -> str:
    return f"/staff/setup/{location.pk}/"


def settings_of(location: Location, **changes: Any) -> dict[str, str]:
    """The form as the page shows it for ``location``, with ``changes`` typed in."""
    data: dict[str, str] = {}
    for name, value in {**LocationForm(instance=location).initial, **changes}.items():
        if name not in LocationForm.Meta.fields or value is False:
            continue  # an unticked checkbox is not sent
        data[name] = (
            "on" if value is True else (f"{value:%H:%M}" if isinstance(value, time) else str(value))
        )
    return data


def test_the_page_shows_the_locations_settings(admin: Client, clinic: Location) -> None:
    response = admin.get(url(clinic))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'value="Midtown Health"' in page
    assert 'value="America/New_York"' in page
    assert 'aria-current="page">Location' in page
    for label in ("Public name", "Time zone", "Quiet hours start", "Change cutoff (hours)"):
        assert label in page


def test_saving_changes_the_location_and_audits_the_changed_fields(
    admin: Client, clinic: Location
) -> None:
    response = admin.post(
        url(clinic),
        settings_of(
            clinic,
            public_name="Midtown Wellness",
            late_cancel_hours=48,
            quiet_hours_start=time(20, 30),
            sms_regions="us, ca",
            two_factor_for_all_staff=True,
        ),
    )

    assert response.status_code == 302
    clinic.refresh_from_db()
    assert clinic.public_name == "Midtown Wellness"
    assert clinic.late_cancel_hours == 48
    assert clinic.quiet_hours_start == time(20, 30)
    assert clinic.sms_regions == "US,CA"
    assert clinic.two_factor_for_all_staff is True
    [event] = setup_audits(AuditAction.UPDATE, "location")
    assert event.location_id == clinic.pk
    assert event.detail["changed"] == [
        "late_cancel_hours",
        "public_name",
        "quiet_hours_start",
        "sms_regions",
        "two_factor_for_all_staff",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus_Mons", "is not an IANA time zone name"),
        ("sms_regions", "US, XX", "Not a country&#x27;s region code: XX"),
        ("tentative_hold_minutes", "500", "less than or equal to 120"),
        ("phone", "12", "Enter a valid phone number"),
        ("public_name", "", "This field is required"),
        ("public_name", "Midtown Ketamine", "must not name the treatment"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_field(
    admin: Client, clinic: Location, field: str, value: str, message: str
) -> None:
    response = admin.post(url(clinic), settings_of(clinic, **{field: value}))

    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert f'href="#id_{field}"' in page  # the error summary links to the field
    clinic.refresh_from_db()
    assert clinic.timezone == "America/New_York"
    assert not setup_audits(AuditAction.UPDATE, "location")


def test_a_new_zone_that_would_orphan_visits_is_refused_then_saved_when_confirmed(
    admin: Client, clinic: Location, consultation: AppointmentType, make_patient
) -> None:
    # Open 08:00-18:00 local: a 08:00 New York visit is 05:00 in Los Angeles, before opening.
    visit = book(consultation, make_patient(), 8)
    before = messages_state()
    data = settings_of(clinic, timezone="America/Los_Angeles")

    refused = admin.post(url(clinic), data)

    assert refused.status_code == 409
    assert visit.reference in refused.content.decode()
    clinic.refresh_from_db()
    assert clinic.timezone == "America/New_York"

    confirmed = admin.post(url(clinic), {**data, "confirm_orphans": "1"})

    assert confirmed.status_code == 302
    clinic.refresh_from_db()
    assert clinic.timezone == "America/Los_Angeles"
    assert Appointment.objects.get(pk=visit.pk).needs_new_time_since == NOW
    assert messages_state() == before


def test_an_admin_of_another_location_gets_a_404(clinic: Location, make_location) -> None:
    other = client_for(staff_user(Role.ADMIN, make_location()))

    assert other.get(url(clinic)).status_code == 404
    assert other.post(url(clinic), settings_of(clinic, public_name="Taken")).status_code == 404
    clinic.refresh_from_db()
    assert clinic.public_name == "Midtown Health"


def test_the_front_desk_may_not_edit_the_location(clinic: Location) -> None:
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))

    assert desk.get(url(clinic)).status_code == 403
    assert desk.post(url(clinic), settings_of(clinic, public_name="Taken")).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(clinic: Location, client: Client) -> None:
    response = client.get(url(clinic))

    assert response.status_code == 302
    assert "/staff/login/" in response["Location"]

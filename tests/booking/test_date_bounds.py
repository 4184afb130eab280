"""Far dates on every staff page and API that takes a date (security issue #15): a day outside
EARLIEST_DATE..LATEST_DATE answers 400 with a message naming the field, never a 500 from a
local midnight (or the day after) that datetime cannot hold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import override_settings

from booking.access.roles import Role
from booking.models import WaitlistEntry
from booking.validators import EARLIEST_DATE, LATEST_DATE
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 6, 8, 13, 0, tzinfo=UTC)
FAR = ["9999-12-31", "0001-01-01", "2101-01-01", "1999-12-31"]
RANGE = f"between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}"
# The first days datetime holds, where local midnight is already out of reach: UTC+14 puts the
# first of year 1 in year 0; at UTC-11 the day after the last day is year 10000.
EAST, WEST = "Pacific/Kiritimati", "Pacific/Pago_Pago"


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin(clinic: Location) -> User:
    return staff_user(Role.ADMIN, clinic)


@pytest.fixture
def browser(admin: User) -> Client:
    # A 500 comes back as a response to assert on, not as the test's own exception.
    client = client_for(admin)
    client.raise_request_exception = False
    return client


def page(browser: Client, url: str, **query: str):
    response = browser.get(url, query)
    return response.status_code, response.content.decode()


@pytest.mark.parametrize("day", FAR)
def test_the_board_refuses_a_far_date_naming_it(browser, clinic, day):
    status, text = page(browser, "/staff/board/", location=clinic.slug, date=day)

    assert status == 400
    assert f"The date must be {RANGE}." in text


@pytest.mark.parametrize(("zone", "day"), [(EAST, "0001-01-01"), (WEST, "9999-12-31")])
def test_the_board_refuses_a_day_whose_midnights_overflow_in_the_clinics_zone(
    browser, clinic, zone, day
):
    Location.objects.filter(pk=clinic.pk).update(timezone=zone)

    status, text = page(browser, "/staff/board/", location=clinic.slug, date=day)

    assert status == 400
    assert f"The date must be {RANGE}." in text


@pytest.mark.parametrize("zone", [EAST, WEST])
@pytest.mark.parametrize("day", [EARLIEST_DATE.isoformat(), LATEST_DATE.isoformat()])
def test_the_first_and_last_days_still_open_the_board_in_any_zone(browser, clinic, zone, day):
    Location.objects.filter(pk=clinic.pk).update(timezone=zone)

    assert page(browser, "/staff/board/", location=clinic.slug, date=day)[0] == 200
    assert page(browser, "/staff/calendar/", location=clinic.slug, date=day)[0] == 200


@pytest.mark.parametrize("day", FAR)
@pytest.mark.parametrize(("field", "label"), [("start", "From"), ("end", "To")])
@pytest.mark.parametrize("url", ["/staff/audit/", "/staff/audit/export.csv"])
def test_the_audit_log_refuses_a_far_date_naming_the_filter(browser, url, field, label, day):
    status, text = page(browser, url, **{field: day})

    assert status == 400
    assert f"{label}: Must be {RANGE}." in text


@override_settings(DEFAULT_CLINIC_TIMEZONE=EAST)
@pytest.mark.parametrize("url", ["/staff/audit/", "/staff/audit/export.csv"])
def test_the_audit_log_refuses_the_first_day_of_year_one_east_of_utc(browser, url):
    status, text = page(browser, url, start="0001-01-01")

    assert status == 400
    assert f"From: Must be {RANGE}." in text


@override_settings(DEFAULT_CLINIC_TIMEZONE=WEST)
def test_the_audit_log_still_filters_up_to_the_last_day(browser):
    assert page(browser, "/staff/audit/", start="2000-01-01", end="2100-12-31")[0] == 200


@pytest.mark.parametrize("day", [*FAR, "2026-13-01", "tomorrow"])
def test_the_calendar_page_refuses_a_far_or_malformed_date_naming_it(browser, clinic, day):
    status, text = page(browser, "/staff/calendar/", location=clinic.slug, date=day)

    assert status == 400
    assert "The date must" in text
    assert "calendar-config" not in text  # no calendar drawn for a day that is not one


@pytest.mark.parametrize("day", FAR)
@pytest.mark.parametrize("field", ["start", "end"])
@pytest.mark.parametrize("url", ["/api/v1/calendar/", "/api/v1/appointments/"])
def test_the_staff_api_refuses_a_far_date_naming_the_field(browser, clinic, url, field, day):
    query = {"location": clinic.slug, "start": "2026-06-08", "end": "2026-06-08", field: day}

    response = browser.get(url, query)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("day", FAR)
@pytest.mark.parametrize(
    ("field", "label"), [("earliest_date", "From (date)"), ("latest_date", "Until (date)")]
)
def test_the_waitlist_refuses_a_far_date_naming_the_field(
    browser, clinic, infusion: AppointmentType, make_approved_patient, field, label, day
):
    patient = make_approved_patient()
    form = {
        "patient": patient.pk,
        "appointment_type": infusion.pk,
        "earliest_date": "2026-06-10",
        "latest_date": "2026-06-20",
        field: day,
    }

    response = browser.post(f"/staff/waitlist/?location={clinic.slug}", form)

    assert response.status_code == 400
    assert f"{label}: Must be {RANGE}." in response.content.decode()
    assert not WaitlistEntry.objects.exists()


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_the_message_log_takes_no_date_and_ignores_one(browser, day):
    # Paged by message id, never by date: a date in the query changes nothing.
    assert page(browser, "/staff/messages/", date=day, start=day, end=day)[0] == 200


# --- The patient's pages take times, not days: a far one is a time never offered ------------


@pytest.mark.parametrize("start", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_the_booking_pages_treat_a_far_time_as_no_time_chosen(consultation, start):
    client = Client(raise_request_exception=False)
    base = f"/book/{consultation.location.slug}/{consultation.slug}/"

    response = client.get(f"{base}details/", {"start": start})

    assert response.status_code == 302
    assert response["Location"].startswith(base)

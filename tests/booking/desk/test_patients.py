"""A new patient registered at the desk, /staff/patients/new/: the likely duplicates the desk may
see are shown first, and saving anyway needs "This is a different person"."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from booking.access.roles import Role
from booking.models import AuditEvent, Patient
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)  # Wednesday 09:00 EST
BOOKED_AT = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
TEN_AM = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)
URL = "/staff/patients/new/"


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def desk(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic, username="desk.dan")


@pytest.fixture
def ada(make_approved_patient: Callable[..., Patient], infusion: AppointmentType) -> Patient:
    """A patient with a visit at the desk's location."""
    patient = make_approved_patient(
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=date(1985, 12, 10),
        email="ada@example.com",
        phone="+12125550123",
    )
    appointment_book(appointment_type=infusion, patient=patient, start=TEN_AM, now=BOOKED_AT)
    return patient


def form(**fields: str) -> dict[str, str]:
    values = {
        "first_name": "Grace",
        "last_name": "Hopper",
        "date_of_birth": "1970-05-01",
        "email": "grace@example.com",
        "phone": "(212) 555-0199",
        "allergies": "",
    }
    values.update(fields)
    return values


def text(response) -> str:
    return html.unescape(response.content.decode())


def test_the_desk_registers_a_new_patient(desk: User) -> None:
    client = client_for(desk)
    page = client.get(URL)
    assert page.status_code == 200
    assert "This is a different person" not in text(page)

    response = client.post(URL, form(allergies="Penicillin"))

    assert response.status_code == 302
    assert response["Location"] == "/staff/calendar/"
    patient = Patient.objects.get()
    assert (patient.first_name, patient.last_name, patient.date_of_birth) == (
        "Grace",
        "Hopper",
        date(1970, 5, 1),
    )
    assert (patient.email, patient.phone) == ("grace@example.com", "+12125550199")
    assert (patient.allergies, patient.allergies_recorded_by, patient.allergies_recorded_at) == (
        "Penicillin",
        desk,
        NOW,
    )
    event = AuditEvent.objects.get(action="create")
    assert (event.user, event.object_type, event.patient) == (desk, "patient", patient)
    assert f"registered as patient #{patient.pk}" in text(client.get(response["Location"]))


def test_allergies_left_empty_stay_not_asked_and_none_known_is_an_answer(desk: User) -> None:
    client = client_for(desk)

    client.post(URL, form())
    client.post(URL, form(first_name="Alan", email="alan@example.com", phone="+12125550198"))
    client.post(
        URL,
        form(first_name="Kat", email="kat@example.com", phone="+12125550197", none_known="on"),
    )

    asked = dict(Patient.objects.values_list("first_name", "allergies_recorded_at"))
    assert asked == {"Grace": None, "Alan": None, "Kat": NOW}


@pytest.mark.parametrize(
    ("fields", "same"),
    [
        (
            {"first_name": "ada", "last_name": "LOVELACE", "date_of_birth": "1985-12-10"},
            "name and date of birth",
        ),
        ({"email": "ADA@example.com"}, "e-mail"),
        ({"phone": "212 555 0123"}, "phone"),
    ],
)
def test_a_likely_duplicate_is_shown_and_blocks_saving_until_confirmed(
    ada: Patient, desk: User, fields: dict[str, str], same: str
) -> None:
    client = client_for(desk)

    shown = client.post(URL, form(**fields))

    assert shown.status_code == 200
    page = text(shown)
    duplicates = page.split('id="duplicates"', 1)[1].split("</section>", 1)[0]
    assert f"#{ada.pk}" in duplicates
    assert "Ada Lovelace" in duplicates
    assert same in duplicates
    assert "This is a different person" in page
    assert Patient.objects.count() == 1
    seen = AuditEvent.objects.get(action="view")
    assert (seen.user, seen.patient, seen.object_type) == (desk, ada, "patient")

    confirmed = client.post(URL, form(**fields, different_person="on"))

    assert confirmed.status_code == 302
    assert Patient.objects.count() == 2
    assert AuditEvent.objects.filter(action="create", user=desk).count() == 1


def test_a_duplicate_at_another_location_is_not_revealed(
    ada: Patient, make_location: Callable[..., Location]
) -> None:
    elsewhere = client_for(staff_user(Role.FRONT_DESK, make_location()))

    response = elsewhere.post(URL, form(email="ada@example.com"))

    assert response.status_code == 302
    new = Patient.objects.exclude(pk=ada.pk).get()
    assert new.needs_review  # for someone who sees both to check
    assert not AuditEvent.objects.filter(patient=ada).exists()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"first_name": "  "}, "First name: This field is required."),
        ({"date_of_birth": "10/12/1985"}, "Date of birth: Enter the date of birth as YYYY-MM-DD."),
        ({"date_of_birth": "2030-01-01"}, "Date of birth: The date of birth must be in the past."),
        ({"email": "not-an-address"}, "E-mail: Enter a valid email address."),
        ({"phone": "12"}, "Mobile phone: Enter a valid phone number"),
        (
            {"allergies": "Latex", "none_known": "on"},
            "No known allergies: List the allergies or tick “No known allergies”, not both.",
        ),
        ({"last_name": "x" * 101}, "Last name: Ensure this value has at most 100 characters"),
    ],
)
def test_bad_input_is_a_form_error_naming_the_field(
    desk: User, fields: dict[str, str], error: str
) -> None:
    response = client_for(desk).post(URL, form(**fields))

    assert response.status_code == 400
    assert error in text(response)
    assert 'aria-invalid="true"' in text(response)
    assert not Patient.objects.exists()


def test_only_roles_that_book_may_register(clinic: Location) -> None:
    nurse = client_for(staff_user(Role.NURSE, clinic))

    assert nurse.get(URL).status_code == 403
    assert nurse.post(URL, form()).status_code == 403
    assert not Patient.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db: None) -> None:
    response = client.post(URL, form())

    assert response.status_code == 302
    assert "login" in response["Location"]
    assert not Patient.objects.exists()


def test_the_form_is_protected_against_cross_site_requests(desk: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(desk)

    assert client.post(URL, form()).status_code == 403
    assert not Patient.objects.exists()

"""The desk completes the patient's record from a visit's page, /staff/appointments/<reference>/:
the escort taken by phone, the allergies beside the medications, and a contraindication flagged
after the decision."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from booking.access.roles import Role
from booking.models import (
    Appointment,
    AppointmentEvent,
    AuditEvent,
    Contraindication,
    ContraindicationAnswer,
    Intake,
    Patient,
)
from booking.services import appointment_book, appointment_escort_update
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)  # Wednesday 09:00 EST
BOOKED_AT = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
TEN_AM = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def visit(make_approved_patient: Callable[..., Patient], infusion: AppointmentType) -> Appointment:
    patient = make_approved_patient(
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=date(1985, 12, 10),
        phone="+12125550123",
        email="ada@example.com",
    )
    appointment = appointment_book(
        appointment_type=infusion, patient=patient, start=TEN_AM, now=BOOKED_AT
    )
    Intake.objects.create(
        appointment=appointment,
        conditions=["Treatment-resistant depression"],
        medications="Sertraline 50 mg",
    )
    return appointment


@pytest.fixture
def desk(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic, username="desk.dan")


@pytest.fixture
def nurse(clinic: Location) -> User:
    return staff_user(Role.NURSE, clinic, username="nurse.joy")


@pytest.fixture
def stranger(make_location: Callable[..., Location]) -> Client:
    """A prescriber at another location: may do everything here, but not to this visit."""
    return client_for(staff_user(Role.PRESCRIBER, make_location()))


def url(appointment: Appointment, action: str = "") -> str:
    return f"/staff/appointments/{appointment.reference}/" + (f"{action}/" if action else "")


def section(response, anchor: str) -> str:
    content = html.unescape(response.content.decode())
    return content.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


def escort(name: str = "Sam Escort", phone: str = "(212) 555-0177") -> dict[str, str]:
    return {"escort-escort_name": name, "escort-escort_phone": phone}


# --- The escort, taken by phone ----------------------------------------------------------------


def test_the_desk_takes_the_escort_by_phone_and_the_checklist_item_is_done(
    visit: Appointment, desk: User
) -> None:
    client = client_for(desk)
    before = client.get(url(visit))
    assert "Escort name and phone confirmed: missing" in section(before, "checklist")
    assert "Escort (taken by phone)" in section(before, "escort")

    response = client.post(url(visit, "escort"), escort())

    assert response.status_code == 302
    assert response["Location"] == url(visit) + "#escort"
    visit.refresh_from_db()
    assert (visit.escort_name, visit.escort_phone) == ("Sam Escort", "+12125550177")
    assert (visit.escort_recorded_by, visit.escort_updated_at) == (desk, NOW)
    assert AppointmentEvent.objects.filter(
        appointment=visit, kind="escort_recorded", by=desk, at=NOW
    ).exists()
    page = client.get(url(visit))
    assert "Escort name and phone confirmed: done" in section(page, "checklist")
    shown = section(page, "escort")
    assert "Taken by phone by desk.dan, Wednesday 9 December 2026 at 9:00 AM EST" in shown
    assert "via their link" not in shown
    assert "Escort's details recorded" in section(page, "history")
    assert AuditEvent.objects.filter(
        user=desk, action="update", object_type="appointment", object_id=str(visit.pk)
    ).exists()


def test_an_escort_the_patient_gave_through_their_link_shows_as_theirs(
    visit: Appointment, desk: User
) -> None:
    appointment_escort_update(
        appointment=visit, name="Kim Escort", phone="+12125550166", now=BOOKED_AT
    )

    shown = section(client_for(desk).get(url(visit)), "escort")

    assert "Kim Escort" in shown
    assert "Given by the patient via their link, Tuesday 1 December 2026 at 9:00 AM EST" in shown
    assert "Taken by phone" not in shown


@pytest.mark.parametrize(
    ("phone", "error"),
    [
        ("not a number", "Escort's mobile number: Enter a valid phone number"),
        ("+1 212 555 0123", "Escort's mobile number: Enter the escort's number, not the patient"),
    ],
)
def test_a_bad_escort_number_is_a_form_error_and_nothing_is_saved(
    visit: Appointment, desk: User, phone: str, error: str
) -> None:
    response = client_for(desk).post(url(visit, "escort"), escort(phone=phone))

    assert response.status_code == 400
    shown = section(response, "escort")
    assert error in shown
    assert 'aria-invalid="true"' in shown
    visit.refresh_from_db()
    assert (visit.escort_name, visit.escort_phone, visit.escort_recorded_by) == ("", "", None)
    assert not visit.events.filter(kind="escort_recorded").exists()


def test_a_nurse_cannot_take_the_escort(visit: Appointment, nurse: User) -> None:
    client = client_for(nurse)

    assert "Escort (taken by phone)" not in section(client.get(url(visit)), "escort")
    assert client.post(url(visit, "escort"), escort()).status_code == 403
    visit.refresh_from_db()
    assert visit.escort_name == ""


def test_the_escort_of_a_visit_already_begun_is_refused_with_the_reason(
    visit: Appointment, desk: User, clock: time_machine.Traveller
) -> None:
    clock.move_to(TEN_AM)

    response = client_for(desk).post(url(visit, "escort"), escort())

    assert response.status_code == 409
    assert "This visit can no longer be changed." in section(response, "escort")
    visit.refresh_from_db()
    assert visit.escort_name == ""


# --- Allergies beside the medications ----------------------------------------------------------


def test_allergies_nobody_asked_about_show_as_not_asked_yet(visit: Appointment, desk: User) -> None:
    intake = section(client_for(desk).get(url(visit)), "intake")

    assert "Sertraline 50 mg" in intake
    assert "Not asked yet" in intake
    assert "None known" not in intake.split("Record the allergies")[0]


def test_a_nurse_records_the_allergies_beside_the_medications(
    visit: Appointment, nurse: User
) -> None:
    client = client_for(nurse)

    response = client.post(url(visit, "allergies"), {"allergies-allergies": "Penicillin: rash"})

    assert response.status_code == 302
    patient = Patient.objects.get(pk=visit.patient_id)
    assert (patient.allergies, patient.allergies_recorded_by, patient.allergies_recorded_at) == (
        "Penicillin: rash",
        nurse,
        NOW,
    )
    intake = section(client.get(url(visit)), "intake")
    assert "Penicillin: rash" in intake
    assert "Recorded by nurse.joy, Wednesday 9 December 2026 at 9:00 AM EST" in intake
    assert "Not asked yet" not in intake
    assert AuditEvent.objects.filter(
        user=nurse, action="update", object_type="patient", patient=patient
    ).exists()


def test_none_known_is_recorded_and_shown_as_an_answer(visit: Appointment, desk: User) -> None:
    client = client_for(desk)

    client.post(url(visit, "allergies"), {"allergies-none_known": "on"})

    patient = Patient.objects.get(pk=visit.patient_id)
    assert (patient.allergies, patient.allergies_recorded_at) == ("", NOW)
    intake = section(client.get(url(visit)), "intake")
    assert "None known" in intake
    assert "Not asked yet" not in intake


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({}, "Known allergies: List the allergies, or tick “No known allergies”."),
        (
            {"allergies-allergies": "Latex", "allergies-none_known": "on"},
            "No known allergies: List the allergies or tick “No known allergies”, not both.",
        ),
        ({"allergies-allergies": "x" * 2001}, "Known allergies: Ensure this value has at most"),
    ],
)
def test_an_unclear_allergy_answer_is_a_form_error(
    visit: Appointment, nurse: User, data: dict[str, str], error: str
) -> None:
    response = client_for(nurse).post(url(visit, "allergies"), data)

    assert response.status_code == 400
    assert error in section(response, "intake")
    assert Patient.objects.get(pk=visit.patient_id).allergies_recorded_at is None


# --- A contraindication flagged after the decision ---------------------------------------------


def test_a_nurse_flags_a_contraindication_with_who_and_when(
    visit: Appointment, nurse: User
) -> None:
    psychosis = Contraindication.objects.get(slug="psychosis_history")
    client = client_for(nurse)

    response = client.post(
        url(visit, "contraindications"),
        {"flag-contraindication": str(psychosis.pk), "flag-note": "Told us this morning"},
    )

    assert response.status_code == 302
    flag = ContraindicationAnswer.objects.get(decision__isnull=True)
    assert (flag.patient_id, flag.contraindication, flag.present) == (
        visit.patient_id,
        psychosis,
        True,
    )
    assert (flag.recorded_by, flag.recorded_at, flag.note) == (nurse, NOW, "Told us this morning")
    shown = section(client.get(url(visit)), "contraindications")
    assert "History of psychosis" in shown
    assert "Told us this morning" in shown
    assert "Flagged by nurse.joy, Wednesday 9 December 2026 at 9:00 AM EST" in shown
    assert AuditEvent.objects.filter(
        user=nurse, action="create", object_type="contraindicationanswer"
    ).exists()


def test_the_front_desk_cannot_flag_a_contraindication(visit: Appointment, desk: User) -> None:
    psychosis = Contraindication.objects.get(slug="psychosis_history")
    client = client_for(desk)

    assert "Flag a contraindication" not in section(client.get(url(visit)), "contraindications")
    response = client.post(
        url(visit, "contraindications"), {"flag-contraindication": str(psychosis.pk)}
    )

    assert response.status_code == 403
    assert not ContraindicationAnswer.objects.filter(decision__isnull=True).exists()


def test_a_flag_without_a_contraindication_is_a_form_error(visit: Appointment, nurse: User) -> None:
    retired = Contraindication.objects.create(slug="old", label="Old question", is_active=False)

    for chosen in ("", str(retired.pk)):
        response = client_for(nurse).post(
            url(visit, "contraindications"), {"flag-contraindication": chosen}
        )

        assert response.status_code == 400
        assert "Contraindication now present:" in section(response, "contraindications")
    assert not ContraindicationAnswer.objects.filter(decision__isnull=True).exists()


# --- Scope and protection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("escort", escort()),
        ("allergies", {"allergies-allergies": "Latex"}),
        ("contraindications", {"flag-contraindication": "1"}),
    ],
)
def test_another_location_s_visit_is_not_found(
    visit: Appointment, stranger: Client, action: str, data: dict[str, str]
) -> None:
    response = stranger.post(url(visit, action), data)

    assert response.status_code == 404
    visit.refresh_from_db()
    assert visit.escort_name == ""
    assert visit.patient.allergies_recorded_at is None
    assert not ContraindicationAnswer.objects.filter(decision__isnull=True).exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("action", ["escort", "allergies", "contraindications"])
def test_the_forms_need_a_signed_in_staff_member_and_a_post(
    visit: Appointment, nurse: User, action: str
) -> None:
    anonymous = Client().post(url(visit, action), {})
    assert anonymous.status_code == 302
    assert "login" in anonymous["Location"]
    assert client_for(nurse).get(url(visit, action)).status_code == 405


def test_the_forms_are_protected_against_cross_site_requests(
    visit: Appointment, desk: User
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(desk)

    assert client.post(url(visit, "escort"), escort()).status_code == 403
    visit.refresh_from_db()
    assert visit.escort_name == ""

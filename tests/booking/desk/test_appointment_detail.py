"""One visit as the staff see it at /staff/appointments/<reference>/: the patient, the visit, the
intake, the checklist, the escort, its history, its messages and (for administrators) its audit
trail."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from booking import checkin
from booking.access.roles import Role
from booking.models import Appointment, AuditEvent, Intake, Patient
from booking.series.services import series_book
from booking.services import appointment_book, appointment_escort_update
from notifications.models import OutboundMessage
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
        prior_treatments="TMS in 2024",
        screening=[{"question": "Are you pregnant?", "answer": False}],
    )
    appointment_escort_update(
        appointment=appointment, name="Sam Escort", phone="+12125550177", now=BOOKED_AT
    )
    return appointment


@pytest.fixture
def nurse(clinic: Location) -> User:
    return staff_user(Role.NURSE, clinic, username="nurse.joy")


def url(appointment: Appointment) -> str:
    return f"/staff/appointments/{appointment.reference}/"


def section(content: str, anchor: str) -> str:
    return content.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


def test_it_shows_the_patient_the_visit_and_what_they_told_us(
    visit: Appointment, nurse: User
) -> None:
    response = client_for(nurse).get(url(visit))

    assert response.status_code == 200
    content = html.unescape(response.content.decode())
    patient = section(content, "patient")
    for shown in ("Ada Lovelace", "10 December 1985", "+12125550123", "ada@example.com"):
        assert shown in patient
    about = section(content, "visit")
    assert "IV ketamine infusion (mood)" in about
    assert "Wednesday 9 December 2026 at 10:00 AM EST" in about
    assert "Booked" in about
    for resource in ("Chair", "Nurse", "Dr."):
        assert resource in about
    intake = section(content, "intake")
    for shown in ("Treatment-resistant depression", "Sertraline 50 mg", "TMS in 2024"):
        assert shown in intake
    assert "Are you pregnant?: <strong>No</strong>" in intake
    escort = section(content, "escort")
    assert "Sam Escort" in escort
    assert "+12125550177" in escort
    checklist = section(content, "checklist")
    assert "Escort name and phone confirmed: done" in checklist
    assert "Fasting acknowledged: missing" in checklist


def test_its_history_says_what_changed_and_who_did_it(
    visit: Appointment, nurse: User, clinic: Location
) -> None:
    checkin.appointment_check_in(
        appointment=visit, by=nurse, override_reason="Consent signed on paper", now=NOW
    )

    history = section(client_for(nurse).get(url(visit)).content.decode(), "history")

    assert "Booked" in history
    assert "Checklist overridden" in history
    assert "Consent signed on paper" in history
    assert "Checked in" in history
    assert history.count("nurse.joy") == 2


def test_it_lists_every_message_planned_for_the_visit_with_its_state(
    visit: Appointment, nurse: User
) -> None:
    planned = list(OutboundMessage.objects.filter(appointment=visit))
    assert planned

    shown = html.unescape(section(client_for(nurse).get(url(visit)).content.decode(), "messages"))

    assert shown.count("<tr>") == len(planned) + 1  # the header row
    for message in planned:
        assert message.get_kind_display() in shown
        assert message.get_status_display() in shown


def test_reading_it_is_audited(visit: Appointment, nurse: User) -> None:
    client_for(nurse).get(url(visit))

    event = AuditEvent.objects.get(user=nurse)
    assert (event.action, event.object_type, event.object_id) == (
        "view",
        "appointment",
        str(visit.pk),
    )
    assert event.patient_id == visit.patient_id
    assert event.location_id == visit.location_id


def test_only_an_administrator_sees_the_audit_trail(
    visit: Appointment, nurse: User, clinic
) -> None:
    admin = staff_user(Role.ADMIN, clinic, username="boss")
    client_for(nurse).get(url(visit))

    assert 'id="audit"' not in client_for(nurse).get(url(visit)).content.decode()
    trail = section(client_for(admin).get(url(visit)).content.decode(), "audit")
    assert "nurse.joy" in trail
    assert "boss" in trail


def test_a_visit_at_another_location_or_unknown_is_not_found(
    visit: Appointment, make_location
) -> None:
    stranger = client_for(staff_user(Role.ADMIN, make_location()))

    assert stranger.get(url(visit)).status_code == 404
    assert stranger.get("/staff/appointments/NOPE1234/").status_code == 404
    assert not AuditEvent.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, visit: Appointment) -> None:
    response = client.get(url(visit))

    assert response.status_code == 302
    assert "login" in response["Location"]
    assert not AuditEvent.objects.exists()


def test_a_session_of_a_series_shows_its_place(
    make_approved_patient, nurse: User, clinic: Location
) -> None:
    patient = make_approved_patient(first_name="Ser", last_name="Ies")
    zone = ZoneInfo("America/New_York")
    series = series_book(
        plan=patient.plans.get(protocol__slug="mood-induction"),
        starts=[
            datetime.combine(date(2026, 12, d), time(10), tzinfo=zone)
            for d in (7, 9, 11, 14, 16, 18)
        ],
        now=BOOKED_AT,
    )

    content = client_for(nurse).get(url(series.sessions.get(series_index=3))).content.decode()

    assert "Session 3 of 6" in section(content, "visit")

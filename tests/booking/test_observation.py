"""Observation before discharge: Spravato two hours from dosing, an infusion a recovery after
it ends; discharge before then is refused unless a prescriber gives a reason, which the visit's
history keeps; the day board shows when each patient may leave."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from booking import checkin
from booking.access.roles import Role
from booking.errors import PolicyViolation
from booking.models import Appointment, AppointmentStatus, Patient
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
DAY_START = datetime(2026, 6, 10, 10, 0, tzinfo=NEW_YORK)
BOOKED_AT = DAY_START - timedelta(days=9)


@pytest.fixture
def patient(make_approved_patient: Callable[..., Patient]) -> Patient:
    return make_approved_patient()


def visit_in(clinic: Location, slug: str, patient: Patient, status: str, **at: datetime):
    """A visit of type ``slug`` at 10:00, its escort here, brought to ``status`` at the given
    moments (``seated_at``, ``recovering_at``)."""
    visit_type = AppointmentType.objects.get(location=clinic, slug=slug)
    visit = appointment_book(
        appointment_type=visit_type, patient=patient, start=DAY_START, now=BOOKED_AT
    )
    Appointment.objects.filter(pk=visit.pk).update(
        status=status, checked_in_at=DAY_START, escort_present_at=DAY_START, **at
    )
    visit.refresh_from_db()
    return visit


def test_a_spravato_patient_leaves_two_hours_after_dosing(clinic, patient):
    nurse = staff_user(Role.NURSE, clinic)
    dosed = DAY_START + timedelta(minutes=5)
    visit = visit_in(clinic, "spravato", patient, AppointmentStatus.IN_CHAIR, seated_at=dosed)

    with pytest.raises(PolicyViolation) as refused:
        checkin.appointment_discharge(
            appointment=visit, by=nurse, now=dosed + timedelta(minutes=119)
        )
    assert refused.value.field == "observation"
    assert "may leave at 12:05 PM EDT" in refused.value.message
    assert "120 minutes of observation from dosing" in refused.value.message

    done = checkin.appointment_discharge(
        appointment=visit, by=nurse, now=dosed + timedelta(minutes=120)
    )
    assert done.status == AppointmentStatus.DISCHARGED


def test_an_infusion_patient_leaves_after_the_recovery_the_type_asks(clinic, patient):
    nurse = staff_user(Role.NURSE, clinic)
    seated = DAY_START + timedelta(minutes=5)
    visit = visit_in(clinic, "iv-mood", patient, AppointmentStatus.IN_CHAIR, seated_at=seated)
    ended = seated + timedelta(minutes=50)

    with pytest.raises(PolicyViolation, match="move them to recovery first"):
        checkin.appointment_discharge(appointment=visit, by=nurse, now=ended)
    checkin.appointment_recover(appointment=visit, by=nurse, now=ended)
    with pytest.raises(PolicyViolation, match="may leave at 11:35 AM EDT"):
        checkin.appointment_discharge(
            appointment=visit, by=nurse, now=ended + timedelta(minutes=39)
        )

    done = checkin.appointment_discharge(
        appointment=visit, by=nurse, now=ended + timedelta(minutes=40)
    )
    assert done.status == AppointmentStatus.DISCHARGED


def test_only_a_prescriber_discharges_early_and_the_reason_is_recorded(clinic, patient):
    nurse = staff_user(Role.NURSE, clinic)
    prescriber = staff_user(Role.PRESCRIBER, clinic)
    dosed = DAY_START + timedelta(minutes=5)
    visit = visit_in(clinic, "spravato", patient, AppointmentStatus.IN_CHAIR, seated_at=dosed)
    early = dosed + timedelta(minutes=90)

    with pytest.raises(PermissionDenied):
        checkin.appointment_discharge(
            appointment=visit, by=nurse, now=early, override_reason="Feels fine"
        )
    visit.refresh_from_db()
    assert visit.status == AppointmentStatus.IN_CHAIR

    done = checkin.appointment_discharge(
        appointment=visit, by=prescriber, now=early, override_reason="Vitals stable, reviewed"
    )

    assert done.status == AppointmentStatus.DISCHARGED
    override = visit.events.get(kind="discharge_override")
    assert (override.by, override.at, override.detail) == (
        prescriber,
        early,
        "Vitals stable, reviewed",
    )


def test_the_api_refuses_an_early_discharge_naming_the_observation(clinic, patient, time_machine):
    dosed = DAY_START + timedelta(minutes=5)
    visit = visit_in(clinic, "spravato", patient, AppointmentStatus.IN_CHAIR, seated_at=dosed)
    time_machine.move_to(dosed + timedelta(minutes=30), tick=False)
    nurse = client_for(staff_user(Role.NURSE, clinic))

    response = nurse.post(
        f"/api/v1/appointments/{visit.reference}/discharge/", {}, content_type="application/json"
    )

    assert response.status_code == 422, response.content
    assert "may leave at 12:05 PM EDT" in response.json()["error"]["fields"]["observation"]


def test_the_day_board_shows_when_each_patient_may_leave(clinic, patient, time_machine):
    dosed = DAY_START + timedelta(minutes=5)
    visit_in(clinic, "spravato", patient, AppointmentStatus.IN_CHAIR, seated_at=dosed)
    time_machine.move_to(dosed + timedelta(minutes=30), tick=False)
    nurse = client_for(staff_user(Role.NURSE, clinic))

    board = nurse.get("/staff/board/", {"location": clinic.slug, "date": "2026-06-10"})

    assert board.status_code == 200
    assert "may leave 12:05 PM EDT" in board.content.decode()


def test_new_treatment_types_come_with_their_observation(clinic):
    floors = dict(
        AppointmentType.objects.filter(location=clinic).values_list("slug", "observation_minutes")
    )

    assert floors == {
        "consultation": 0,
        "iv-mood": 40,
        "iv-pain": 40,
        "spravato": 120,
        "booster": 40,
    }


@pytest.mark.django_db(transaction=True)
def test_treatment_types_already_in_use_get_their_observation_when_migrated():
    before = [("scheduling", "0002_location_hold_keeps_chairs")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    site = old.get_model("scheduling", "Location").objects.create(
        slug="old", name="Old", public_name="Old", timezone="America/New_York"
    )
    for slug, kind in (("consult", "consultation"), ("drip", "infusion"), ("spray", "spravato")):
        old.get_model("scheduling", "AppointmentType").objects.create(
            location=site, slug=slug, name=slug, public_name=slug, kind=kind, duration_minutes=60
        )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    floors = {
        t.slug: (t.observation_minutes, t.observation_from)
        for t in AppointmentType.objects.filter(location__slug="old")
    }
    assert floors == {
        "consult": (0, "recovering"),
        "drip": (40, "recovering"),
        "spray": (120, "seated"),
    }

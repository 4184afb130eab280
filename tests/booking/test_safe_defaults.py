"""Safe defaults: a treatment type needs a prescriber's approval unless the clinic says
otherwise (types already in use migrated so), and a treatment is for patients of at least the
type's minimum age (18 by default) on the day of the visit, on every booking path."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from booking.access.roles import Role
from booking.errors import NotEligible
from booking.models import Patient, TreatmentPlan
from booking.series.services import series_book
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
DAY = date(2026, 6, 10)
SEVENTEEN = date(2008, 6, 11)  # 18 the day after DAY


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=NEW_YORK)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def minor(make_approved_patient: Callable[..., Patient]) -> Patient:
    return make_approved_patient(date_of_birth=SEVENTEEN)


def test_a_treatment_type_starts_behind_the_approval_gate(clinic: Location):
    added = AppointmentType.objects.create(
        location=clinic, slug="new-drip", name="New drip", public_name="Visit", kind="infusion",
        duration_minutes=60,
    )  # fmt: skip

    assert added.needs_approval is True
    assert AppointmentType.objects.get(location=clinic, slug="iv-mood").min_age_years == 18
    assert AppointmentType.objects.get(location=clinic, slug="consultation").min_age_years == 0


def test_the_desk_cannot_book_a_treatment_for_a_patient_under_the_minimum_age(clinic, minor):
    staff = client_for(staff_user(Role.PRESCRIBER, clinic))
    body = {"location": "midtown", "appointment_type": "iv-mood", "patient": minor.pk}

    response = staff.post(
        "/api/v1/appointments/",
        data=json.dumps({**body, "start": at(DAY).isoformat()}),
        content_type="application/json",
    )

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "not_eligible"
    assert "aged 18 or over on the day of the visit" in error["fields"]["patient"]
    # On their eighteenth birthday they may.
    birthday = staff.post(
        "/api/v1/appointments/",
        data=json.dumps({**body, "start": at(DAY + timedelta(days=1)).isoformat()}),
        content_type="application/json",
    )
    assert birthday.status_code == 201, birthday.content


def test_a_series_cannot_start_before_the_minimum_age(minor):
    plan = TreatmentPlan.objects.get(patient=minor, protocol__slug="mood-induction")
    days = [DAY + timedelta(days=n) for n in (0, 2, 5, 7, 9, 12)]

    with pytest.raises(NotEligible, match="aged 18 or over") as refused:
        series_book(plan=plan, starts=[at(day) for day in days], now=NOW)

    assert refused.value.field == "patient"


def test_a_consultation_has_no_age_floor_unless_the_clinic_sets_one(consultation, minor):
    appointment_book(appointment_type=consultation, patient=minor, start=at(DAY), now=NOW)


@pytest.mark.django_db(transaction=True)
def test_treatment_types_already_in_use_are_gated_when_migrated():
    before = [("scheduling", "0003_appointment_type_observation")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    site = old.get_model("scheduling", "Location").objects.create(
        slug="old", name="Old", public_name="Old", timezone="America/New_York"
    )
    for slug, kind in (("consult", "consultation"), ("drip", "infusion"), ("spray", "spravato")):
        old.get_model("scheduling", "AppointmentType").objects.create(
            location=site, slug=slug, name=slug, public_name=slug, kind=kind,
            duration_minutes=60, needs_approval=False,
        )  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    gates = {
        t.slug: (t.needs_approval, t.min_age_years)
        for t in AppointmentType.objects.filter(location__slug="old")
    }
    assert gates == {"consult": (False, 0), "drip": (True, 18), "spray": (True, 18)}

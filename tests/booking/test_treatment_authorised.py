"""Check-in re-checks the rules: "treatment authorised" is computed, never ticked.

A treatment that needs approval is checked in only while the patient's plan is in force on the
visit's day, their REMS enrolment is on file for a Spravato dose, and nobody has flagged a
contraindication since the approval. An unmet item blocks check-in on every path that checks in
(the API and the day board); only a prescriber may override it, with a reason. The
contraindications themselves are the clinic's list, answered at every decision; the six fields
a decision had before keep every answer when migrated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from booking.access.roles import Role
from booking.checkin import ChecklistIncomplete, appointment_check_in
from booking.defaults import DEFAULT_CONTRAINDICATIONS
from booking.eligibility import (
    contraindication_flag,
    contraindications_none,
    eligibility_decide,
)
from booking.models import (
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    Contraindication,
    ContraindicationAnswer,
    DecisionOutcome,
    Patient,
    Protocol,
    TreatmentPlan,
)
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
BOOKED_AT = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
DAY = date(2026, 6, 10)
START = datetime.combine(DAY, time(10), tzinfo=NEW_YORK)
ARRIVAL = datetime.combine(DAY, time(9, 30), tzinfo=NEW_YORK)


@pytest.fixture
def patient(make_approved_patient: Callable[..., Patient]) -> Patient:
    return make_approved_patient(treatment_consent_at=BOOKED_AT)


def ready_visit(clinic: Location, patient: Patient, slug: str = "iv-mood") -> Appointment:
    """A treatment booked for ``DAY`` with every ticked item of its checklist done."""
    kind = AppointmentType.objects.get(location=clinic, slug=slug)
    visit = appointment_book(appointment_type=kind, patient=patient, start=START, now=BOOKED_AT)
    Appointment.objects.filter(pk=visit.pk).update(
        fasting_acknowledged_at=BOOKED_AT,
        medications_reviewed_at=BOOKED_AT,
        escort_name="Sam",
        escort_phone="+12125550100",
    )
    return visit


@pytest.fixture
def arrival() -> Iterator[None]:
    with time_machine.travel(ARRIVAL, tick=False):
        yield


def check_in(client: Client, visit: Appointment, **body: str):
    return client.post(
        f"/api/v1/appointments/{visit.reference}/check-in/",
        data=json.dumps(body),
        content_type="application/json",
    )


def refused_for(response, words: str) -> None:
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "checklist_incomplete"
    assert "treatment authorised" in error["message"]
    assert words in error["message"], error["message"]


def test_a_contraindication_flagged_since_the_approval_stops_check_in_until_a_prescriber_decides(
    clinic, patient, arrival
):
    visit = ready_visit(clinic, patient)
    nurse, desk = staff_user(Role.NURSE, clinic), staff_user(Role.FRONT_DESK, clinic)
    pregnancy = Contraindication.objects.get(slug="pregnancy")

    with pytest.raises(PermissionDenied):  # the desk does not flag clinical facts
        contraindication_flag(patient=patient, contraindication=pregnancy, by=desk)
    contraindication_flag(patient=patient, contraindication=pregnancy, by=nurse, note="Told us")

    refused_for(check_in(client_for(nurse), visit), "pregnancy")
    # A nurse may override the ticked items, not this one.
    overridden = check_in(client_for(nurse), visit, override_reason="She says it is fine")
    assert overridden.status_code == 403, overridden.content
    assert Appointment.objects.get(pk=visit.pk).status == AppointmentStatus.BOOKED

    # The prescriber decides again, answering the flag: treatment goes on.
    prescriber = staff_user(Role.PRESCRIBER, clinic)
    plan = TreatmentPlan.objects.get(patient=patient, protocol__slug="mood-induction")
    eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.APPROVED_WITH_CONDITIONS,
        conditions="Obstetric team consulted",
        contraindications={**contraindications_none(), "pregnancy": True},
        protocol=plan.protocol,
        sessions_authorised=12,
        valid_until=date(2026, 12, 31),
        decided_by=prescriber,
        now=ARRIVAL,
    )
    assert check_in(client_for(nurse), visit).status_code == 200


def test_only_a_prescriber_checks_in_an_unauthorised_treatment_and_the_reason_is_kept(
    clinic, patient, arrival
):
    visit = ready_visit(clinic, patient)
    nurse = staff_user(Role.NURSE, clinic)
    prescriber = staff_user(Role.PRESCRIBER, clinic)
    contraindication_flag(
        patient=patient, contraindication=Contraindication.objects.get(slug="mania"), by=nurse
    )

    response = check_in(client_for(prescriber), visit, override_reason="Reviewed: hypomanic only")

    assert response.status_code == 200, response.content
    visit.refresh_from_db()
    assert visit.status == AppointmentStatus.CHECKED_IN
    assert visit.checklist_override_by == prescriber
    assert AppointmentEvent.objects.filter(
        appointment=visit, kind="checklist_override", detail="Reviewed: hypomanic only"
    ).exists()


def test_a_spravato_dose_waits_for_the_rems_enrolment(clinic, patient, arrival):
    visit = ready_visit(clinic, patient, slug="spravato")
    Patient.objects.filter(pk=patient.pk).update(rems_enrolled_at=None)

    refused_for(check_in(client_for(staff_user(Role.NURSE, clinic)), visit), "REMS")


def test_a_plan_that_ended_before_the_visit_stops_check_in(clinic, patient, arrival):
    visit = ready_visit(clinic, patient)
    TreatmentPlan.objects.filter(patient=patient).update(valid_until=date(2026, 6, 9))

    refused_for(
        check_in(client_for(staff_user(Role.NURSE, clinic)), visit), "expired on 2026-06-09"
    )


def test_a_decline_since_the_approval_stops_check_in_of_a_visit_already_under_way(clinic, patient):
    # A visit checked in after a decline would be the hole: decline holds future visits, and a
    # visit of today that began before the decline still meets the check.
    visit = ready_visit(clinic, patient)
    prescriber = staff_user(Role.PRESCRIBER, clinic)
    with time_machine.travel(START, tick=False):  # the decline lands as the visit starts
        eligibility_decide(
            patient=patient,
            outcome=DecisionOutcome.DECLINED,
            contraindications=contraindications_none(),
            decided_by=prescriber,
            now=START,
        )
        with pytest.raises(ChecklistIncomplete) as refused:
            appointment_check_in(appointment=visit, by=staff_user(Role.NURSE, clinic))
    assert "declined on 2026-06-10" in str(refused.value)


def test_the_board_shows_why_a_treatment_is_not_authorised_and_flags_visits_on_hold(
    clinic, patient, arrival
):
    visit = ready_visit(clinic, patient)
    nurse = staff_user(Role.NURSE, clinic)
    contraindication_flag(
        patient=patient, contraindication=Contraindication.objects.get(slug="arrhythmia"), by=nurse
    )
    other = staff_user(Role.PRESCRIBER, clinic)
    held = ready_visit(clinic, _approved_other(clinic, other))
    Appointment.objects.filter(pk=held.pk).update(status=AppointmentStatus.ON_HOLD)

    page = client_for(nurse).get(f"/staff/board/?location={clinic.slug}&date={DAY}")

    html = page.content.decode()
    row = html[html.index(f'id="visit-{visit.reference}"') :]
    row = row[: row.index("</tr>")]
    assert "Treatment authorised: missing" in row
    assert "Flagged since the approval (2026-06-10): arrhythmia." in row
    assert "Check in anyway" not in row  # a nurse cannot override this item
    held_row = html[html.index(f'id="visit-{held.reference}"') :]
    held_row = held_row[: held_row.index("</tr>")]
    assert "call the patient" in held_row
    assert "Check in" not in held_row


def _approved_other(clinic: Location, prescriber: User) -> Patient:
    patient = Patient.objects.create(
        first_name="Held",
        last_name="Person",
        email="held@example.com",
        phone="+12125550199",
        date_of_birth=date(1980, 1, 1),
        treatment_consent_at=BOOKED_AT,
    )
    eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.APPROVED,
        contraindications=contraindications_none(),
        protocol=Protocol.objects.get(appointment_type__location=clinic, slug="mood-induction"),
        sessions_authorised=6,
        valid_until=date(2026, 12, 31),
        decided_by=prescriber,
        now=datetime(2026, 1, 1, tzinfo=NEW_YORK),
    )
    return patient


def test_a_clinic_retires_a_contraindication_and_adds_its_own(make_patient, clinic):
    prescriber = staff_user(Role.PRESCRIBER, clinic)
    Contraindication.objects.filter(slug="breastfeeding").update(is_active=False)
    Contraindication.objects.create(slug="glaucoma", label="Glaucoma", position=99)
    patient = make_patient()

    decision = eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.DECLINED,
        contraindications={**contraindications_none(), "glaucoma": True},
        decided_by=prescriber,
        now=BOOKED_AT,
    )

    answered = dict(decision.answers.values_list("contraindication__slug", "present"))
    assert "breastfeeding" not in answered
    assert answered["glaucoma"] is True
    assert len(answered) == len(DEFAULT_CONTRAINDICATIONS)


@pytest.mark.django_db(transaction=True)
def test_the_six_contraindication_fields_keep_every_answer_when_migrated():
    before = [("booking", "0006_waitlist_offer_channels")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("auth", "User").objects.create(username="dr-old")
    patient_model = old.get_model("booking", "Patient")
    decision_model = old.get_model("booking", "EligibilityDecision")
    fields = [slug for slug, _ in DEFAULT_CONTRAINDICATIONS[:6]]
    written = {}
    for n in range(8):
        patient = patient_model.objects.create(
            first_name=f"P{n}",
            last_name="Old",
            email=f"p{n}@example.com",
            phone="+12125550100",
            date_of_birth=date(1980, 1, 1),
        )
        # Every pattern of answers differs: answer k is present when bit k of n is set.
        answers = {name: bool((n >> k) & 1) for k, name in enumerate(fields)}
        decided_at = datetime(2026, 3, 1 + n, 15, tzinfo=NEW_YORK)
        decision = decision_model.objects.create(
            patient=patient,
            outcome="declined" if any(answers.values()) else "approved",
            decided_by=user,
            decided_at=decided_at,
            **answers,
        )
        written[decision.pk] = (patient.pk, decided_at, answers)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert list(Contraindication.objects.values_list("slug", flat=True)) == [
        slug for slug, _ in DEFAULT_CONTRAINDICATIONS
    ]
    for decision_pk, (patient_pk, decided_at, answers) in written.items():
        kept = ContraindicationAnswer.objects.filter(decision_id=decision_pk)
        assert {a.contraindication.slug: a.present for a in kept} == answers
        assert {(a.patient_id, a.recorded_by.username, a.recorded_at) for a in kept} == {
            (patient_pk, "dr-old", decided_at)
        }

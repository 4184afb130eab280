"""Eligibility decisions, treatment plans and the approval gate (issue 5; DESIGN §1, §2).

The gate tests that go through ``appointment_book`` need the booking service to ask
``plan_in_force`` for every type that needs approval.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from time import sleep
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.db import connection

from booking import eligibility
from booking.defaults import DEFAULT_CONTRAINDICATIONS, protocols_install_defaults
from booking.eligibility import (
    DecisionNotAllowed,
    booster_check,
    eligibility_decide,
    plan_in_force,
    plan_revoke,
    rems_enrolment_record,
)
from booking.errors import BookingError, NotEligible
from booking.models import (
    Allocation,
    Appointment,
    AppointmentStatus,
    DecisionOutcome,
    EligibilityDecision,
    Patient,
    PlanStatus,
    Protocol,
    TreatmentPlan,
)
from booking.services import appointment_book, appointment_cancel
from scheduling.defaults import appointment_types_install_defaults
from scheduling.models import AppointmentType, Location

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
ASKED = tuple(slug for slug, _ in DEFAULT_CONTRAINDICATIONS)
NONE_PRESENT = dict.fromkeys(ASKED, False)


def at(day: int, hour: int = 10, month: int = 6) -> datetime:
    """A local time in the clinic's zone, June 2026 unless told."""
    return datetime.combine(date(2026, month, day), time(hour), tzinfo=NEW_YORK)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def protocols(clinic: Location) -> dict[str, Protocol]:
    return {p.slug: p for p in protocols_install_defaults(location=clinic)}


@pytest.fixture
def prescriber(db: None) -> User:
    user = User.objects.create_user("dr.one", password="unused-in-tests")
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="booking", codename="add_eligibilitydecision"
        )
    )
    return user


@pytest.fixture
def front_desk(db: None) -> User:
    return User.objects.create_user("desk", password="unused-in-tests")


@pytest.fixture
def types(clinic: Location) -> dict[str, AppointmentType]:
    return {
        t.slug: t
        for t in AppointmentType.objects.select_related("location").filter(location=clinic)
    }


@pytest.fixture
def decide(prescriber: User, protocols: dict[str, Protocol]) -> Callable[..., EligibilityDecision]:
    """A prescriber's decision; by default a plain approval of the mood series until June 30."""

    def make(patient: Patient, **changes: Any) -> EligibilityDecision:
        values: dict[str, Any] = {
            "patient": patient,
            "outcome": DecisionOutcome.APPROVED,
            "contraindications": dict(NONE_PRESENT),
            "decided_by": prescriber,
            "now": NOW,
        }
        if changes.get("outcome") != DecisionOutcome.DECLINED:
            values.update(
                protocol=protocols["mood-induction"],
                sessions_authorised=6,
                valid_until=date(2026, 6, 30),
            )
        if isinstance(changes.get("protocol"), str):
            changes["protocol"] = protocols[changes["protocol"]]
        values.update(changes)
        return eligibility_decide(**values)

    return make


def given_session(patient: Patient, appointment_type: AppointmentType, start: datetime) -> None:
    """A session that already took place (history from before the gate), written directly."""
    Appointment.objects.create(
        location=appointment_type.location,
        appointment_type=appointment_type,
        patient=patient,
        start=start,
        end=start + timedelta(minutes=appointment_type.duration_minutes),
        status=AppointmentStatus.DISCHARGED,
    )


# --- Recording a decision ----------------------------------------------------------------------


def test_an_approval_records_who_decided_when_and_creates_the_plan(
    decide, make_patient, prescriber, protocols
):
    patient = make_patient()

    decision = decide(patient, sessions_authorised=6, valid_until=date(2026, 6, 30))

    decision.refresh_from_db()
    assert decision.decided_by == prescriber
    assert decision.decided_at == NOW
    assert decision.outcome == DecisionOutcome.APPROVED
    answers = {a.contraindication.slug: a for a in decision.answers.all()}
    assert set(answers) == set(ASKED)
    assert not any(a.present for a in answers.values())
    assert {(a.recorded_by, a.recorded_at, a.patient) for a in answers.values()} == {
        (prescriber, NOW, patient)
    }
    plan = TreatmentPlan.objects.get(decision=decision)
    assert (plan.patient, plan.protocol, plan.sessions_authorised, plan.valid_until) == (
        patient,
        protocols["mood-induction"],
        6,
        date(2026, 6, 30),
    )
    assert plan.revoked_at is None


def test_a_decline_is_recorded_with_the_contraindications_and_authorises_nothing(
    decide, make_patient, prescriber
):
    patient = make_patient()

    decision = decide(
        patient,
        outcome=DecisionOutcome.DECLINED,
        contraindications={**NONE_PRESENT, "psychosis_history": True},
    )

    decision.refresh_from_db()
    assert decision.outcome == DecisionOutcome.DECLINED
    present = decision.answers.filter(present=True).values_list("contraindication__slug")
    assert list(present) == [("psychosis_history",)]
    assert decision.decided_by == prescriber
    assert not TreatmentPlan.objects.exists()


def test_it_refuses_a_decision_from_staff_without_the_prescriber_permission(
    decide, make_patient, front_desk
):
    patient = make_patient()

    with pytest.raises(DecisionNotAllowed) as refused:
        decide(patient, decided_by=front_desk)

    assert refused.value.status == 403
    assert not EligibilityDecision.objects.exists()
    assert not TreatmentPlan.objects.exists()


def test_it_refuses_a_decision_from_a_deactivated_prescriber(decide, make_patient, prescriber):
    prescriber.is_active = False
    prescriber.save()

    with pytest.raises(DecisionNotAllowed):
        decide(make_patient(), decided_by=prescriber)


@pytest.mark.parametrize("missing", ["protocol", "sessions_authorised", "valid_until"])
def test_an_approval_needs_a_protocol_a_number_of_sessions_and_an_end_date(
    decide, make_patient, missing
):
    with pytest.raises(BookingError) as refused:
        decide(make_patient(), **{missing: None})

    assert refused.value.field == missing
    assert not EligibilityDecision.objects.exists()


def test_a_decline_carries_no_plan_terms(decide, make_patient):
    with pytest.raises(BookingError) as refused:
        decide(make_patient(), outcome=DecisionOutcome.DECLINED, sessions_authorised=6)

    assert refused.value.field == "sessions_authorised"


def test_an_approval_with_conditions_must_say_which(decide, make_patient):
    with pytest.raises(BookingError) as refused:
        decide(make_patient(), outcome=DecisionOutcome.APPROVED_WITH_CONDITIONS, conditions=" ")

    assert refused.value.field == "conditions"


def test_a_present_contraindication_needs_an_approval_with_conditions(decide, make_patient):
    patient = make_patient()
    flagged = {**NONE_PRESENT, "uncontrolled_hypertension": True}

    with pytest.raises(BookingError) as refused:
        decide(patient, contraindications=flagged)
    decision = decide(
        patient,
        contraindications=flagged,
        outcome=DecisionOutcome.APPROVED_WITH_CONDITIONS,
        conditions="Blood pressure under 140/90 on arrival.",
    )

    assert refused.value.field == "outcome"
    assert decision.plan.conditions == "Blood pressure under 140/90 on arrival."


def test_every_contraindication_must_be_answered(decide, make_patient):
    answers = dict(NONE_PRESENT)
    del answers["pregnancy"]

    with pytest.raises(BookingError) as refused:
        decide(make_patient(), contraindications=answers)

    assert refused.value.field == "pregnancy"


def test_it_refuses_a_contraindication_it_does_not_know(decide, make_patient):
    with pytest.raises(BookingError) as refused:
        decide(make_patient(), contraindications={**NONE_PRESENT, "gout": False})

    assert refused.value.field == "gout"


def test_it_refuses_an_approval_that_ended_yesterday(decide, make_patient):
    with pytest.raises(BookingError) as refused:
        decide(make_patient(), valid_until=date(2026, 5, 31))

    assert refused.value.field == "valid_until"


def test_it_refuses_another_patients_consultation(decide, make_patient, consultation):
    patient, other = make_patient(), make_patient()
    visit = appointment_book(appointment_type=consultation, patient=other, start=at(2), now=NOW)

    with pytest.raises(BookingError) as refused:
        decide(patient, consultation=visit)

    assert refused.value.field == "consultation"


def test_it_links_the_decision_to_the_consultation_it_followed(decide, make_patient, consultation):
    patient = make_patient()
    visit = appointment_book(appointment_type=consultation, patient=patient, start=at(2), now=NOW)

    decision = decide(patient, consultation=visit)

    assert EligibilityDecision.objects.get(pk=decision.pk).consultation == visit


def test_a_new_approval_replaces_the_plan_in_force_for_the_same_type(
    decide, make_patient, infusion
):
    patient = make_patient()
    first = decide(patient, sessions_authorised=6).plan
    pain = decide(patient, protocol="pain-series", sessions_authorised=5).plan

    renewed = decide(patient, sessions_authorised=3, now=NOW + timedelta(days=1)).plan

    first.refresh_from_db()
    pain.refresh_from_db()
    assert first.revoked_at == NOW + timedelta(days=1)
    assert pain.revoked_at is None
    assert plan_in_force(patient=patient, appointment_type=infusion, now=NOW) == renewed


def test_a_decline_revokes_every_plan_in_force(decide, make_patient):
    patient = make_patient()
    mood = decide(patient).plan
    pain = decide(patient, protocol="pain-series", sessions_authorised=5).plan

    decide(patient, outcome=DecisionOutcome.DECLINED)

    assert TreatmentPlan.objects.filter(pk__in=[mood.pk, pain.pk], revoked_at=NOW).count() == 2


# --- The gate: plan_in_force -------------------------------------------------------------------


def test_a_patient_without_a_decision_is_not_eligible(make_patient, infusion):
    with pytest.raises(NotEligible) as refused:
        plan_in_force(patient=make_patient(), appointment_type=infusion, now=NOW)

    assert refused.value.status == 422
    assert refused.value.code == "not_eligible"
    assert "approval" in refused.value.message


def test_a_declined_patient_is_not_eligible(decide, make_patient, infusion):
    patient = make_patient()
    decide(patient, outcome=DecisionOutcome.DECLINED)

    with pytest.raises(NotEligible) as refused:
        plan_in_force(patient=patient, appointment_type=infusion, now=NOW)

    assert "declined" in refused.value.message


def test_a_decline_after_an_approval_stops_further_bookings(decide, make_patient, infusion):
    patient = make_patient()
    decide(patient)
    decide(patient, outcome=DecisionOutcome.DECLINED, now=NOW + timedelta(hours=1))

    with pytest.raises(NotEligible) as refused:
        plan_in_force(patient=patient, appointment_type=infusion, now=NOW + timedelta(hours=2))

    assert "declined" in refused.value.message


def test_an_approval_after_a_decline_makes_the_patient_eligible(decide, make_patient, infusion):
    patient = make_patient()
    decide(patient, outcome=DecisionOutcome.DECLINED)
    later = NOW + timedelta(days=30)
    with time_machine.travel(later, tick=False):
        approval = decide(patient, valid_until=date(2026, 8, 31), now=later)

        assert plan_in_force(patient=patient, appointment_type=infusion, now=later) == (
            approval.plan
        )


def test_an_approved_patient_is_eligible(decide, make_patient, infusion):
    patient = make_patient()
    plan = decide(patient).plan

    assert plan_in_force(patient=patient, appointment_type=infusion, now=NOW) == plan


def test_an_approval_with_conditions_makes_the_patient_eligible(decide, make_patient, infusion):
    patient = make_patient()
    plan = decide(
        patient,
        outcome=DecisionOutcome.APPROVED_WITH_CONDITIONS,
        conditions="Escort stays in the building.",
    ).plan

    assert plan_in_force(patient=patient, appointment_type=infusion, now=NOW) == plan


def test_an_expired_approval_is_not_eligible(decide, make_patient, infusion):
    patient = make_patient()
    decide(patient, valid_until=date(2026, 6, 30))
    july_first = datetime.fromisoformat("2026-07-01T12:00:00+00:00")

    with pytest.raises(NotEligible) as refused:
        plan_in_force(patient=patient, appointment_type=infusion, now=july_first)

    assert "expired on 2026-06-30" in refused.value.message


def test_an_approval_holds_through_its_last_day_in_clinic_time(decide, make_patient, infusion):
    patient = make_patient()
    plan = decide(patient, valid_until=date(2026, 6, 30)).plan
    # 21:30 on June 30 in New York is already July 1 in UTC.
    evening = datetime.fromisoformat("2026-06-30T21:30:00-04:00")

    assert plan_in_force(patient=patient, appointment_type=infusion, now=evening) == plan
    assert plan.status(now=evening) == PlanStatus.IN_FORCE


def test_a_visit_after_the_approval_ends_is_not_covered(decide, make_patient, infusion):
    patient = make_patient()
    decide(patient, valid_until=date(2026, 6, 10))

    assert plan_in_force(patient=patient, appointment_type=infusion, now=NOW, start=at(10, 17))
    with pytest.raises(NotEligible) as refused:
        plan_in_force(patient=patient, appointment_type=infusion, now=NOW, start=at(11, 8))

    assert refused.value.field == "start"


def test_a_revoked_plan_is_not_eligible(decide, make_patient, infusion, prescriber):
    patient = make_patient()
    plan = decide(patient).plan

    plan_revoke(plan=plan, revoked_by=prescriber, now=NOW)

    with pytest.raises(NotEligible) as refused:
        plan_in_force(patient=patient, appointment_type=infusion, now=NOW)
    assert "withdrawn" in refused.value.message
    assert plan.status(now=NOW) == PlanStatus.REVOKED


def test_revoking_twice_keeps_the_first_time(decide, make_patient, prescriber):
    plan = decide(make_patient()).plan
    plan_revoke(plan=plan, revoked_by=prescriber, now=NOW)

    plan_revoke(plan=plan, revoked_by=prescriber, now=NOW + timedelta(hours=1))

    plan.refresh_from_db()
    assert plan.revoked_at == NOW


def test_only_a_prescriber_may_revoke_a_plan(decide, make_patient, front_desk):
    plan = decide(make_patient()).plan

    with pytest.raises(DecisionNotAllowed):
        plan_revoke(plan=plan, revoked_by=front_desk, now=NOW)

    plan.refresh_from_db()
    assert plan.revoked_at is None


def test_a_plan_covers_only_its_own_appointment_type(decide, make_patient, types):
    patient = make_patient()
    decide(patient, protocol="pain-series", sessions_authorised=5)

    with pytest.raises(NotEligible) as refused:
        plan_in_force(patient=patient, appointment_type=types["iv-mood"], now=NOW)

    assert refused.value.field == "appointment_type"


def test_a_patient_whose_sessions_are_used_up_is_not_eligible(decide, make_patient, infusion):
    patient = make_patient()
    decide(patient, sessions_authorised=2)
    appointment_book(appointment_type=infusion, patient=patient, start=at(2), now=NOW)
    appointment_book(appointment_type=infusion, patient=patient, start=at(4), now=NOW)

    with pytest.raises(NotEligible) as refused:
        plan_in_force(patient=patient, appointment_type=infusion, now=NOW)

    assert "All 2 sessions" in refused.value.message


def test_a_cancelled_session_gives_its_authorisation_back(decide, make_patient, infusion):
    patient = make_patient()
    plan = decide(patient, sessions_authorised=2).plan
    appointment_book(appointment_type=infusion, patient=patient, start=at(2), now=NOW)
    second = appointment_book(appointment_type=infusion, patient=patient, start=at(4), now=NOW)

    appointment_cancel(appointment=second, now=NOW)

    assert plan_in_force(patient=patient, appointment_type=infusion, now=NOW) == plan


def test_sessions_given_before_the_approval_do_not_count_against_it(decide, make_patient, infusion):
    patient = make_patient()
    given_session(patient, infusion, at(1, 10, month=5))
    plan = decide(patient, sessions_authorised=1).plan

    assert plan_in_force(patient=patient, appointment_type=infusion, now=NOW) == plan


# --- Spravato: REMS enrolment before a first dose -----------------------------------------------


def test_a_first_spravato_dose_needs_rems_enrolment(decide, make_patient, types):
    patient = make_patient()
    decide(patient, protocol="spravato-induction", sessions_authorised=8)

    with pytest.raises(NotEligible) as refused:
        plan_in_force(patient=patient, appointment_type=types["spravato"], now=NOW)

    assert "REMS" in refused.value.message


def test_recording_rems_enrolment_allows_a_first_dose(decide, make_patient, types):
    patient = make_patient()
    plan = decide(patient, protocol="spravato-induction", sessions_authorised=8).plan

    rems_enrolment_record(patient=patient, rems_patient_id=" RP-1234567 ", now=NOW)

    patient.refresh_from_db()
    assert (patient.rems_patient_id, patient.rems_enrolled_at) == ("RP-1234567", NOW)
    assert plan_in_force(patient=patient, appointment_type=types["spravato"], now=NOW) == plan


def test_rems_is_not_asked_again_after_a_first_dose(decide, make_patient, types):
    patient = make_patient()
    given_session(patient, types["spravato"], at(28, month=5))
    plan = decide(patient, protocol="spravato-induction", sessions_authorised=8).plan

    assert plan_in_force(patient=patient, appointment_type=types["spravato"], now=NOW) == plan


def test_other_treatments_do_not_need_rems(decide, make_patient, infusion):
    patient = make_patient()
    plan = decide(patient).plan

    assert patient.rems_enrolled_at is None
    assert plan_in_force(patient=patient, appointment_type=infusion, now=NOW) == plan


def test_a_rems_enrolment_needs_an_id(make_patient):
    with pytest.raises(BookingError) as refused:
        rems_enrolment_record(patient=make_patient(), rems_patient_id="  ", now=NOW)

    assert refused.value.field == "rems_patient_id"


# --- Boosters ----------------------------------------------------------------------------------


@pytest.fixture
def boosted(decide, make_patient, infusion) -> tuple[Patient, TreatmentPlan]:
    """A patient whose last infusion is on the afternoon of June 2, with a booster approved."""
    patient = make_patient()
    decide(patient, sessions_authorised=1)
    appointment_book(appointment_type=infusion, patient=patient, start=at(2, 16), now=NOW)
    booster = decide(
        patient, protocol="booster", sessions_authorised=1, valid_until=date(2026, 7, 31)
    ).plan
    return patient, booster


def test_a_booster_keeps_fourteen_days_from_the_last_infusion(boosted):
    patient, plan = boosted

    with pytest.raises(NotEligible) as refused:
        booster_check(patient=patient, plan=plan, start=at(15, 8), now=NOW)

    assert refused.value.field == "start"
    assert "14 days" in refused.value.message
    # Calendar days in clinic time: the morning of the 16th is fourteen days after the
    # afternoon of the 2nd, though fewer than 14 x 24 hours.
    assert booster_check(patient=patient, plan=plan, start=at(16, 8), now=NOW) == plan


def test_the_gate_applies_the_booster_interval_to_a_booking(boosted, types):
    patient, plan = boosted

    with pytest.raises(NotEligible):
        plan_in_force(patient=patient, appointment_type=types["booster"], now=NOW, start=at(15))
    assert (
        plan_in_force(patient=patient, appointment_type=types["booster"], now=NOW, start=at(16))
        == plan
    )


def test_a_booster_keeps_its_distance_from_a_later_booked_session(decide, make_patient, types):
    patient = make_patient()
    decide(patient, sessions_authorised=1)
    appointment_book(appointment_type=types["iv-mood"], patient=patient, start=at(20), now=NOW)
    plan = decide(patient, protocol="booster", sessions_authorised=1).plan

    with pytest.raises(NotEligible):
        booster_check(patient=patient, plan=plan, start=at(10), now=NOW)
    assert booster_check(patient=patient, plan=plan, start=at(6), now=NOW) == plan


def test_a_booster_under_an_expired_plan_needs_a_new_approval(boosted):
    patient, plan = boosted
    august = datetime.fromisoformat("2026-08-03T12:00:00+00:00")

    with pytest.raises(NotEligible) as refused:
        booster_check(patient=patient, plan=plan, start=august + timedelta(days=1), now=august)

    assert "a prescriber must approve treatment again" in refused.value.message


def test_a_booster_plan_allows_only_its_sessions(boosted, types):
    patient, plan = boosted
    appointment_book(appointment_type=types["booster"], patient=patient, start=at(17), now=NOW)

    with pytest.raises(NotEligible) as refused:
        booster_check(patient=patient, plan=plan, start=at(6, month=7), now=NOW)

    assert "All 1 sessions" in refused.value.message


def test_a_booster_check_refuses_another_patients_plan(boosted, make_patient):
    _, plan = boosted

    with pytest.raises(NotEligible):
        booster_check(patient=make_patient(), plan=plan, start=at(20), now=NOW)


# --- The gate in the booking service (every page and API book through it) -----------------------


@pytest.mark.parametrize("history", ["none", "declined", "expired"])
def test_appointment_book_refuses_an_infusion_without_an_approval_in_force(
    decide, make_patient, infusion, history
):
    patient = make_patient()
    if history == "declined":
        decide(patient, outcome=DecisionOutcome.DECLINED)
    if history == "expired":
        decide(patient, valid_until=date(2026, 6, 1))
    tomorrow = NOW + timedelta(days=1)

    with time_machine.travel(tomorrow, tick=False), pytest.raises(NotEligible):
        appointment_book(appointment_type=infusion, patient=patient, start=at(3), now=tomorrow)

    assert not Appointment.objects.exists()
    assert not Allocation.objects.exists()


def test_appointment_book_books_an_approved_patient(decide, make_patient, infusion):
    patient = make_patient()
    decide(patient)

    appointment = appointment_book(appointment_type=infusion, patient=patient, start=at(2), now=NOW)

    assert appointment.status == AppointmentStatus.BOOKED


def test_appointment_book_refuses_a_session_beyond_the_authorised_number(
    decide, make_patient, infusion
):
    patient = make_patient()
    decide(patient, sessions_authorised=1)
    appointment_book(appointment_type=infusion, patient=patient, start=at(2), now=NOW)

    with pytest.raises(NotEligible):
        appointment_book(appointment_type=infusion, patient=patient, start=at(4), now=NOW)

    assert Appointment.objects.count() == 1


def test_appointment_book_refuses_a_first_spravato_dose_without_rems(decide, make_patient, types):
    patient = make_patient()
    decide(patient, protocol="spravato-induction", sessions_authorised=8)

    with pytest.raises(NotEligible):
        appointment_book(appointment_type=types["spravato"], patient=patient, start=at(2), now=NOW)
    rems_enrolment_record(patient=patient, rems_patient_id="RP-1", now=NOW)
    appointment_book(appointment_type=types["spravato"], patient=patient, start=at(2), now=NOW)


def test_appointment_book_needs_no_approval_for_a_consultation(make_patient, consultation):
    appointment = appointment_book(
        appointment_type=consultation, patient=make_patient(), start=at(2), now=NOW
    )

    assert appointment.status == AppointmentStatus.BOOKED


# --- Default protocols -------------------------------------------------------------------------


def test_the_default_protocols_follow_the_clinic_defaults(protocols):
    shape = {
        slug: (
            p.appointment_type.slug,
            p.sessions,
            p.min_gap_days,
            p.max_gap_days,
            p.window_days,
            p.allowed_weekdays,
            p.same_time_preference,
            p.review_after_session,
            p.min_days_since_last,
        )
        for slug, p in protocols.items()
    }

    assert shape == {
        "mood-induction": ("iv-mood", 6, 2, 7, 21, "012345", True, 2, 0),
        "pain-series": ("iv-pain", 5, 1, 1, 5, "0123456", True, None, 0),
        "spravato-induction": ("spravato", 8, 2, 5, 28, "012345", True, None, 0),
        "booster": ("booster", 1, 1, 1, 1, "012345", True, None, 14),
    }


def test_installing_the_defaults_again_keeps_a_clinics_edits(clinic, protocols):
    Protocol.objects.filter(slug="mood-induction").update(sessions=8)

    again = protocols_install_defaults(location=clinic)

    assert len(again) == 4
    assert Protocol.objects.count() == 4
    assert Protocol.objects.get(slug="mood-induction").sessions == 8


def test_each_location_gets_its_own_protocols(clinic, protocols, make_location):
    other = make_location()
    appointment_types_install_defaults(location=other)

    installed = protocols_install_defaults(location=other)

    assert {p.appointment_type.location for p in installed} == {other}
    assert Protocol.objects.count() == 8


# --- Admin -------------------------------------------------------------------------------------


def test_the_admin_shows_decisions_and_records_none(admin_client, make_patient, protocols):
    form = {"patient": make_patient().pk, "outcome": DecisionOutcome.DECLINED}

    response = admin_client.post("/admin/booking/eligibilitydecision/add/", form)

    assert response.status_code == 403
    assert not EligibilityDecision.objects.exists()


def test_a_recorded_decision_is_read_only_in_the_admin(admin_client, decide, make_patient):
    decision = decide(make_patient())

    page = admin_client.get(f"/admin/booking/eligibilitydecision/{decision.pk}/change/")
    posted = admin_client.post(
        f"/admin/booking/eligibilitydecision/{decision.pk}/change/",
        {"outcome": DecisionOutcome.DECLINED},
    )

    assert page.status_code == 200
    assert b'name="outcome"' not in page.content
    assert posted.status_code == 403
    decision.refresh_from_db()
    assert decision.outcome == DecisionOutcome.APPROVED


def test_the_admin_revokes_plans(admin_client, decide, make_patient):
    plan = decide(make_patient()).plan

    response = admin_client.post(
        "/admin/booking/treatmentplan/",
        {"action": "revoke", "_selected_action": [plan.pk]},
    )

    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.revoked_at == NOW


# --- Concurrency: the last authorised session --------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_bookings_never_exceed_the_authorised_sessions(
    decide, make_patient, infusion, monkeypatch
):
    patient = make_patient()
    decide(patient, sessions_authorised=3)
    real_check = eligibility._check_plan

    def slow_check(*args: Any, **kwargs: Any) -> None:
        # Every booking reads the count before any of them writes, unless the gate runs under
        # the patient's row lock as it must.
        real_check(*args, **kwargs)
        sleep(0.05)

    monkeypatch.setattr(eligibility, "_check_plan", slow_check)
    workers = 6
    barrier = threading.Barrier(workers, timeout=120)
    outcomes: list[str] = []

    def book(day: int) -> None:
        try:
            barrier.wait()
            appointment_book(appointment_type=infusion, patient=patient, start=at(day), now=NOW)
            outcomes.append("booked")
        except NotEligible:
            outcomes.append("not eligible")
        finally:
            connection.close()

    # Two days apart: the protocol's spacing (a free day between treatments) never refuses one,
    # whatever order they commit in, so only the authorised count does.
    threads = [threading.Thread(target=book, args=(2 + 2 * n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(outcomes) == {"booked": 3, "not eligible": 3}
    assert Appointment.objects.filter(patient=patient).count() == 3

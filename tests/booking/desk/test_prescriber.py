"""The prescriber's pages under /staff/prescriber/: the queue of consultations awaiting a decision,
the decision form, and one patient's decisions, plans and series with the prescriber's steps."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils.html import strip_tags

from booking.access.roles import Role
from booking.defaults import protocols_install_defaults
from booking.eligibility import (
    contraindication_flag,
    contraindications_asked,
    contraindications_none,
    eligibility_decide,
)
from booking.models import (
    Appointment,
    AppointmentStatus,
    AuditAction,
    AuditEvent,
    Contraindication,
    ContraindicationAnswer,
    DecisionOutcome,
    EligibilityDecision,
    Intake,
    Patient,
    Protocol,
    Series,
    SeriesStatus,
    TreatmentPlan,
)
from booking.series.services import series_book
from booking.services import appointment_book, appointment_cancel
from scheduling.defaults import appointment_types_install_defaults
from scheduling.models import AppointmentType, Location, ResourceKind, StaffRole
from tests.staff_helpers import client_for, staff_user

S = AppointmentStatus
NEW_YORK = ZoneInfo("America/New_York")
# Wednesday 9 December 2026, 09:00 in New York (EST).
NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)
BOOKED_AT = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
QUEUE = "/staff/prescriber/"


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK).astimezone(UTC)


@pytest.fixture
def protocols(clinic: Location) -> dict[str, Protocol]:
    return {p.slug: p for p in protocols_install_defaults(location=clinic)}


@pytest.fixture
def prescriber(clinic: Location) -> User:
    return staff_user(Role.PRESCRIBER, clinic, username="dr.one")


@pytest.fixture
def dr(prescriber: User) -> Client:
    return client_for(prescriber)


@pytest.fixture
def consulted(
    make_patient: Callable[..., Patient], consultation: AppointmentType
) -> Callable[..., Appointment]:
    """A consultation of a new patient at ``start`` (booked before it), with an intake."""

    def make(start: datetime, first_name: str = "Ada", **fields: object) -> Appointment:
        patient = make_patient(first_name=first_name, last_name="Lovelace", **fields)
        visit = appointment_book(
            appointment_type=consultation,
            patient=patient,
            start=start,
            now=min(BOOKED_AT, start - timedelta(days=1)),
        )
        Intake.objects.create(
            appointment=visit,
            conditions=["Depression"],
            medications="Sertraline 50 mg",
            prior_treatments="TMS in 2024",
            screening=[{"question": "Are you pregnant?", "answer": True}],
        )
        return visit

    return make


@pytest.fixture
def seen(consulted: Callable[..., Appointment]) -> Appointment:
    """A consultation two days ago, still marked booked: it happened, and awaits a decision."""
    return consulted(at(NOW.date() - timedelta(days=2)))


def decide_url(consultation: Appointment) -> str:
    return reverse("staff-prescriber-decide", args=[consultation.reference])


def patient_url(patient: Patient) -> str:
    return reverse("staff-prescriber-patient", args=[patient.pk])


def approval(protocol: Protocol, **changes: str) -> dict[str, str]:
    """The decision form filled in: every contraindication "no", an approval of ``protocol``."""
    form = {f"answer_{item.slug}": "no" for item in contraindications_asked()}
    form.update(
        outcome=DecisionOutcome.APPROVED,
        protocol=str(protocol.pk),
        sessions_authorised="6",
        valid_until="2027-01-31",
        conditions="",
    )
    form.update(changes)
    return form


def approve(patient: Patient, protocol: Protocol, by: User, **terms: object) -> TreatmentPlan:
    values: dict[str, object] = {
        "sessions_authorised": 6,
        "valid_until": date(2027, 1, 31),
        "now": NOW - timedelta(days=1),
    }
    values.update(terms)
    decision = eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.APPROVED,
        contraindications=contraindications_none(),
        protocol=protocol,
        decided_by=by,
        **values,  # type: ignore[arg-type]
    )
    return decision.plan


MONDAY = date(2026, 12, 14)
# Mon-Wed-Fri, two weeks: the mood induction series' cadence.
SERIES_DAYS = [MONDAY + timedelta(days=n) for n in (0, 2, 4, 7, 9, 11)]


@pytest.fixture
def series(seen: Appointment, protocols: dict[str, Protocol], prescriber: User) -> Series:
    plan = approve(seen.patient, protocols["mood-induction"], prescriber)
    return series_book(plan=plan, starts=[at(day) for day in SERIES_DAYS], now=NOW)


@pytest.fixture
def elsewhere(make_location, make_resource) -> Location:
    """A second location, with its own consultation room and prescribers."""
    location = make_location(slug="uptown", name="Uptown Clinic")
    appointment_types_install_defaults(location=location)
    make_resource(location, ResourceKind.ROOM)
    make_resource(location, ResourceKind.CHAIR)
    make_resource(location, ResourceKind.STAFF, role=StaffRole.PRESCRIBER)
    make_resource(location, ResourceKind.STAFF, role=StaffRole.NURSE, capacity=3)
    return location


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return html.unescape(response.content.decode())


def words(content: str) -> str:
    """The text a reader sees, tags dropped and spaces collapsed."""
    return " ".join(strip_tags(content).split())


def shown_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- Who may open the pages -------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.NURSE, Role.ADMIN])
def test_other_staff_get_a_403_on_every_prescriber_page(
    role: str, clinic: Location, series: Series
) -> None:
    client = client_for(staff_user(role, clinic))
    patient = series.plan.patient
    consultation = Appointment.objects.get(patient=patient, series__isnull=True)

    for url in (
        QUEUE,
        decide_url(consultation),
        patient_url(patient),
        reverse("staff-prescriber-revoke", args=[series.plan_id]),
    ):
        assert client.get(url).status_code == 403, url
    for url in (
        decide_url(consultation),
        reverse("staff-prescriber-rems", args=[patient.pk]),
        reverse("staff-prescriber-revoke", args=[series.plan_id]),
        reverse("staff-prescriber-series", args=[series.pk, "hold"]),
    ):
        assert client.post(url, {"reason": "x"}).status_code == 403, url
    assert not EligibilityDecision.objects.filter(decided_by__username__startswith="staff")
    assert Series.objects.get().status == SeriesStatus.BOOKED


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db: None) -> None:
    response = client.get(QUEUE)

    assert response.status_code == 302
    assert "login" in response["Location"]


def test_the_nav_shows_the_prescriber_pages_to_prescribers_only(
    dr: Client, clinic: Location
) -> None:
    nurse = client_for(staff_user(Role.NURSE, clinic))

    assert 'href="/staff/prescriber/"' in page(dr, "/staff/board/")
    assert 'href="/staff/prescriber/"' not in page(nurse, "/staff/board/")


def test_another_locations_patient_visit_plan_and_series_are_404(
    elsewhere: Location, make_patient, protocols, clinic: Location
) -> None:
    other_dr = staff_user(Role.PRESCRIBER, elsewhere)
    far = make_patient(first_name="Far")
    visit = appointment_book(
        appointment_type=AppointmentType.objects.get(location=elsewhere, slug="consultation"),
        patient=far,
        start=at(NOW.date() - timedelta(days=1)),
        now=BOOKED_AT,
    )
    (mood,) = protocols_install_defaults(location=elsewhere)[:1]
    plan = approve(far, mood, other_dr)
    far_series = series_book(plan=plan, starts=[at(day) for day in SERIES_DAYS], now=NOW)
    dr = client_for(staff_user(Role.PRESCRIBER, clinic))

    assert dr.get(decide_url(visit)).status_code == 404
    assert dr.post(decide_url(visit), approval(mood)).status_code == 404
    assert dr.get(patient_url(far)).status_code == 404
    assert dr.post(reverse("staff-prescriber-rems", args=[far.pk]), {}).status_code == 404
    assert dr.get(reverse("staff-prescriber-revoke", args=[plan.pk])).status_code == 404
    assert dr.post(reverse("staff-prescriber-revoke", args=[plan.pk])).status_code == 404
    hold = reverse("staff-prescriber-series", args=[far_series.pk, "hold"])
    assert dr.post(hold, {"reason": "x"}).status_code == 404
    assert "Far" not in page(dr, QUEUE)
    plan.refresh_from_db()
    assert plan.revoked_at is None
    assert not EligibilityDecision.objects.filter(decided_by__username="dr.one").exists()


# --- The queue --------------------------------------------------------------------------------


def test_the_queue_lists_a_consultation_awaiting_a_decision_and_drops_it_once_decided(
    dr: Client, seen: Appointment, protocols
) -> None:
    content = page(dr, QUEUE)

    assert "Ada Lovelace" in content
    assert decide_url(seen) in content
    assert "Monday 7 December 2026 at 10:00 AM EST" in content
    assert "1 screening “yes”" in content

    response = dr.post(decide_url(seen), approval(protocols["mood-induction"]))
    assert response.status_code == 302

    content = page(dr, QUEUE)
    assert decide_url(seen) not in content
    assert "No consultation is waiting for a decision." in content


def test_the_queue_keeps_to_consultations_that_happened_recently_oldest_first(
    dr: Client, consulted, clinic: Location, prescriber: User, protocols
) -> None:
    today = NOW.date()
    older = consulted(at(today - timedelta(days=30)), first_name="Older")
    checked_in = consulted(at(today, 8, 30), first_name="Arrived")
    Appointment.objects.filter(pk=checked_in.pk).update(status=S.CHECKED_IN)
    consulted(at(today, 11), first_name="Tocome")
    consulted(at(today - timedelta(days=61)), first_name="Toolong")
    cancelled = consulted(at(today - timedelta(days=3)), first_name="Cancelled")
    appointment_cancel(appointment=cancelled, now=BOOKED_AT)
    no_show = consulted(at(today - timedelta(days=4)), first_name="Noshow")
    Appointment.objects.filter(pk=no_show.pk).update(status=S.NO_SHOW)
    decided_before = consulted(at(today - timedelta(days=5)), first_name="Decidedbefore")
    approve(
        decided_before.patient,
        protocols["mood-induction"],
        prescriber,
        now=decided_before.start - timedelta(days=10),
    )
    decided_after = consulted(at(today - timedelta(days=6)), first_name="Decidedafter")
    approve(decided_after.patient, protocols["mood-induction"], prescriber)

    content = page(dr, QUEUE)

    listed = ["Older", "Decidedbefore", "Arrived"]
    assert [content.index(n) for n in listed] == sorted(content.index(n) for n in listed)
    for absent in ("Tocome", "Toolong", "Cancelled", "Noshow", "Decidedafter"):
        assert absent not in content
    assert decide_url(older) in content


def test_the_queue_reads_in_the_same_few_queries_however_long_it_is(
    dr: Client, consulted, django_assert_max_num_queries
) -> None:
    consulted(at(NOW.date() - timedelta(days=1)), first_name="First")
    with django_assert_max_num_queries(12) as one:
        dr.get(QUEUE)
    for n in range(6):
        consulted(at(NOW.date() - timedelta(days=2 + n)), first_name=f"More{n}")

    with django_assert_max_num_queries(len(one.captured_queries)):
        response = dr.get(QUEUE)

    assert response.content.decode().count("Decide for ") == 7


# --- The decision form ------------------------------------------------------------------------


def test_the_form_shows_the_intake_allergies_and_previous_decisions(
    dr: Client, seen: Appointment, prescriber: User, protocols
) -> None:
    Patient.objects.filter(pk=seen.patient_id).update(
        allergies="Penicillin", allergies_recorded_at=NOW - timedelta(days=3)
    )
    eligibility_decide(
        patient=seen.patient,
        outcome=DecisionOutcome.DECLINED,
        contraindications={**contraindications_none(), "pregnancy": True},
        decided_by=prescriber,
        now=seen.start - timedelta(days=30),
    )

    content = page(dr, decide_url(seen))

    assert "Sertraline 50 mg" in content
    assert "Depression" in content
    assert "Are you pregnant?: Yes" in words(content)
    assert "Penicillin" in content
    assert "Declined" in content
    assert "Contraindications present: Pregnancy" in words(content)
    for item in contraindications_asked():
        assert item.label in content
    assert "Mood induction series (IV ketamine infusion (mood), Midtown Ketamine Clinic)" in content


def test_a_decision_creates_the_decision_its_plan_and_every_answer(
    dr: Client, seen: Appointment, protocols, prescriber: User
) -> None:
    mood = protocols["mood-induction"]

    response = dr.post(decide_url(seen), approval(mood), follow=True)

    assert response.redirect_chain == [(patient_url(seen.patient), 302)]
    decision = EligibilityDecision.objects.get()
    assert decision.patient == seen.patient
    assert decision.consultation == seen
    assert decision.outcome == DecisionOutcome.APPROVED
    assert decision.decided_by == prescriber
    assert decision.decided_at == NOW
    plan = decision.plan
    assert (plan.protocol, plan.sessions_authorised, plan.valid_until) == (
        mood,
        6,
        date(2027, 1, 31),
    )
    answers = ContraindicationAnswer.objects.filter(decision=decision)
    assert answers.count() == Contraindication.objects.filter(is_active=True).count()
    assert not answers.filter(present=True).exists()
    assert {(a.recorded_by, a.recorded_at) for a in answers} == {(prescriber, NOW)}
    assert shown_messages(response) == [f"Decision recorded for {seen.patient}: approved."]
    assert AuditEvent.objects.filter(
        action=AuditAction.CREATE, object_type="eligibilitydecision", patient=seen.patient
    ).exists()


def test_a_missing_contraindication_answer_shows_the_error_and_records_nothing(
    dr: Client, seen: Appointment, protocols
) -> None:
    form = approval(protocols["mood-induction"], conditions="Review blood pressure")
    del form["answer_pregnancy"]
    del form["answer_mania"]

    response = dr.post(decide_url(seen), form)

    assert response.status_code == 400
    content = html.unescape(response.content.decode())
    assert "Pregnancy: Answer yes or no." in content
    assert "Current or recent mania: Answer yes or no." in content
    assert 'href="#id_answer_pregnancy_0"' in content
    # Nothing typed is lost.
    assert "Review blood pressure" in content
    assert 'name="sessions_authorised" value="6"' in content
    assert 'value="2027-01-31"' in content
    assert not EligibilityDecision.objects.exists()
    assert not ContraindicationAnswer.objects.exists()
    assert not TreatmentPlan.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"answer_arrhythmia": "yes"},
            "Decision",
            "A contraindication is present: approve with conditions, or decline.",
        ),
        ({"valid_until": "2026-12-01"}, "Valid until", "That date has passed."),
        (
            {"outcome": DecisionOutcome.APPROVED_WITH_CONDITIONS},
            "Conditions",
            "Say which conditions the approval carries.",
        ),
        ({"outcome": ""}, "Decision", "Choose approved, approved with conditions or declined."),
        (
            {"outcome": DecisionOutcome.DECLINED},
            "Protocol",
            "A declined decision authorises no plan.",
        ),
        ({"sessions_authorised": "0"}, "Sessions authorised", "Authorise between 1 and 100"),
    ],
)
def test_a_decision_the_service_refuses_shows_its_reason_on_the_field(
    dr: Client, seen: Appointment, protocols, changes, field, message
) -> None:
    response = dr.post(decide_url(seen), approval(protocols["mood-induction"], **changes))

    assert response.status_code == 400
    assert f"{field}: {message}" in html.unescape(response.content.decode())
    assert not EligibilityDecision.objects.exists()


def test_a_retired_or_unknown_protocol_cannot_be_chosen(
    dr: Client, seen: Appointment, protocols
) -> None:
    mood = protocols["mood-induction"]
    Protocol.objects.filter(pk=mood.pk).update(is_active=False)

    response = dr.post(decide_url(seen), approval(mood))

    assert response.status_code == 400
    assert "Protocol: Select a valid choice." in html.unescape(response.content.decode())
    assert not EligibilityDecision.objects.exists()


def test_a_decline_with_a_contraindication_records_no_plan(dr: Client, seen: Appointment) -> None:
    form = {f"answer_{item.slug}": "no" for item in contraindications_asked()}
    form.update(answer_psychosis_history="yes", outcome=DecisionOutcome.DECLINED)

    response = dr.post(decide_url(seen), form)

    assert response.status_code == 302
    decision = EligibilityDecision.objects.get()
    assert decision.outcome == DecisionOutcome.DECLINED
    assert not TreatmentPlan.objects.exists()
    assert decision.answers.get(present=True).contraindication.slug == "psychosis_history"


# --- The patient page -------------------------------------------------------------------------


def test_the_patient_page_shows_every_answer_who_recorded_it_and_later_flags(
    dr: Client, seen: Appointment, protocols, prescriber: User, clinic: Location
) -> None:
    approve(seen.patient, protocols["mood-induction"], prescriber)
    nurse = staff_user(Role.NURSE, clinic, username="nurse.n")
    contraindication_flag(
        patient=seen.patient,
        contraindication=Contraindication.objects.get(slug="pregnancy"),
        by=nurse,
        note="Positive test at the desk",
        now=NOW - timedelta(hours=2),
    )

    content = page(dr, patient_url(seen.patient))

    decisions = content.split('id="decisions"', 1)[1].split('id="flags"', 1)[0]
    assert "Approved · Tuesday 8 December 2026 at 9:00 AM EST" in decisions
    assert decisions.count("dr.one") >= len(contraindications_asked())
    assert "Absent" in decisions
    flags = content.split('id="flags"', 1)[1].split('id="plans"', 1)[0]
    assert "Pregnancy" in flags
    assert "Present" in flags
    assert "nurse.n" in flags
    assert "Positive test at the desk" in flags
    assert "Wednesday 9 December 2026 at 7:00 AM EST" in flags
    plans = content.split('id="plans"', 1)[1].split('id="series"', 1)[0]
    assert "Mood induction series" in plans
    assert "In force" in plans
    assert "0 of 6" in plans
    assert "31 January 2027" in plans


def test_the_plan_shows_its_sessions_used_and_when_it_expired(
    dr: Client, series: Series, prescriber: User, clock: time_machine.Traveller
) -> None:
    content = page(dr, patient_url(series.plan.patient))
    assert "6 of 6" in content

    clock.move_to(datetime(2027, 2, 1, 14, 0, tzinfo=UTC))
    content = page(client_for(prescriber), patient_url(series.plan.patient))
    plans = content.split('id="plans"', 1)[1].split('id="series"', 1)[0]
    assert "Expired" in plans
    assert "Revoke" not in plans


def test_revoking_a_plan_asks_first_then_holds_the_sessions_to_come(
    dr: Client, series: Series
) -> None:
    plan = series.plan
    url = reverse("staff-prescriber-revoke", args=[plan.pk])
    assert url in page(dr, patient_url(plan.patient))

    confirm = page(dr, url)
    assert "Revoke the plan" in confirm
    plan.refresh_from_db()
    assert plan.revoked_at is None

    response = dr.post(url, follow=True)

    assert response.redirect_chain == [(f"{patient_url(plan.patient)}#plans", 302)]
    plan.refresh_from_db()
    assert plan.revoked_at == NOW
    assert set(series.sessions.values_list("status", flat=True)) == {S.ON_HOLD}
    series.refresh_from_db()
    assert series.status == SeriesStatus.ON_HOLD
    assert series.hold_reason == "Treatment plan withdrawn"
    assert "revoked" in shown_messages(response)[0]
    assert AuditEvent.objects.filter(
        action=AuditAction.UPDATE, object_type="treatmentplan", object_id=str(plan.pk)
    ).exists()
    assert "already revoked" in page(dr, url)


def test_rems_enrolment_is_recorded_from_the_page(dr: Client, seen: Appointment) -> None:
    url = reverse("staff-prescriber-rems", args=[seen.patient_id])

    response = dr.post(url, {"rems_patient_id": " REMS-12345 "}, follow=True)

    assert response.redirect_chain == [(f"{patient_url(seen.patient)}#rems", 302)]
    patient = Patient.objects.get(pk=seen.patient_id)
    assert patient.rems_patient_id == "REMS-12345"
    assert patient.rems_enrolled_at == NOW
    assert "REMS-12345" in html.unescape(response.content.decode())
    assert AuditEvent.objects.filter(
        action=AuditAction.UPDATE, object_type="patient", patient=patient
    ).exists()


def test_a_blank_rems_id_is_refused_with_the_services_reason(dr: Client, seen: Appointment) -> None:
    response = dr.post(reverse("staff-prescriber-rems", args=[seen.patient_id]), {})

    assert response.status_code == 400
    assert "Give the patient's REMS ID." in html.unescape(response.content.decode())
    assert Patient.objects.get(pk=seen.patient_id).rems_enrolled_at is None


# --- The series steps -------------------------------------------------------------------------


def series_step(client: Client, series: Series, step: str, **data: str):
    return client.post(reverse("staff-prescriber-series", args=[series.pk, step]), data)


def test_a_series_is_held_resumed_and_its_rest_cancelled_from_the_page(
    dr: Client, series: Series
) -> None:
    content = page(dr, patient_url(series.plan.patient))
    for label in ("Put on hold", "Cancel the rest"):
        assert label in content
    assert "Resume" not in content.split(f'id="series-{series.pk}"', 1)[1]

    held = series_step(dr, series, "hold", reason="Blood pressure to recheck")
    assert held.status_code == 302
    series.refresh_from_db()
    assert (series.status, series.hold_reason) == (
        SeriesStatus.ON_HOLD,
        "Blood pressure to recheck",
    )
    assert set(series.sessions.values_list("status", flat=True)) == {S.ON_HOLD}
    assert "Resume" in page(dr, patient_url(series.plan.patient))

    resumed = series_step(dr, series, "resume")
    assert resumed.status_code == 302
    series.refresh_from_db()
    assert series.status == SeriesStatus.BOOKED
    assert set(series.sessions.values_list("status", flat=True)) == {S.BOOKED}

    cancelled = series_step(dr, series, "cancel-rest", from_index="4", reason="Responded well")
    assert cancelled.status_code == 302
    statuses = dict(series.sessions.values_list("series_index", "status"))
    assert statuses == {1: S.BOOKED, 2: S.BOOKED, 3: S.BOOKED} | dict.fromkeys(
        (4, 5, 6), S.CANCELLED
    )
    steps = AuditEvent.objects.filter(
        action=AuditAction.UPDATE, object_type="series", object_id=str(series.pk)
    ).values_list("detail__step", flat=True)
    assert sorted(steps) == ["cancel-rest", "hold", "resume"]


@pytest.mark.parametrize(
    ("step", "data", "status", "message"),
    [
        ("hold", {"reason": "  "}, 400, "Give a reason to put the series on hold."),
        ("resume", {}, 409, "Only a series on hold can be resumed."),
        ("cancel-rest", {"reason": "x"}, 400, "Choose the first session to cancel."),
        ("review", {}, 422, "The review follows session 2, on Wednesday 16 December 2026"),
    ],
)
def test_a_refused_series_step_shows_the_reason_with_its_status(
    dr: Client, series: Series, step, data, status, message
) -> None:
    response = series_step(dr, series, step, **data)

    assert response.status_code == status
    content = html.unescape(response.content.decode())
    assert message in content
    assert 'role="alert"' in content
    series.refresh_from_db()
    assert series.status == SeriesStatus.BOOKED
    assert not series.sessions.exclude(status=S.BOOKED).exists()


def test_an_unknown_series_step_is_a_404(dr: Client, series: Series) -> None:
    assert series_step(dr, series, "delete").status_code == 404


def test_the_review_confirms_the_tentative_sessions_once_its_session_has_begun(
    series: Series, prescriber: User, clock: time_machine.Traveller
) -> None:
    assert set(series.sessions.filter(tentative=True).values_list("series_index", flat=True)) == {
        3,
        4,
        5,
        6,
    }
    clock.move_to(at(SERIES_DAYS[1], 11))

    response = series_step(client_for(prescriber), series, "review")

    assert response.status_code == 302
    assert not series.sessions.filter(tentative=True).exists()


# --- The audit log ----------------------------------------------------------------------------


def test_every_read_of_patient_data_is_audited(dr: Client, series: Series) -> None:
    patient = series.plan.patient
    consultation = Appointment.objects.get(patient=patient, series__isnull=True)

    page(dr, QUEUE)
    page(dr, decide_url(consultation))
    page(dr, patient_url(patient))
    page(dr, reverse("staff-prescriber-revoke", args=[series.plan_id]))

    views = AuditEvent.objects.filter(action=AuditAction.VIEW, user__username="dr.one")
    assert views.filter(object_type="prescriber_queue").exists()
    assert views.filter(
        object_type="appointment", object_id=str(consultation.pk), patient=patient
    ).exists()
    assert views.filter(object_type="patient", patient=patient).exists()
    assert views.filter(object_type="treatmentplan", patient=patient).exists()

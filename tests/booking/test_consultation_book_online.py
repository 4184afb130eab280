"""Online booking through the service the page and the API share: patient matching, the intake,
SMS consent and the cap on pending consultations."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction

from booking.errors import BookingError, PatientBusy, PolicyViolation, SlotTaken
from booking.models import SMS_CONSENT_VERSION, Appointment, Intake, Patient
from booking.services import (
    MAX_PENDING_CONSULTATIONS,
    IntakeAnswers,
    PatientDetails,
    appointment_book,
    appointment_cancel,
    consultation_book_online,
    patient_match_or_create,
)
from config.celery import app as celery_app
from scheduling.models import AppointmentType

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
LATER = NOW + timedelta(days=3)
BARRIER_TIMEOUT = 120

ADA = PatientDetails(
    first_name="Ada",
    last_name="Lovelace",
    email="ada@example.com",
    phone="+12125550123",
    date_of_birth=date(1985, 12, 10),
)
INTAKE = IntakeAnswers(
    conditions=["Depression"],
    medications="Sertraline 50 mg",
    prior_treatments="Talk therapy",
    screening=[{"question": "Do you have high blood pressure?", "answer": False}],
)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def eager_celery() -> Iterator[None]:
    """The after-commit e-mails run in-process, so nothing tries to reach a broker."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def book(
    appointment_type: AppointmentType,
    start: str = "2026-06-03T10:00:00-04:00",
    *,
    details: PatientDetails = ADA,
    intake: IntakeAnswers = INTAKE,
    sms_consent: bool = True,
    now: datetime = NOW,
) -> Appointment:
    return consultation_book_online(
        appointment_type=appointment_type,
        start=at(start),
        details=details,
        intake=intake,
        sms_consent=sms_consent,
        now=now,
    )


def ada(**changes: Any) -> PatientDetails:
    return replace(ADA, **changes)


# --- Booking ----------------------------------------------------------------------------------


def test_it_books_a_new_patient_online_with_the_intake(consultation):
    appointment = book(consultation)

    assert appointment.source == "online"
    assert appointment.start == at("2026-06-03T10:00:00-04:00")
    assert appointment.end == at("2026-06-03T11:00:00-04:00")
    patient = appointment.patient
    assert (patient.first_name, patient.email, patient.phone) == ("Ada", ADA.email, ADA.phone)
    assert not patient.needs_review
    intake = Intake.objects.get(appointment=appointment)
    assert intake.conditions == ["Depression"]
    assert intake.medications == "Sertraline 50 mg"
    assert intake.prior_treatments == "Talk therapy"
    assert intake.screening == [{"question": "Do you have high blood pressure?", "answer": False}]


def test_it_records_when_and_to_which_wording_the_patient_agreed_to_texts(consultation):
    patient = book(consultation, sms_consent=True).patient

    assert patient.sms_consent
    assert patient.sms_consent_at == NOW
    assert patient.sms_consent_version == SMS_CONSENT_VERSION


def test_a_patient_who_declines_texts_has_no_consent_on_record(consultation):
    patient = book(consultation, sms_consent=False).patient

    assert not patient.sms_consent
    assert patient.sms_consent_at is None
    assert patient.sms_consent_version == ""


def test_it_refuses_a_type_not_bookable_online(infusion):
    with pytest.raises(PolicyViolation) as refused:
        book(infusion)

    assert refused.value.field == "appointment_type"
    assert not Patient.objects.exists()


def test_it_refuses_a_type_no_longer_offered(consultation):
    consultation.is_active = False
    consultation.save()

    with pytest.raises(PolicyViolation) as refused:
        book(consultation)

    assert refused.value.field == "appointment_type"


def test_it_applies_the_online_notice(consultation):
    with pytest.raises(PolicyViolation) as refused:
        book(consultation, "2026-06-01T15:00:00-04:00")  # 7 hours ahead, 12 needed

    assert refused.value.field == "start"
    assert not Patient.objects.exists()


def test_a_taken_slot_leaves_no_new_patient_behind(consultation, make_patient):
    appointment_book(
        appointment_type=consultation,
        patient=make_patient(),
        start=at("2026-06-03T10:00:00-04:00"),
        now=NOW,
    )

    with pytest.raises(SlotTaken):
        book(consultation)

    assert not Patient.objects.filter(email=ADA.email).exists()
    assert not Intake.objects.exists()


def test_a_patient_cannot_hold_two_overlapping_visits(clinic, consultation):
    book(consultation)

    with pytest.raises(PatientBusy):
        book(consultation, "2026-06-03T10:30:00-04:00")


def test_a_booking_is_announced_once_inside_its_transaction(consultation, announcements):
    appointment = book(consultation)

    assert [(a.change, a.appointment_id, a.in_transaction) for a in announcements] == [
        ("booked", appointment.pk, True)
    ]


# --- Patient matching -------------------------------------------------------------------------


def test_the_same_email_and_date_of_birth_is_the_same_patient(consultation, make_patient):
    known = make_patient(email="ada@example.com", date_of_birth=ADA.date_of_birth)

    appointment = book(consultation)

    assert appointment.patient_id == known.pk
    assert Patient.objects.count() == 1


def test_the_email_matches_whatever_its_case(consultation, make_patient):
    known = make_patient(email="Ada@Example.com", date_of_birth=ADA.date_of_birth)

    assert book(consultation, details=ada(email="ADA@EXAMPLE.COM")).patient_id == known.pk


def test_a_matched_patient_keeps_the_details_on_record(consultation, make_patient):
    # Whoever knows an email and a date of birth must not be able to redirect a patient's
    # reminders to another phone.
    known = make_patient(
        first_name="Ada",
        email="ada@example.com",
        phone="+12125550999",
        date_of_birth=ADA.date_of_birth,
    )

    book(consultation, details=ada(first_name="Mallory", phone="+12125550123"))

    known.refresh_from_db()
    assert (known.first_name, known.phone) == ("Ada", "+12125550999")


def test_the_same_email_with_another_date_of_birth_is_a_new_patient_to_review(
    consultation, make_patient
):
    other = make_patient(email="ada@example.com", date_of_birth=date(1960, 1, 1))
    theirs = appointment_book(
        appointment_type=consultation,
        patient=other,
        start=at("2026-06-04T10:00:00-04:00"),
        now=NOW,
    )

    appointment = book(consultation)

    assert appointment.patient_id != other.pk
    assert appointment.patient.needs_review
    assert appointment.patient.date_of_birth == ADA.date_of_birth
    assert list(other.appointments.all()) == [theirs]


def test_the_same_phone_with_another_email_is_a_new_patient_to_review(consultation, make_patient):
    other = make_patient(phone=ADA.phone, email="someone.else@example.com")

    patient = book(consultation).patient

    assert patient.pk != other.pk
    assert patient.needs_review


def test_the_same_name_and_date_of_birth_with_another_email_is_never_matched(
    consultation, make_patient
):
    namesake = make_patient(
        first_name="Ada",
        last_name="Lovelace",
        email="a.lovelace@example.org",
        phone="+12125550777",
        date_of_birth=ADA.date_of_birth,
    )

    patient = book(consultation).patient

    assert patient.pk != namesake.pk
    assert not namesake.appointments.exists()


def test_a_new_patient_like_no_other_is_not_flagged(consultation, make_patient):
    make_patient(email="someone@example.com", phone="+12125550777")

    assert not book(consultation).patient.needs_review


def test_a_returning_patient_who_now_agrees_to_texts_has_it_recorded(make_patient, db):
    known = make_patient(email=ADA.email, date_of_birth=ADA.date_of_birth)

    patient = patient_match_or_create(details=ADA, sms_consent=True, now=NOW)

    assert patient.pk == known.pk
    known.refresh_from_db()
    assert known.sms_consent
    assert known.sms_consent_at == NOW
    assert known.sms_consent_version == SMS_CONSENT_VERSION


def test_leaving_the_box_unticked_does_not_withdraw_an_earlier_consent(make_patient, db):
    # Withdrawal is STOP by text message, recorded with its own time; a form left unticked
    # is not a decision to stop.
    earlier = NOW - timedelta(days=30)
    known = make_patient(
        email=ADA.email,
        date_of_birth=ADA.date_of_birth,
        sms_consent=True,
        sms_consent_at=earlier,
        sms_consent_version="2026-01",
    )

    patient_match_or_create(details=ADA, sms_consent=False, now=NOW)

    known.refresh_from_db()
    assert (known.sms_consent, known.sms_consent_at, known.sms_consent_version) == (
        True,
        earlier,
        "2026-01",
    )


# --- The cap on pending consultations ---------------------------------------------------------


def test_it_caps_the_consultations_a_patient_has_pending(clinic, consultation):
    for day in range(3, 3 + MAX_PENDING_CONSULTATIONS):
        book(consultation, f"2026-06-{day:02d}T10:00:00-04:00")

    with pytest.raises(PolicyViolation):
        book(consultation, "2026-06-10T10:00:00-04:00")

    assert Appointment.objects.count() == MAX_PENDING_CONSULTATIONS


def test_cancelled_and_past_consultations_do_not_count_against_the_cap(clinic, consultation):
    first = book(consultation, "2026-06-03T10:00:00-04:00")
    book(consultation, "2026-06-04T10:00:00-04:00")
    appointment_cancel(appointment=first, now=NOW)
    book(consultation, "2026-06-05T10:00:00-04:00")

    # Three days on, the 4 June visit is over and the patient may book again.
    book(consultation, "2026-06-08T10:00:00-04:00", now=at("2026-06-04T18:00:00-04:00"))

    assert Appointment.objects.active().count() == 3


def test_the_cap_is_per_patient(clinic, consultation):
    for day in range(3, 3 + MAX_PENDING_CONSULTATIONS):
        book(consultation, f"2026-06-{day:02d}T10:00:00-04:00")

    other = book(consultation, "2026-06-10T10:00:00-04:00", details=ada(email="grace@example.com"))

    assert other.patient.email == "grace@example.com"


# --- Concurrency, on PostgreSQL ---------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sms_consent", [True, False])
def test_parallel_bookings_by_one_patient_cannot_exceed_the_cap(
    clinic, consultation, make_patient, monkeypatch, sms_consent
):
    # With consent newly given, recording it happens to lock the patient's row; without, only
    # the service's own lock keeps the requests from all counting the same pending visits.
    make_patient(email=ADA.email, date_of_birth=ADA.date_of_birth)
    # Only the bookings race here. The e-mail each one queues after commit would be sent inside
    # these very threads (Celery runs eagerly in tests), racing them for unrelated locks.
    monkeypatch.setattr(transaction, "on_commit", lambda *args, **kwargs: None)
    workers = 6
    barrier = threading.Barrier(workers, timeout=BARRIER_TIMEOUT)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        try:
            barrier.wait()
            # Each at its own free time, so only the cap can refuse them.
            book(consultation, f"2026-06-{3 + n:02d}T10:00:00-04:00", sms_consent=sms_consent)
            outcome = "booked"
        except BookingError as exc:
            outcome = type(exc).__name__
        except Exception as exc:
            outcome = f"unexpected {exc!r}"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(outcomes) == {
        "booked": MAX_PENDING_CONSULTATIONS,
        "PolicyViolation": workers - MAX_PENDING_CONSULTATIONS,
    }
    assert Appointment.objects.active().count() == MAX_PENDING_CONSULTATIONS

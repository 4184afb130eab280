"""Online bookings held until the patient confirms their e-mail address (booking.online): the
hold and its lanes, the provisional patient, the e-mail and its link, confirmation on the
patient's own record, release, expiry, and the ceilings per client and per day."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail

from booking.access.scoping import patients_for, patients_search
from booking.errors import BookingError, SlotTaken
from booking.links import patient_link_request
from booking.models import (
    SMS_CONSENT_VERSION,
    Allocation,
    Appointment,
    AppointmentStatus,
    Intake,
    Patient,
    TentativeHold,
)
from booking.online import (
    HOLDS_PER_CLIENT,
    DayHeld,
    HoldNotFound,
    HoldNotKept,
    TooManyHolds,
    consultation_request_online,
    day_capacity,
    tentative_confirm,
    tentative_holds_expire,
    tentative_release,
)
from booking.selectors import available_slots
from booking.services import IntakeAnswers, PatientDetails, appointment_book
from config.celery import app as celery_app
from notifications.delivery import message_deliver_due, message_send
from notifications.models import MessageKind, OutboundMessage
from scheduling.models import AppointmentType, Location, Resource, ResourceKind
from tests.conftest import open_every_day

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
DAY = date(2026, 6, 3)  # Wednesday
TEN = datetime.fromisoformat("2026-06-03T10:00:00-04:00")

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
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def eager_celery() -> Iterator[None]:
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def request(consultation: AppointmentType, start: datetime = TEN, **changes: Any):
    arguments: dict[str, Any] = {
        "appointment_type": consultation,
        "start": start,
        "details": ADA,
        "intake": INTAKE,
        "sms_consent": True,
        "client": "192.0.2.1",
    }
    arguments.update(changes)
    return consultation_request_online(**arguments)


def deliver(now: datetime | None = None) -> None:
    """What beat and a worker do with what is due: claim it, send it."""
    message_deliver_due(
        now=now,
        enqueue=lambda ids: [message_send(message_id=i, now=now) for i in ids],
    )


def confirm_token(to: str = "ada@example.com") -> str:
    """The token of the newest confirmation link e-mailed to ``to``."""
    for message in reversed(mail.outbox):
        if to in message.to:
            found = re.findall(r"/book/confirm/([\w-]+)/", str(message.body))
            if found:
                return str(found[0])
    raise AssertionError(f"no confirmation link was e-mailed to {to}")


def register() -> list[dict[str, Any]]:
    """Every patient on file, every field: what no tentative booking may change."""
    return [dict(row) for row in Patient.objects.on_file().order_by("pk").values()]


# --- Holding ------------------------------------------------------------------------------------


def test_a_booking_holds_its_time_on_a_provisional_patient_and_changes_no_record(
    consultation, make_patient
):
    known = make_patient(email="ada@example.com", date_of_birth=ADA.date_of_birth)
    before = register()

    booking = request(consultation)

    appointment = booking.appointment
    assert booking.tentative
    assert booking.expires_at == NOW + timedelta(minutes=15)
    assert appointment.status == AppointmentStatus.TENTATIVE
    assert appointment.patient.provisional
    assert appointment.patient != known
    assert Allocation.objects.filter(appointment=appointment, active=True).count() == 2
    assert appointment.intake.medications == "Sertraline 50 mg"
    assert register() == before
    assert TEN not in [
        s
        for s, _ in available_slots(
            appointment_type=consultation, first_day=DAY, last_day=DAY, now=NOW
        )
    ]
    # The one message it gets: the e-mail that confirms it; no reminder, no text.
    assert list(OutboundMessage.objects.values_list("kind", "channel")) == [
        (MessageKind.VERIFY, "email")
    ]


def test_the_hold_lasts_as_long_as_the_location_says(consultation):
    Location.objects.filter(pk=consultation.location_id).update(tentative_hold_minutes=30)
    consultation.location.refresh_from_db()

    booking = request(consultation)

    assert booking.expires_at == NOW + timedelta(minutes=30)
    assert booking.appointment.tentative_hold.expires_at == NOW + timedelta(minutes=30)


def test_a_location_that_does_not_verify_books_at_once(consultation):
    Location.objects.filter(pk=consultation.location_id).update(verify_online_bookings=False)
    consultation.location.refresh_from_db()

    booking = request(consultation)

    assert not booking.tentative
    assert booking.appointment.status == AppointmentStatus.BOOKED
    assert not booking.appointment.patient.provisional


def test_provisional_patients_are_nobodys_to_see_or_match(consultation, make_patient):
    request(consultation)
    staff = User.objects.create_superuser("root", "root@example.com", "x")

    assert not patients_for(staff).filter(email="ada@example.com").exists()
    assert patients_search(staff, "Lovelace") == []
    patient_link_request(email="ada@example.com", date_of_birth=ADA.date_of_birth)
    assert mail.outbox == []  # nobody on file: no link


# --- The e-mail and confirmation ------------------------------------------------------------------


def test_the_email_carries_a_link_that_books_the_visit_and_only_then_plans_reminders(
    consultation,
):
    appointment = request(consultation).appointment

    deliver()

    (message,) = mail.outbox
    assert message.to == ["ada@example.com"]
    assert "confirm" in message.subject.lower()
    assert appointment.reference not in message.body
    hold = TentativeHold.objects.get(appointment=appointment)
    token = confirm_token()
    assert token not in hold.token_hash  # only its hash is kept

    booked = tentative_confirm(token=token)

    assert booked.pk == appointment.pk
    assert booked.status == AppointmentStatus.BOOKED
    assert not booked.patient.provisional
    kinds = set(
        OutboundMessage.objects.filter(appointment=appointment).values_list("kind", flat=True)
    )
    assert MessageKind.CONFIRMATION in kinds
    assert kinds - {MessageKind.VERIFY, MessageKind.CONFIRMATION}  # reminders, planned now
    deliver()
    assert any(booked.reference in str(m.body) for m in mail.outbox[1:])


def test_confirming_twice_is_harmless(consultation):
    request(consultation)
    deliver()
    token = confirm_token()

    first = tentative_confirm(token=token)
    second = tentative_confirm(token=token)

    assert first.pk == second.pk
    assert Appointment.objects.get(pk=first.pk).version == first.version


def test_an_unknown_token_is_not_found(consultation):
    with pytest.raises(HoldNotFound):
        tentative_confirm(token="x" * 43)


def test_a_returning_patient_is_matched_only_on_confirmation_and_gets_intake_and_consent(
    consultation, make_patient
):
    known = make_patient(email="ADA@example.com", date_of_birth=ADA.date_of_birth)
    appointment = request(consultation).appointment
    provisional_id = appointment.patient_id
    deliver()

    booked = tentative_confirm(token=confirm_token())

    assert booked.patient == known
    known.refresh_from_db()
    assert known.sms_consent
    assert known.sms_consent_at == NOW
    assert known.sms_consent_version == SMS_CONSENT_VERSION
    assert Intake.objects.get(appointment=booked).conditions == ["Depression"]
    assert not Patient.objects.filter(pk=provisional_id).exists()


def test_a_new_patient_resembling_another_is_flagged_for_review_on_confirmation(
    consultation, make_patient
):
    make_patient(email="ada@example.com", date_of_birth=date(1970, 1, 1))
    request(consultation)
    deliver()

    booked = tentative_confirm(token=confirm_token())

    assert not booked.patient.provisional
    assert booked.patient.needs_review


def test_pending_visits_are_checked_after_confirmation_and_the_hold_released(
    consultation, make_patient
):
    known = make_patient(email="ada@example.com", date_of_birth=ADA.date_of_birth)
    for hour in (8, 12):
        appointment_book(
            appointment_type=consultation,
            patient=known,
            start=TEN.replace(hour=hour) + timedelta(days=1),
            now=NOW,
        )
    before = register()

    appointment = request(consultation).appointment  # no oracle: held like anybody's
    deliver()
    with pytest.raises(HoldNotKept, match=r"upcoming appointments.*released"):
        tentative_confirm(token=confirm_token())

    assert not Appointment.objects.filter(pk=appointment.pk).exists()
    assert not Allocation.objects.filter(appointment_id=appointment.pk).exists()
    assert register() == before
    assert Appointment.objects.filter(patient=known).count() == 2


def test_a_clash_with_the_patients_own_visit_releases_the_hold_on_confirmation(
    consultation, make_patient, make_type
):
    known = make_patient(email="ada@example.com", date_of_birth=ADA.date_of_birth)
    chair_visit = make_type(
        consultation.location, duration=60, needs=[{"resource_kind": ResourceKind.CHAIR}]
    )
    appointment_book(appointment_type=chair_visit, patient=known, start=TEN, now=NOW)

    appointment = request(consultation).appointment
    deliver()
    with pytest.raises(HoldNotKept, match="already have an appointment at that time"):
        tentative_confirm(token=confirm_token())

    assert not Appointment.objects.filter(pk=appointment.pk).exists()
    assert TEN in [
        s
        for s, _ in available_slots(
            appointment_type=consultation, first_day=DAY, last_day=DAY, now=NOW
        )
    ]


def test_the_patient_may_release_the_time_from_the_link(consultation):
    appointment = request(consultation).appointment
    deliver()
    token = confirm_token()

    tentative_release(token=token)

    assert not Appointment.objects.filter(pk=appointment.pk).exists()
    assert not Patient.objects.filter(provisional=True).exists()
    with pytest.raises(HoldNotFound):
        tentative_confirm(token=token)
    with pytest.raises(HoldNotFound):
        tentative_release(token=token)


def test_a_confirmed_booking_is_not_released_from_the_confirmation_link(consultation):
    appointment = request(consultation).appointment
    deliver()
    token = confirm_token()
    tentative_confirm(token=token)

    tentative_release(token=token)

    assert Appointment.objects.get(pk=appointment.pk).status == AppointmentStatus.BOOKED


# --- Expiry ---------------------------------------------------------------------------------------


def test_an_unconfirmed_hold_lapses_and_its_lanes_are_free_again(consultation, clock):
    appointment = request(consultation).appointment
    deliver()
    token = confirm_token()

    def free_at_ten(now: datetime) -> bool:
        slots = available_slots(appointment_type=consultation, first_day=DAY, last_day=DAY, now=now)
        return TEN in [start for start, _ in slots]

    assert tentative_holds_expire(NOW + timedelta(minutes=14)) == 0
    assert not free_at_ten(NOW)

    clock.move_to(NOW + timedelta(minutes=16))
    expired = tentative_holds_expire()

    assert expired == 1
    assert not Appointment.objects.filter(pk=appointment.pk).exists()
    assert not Patient.objects.filter(provisional=True).exists()
    assert not Intake.objects.exists()
    assert free_at_ten(NOW + timedelta(minutes=16))
    with pytest.raises(HoldNotFound):
        tentative_confirm(token=token)


def test_a_lapsed_hold_not_yet_swept_cannot_be_confirmed(consultation, clock):
    request(consultation)
    deliver()
    token = confirm_token()

    clock.move_to(NOW + timedelta(minutes=15))
    with pytest.raises(HoldNotKept, match="no longer held"):
        tentative_confirm(token=token)


def test_the_sweep_leaves_confirmed_and_open_holds_alone(consultation, clock):
    confirmed = request(consultation).appointment
    deliver()
    tentative_confirm(token=confirm_token())
    clock.move_to(NOW + timedelta(minutes=10))
    still_open = request(consultation, start=TEN + timedelta(hours=2)).appointment

    assert tentative_holds_expire(NOW + timedelta(minutes=20)) == 0

    assert Appointment.objects.get(pk=confirmed.pk).status == AppointmentStatus.BOOKED
    assert Appointment.objects.get(pk=still_open.pk).status == AppointmentStatus.TENTATIVE


def test_the_email_of_a_lapsed_hold_is_not_sent(consultation):
    request(consultation)

    deliver(NOW + timedelta(minutes=20))

    assert mail.outbox == []
    assert OutboundMessage.objects.get().status == "skipped"


# --- Ceilings -------------------------------------------------------------------------------------


def test_one_client_holds_a_few_unconfirmed_bookings_at_most(consultation, make_resource):
    # Room enough on the day that only the per-client ceiling is in the way.
    for _ in range(4):
        make_resource(consultation.location, ResourceKind.ROOM)
    starts = [TEN + timedelta(hours=n) for n in range(HOLDS_PER_CLIENT + 1)]
    for start in starts[:-1]:
        request(consultation, start=start, client="2001:db8:1:2::/64")

    with pytest.raises(TooManyHolds) as refused:
        request(consultation, start=starts[-1], client="2001:db8:1:2::/64")

    assert refused.value.status == 429
    assert 0 < refused.value.retry_after <= 15 * 60
    request(consultation, start=starts[-1], client="198.51.100.7")  # somebody else may


def test_a_day_holds_at_most_its_share_of_the_visits_it_can_take(consultation):
    # One consult room, 08:00-18:00, 60 minutes and 5 of turnover: eight visits a day, and a
    # quarter of them is two.
    assert day_capacity(appointment_type=consultation, day=DAY, now=NOW, upto=100) == 8
    request(consultation, start=TEN, client="192.0.2.1")
    request(consultation, start=TEN + timedelta(hours=2), client="192.0.2.2")

    with pytest.raises(DayHeld) as refused:
        request(consultation, start=TEN + timedelta(hours=4), client="192.0.2.3")

    assert refused.value.status == 409
    assert refused.value.field == "start"
    request(consultation, start=TEN + timedelta(days=1), client="192.0.2.3")  # another day


def test_the_days_share_counts_every_room_and_prescriber(consultation):
    location = consultation.location
    open_every_day(Resource.objects.create(location=location, kind=ResourceKind.ROOM, name="R2"))
    Location.objects.filter(pk=location.pk).update(tentative_day_percent=50)
    location.refresh_from_db()

    # Two prescribers and two rooms: sixteen visits; half of them is eight.
    assert day_capacity(appointment_type=consultation, day=DAY, now=NOW, upto=100) == 16
    held = 0
    for n in range(20):
        start = TEN.replace(hour=8) + timedelta(minutes=30 * n)
        try:
            request(consultation, start=start, client=f"192.0.2.{n}")
        except (DayHeld, SlotTaken):
            continue
        held += 1

    assert held == 8


def test_a_day_always_allows_one_hold(consultation):
    Location.objects.filter(pk=consultation.location_id).update(tentative_day_percent=1)
    consultation.location.refresh_from_db()

    request(consultation)

    with pytest.raises(DayHeld):
        request(consultation, start=TEN + timedelta(hours=2), client="192.0.2.9")


# --- Texts only where the clinic works --------------------------------------------------------


@pytest.mark.parametrize("verify", [True, False], ids=["held", "booked-at-once"])
def test_a_mobile_of_another_country_is_refused_naming_the_phone(consultation, verify):
    Location.objects.filter(pk=consultation.location_id).update(verify_online_bookings=verify)
    consultation.location.refresh_from_db()

    with pytest.raises(BookingError) as refused:
        request(consultation, details=replace(ADA, phone="+447400123456"))

    assert refused.value.field == "phone"
    assert "United States" in refused.value.message
    assert not Appointment.objects.exists()
    assert not Patient.objects.exists()


def test_the_clinic_may_list_the_countries_it_texts(consultation):
    Location.objects.filter(pk=consultation.location_id).update(sms_regions="US,GB")
    consultation.location.refresh_from_db()

    booking = request(consultation, details=replace(ADA, phone="+447400123456"))

    assert booking.appointment.patient.phone == "+447400123456"


def test_without_a_setting_the_clinics_own_country_is_its_phone_numbers(make_location):
    assert make_location(phone="+493012345678").text_regions == {"DE"}
    assert make_location(phone="").text_regions == {"US"}  # DEFAULT_PHONE_REGION
    assert make_location(sms_regions="us, ca").text_regions == {"US", "CA"}

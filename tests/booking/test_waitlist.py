"""The waitlist: a freed slot is held for the first waiting patient who can take it, and passes
down the line when they decline or let the hold expire (booking.waitlist)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client

from booking.errors import BookingError, NotEligible, PolicyViolation
from booking.models import (
    Allocation,
    Appointment,
    AppointmentStatus,
    OfferStatus,
    Patient,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from booking.services import appointment_book, appointment_cancel, appointment_reschedule
from booking.signals import waitlist_offer_made
from booking.waitlist import (
    HOLD_LENGTH,
    OfferClosed,
    offer_accept,
    offer_decline,
    offer_freed_slot,
    offers_expire,
    waitlist_add,
    waitlist_remove,
)
from config.celery import app as celery_app
from notifications.models import OutboundMessage
from scheduling.models import AppointmentType
from tests.booking.api.test_public_bookings import new_booking

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
TEN = datetime.fromisoformat("2026-06-03T10:00:00-04:00")
BARRIER_TIMEOUT = 60


@pytest.fixture(autouse=True)
def quiet_delivery(settings) -> Iterator[None]:
    """Whatever notifications sends after a commit runs in-process, to local mailboxes."""
    settings.SMS_BACKEND = "notifications.sms.LocmemBackend"
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    cache.clear()
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before
        cache.clear()


@contextmanager
def offer_tokens() -> Iterator[dict[int, str]]:
    """Each offer's raw token, as ``waitlist_offer_made`` announces it, by offer id."""
    heard: dict[int, str] = {}

    def receiver(sender: object, *, offer: WaitlistOffer, token: str, **kwargs: object) -> None:
        heard[offer.pk] = token

    waitlist_offer_made.connect(receiver, dispatch_uid="tests-waitlist-tokens")
    try:
        yield heard
    finally:
        waitlist_offer_made.disconnect(dispatch_uid="tests-waitlist-tokens")


@pytest.fixture
def tokens() -> Iterator[dict[int, str]]:
    with offer_tokens() as heard:
        yield heard


def wait_for(
    appointment_type: AppointmentType,
    patient: Patient,
    *,
    first: date = date(2026, 6, 2),
    last: date = date(2026, 6, 5),
    earliest: time | None = None,
    latest: time | None = None,
    now: datetime = NOW,
) -> WaitlistEntry:
    return waitlist_add(
        patient=patient,
        location=appointment_type.location,
        appointment_type=appointment_type,
        earliest_date=first,
        latest_date=last,
        earliest_time=earliest,
        latest_time=latest,
        now=now,
    )


def active_lanes(appointment: Appointment | None) -> int:
    return Allocation.objects.filter(appointment=appointment, active=True).count()


# --- Cancellation → offer → accept -------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_a_cancelled_slot_is_held_for_the_first_in_line_who_accepts_and_is_booked(
    consultation, make_patient, tokens, django_capture_on_commit_callbacks
):
    visit = appointment_book(appointment_type=consultation, patient=make_patient(), start=TEN)
    entry = wait_for(consultation, make_patient())

    with django_capture_on_commit_callbacks(execute=True):
        appointment_cancel(appointment=visit, reason="patient request")
        # Until the cancel commits the room is not free for anybody: nothing is offered yet.
        assert not WaitlistOffer.objects.exists()

    offer = WaitlistOffer.objects.select_related("hold").get()
    assert (offer.entry_id, offer.start, offer.status) == (entry.pk, TEN, OfferStatus.OPEN)
    assert offer.expires_at == NOW + HOLD_LENGTH
    assert offer.hold is not None
    assert offer.hold.status == AppointmentStatus.HELD
    assert active_lanes(offer.hold) == 2  # the prescriber and the consult room
    assert OutboundMessage.objects.filter(appointment=offer.hold).count() == 0
    assert WaitlistEntry.objects.get(pk=entry.pk).status == WaitlistStatus.OFFERED
    # Only the token's hash is stored.
    token = tokens[offer.pk]
    assert token not in offer.token_hash
    assert len(offer.token_hash) == 64

    # While the offer is open, the public booking page cannot take the time.
    taken = Client().post(
        "/api/v1/bookings/",
        json.dumps(new_booking(start=TEN.isoformat())),
        content_type="application/json",
    )
    assert taken.status_code == 409, taken.content

    booked = offer_accept(token=token, now=NOW + timedelta(minutes=10))

    offer.refresh_from_db()
    hold = offer.hold
    hold.refresh_from_db()
    assert (booked.status, booked.source, booked.start) == (
        AppointmentStatus.BOOKED,
        "waitlist",
        TEN,
    )
    assert booked.patient_id == entry.patient_id
    assert (offer.status, offer.appointment_id) == (OfferStatus.ACCEPTED, booked.pk)
    assert WaitlistEntry.objects.get(pk=entry.pk).status == WaitlistStatus.BOOKED
    assert hold.status == AppointmentStatus.CANCELLED
    assert active_lanes(hold) == 0
    assert active_lanes(booked) == 2
    # The booking is a normal one: its confirmation and reminders are planned; the hold has none.
    kinds = set(OutboundMessage.objects.filter(appointment=booked).values_list("kind", flat=True))
    assert {"confirmation", "confirm_request", "morning_of"} <= kinds
    assert OutboundMessage.objects.filter(appointment=hold).count() == 0


@time_machine.travel(NOW, tick=False)
def test_a_visit_moved_away_offers_the_start_it_left(
    consultation, make_patient, django_capture_on_commit_callbacks
):
    visit = appointment_book(appointment_type=consultation, patient=make_patient(), start=TEN)
    entry = wait_for(consultation, make_patient())

    with django_capture_on_commit_callbacks(execute=True):
        appointment_reschedule(appointment=visit, start=TEN + timedelta(days=1))

    offer = WaitlistOffer.objects.get()
    assert (offer.entry_id, offer.start) == (entry.pk, TEN)
    assert active_lanes(offer.hold) == 2


@time_machine.travel(NOW, tick=False)
def test_a_rolled_back_cancel_offers_nothing(
    consultation, make_patient, django_capture_on_commit_callbacks
):
    visit = appointment_book(appointment_type=consultation, patient=make_patient(), start=TEN)
    wait_for(consultation, make_patient())

    def failing_request() -> None:
        with transaction.atomic():
            appointment_cancel(appointment=visit)
            raise RuntimeError("the request failed after the cancel")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        failing_request()

    assert not WaitlistOffer.objects.exists()
    assert not Appointment.objects.filter(status=AppointmentStatus.HELD).exists()


# --- Passing down the line ---------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_an_expired_hold_passes_the_slot_to_the_next_in_line(consultation, make_patient, tokens):
    first = wait_for(consultation, make_patient())
    second = wait_for(consultation, make_patient(), now=NOW + timedelta(seconds=1))
    offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)
    assert offered is not None
    assert offered.entry_id == first.pk
    first_hold = offered.hold
    assert first_hold is not None

    with time_machine.travel(offered.expires_at + timedelta(minutes=1), tick=False):
        assert offers_expire() == 1

    offered.refresh_from_db()
    assert offered.status == OfferStatus.EXPIRED
    first_hold.refresh_from_db()
    assert (first_hold.status, active_lanes(first_hold)) == (AppointmentStatus.CANCELLED, 0)
    assert WaitlistEntry.objects.get(pk=first.pk).status == WaitlistStatus.WAITING
    following = WaitlistOffer.objects.get(status=OfferStatus.OPEN)
    assert (following.entry_id, following.start) == (second.pk, TEN)
    assert following.hold is not None
    assert following.hold.status == AppointmentStatus.HELD
    assert active_lanes(following.hold) == 2
    assert WaitlistEntry.objects.get(pk=second.pk).status == WaitlistStatus.OFFERED
    assert set(tokens) == {offered.pk, following.pk}
    # Accepting the expired offer now is refused, clearly.
    with pytest.raises(OfferClosed, match="expired"):
        offer_accept(token=tokens[offered.pk])


@time_machine.travel(NOW, tick=False)
def test_the_sweep_leaves_offers_that_have_not_expired(consultation, make_patient):
    wait_for(consultation, make_patient())
    offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)
    assert offered is not None

    assert offers_expire(offered.expires_at - timedelta(seconds=1)) == 0

    offered.refresh_from_db()
    assert offered.status == OfferStatus.OPEN


@time_machine.travel(NOW, tick=False)
def test_declining_passes_the_slot_to_the_next_in_line(consultation, make_patient, tokens):
    first = wait_for(consultation, make_patient())
    second = wait_for(consultation, make_patient(), now=NOW + timedelta(seconds=1))
    offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)
    assert offered is not None

    offer_decline(token=tokens[offered.pk], now=NOW + timedelta(minutes=5))

    offered.refresh_from_db()
    assert offered.status == OfferStatus.DECLINED
    assert active_lanes(offered.hold) == 0
    # The first patient keeps their place for other times; this time goes to the second.
    assert WaitlistEntry.objects.get(pk=first.pk).status == WaitlistStatus.WAITING
    following = WaitlistOffer.objects.get(status=OfferStatus.OPEN)
    assert following.entry_id == second.pk
    with pytest.raises(OfferClosed, match="declined"):
        offer_accept(token=tokens[offered.pk])


@time_machine.travel(NOW, tick=False)
def test_the_last_in_line_declining_frees_the_slot_for_everyone(consultation, make_patient, tokens):
    wait_for(consultation, make_patient())
    offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)
    assert offered is not None

    offer_decline(token=tokens[offered.pk])

    assert not WaitlistOffer.objects.filter(status=OfferStatus.OPEN).exists()
    appointment_book(appointment_type=consultation, patient=make_patient(), start=TEN)


@time_machine.travel(NOW, tick=False)
def test_removing_an_entry_withdraws_its_offer_and_passes_the_slot_on(consultation, make_patient):
    first = wait_for(consultation, make_patient())
    second = wait_for(consultation, make_patient(), now=NOW + timedelta(seconds=1))
    offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)
    assert offered is not None

    removed = waitlist_remove(entry=first)

    offered.refresh_from_db()
    assert removed.status == WaitlistStatus.REMOVED
    assert offered.status == OfferStatus.WITHDRAWN
    assert WaitlistOffer.objects.get(status=OfferStatus.OPEN).entry_id == second.pk
    assert waitlist_remove(entry=first).status == WaitlistStatus.REMOVED  # harmless twice


# --- Who is offered ----------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_with_nobody_waiting_nothing_is_held(consultation, make_patient):
    wait_for(consultation, make_patient(), first=date(2026, 6, 10), last=date(2026, 6, 12))

    assert offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW) is None

    assert not Appointment.objects.filter(status=AppointmentStatus.HELD).exists()
    assert not Allocation.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_entries_whose_window_misses_the_slot_are_passed_over(consultation, make_patient):
    wait_for(consultation, make_patient(), first=date(2026, 6, 4), last=date(2026, 6, 9))
    # 10:00 local is outside 11:00-15:00 (UTC 14:00 would be inside: the local clock counts).
    wait_for(
        consultation,
        make_patient(),
        earliest=time(11),
        latest=time(15),
        now=NOW + timedelta(seconds=1),
    )
    fits = wait_for(
        consultation,
        make_patient(),
        earliest=time(9, 30),
        latest=time(10),
        now=NOW + timedelta(seconds=2),
    )

    offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)

    assert offered is not None
    assert offered.entry_id == fits.pk


@time_machine.travel(NOW, tick=False)
def test_a_patient_busy_at_that_time_is_passed_over(consultation, one_chair, make_patient):
    busy = make_patient()
    # The same time, at another clinic: the patient cannot be in two places.
    appointment_book(appointment_type=one_chair, patient=busy, start=TEN)
    wait_for(consultation, busy)
    free = wait_for(consultation, make_patient(), now=NOW + timedelta(seconds=1))

    offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)

    assert offered is not None
    assert offered.entry_id == free.pk
    assert WaitlistEntry.objects.get(patient=busy).status == WaitlistStatus.WAITING


@time_machine.travel(NOW, tick=False)
def test_a_slot_inside_the_minimum_notice_is_not_offered(consultation, make_patient):
    wait_for(consultation, make_patient(), first=date(2026, 6, 1))
    soon = datetime.fromisoformat("2026-06-01T15:00:00-04:00")  # 7 h away; 12 h notice

    assert offer_freed_slot(appointment_type=consultation, start=soon, now=NOW) is None
    assert not Appointment.objects.filter(status=AppointmentStatus.HELD).exists()


@time_machine.travel(NOW, tick=False)
def test_a_hold_never_runs_past_the_minimum_notice(consultation, make_patient):
    wait_for(consultation, make_patient(), first=date(2026, 6, 1))
    morning = datetime.fromisoformat("2026-06-02T09:00:00-04:00")
    # Freed 13 h ahead: of the 2 h hold, only the hour before the 12 h notice is left.
    with time_machine.travel(morning - timedelta(hours=13), tick=False):
        offered = offer_freed_slot(appointment_type=consultation, start=morning)

    assert offered is not None
    assert offered.expires_at == morning - timedelta(hours=12)


def test_a_hold_made_in_quiet_hours_runs_from_when_they_end(consultation, make_patient):
    late_evening = datetime.fromisoformat("2026-06-01T23:00:00-04:00")  # quiet from 21:00
    wait_for(consultation, make_patient(), first=date(2026, 6, 1), now=late_evening)
    with time_machine.travel(late_evening, tick=False):
        offered = offer_freed_slot(appointment_type=consultation, start=TEN)

    # Not two hours of night: two hours after the quiet hours end at 08:00.
    assert offered is not None
    assert offered.expires_at == datetime.fromisoformat("2026-06-02T10:00:00-04:00")


def test_a_hold_made_in_quiet_hours_still_closes_at_the_minimum_notice(consultation, make_patient):
    late_evening = datetime.fromisoformat("2026-06-01T22:00:00-04:00")
    afternoon = datetime.fromisoformat("2026-06-02T16:00:00-04:00")
    wait_for(consultation, make_patient(), first=date(2026, 6, 1), now=late_evening)
    # Freed at 22:00, in quiet hours, for a visit the next afternoon with 12 h notice: the clock
    # would start at 08:00, but the clinic must know by 04:00.
    with time_machine.travel(late_evening, tick=False):
        offered = offer_freed_slot(appointment_type=consultation, start=afternoon)

    assert offered is not None
    assert offered.expires_at == afternoon - timedelta(hours=12)


@time_machine.travel(NOW, tick=False)
def test_a_taken_slot_is_not_offered(consultation, make_patient):
    appointment_book(appointment_type=consultation, patient=make_patient(), start=TEN)
    wait_for(consultation, make_patient())

    assert offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW) is None
    assert WaitlistEntry.objects.get().status == WaitlistStatus.WAITING


# --- Answering ---------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_accepting_twice_is_refused(consultation, make_patient, tokens):
    wait_for(consultation, make_patient())
    offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)
    assert offered is not None
    offer_accept(token=tokens[offered.pk])

    with pytest.raises(OfferClosed, match="already accepted"):
        offer_accept(token=tokens[offered.pk])

    assert Appointment.objects.filter(status=AppointmentStatus.BOOKED).count() == 1


@time_machine.travel(NOW, tick=False)
def test_an_expired_offer_cannot_be_accepted_even_before_the_sweep(
    consultation, make_patient, tokens
):
    wait_for(consultation, make_patient())
    offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)
    assert offered is not None

    with pytest.raises(OfferClosed, match="expired"):
        offer_accept(token=tokens[offered.pk], now=offered.expires_at)

    offered.refresh_from_db()
    assert offered.status == OfferStatus.OPEN  # the sweep passes it on
    assert active_lanes(offered.hold) == 2


@time_machine.travel(NOW, tick=False)
def test_an_unknown_token_is_not_found(db):
    with pytest.raises(BookingError) as refused:
        offer_accept(token="not-a-real-token")

    assert refused.value.status == 404


# --- Joining -----------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("first", "last", "field"),
    [
        (date(2026, 6, 5), date(2026, 6, 2), "latest_date"),
        (date(2026, 5, 31), date(2026, 6, 2), "earliest_date"),
        (date(2026, 12, 1), date(2026, 12, 2), "earliest_date"),
    ],
    ids=["out of order", "in the past", "beyond the horizon"],
)
def test_a_window_that_cannot_be_booked_is_refused(consultation, make_patient, first, last, field):
    with pytest.raises(BookingError) as refused:
        wait_for(consultation, make_patient(), first=first, last=last)

    assert refused.value.field == field
    assert not WaitlistEntry.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_a_time_window_out_of_order_is_refused(consultation, make_patient):
    with pytest.raises(BookingError, match="earliest time") as refused:
        wait_for(consultation, make_patient(), earliest=time(15), latest=time(9))

    assert refused.value.field == "latest_time"


@time_machine.travel(NOW, tick=False)
def test_a_type_of_another_location_is_refused(consultation, one_chair, make_patient):
    with pytest.raises(PolicyViolation, match="not offered at that location"):
        waitlist_add(
            patient=make_patient(),
            location=consultation.location,
            appointment_type=one_chair,
            earliest_date=date(2026, 6, 2),
            latest_date=date(2026, 6, 5),
            now=NOW,
        )


@time_machine.travel(NOW, tick=False)
def test_a_patient_without_an_approval_cannot_wait_for_a_treatment(infusion, make_patient):
    with pytest.raises(NotEligible, match="consultation and a prescriber's approval"):
        wait_for(infusion, make_patient())


@time_machine.travel(NOW, tick=False)
def test_an_approved_patient_can_wait_for_a_treatment(infusion, make_approved_patient):
    entry = wait_for(infusion, make_approved_patient())

    assert entry.status == WaitlistStatus.WAITING


@time_machine.travel(NOW, tick=False)
def test_a_patient_waits_once_per_type(consultation, make_patient):
    patient = make_patient()
    wait_for(consultation, patient)

    with pytest.raises(PolicyViolation, match="already on the waitlist"):
        wait_for(consultation, patient)


# --- Concurrency (PostgreSQL) --------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_accepts_of_one_offer_book_once(
    consultation, make_patient, tokens, count_overlaps
):
    with time_machine.travel(NOW, tick=False):
        wait_for(consultation, make_patient())
        offered = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)
    assert offered is not None
    token = tokens[offered.pk]
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
    outcomes: list[str] = []
    lock = threading.Lock()

    def accept() -> None:
        try:
            barrier.wait()
            try:
                offer_accept(token=token, now=NOW + timedelta(minutes=1))
                outcome = "booked"
            except OfferClosed:
                outcome = "refused"
            with lock:
                outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["booked", "refused"]
    assert Appointment.objects.filter(status=AppointmentStatus.BOOKED, start=TEN).count() == 1
    assert not Appointment.objects.filter(status=AppointmentStatus.HELD).exists()
    assert count_overlaps() == 0

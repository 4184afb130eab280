"""What the outbox guarantees about delivery (DESIGN §3 Reminders, §5), one sweep at a time.

Each test books through the booking services, so the rows are planned by the real signal, then
drives ``message_deliver_due`` over a pinned clock as beat would, a quarter of an hour at a time.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from django.db import OperationalError, transaction
from django.template import TemplateSyntaxError
from django.test import Client
from time_machine import TimeMachineFixture

from booking.links import patient_link_resolve
from booking.models import Appointment, AppointmentStatus, Patient
from booking.services import appointment_book, appointment_cancel, appointment_reschedule
from notifications import delivery, rendering, sms
from notifications.delivery import MAX_ATTEMPTS, message_deliver_due, message_send
from notifications.models import (
    Channel,
    DeliveryAttempt,
    MessageKind,
    MessageStatus,
    OutboundMessage,
)
from notifications.sms import PermanentSendError, SendError, TransientSendError
from scheduling.models import AppointmentType
from tests.notifications.conftest import Sweep, send_at
from tests.staff_helpers import signed_in

NOW = datetime.fromisoformat("2026-10-05T08:00:00-04:00")  # a Monday morning in New York
START = datetime.fromisoformat("2026-10-08T10:00:00-04:00")
MOVED = datetime.fromisoformat("2026-10-10T10:00:00-04:00")
# Beat runs every minute; a quarter of an hour is as fine as any rule's time of day.
STEP = timedelta(minutes=15)

EMAIL, SMS = Channel.EMAIL, Channel.SMS
K = MessageKind


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


def et(value: str) -> datetime:
    """A wall-clock time in New York in October (EDT)."""
    return datetime.fromisoformat(f"{value}-04:00")


# When each message of a treatment session at START is due: the default rules of the type, the
# text moved out of the clinic's quiet hours (21:00-08:00).
DUE_FOR_START = {
    (K.CONFIRMATION, EMAIL): NOW,
    (K.CONFIRMATION, SMS): NOW,
    (K.PREP, EMAIL): et("2026-10-06T10:00"),
    (K.PREP, SMS): et("2026-10-06T10:00"),
    (K.CONFIRM_REQUEST, EMAIL): et("2026-10-07T10:00"),
    (K.CONFIRM_REQUEST, SMS): et("2026-10-07T10:00"),
    (K.EVENING_BEFORE, EMAIL): et("2026-10-07T19:00"),
    (K.EVENING_BEFORE, SMS): et("2026-10-07T19:00"),
    (K.MORNING_OF, EMAIL): et("2026-10-08T07:30"),
    (K.MORNING_OF, SMS): et("2026-10-07T20:45"),
    (K.FOLLOW_UP, EMAIL): et("2026-10-09T10:00"),
}
REMINDERS_FOR_MOVED = {
    (K.PREP, EMAIL): et("2026-10-08T10:00"),
    (K.PREP, SMS): et("2026-10-08T10:00"),
    (K.CONFIRM_REQUEST, EMAIL): et("2026-10-09T10:00"),
    (K.CONFIRM_REQUEST, SMS): et("2026-10-09T10:00"),
    (K.EVENING_BEFORE, EMAIL): et("2026-10-09T19:00"),
    (K.EVENING_BEFORE, SMS): et("2026-10-09T19:00"),
    (K.MORNING_OF, EMAIL): et("2026-10-10T07:30"),
    (K.MORNING_OF, SMS): et("2026-10-09T20:45"),
    (K.FOLLOW_UP, EMAIL): et("2026-10-11T10:00"),
}


def every(step: timedelta, first: datetime, last: datetime) -> Iterator[datetime]:
    moment = first
    while moment <= last:
        yield moment
        moment += step


def rows(appointment: Appointment) -> dict[tuple[str, str], OutboundMessage]:
    return {
        (row.kind, row.channel): row
        for row in OutboundMessage.objects.filter(appointment=appointment)
    }


def sends(appointment: Appointment) -> Counter[tuple[str, str]]:
    """How many times each (kind, channel) of ``appointment`` was handed to a provider."""
    return Counter(
        DeliveryAttempt.objects.filter(
            message__appointment=appointment, outcome="sent"
        ).values_list("message__kind", "message__channel")
    )


@pytest.fixture
def ann(make_patient) -> Patient:
    return make_patient(first_name="Ann", sms_consent=True)


@pytest.fixture
def booked(infusion: AppointmentType, ann: Patient, time_machine: TimeMachineFixture):
    """Ann's treatment session at START, booked at NOW."""
    time_machine.move_to(NOW, tick=False)
    return appointment_book(appointment_type=infusion, patient=ann, start=START)


# --- Exactly once -------------------------------------------------------------------------------


def test_a_doubled_sweep_sends_each_message_once(
    booked, time_machine: TimeMachineFixture, texts, mailoutbox
):
    for moment in every(STEP, NOW, et("2026-10-09T12:00")):
        time_machine.move_to(moment, tick=False)
        queued: list[list[int]] = []
        message_deliver_due(now=moment, enqueue=queued.append)
        # Beat fires again before any worker has taken the first sweep's batches.
        assert message_deliver_due(now=moment, enqueue=queued.append) == 0
        for batch in queued:
            send_at(moment)(batch)

    planned = rows(booked)
    assert set(planned) == set(DUE_FOR_START)
    assert {row.status for row in planned.values()} == {MessageStatus.SENT}
    assert sends(booked) == Counter(dict.fromkeys(DUE_FOR_START, 1))
    assert len(texts) == sum(1 for _, channel in DUE_FOR_START if channel == SMS)
    assert len(mailoutbox) == sum(1 for _, channel in DUE_FOR_START if channel == EMAIL)


def test_a_batch_delivered_twice_sends_each_message_once(booked, texts, mailoutbox):
    batches: list[list[int]] = []
    message_deliver_due(now=NOW, enqueue=batches.append)
    (batch,) = batches

    first = [message_send(message_id=i, now=NOW) for i in batch]
    # The broker hands the same batch out again, as after a lost acknowledgement.
    again = [message_send(message_id=i, now=NOW + timedelta(minutes=1)) for i in batch]

    assert first == ["sent", "sent"]
    assert again == ["not claimed", "not claimed"]
    assert len(texts) == 1
    assert len(mailoutbox) == 1
    assert sends(booked) == {(K.CONFIRMATION, EMAIL): 1, (K.CONFIRMATION, SMS): 1}


def test_a_batch_still_queued_when_its_claim_goes_stale_is_sent_once(
    booked, settings, time_machine: TimeMachineFixture, texts, mailoutbox
):
    first: list[list[int]] = []
    message_deliver_due(now=NOW, enqueue=first.append)
    # The workers are so far behind that the batch is still waiting in the queue when its
    # claim looks abandoned: the next sweep hands the same messages out again.
    later = NOW + timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS + 1)
    time_machine.move_to(later, tick=False)
    second: list[list[int]] = []
    message_deliver_due(now=later, enqueue=second.append)
    assert [set(batch) for batch in second] == [set(batch) for batch in first]

    outcomes = send_at(later)(first[0]) + send_at(later)(second[0])

    assert sorted(outcomes) == ["not claimed", "not claimed", "sent", "sent"]
    assert len(texts) == 1
    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_send_whose_record_the_database_lost_is_recorded_once_it_is_back(
    booked, monkeypatch, settings, time_machine: TimeMachineFixture, texts, mailoutbox
):
    # The provider takes the message, then the connection goes (a database restart) before the
    # transaction recording it commits: the row, the attempt and the patient's link with it.
    real_finish = delivery._finish
    lost: list[int] = []

    def finish_then_lose_the_connection(message, status, *args, **kwargs):
        if status == MessageStatus.SENT and not lost:
            lost.append(message.pk)
            raise OperationalError("server closed the connection unexpectedly")
        return real_finish(message, status, *args, **kwargs)

    monkeypatch.setattr(delivery, "_finish", finish_then_lose_the_connection)
    monkeypatch.setattr(delivery.time, "sleep", lambda seconds: None)
    batches: list[list[int]] = []
    message_deliver_due(now=NOW, enqueue=batches.append)

    outcomes = send_at(NOW)(batches[0])

    assert outcomes == ["sent", "sent"]
    (message,) = OutboundMessage.objects.filter(pk__in=lost)
    assert (message.status, message.attempts, message.claimed_at) == (MessageStatus.SENT, 1, None)
    assert sends(booked) == {(K.CONFIRMATION, EMAIL): 1, (K.CONFIRMATION, SMS): 1}
    # The link in what went out works.
    body = mailoutbox[0].body if message.channel == EMAIL else texts[0].body
    (token,) = re.findall(r"/a/([A-Za-z0-9_-]+)/", body)
    assert patient_link_resolve(token=token, now=NOW) == booked.patient
    # Long after its claim would have gone stale, nothing is sent again.
    later = NOW + timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS + 60)
    time_machine.move_to(later, tick=False)
    assert message_deliver_due(now=later, enqueue=send_at(later)) == 0
    assert (len(mailoutbox), len(texts)) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_a_send_the_database_failed_before_the_provider_call_gives_its_hand_over_back(
    booked, monkeypatch, settings, sweep: Sweep, texts, mailoutbox
):
    # The connection goes once the hand-over is committed, while the send checks again under
    # the visit's lock: nothing reached the provider, so the message is not left unconfirmed.
    real_refusal = delivery._refusal
    checks: list[int] = []

    def refusal_then_lose_the_connection(message, *args, **kwargs):
        checks.append(message.pk)
        if message.channel == SMS and checks.count(message.pk) == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return real_refusal(message, *args, **kwargs)

    monkeypatch.setattr(delivery, "_refusal", refusal_then_lose_the_connection)
    batches: list[list[int]] = []
    message_deliver_due(now=NOW, enqueue=batches.append)
    text = OutboundMessage.objects.get(pk__in=batches[0], channel=SMS)
    email = OutboundMessage.objects.get(pk__in=batches[0], channel=EMAIL)
    assert message_send(message_id=email.pk, now=NOW) == "sent"

    with pytest.raises(OperationalError):
        message_send(message_id=text.pk, now=NOW)

    text.refresh_from_db()
    assert (text.status, text.handed_at, text.handed_version) == (MessageStatus.SENDING, None, None)
    assert texts == []
    stale = NOW + timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS + 1)
    assert sweep(stale) == 1
    text.refresh_from_db()
    assert (text.status, text.detail) == (MessageStatus.SENT, "")
    assert sends(booked) == {(K.CONFIRMATION, EMAIL): 1, (K.CONFIRMATION, SMS): 1}
    assert len(texts) == 1


class Killed(BaseException):
    """The worker process dies (SIGKILL): nothing after this line of the send runs."""


def die_handing_over(monkeypatch, *, after_the_provider: bool) -> None:
    """The next send dies once its hand-over is committed: before the provider has the
    message, or once it has it and before the outcome is recorded."""
    real_outgoing = delivery.outgoing

    def outgoing_then_die(*args, **kwargs):
        monkeypatch.setattr(delivery, "outgoing", real_outgoing)
        ready = real_outgoing(*args, **kwargs)

        class Dying:
            to = ready.to

            def send(self) -> str:
                if after_the_provider:
                    ready.send()
                raise Killed

        return Dying()

    monkeypatch.setattr(delivery, "outgoing", outgoing_then_die)


@pytest.mark.parametrize("after_the_provider", [False, True])
def test_a_message_its_sender_died_handing_over_is_unconfirmed_and_never_sent_again(
    after_the_provider: bool, booked, monkeypatch, settings, sweep: Sweep, texts, mailoutbox
):
    batches: list[list[int]] = []
    message_deliver_due(now=NOW, enqueue=batches.append)
    (batch,) = batches
    text = OutboundMessage.objects.get(pk__in=batch, channel=SMS)
    email = OutboundMessage.objects.get(pk__in=batch, channel=EMAIL)
    assert message_send(message_id=email.pk, now=NOW) == "sent"
    die_handing_over(monkeypatch, after_the_provider=after_the_provider)
    with pytest.raises(Killed):
        message_send(message_id=text.pk, now=NOW)
    out = 1 if after_the_provider else 0
    assert len(texts) == out

    # The broker hands the batch out again at once: the hand-over is too fresh to tell a dead
    # sender from a live one, and the message is left alone.
    assert send_at(NOW + timedelta(seconds=1))(batch) == ["not claimed", "not claimed"]
    text.refresh_from_db()
    assert (text.status, text.handed_at, text.handed_version) == (MessageStatus.SENDING, NOW, 0)

    # Its claim goes stale; the sweep takes it back, and its next sender finds the hand-over.
    stale = NOW + timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS + 1)
    assert sweep(stale) == 1
    text.refresh_from_db()
    assert (text.status, text.sent_at, text.recipient, text.attempts) == (
        MessageStatus.SENT,
        NOW,
        booked.patient.phone,
        1,
    )
    assert text.detail == delivery.UNCONFIRMED_DETAIL
    assert (text.handed_at, text.handed_version) == (None, None)
    assert list(text.tries.values_list("outcome", flat=True)) == ["unconfirmed"]
    assert sends(booked) == {(K.CONFIRMATION, EMAIL): 1}
    assert (len(texts), len(mailoutbox)) == (out, 1)

    # Nothing takes it back again.
    later = stale + timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS + 1)
    assert sweep(later) == 0
    assert (len(texts), text.tries.count()) == (out, 1)


def test_a_reschedule_after_a_dead_senders_hand_over_sends_the_new_times_reminder(
    booked, monkeypatch, sweep: Sweep, time_machine: TimeMachineFixture, texts
):
    sweep(NOW)
    prep_due = DUE_FOR_START[K.PREP, SMS]
    time_machine.move_to(prep_due, tick=False)
    batches: list[list[int]] = []
    message_deliver_due(now=prep_due, enqueue=batches.append)
    prep = OutboundMessage.objects.get(kind=K.PREP, channel=SMS)
    die_handing_over(monkeypatch, after_the_provider=True)
    with pytest.raises(Killed):
        message_send(message_id=prep.pk, now=prep_due)
    texts_before = len(texts)

    # The hand-over was for the visit as it was; the reminder of its new time is a new plan.
    moved_at = prep_due + STEP
    appointment_reschedule(appointment=booked, start=MOVED, now=moved_at)
    for moment in every(STEP, moved_at, REMINDERS_FOR_MOVED[K.PREP, SMS]):
        sweep(moment)

    prep.refresh_from_db()
    assert (prep.status, prep.appointment_version, prep.detail) == (MessageStatus.SENT, 1, "")
    assert prep.sent_at == REMINDERS_FOR_MOVED[K.PREP, SMS]
    assert list(prep.tries.values_list("outcome", flat=True)) == ["sent"]
    moved, prep_again = texts[texts_before:]  # the notice of the move, and prep for the new time
    assert "has moved to Saturday 10 October 2026 at 10:00 AM" in moved.body
    assert "is on Saturday 10 October 2026 at 10:00 AM" in prep_again.body
    assert "prepare" in prep_again.body


def test_replanning_rewrites_the_rows_it_has_instead_of_adding_more(booked, sweep: Sweep):
    sweep(NOW)
    before = rows(booked)

    appointment_reschedule(appointment=booked, start=MOVED, now=NOW)
    appointment_reschedule(appointment=booked, start=START, now=NOW)

    after = rows(booked)
    assert set(after) == set(before) | {(K.RESCHEDULED, EMAIL), (K.RESCHEDULED, SMS)}
    assert all(after[key].id == row.id for key, row in before.items())
    assert OutboundMessage.objects.filter(appointment=booked).count() == len(after)


# --- Cancelled means silent ---------------------------------------------------------------------


def test_nothing_but_the_cancellation_notice_goes_out_after_a_cancel(
    booked, sweep: Sweep, texts, mailoutbox
):
    cancelled_at = et("2026-10-06T12:00")
    for moment in every(STEP, NOW, cancelled_at - STEP):
        sweep(moment)
    assert sends(booked) == {
        (K.CONFIRMATION, EMAIL): 1,
        (K.CONFIRMATION, SMS): 1,
        (K.PREP, EMAIL): 1,
        (K.PREP, SMS): 1,
    }
    texts_before, emails_before = len(texts), len(mailoutbox)

    sweep(cancelled_at)
    appointment_cancel(appointment=booked, reason="unwell", now=cancelled_at)
    for moment in every(STEP, cancelled_at, et("2026-10-10T12:00")):
        sweep(moment)

    assert sends(booked) - Counter(
        {
            (K.CONFIRMATION, EMAIL): 1,
            (K.CONFIRMATION, SMS): 1,
            (K.PREP, EMAIL): 1,
            (K.PREP, SMS): 1,
        }
    ) == Counter({(K.CANCELLED, EMAIL): 1, (K.CANCELLED, SMS): 1})
    (text,) = texts[texts_before:]
    assert "is cancelled" in text.body
    (email,) = mailoutbox[emails_before:]
    assert "cancelled" in email.subject
    unsent = {key for key, row in rows(booked).items() if row.status == MessageStatus.CANCELLED}
    assert unsent == set(DUE_FOR_START) - {
        (K.CONFIRMATION, EMAIL),
        (K.CONFIRMATION, SMS),
        (K.PREP, EMAIL),
        (K.PREP, SMS),
    }


@pytest.mark.parametrize("when", ["before the send", "between the hand-over and the send"])
def test_a_message_claimed_before_a_cancel_is_not_sent(
    when: str,
    booked,
    monkeypatch,
    sweep: Sweep,
    time_machine: TimeMachineFixture,
    texts,
    mailoutbox,
):
    sweep(NOW)
    prep_due = DUE_FOR_START[K.PREP, EMAIL]
    time_machine.move_to(prep_due, tick=False)
    claimed: list[list[int]] = []
    message_deliver_due(now=prep_due, enqueue=claimed.append)
    (batch,) = claimed
    sent_before = len(texts), len(mailoutbox)

    if when == "before the send":
        appointment_cancel(appointment=booked, now=prep_due)
    else:
        real_send_handed = delivery._send_handed

        def cancel_first(*args, **kwargs):
            # The hand-over is committed; the visit's lock is free until the send takes it
            # again.
            if not Appointment.objects.filter(pk=booked.pk, status=AppointmentStatus.CANCELLED):
                appointment_cancel(appointment=booked, now=prep_due)
            return real_send_handed(*args, **kwargs)

        monkeypatch.setattr(delivery, "_send_handed", cancel_first)
    outcomes = [message_send(message_id=i, now=prep_due) for i in batch]

    assert outcomes == ["not claimed", "not claimed"]
    assert (len(texts), len(mailoutbox)) == sent_before
    # Nothing was handed over: no doubt is left behind.
    rows_now = OutboundMessage.objects.filter(id__in=batch)
    assert {(row.status, row.handed_at) for row in rows_now} == {(MessageStatus.CANCELLED, None)}


# --- Reschedule ---------------------------------------------------------------------------------


def test_a_reschedule_replans_every_reminder_at_the_new_time_once(
    booked, sweep: Sweep, texts, mailoutbox
):
    moved_at = et("2026-10-06T12:00")
    for moment in every(STEP, NOW, moved_at - STEP):
        sweep(moment)
    sent_for_start = {
        (K.CONFIRMATION, EMAIL),
        (K.CONFIRMATION, SMS),
        (K.PREP, EMAIL),
        (K.PREP, SMS),
    }
    assert set(sends(booked)) == sent_for_start

    sweep(moved_at)
    appointment_reschedule(appointment=booked, start=MOVED, now=moved_at)
    for moment in every(STEP, moved_at, et("2026-10-11T12:00")):
        sweep(moment)

    planned = rows(booked)
    for key, due in REMINDERS_FOR_MOVED.items():
        assert planned[key].status == MessageStatus.SENT, key
        assert planned[key].sent_at == due, key
        assert planned[key].appointment_version == 1, key
    assert planned[K.RESCHEDULED, EMAIL].sent_at == moved_at
    assert planned[K.RESCHEDULED, SMS].sent_at == moved_at
    expected = Counter(dict.fromkeys(REMINDERS_FOR_MOVED, 1))
    expected.update(dict.fromkeys(sent_for_start, 1))  # the confirmation, and prep for START
    expected.update({(K.RESCHEDULED, EMAIL): 1, (K.RESCHEDULED, SMS): 1})
    assert sends(booked) == expected
    assert len(texts) + len(mailoutbox) == expected.total()


# --- Rollback -----------------------------------------------------------------------------------


class Abandoned(Exception):
    pass


def test_a_rolled_back_booking_sends_nothing(
    infusion,
    ann,
    sweep: Sweep,
    time_machine: TimeMachineFixture,
    texts,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    time_machine.move_to(NOW, tick=False)

    def book_then_give_up() -> None:
        with transaction.atomic():
            appointment_book(appointment_type=infusion, patient=ann, start=START)
            raise Abandoned(OutboundMessage.objects.count())

    with django_capture_on_commit_callbacks() as queued, pytest.raises(Abandoned) as abandoned:
        book_then_give_up()

    assert abandoned.value.args == (len(DUE_FOR_START),)  # planned inside the transaction
    assert queued == []
    assert not Appointment.objects.exists()
    assert not OutboundMessage.objects.exists()
    for moment in every(timedelta(hours=1), NOW, et("2026-10-10T12:00")):
        assert sweep(moment) == 0
    assert texts == []
    assert mailoutbox == []


# --- Provider failures --------------------------------------------------------------------------


class ScriptedBackend(sms.LocmemBackend):
    """Fails with each error of ``script`` in turn, then delivers as locmem does."""

    script: list[SendError] = []

    def send(self, to: str, body: str) -> str:
        if ScriptedBackend.script:
            raise ScriptedBackend.script.pop(0)
        return super().send(to, body)


@pytest.fixture
def provider(settings, texts) -> Iterator[list[SendError]]:
    settings.SMS_BACKEND = f"{__name__}.ScriptedBackend"
    ScriptedBackend.script = []
    yield ScriptedBackend.script
    ScriptedBackend.script = []


def confirmation_text(appointment: Appointment) -> OutboundMessage:
    return OutboundMessage.objects.get(appointment=appointment, kind=K.CONFIRMATION, channel=SMS)


def outcomes(message: OutboundMessage) -> list[str]:
    return list(message.tries.values_list("outcome", flat=True))


def test_a_provider_5xx_then_success_sends_once(booked, provider, sweep: Sweep, texts):
    provider.append(TransientSendError("provider answered 503"))

    sweep(NOW)
    message = confirmation_text(booked)
    assert message.status == MessageStatus.PENDING
    assert message.attempts == 1
    # One minute, plus up to half a minute of jitter.
    assert NOW + timedelta(seconds=60) <= message.due_at <= NOW + timedelta(seconds=90)
    retry_at = message.due_at

    sweep(NOW + timedelta(seconds=59))
    assert confirmation_text(booked).status == MessageStatus.PENDING
    sweep(retry_at)
    for moment in every(STEP, retry_at, retry_at + timedelta(hours=3)):
        sweep(moment)

    message = confirmation_text(booked)
    assert message.status == MessageStatus.SENT
    assert message.attempts == 2
    assert message.sent_at == retry_at
    assert outcomes(message) == ["retry", "sent"]
    assert len(texts) == 1


def test_retries_back_off_and_stop_at_the_limit(booked, provider, sweep: Sweep, texts):
    provider.extend(TransientSendError("provider answered 502") for _ in range(MAX_ATTEMPTS + 3))

    sweep(NOW)
    tried_at = [NOW]
    while (message := confirmation_text(booked)).status == MessageStatus.PENDING:
        assert len(tried_at) < MAX_ATTEMPTS, "still retrying past the limit"
        tried_at.append(message.due_at)
        sweep(message.due_at)
    for moment in every(timedelta(hours=1), tried_at[-1], tried_at[-1] + timedelta(days=1)):
        sweep(moment)

    message = confirmation_text(booked)
    assert message.status == MessageStatus.FAILED
    assert message.attempts == MAX_ATTEMPTS
    assert outcomes(message) == ["retry"] * (MAX_ATTEMPTS - 1) + ["failed"]
    waits = [later - earlier for earlier, later in pairwise(tried_at)]
    for attempt, wait in enumerate(waits, start=1):
        base = timedelta(minutes=2 ** (attempt - 1))
        assert base <= wait <= base * 1.5, (attempt, wait)
    assert texts == []
    assert len(provider) == 3  # the provider was not asked again after the last attempt


def test_a_message_that_cannot_be_written_is_tried_again_then_failed_never_unconfirmed(
    booked, monkeypatch, sweep: Sweep, texts
):
    # Nothing reached the provider: the hand-over is no doubt, and the desk sees a failure.
    def broken(template, context):
        raise TemplateSyntaxError("Invalid block tag: 'endif'")

    monkeypatch.setattr(rendering, "sms_text", broken)
    sweep(NOW)
    while (message := confirmation_text(booked)).status == MessageStatus.PENDING:
        assert message.handed_at is None
        sweep(message.due_at)

    assert (message.status, message.attempts, message.handed_at) == (
        MessageStatus.FAILED,
        MAX_ATTEMPTS,
        None,
    )
    assert message.detail == "could not be written: Invalid block tag: 'endif'"
    assert outcomes(message) == ["retry"] * (MAX_ATTEMPTS - 1) + ["failed"]
    assert texts == []


def test_a_permanent_4xx_fails_at_once_and_is_listed_for_the_front_desk(
    booked, provider, sweep: Sweep, texts, mailoutbox, admin_user, client: Client
):
    provider.append(PermanentSendError("provider answered 400: not a mobile number"))

    sweep(NOW)
    for moment in every(STEP, NOW, NOW + timedelta(hours=6)):
        sweep(moment)

    message = confirmation_text(booked)
    assert message.status == MessageStatus.FAILED
    assert message.attempts == 1
    assert message.sent_at is None
    assert "not a mobile number" in message.detail
    assert outcomes(message) == ["failed"]
    assert texts == []
    signed_in(client, admin_user)  # now: a session from before the sweeps has gone idle
    response = client.get("/staff/messages/")
    assert response.status_code == 200
    assert list(response.context["failed"]) == [message]
    assert mailoutbox  # the e-mail confirmation went its own way

"""The outbox, delivered: claim what is due and send it, once.

Delivery is one step, :func:`message_deliver_due`: recover claims of dead workers, claim due rows
(``SELECT … FOR UPDATE SKIP LOCKED`` then a compare-and-swap pending → sending) and hand batches
of ids to the send task. :func:`message_send` re-checks everything at send time while holding
the appointment's row lock, so a cancel that commits first always wins, and a send in flight
finishes before a cancel or reschedule can re-plan the row. It commits the message's hand-over
before calling the provider: a sender killed mid-send leaves it behind, and the message is then
recorded as unconfirmed rather than sent twice (at most one send per row and version).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from booking.links import patient_link_issue
from booking.models import Appointment, AppointmentStatus, Patient, TentativeHold, WaitlistOffer
from booking.online import tentative_token_issue
from notifications.models import (
    CHANGE_KINDS,
    Channel,
    DeliveryAttempt,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    PhoneOptOut,
)
from notifications.rendering import link_url, outgoing, recipient, send_email
from notifications.sms import PermanentSendError, TransientSendError
from scheduling.clock import in_quiet_hours, quiet_hours_end

logger = logging.getLogger(__name__)

T = TypeVar("T")


MAX_ATTEMPTS = 5


# One statement claims a batch: the due rows are locked oldest first (a row another sweep claimed
# meanwhile is re-checked away and the next one taken), rows another sweep holds are passed over,
# and exactly the rows locked become "sending". The locking read is a CTE, evaluated once: inside
# an IN (...) the UPDATE's re-check of a row changed since its snapshot could run the LIMITed
# subquery again and lose rows it had locked.
_CLAIM = f"""
WITH due AS (
    SELECT id FROM {OutboundMessage._meta.db_table}
    WHERE status = '{MessageStatus.PENDING.value}' AND due_at <= %(now)s
    ORDER BY due_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {OutboundMessage._meta.db_table} AS message
SET status = '{MessageStatus.SENDING.value}', claimed_at = %(now)s
FROM due WHERE message.id = due.id
RETURNING message.id
"""  # noqa: S608 - the table's name and fixed statuses; values are bound parameters


def messages_claim(*, now: datetime, limit: int) -> list[int]:
    """Claim up to ``limit`` due messages for sending, oldest first; each id is claimed by one
    caller only."""
    if connection.vendor != "postgresql":
        # SQLite lets one writer at a time in: selecting, then updating in the same
        # transaction, is already a claim.
        with transaction.atomic():
            ids = list(
                OutboundMessage.objects.filter(status=MessageStatus.PENDING, due_at__lte=now)
                .order_by("due_at")
                .values_list("id", flat=True)[:limit]
            )
            claimed = OutboundMessage.objects.filter(
                id__in=ids, status=MessageStatus.PENDING
            ).update(status=MessageStatus.SENDING, claimed_at=now)
            if claimed != len(ids):  # pragma: no cover - no other writer gets in
                raise RuntimeError("claimed rows changed within the claim")
        return ids
    with transaction.atomic(), connection.cursor() as cursor:
        # A claim lost in a crash only delays its messages: a row is sent only while it is
        # "sending", and the next sweep claims it again. So the claim need not wait for its
        # commit to reach the disk.
        cursor.execute("SELECT set_config('synchronous_commit', 'off', true)")
        cursor.execute(_CLAIM, {"now": now, "limit": limit})
        return [row[0] for row in cursor.fetchall()]


def messages_recover_stale(*, now: datetime) -> int:
    """Put back messages claimed by a worker that died before finishing them.

    A row a sender still holds locked belongs to a live send (slow provider): it is skipped, so
    one hung call never blocks the sweep for everyone else.
    """
    stale = now - timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS)
    with transaction.atomic():
        ids = list(
            OutboundMessage.objects.select_for_update(skip_locked=True)
            .filter(status=MessageStatus.SENDING, claimed_at__lt=stale)
            .values_list("id", flat=True)
        )
        return OutboundMessage.objects.filter(id__in=ids, status=MessageStatus.SENDING).update(
            status=MessageStatus.PENDING, claimed_at=None
        )


def message_deliver_due(
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    enqueue: Callable[[list[int]], Any] | None = None,
) -> int:
    """One sweep: recover stale claims, claim every due message, hand out batches of ids.

    ``enqueue`` receives each batch (default: the ``send_messages`` Celery task, all batches
    through one producer). Returns how many messages were claimed.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.OUTBOX_BATCH_SIZE
    messages_recover_stale(now=now)
    with ExitStack() as stack:
        if enqueue is None:
            enqueue = batch_publisher(stack)
        total = 0
        while ids := messages_claim(now=now, limit=batch_size):
            try:
                enqueue(ids)
            except Exception:
                # The broker is away: give the batch back at once rather than after it goes
                # stale.
                OutboundMessage.objects.filter(id__in=ids, status=MessageStatus.SENDING).update(
                    status=MessageStatus.PENDING, claimed_at=None
                )
                raise
            total += len(ids)
    return total


# The task that sends a batch (``notifications.tasks.send_messages``), registered under this name.
# The sweep looks it up in the Celery app by name: the tasks module calls this one, not the other
# way round.
SEND_MESSAGES_TASK = "notifications.tasks.send_messages"


def batch_publisher(stack: ExitStack) -> Callable[[list[int]], Any]:
    """Publishes batches to ``send_messages`` through one producer, taken from the pool at the
    first batch (a sweep with nothing due never touches the broker) and given back with
    ``stack``."""
    producer = None

    def publish(ids: list[int]) -> None:
        nonlocal producer
        send_messages = current_app.tasks[SEND_MESSAGES_TASK]
        if producer is None:
            producer = stack.enter_context(send_messages.app.producer_or_acquire())
        send_messages.apply_async((ids,), producer=producer)

    return publish


def _backoff(attempts: int) -> timedelta:
    # 1, 2, 4, 8 … minutes with up to 50 % jitter, so a provider outage is not hammered in step.
    base = 60 * 2 ** (attempts - 1)
    return timedelta(seconds=base * (1 + random.random() / 2))  # noqa: S311 - jitter, not secrecy


def _finish(
    message: OutboundMessage, status: str, detail: str, *, now: datetime, outcome: str
) -> str:
    message.status = status
    message.detail = detail[:500]
    message.claimed_at = None
    message.handed_at = None  # whatever came of a hand-over is now recorded
    message.handed_version = None
    message.save(
        update_fields=[
            "status",
            "detail",
            "claimed_at",
            "handed_at",
            "handed_version",
            "attempts",
            "due_at",
            "sent_at",
            "provider_id",
            "recipient",
            "updated_at",
        ]
    )
    DeliveryAttempt.objects.create(message=message, at=now, outcome=outcome, detail=detail[:500])
    return outcome


def _refusal(
    message: OutboundMessage, appointment: Appointment, *, now: datetime
) -> tuple[str, str] | None:
    """Why ``message`` must not go out now, as (status, reason); None when it may."""
    if message.kind == MessageKind.VERIFY:
        if appointment.status != AppointmentStatus.TENTATIVE:
            return MessageStatus.CANCELLED, "the booking no longer waits for confirmation"
        expires_at = (
            TentativeHold.objects.filter(appointment=appointment)
            .values_list("expires_at", flat=True)
            .first()
        )
        if expires_at is None or expires_at <= now:
            return MessageStatus.SKIPPED, "the booking's hold had lapsed"
    elif message.kind == MessageKind.CANCELLED:
        if appointment.status != AppointmentStatus.CANCELLED:
            return MessageStatus.CANCELLED, "the appointment is no longer cancelled"
    elif message.kind == MessageKind.PLEASE_CALL:
        if appointment.status != AppointmentStatus.ON_HOLD:
            return MessageStatus.CANCELLED, "the visit is no longer on hold"
    elif not appointment.is_active:
        return (
            MessageStatus.CANCELLED,
            f"the appointment is {appointment.get_status_display().lower()}",
        )
    elif message.kind not in CHANGE_KINDS and message.appointment_version != appointment.version:
        return MessageStatus.CANCELLED, "the appointment changed since this was planned"
    if now - message.due_at > timedelta(minutes=message.late_cutoff_minutes):
        return MessageStatus.SKIPPED, "too late to be useful"
    if message.channel == Channel.SMS:
        patient = appointment.patient
        if not patient.sms_consent:
            return MessageStatus.SKIPPED, "no consent to text messages"
        if PhoneOptOut.objects.filter(phone=patient.phone).exists():
            return MessageStatus.SKIPPED, "the number replied STOP"
        if daily_texts_reached(patient.phone, now=now):
            return MessageStatus.SKIPPED, "daily text limit for this number reached"
    return None


def daily_texts_reached(phone: str, *, now: datetime) -> bool:
    """Whether ``phone`` has had its ``SMS_DAILY_CAP_PER_PHONE`` texts in the last 24 hours:
    messages of the outbox and waitlist offers alike."""
    since = now - timedelta(hours=24)
    sent = OutboundMessage.objects.filter(
        channel=Channel.SMS, status=MessageStatus.SENT, recipient=phone, sent_at__gt=since
    ).count()
    offers = WaitlistOffer.objects.filter(entry__patient__phone=phone, texted_at__gt=since)
    return sent + offers.count() >= settings.SMS_DAILY_CAP_PER_PHONE


@dataclass(frozen=True)
class _Accepted:
    """A message the provider took: what its record needs, should the transaction that writes
    it be lost."""

    message_id: int
    kind: str
    appointment: Appointment
    link_token: str
    recipient: str
    provider_id: str


# How long a worker keeps trying to record a message the provider took while the database is
# away (a restart, a fail-over); at most half of OUTBOX_STALE_CLAIM_SECONDS, after which the
# claim would be given back and the message recorded as unconfirmed.
RECORD_RETRY_SECONDS = 60.0


def message_send(*, message_id: int, now: datetime | None = None) -> str:
    """Send one claimed message, or say why not. Returns the outcome recorded.

    Two transactions, each under the visit's lock. The first decides whether the message may go
    and, if it may, commits its hand-over; the second checks again (a cancel may have committed
    in between), calls the provider and records what came of it. A worker killed between the
    two commits leaves the hand-over behind: the next sender to look records the message as
    unconfirmed instead of sending it a second time.
    """
    now = now or timezone.now()
    appointment_id = (
        OutboundMessage.objects.filter(pk=message_id)
        .values_list("appointment_id", flat=True)
        .first()
    )
    if appointment_id is None:
        return "missing"
    with transaction.atomic():
        refused = _hand_over(message_id, appointment_id, now=now)
    if refused is not None:
        return refused
    accepted: list[_Accepted] = []
    calling: list[bool] = []
    try:
        with transaction.atomic():
            return _send_handed(
                message_id, appointment_id, now=now, accepted=accepted, calling=calling
            )
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        if accepted:
            # The message is out, and the transaction recording it (its row, the attempt, the
            # patient's new link) went with the connection.
            return _once_the_database_answers(lambda: _record_accepted(accepted[0], now=now))
        if not calling:
            # The provider was never called: the hand-over is taken back, so that the message
            # goes once its claim is recovered instead of being left unconfirmed.
            _once_the_database_answers(lambda: _hand_over_withdraw(message_id, now=now))
        raise


def _locked(message_id: int, appointment_id: int) -> tuple[Appointment, OutboundMessage]:
    # The appointment first, as booking services lock it: a cancel or reschedule waits for this
    # send to finish, or this send sees their result. Never both orders.
    appointment = (
        Appointment.objects.select_for_update(of=("self",), no_key=True)
        .select_related("location", "appointment_type", "patient")
        .get(pk=appointment_id)
    )
    return appointment, OutboundMessage.objects.select_for_update().get(pk=message_id)


def _hand_over(message_id: int, appointment_id: int, *, now: datetime) -> str | None:
    """The outcome recorded for a claimed message that must not go now; None once its
    hand-over is written, to be committed before the provider is called."""
    appointment, message = _locked(message_id, appointment_id)
    if message.status != MessageStatus.SENDING:
        return "not claimed"
    if message.handed_at is not None and message.handed_version == message.appointment_version:
        if now - message.handed_at < hand_over_lapse():
            # A sender handing it over right now (a batch the broker delivered twice), or one
            # that died a moment ago: the stale-claim recovery brings the latter back.
            return "not claimed"
        return _unconfirmed(message, appointment, now=now)
    refusal = _refusal(message, appointment, now=now)
    if refusal is not None:
        status, reason = refusal
        return _finish(message, status, reason, now=now, outcome="skipped")
    location = appointment.location
    if message.channel == Channel.SMS and in_quiet_hours(
        now, location.zone, location.quiet_hours_start, location.quiet_hours_end
    ):
        wake = quiet_hours_end(
            now, location.zone, location.quiet_hours_start, location.quiet_hours_end
        )
        if message.kind not in CHANGE_KINDS and wake >= appointment.start:
            return _finish(
                message,
                MessageStatus.SKIPPED,
                "only quiet hours were left before the visit",
                now=now,
                outcome="skipped",
            )
        message.due_at = wake
        return _finish(
            message,
            MessageStatus.PENDING,
            "held until quiet hours end",
            now=now,
            outcome="postponed",
        )
    message.handed_at = now
    message.handed_version = message.appointment_version
    message.save(update_fields=["handed_at", "handed_version", "updated_at"])
    return None


def _send_handed(
    message_id: int,
    appointment_id: int,
    *,
    now: datetime,
    accepted: list[_Accepted],
    calling: list[bool],
) -> str:
    appointment, message = _locked(message_id, appointment_id)
    if message.handed_at != now:
        return "not claimed"  # another sender took it over
    if (
        message.status != MessageStatus.SENDING
        or message.handed_version != message.appointment_version
    ):
        # Cancelled or re-planned between the two transactions: nothing went out.
        message.handed_at = message.handed_version = None
        message.save(update_fields=["handed_at", "handed_version", "updated_at"])
        return "not claimed"
    refusal = _refusal(message, appointment, now=now)
    if refusal is not None:
        status, reason = refusal
        return _finish(message, status, reason, now=now, outcome="skipped")
    message.attempts += 1
    token = _link_token_issue(message.kind, appointment, now=now)
    try:
        ready = outgoing(message, appointment, link_token=token, now=now)
        calling.append(True)  # from here on, the provider may have it
        provider_id = ready.send()
    except PermanentSendError as exc:
        return _finish(message, MessageStatus.FAILED, str(exc), now=now, outcome="failed")
    except TransientSendError as exc:
        return _retry_or_fail(message, str(exc), now=now)
    except Exception as exc:
        if calling or isinstance(exc, DatabaseError):
            raise
        # A message that cannot be written (a template error): tried again, then failed.
        return _retry_or_fail(message, f"could not be written: {exc}", now=now)
    accepted.append(_Accepted(message_id, message.kind, appointment, token, ready.to, provider_id))
    message.recipient = ready.to
    message.provider_id = provider_id
    message.sent_at = now
    return _finish(message, MessageStatus.SENT, "", now=now, outcome="sent")


def _retry_or_fail(message: OutboundMessage, reason: str, *, now: datetime) -> str:
    if message.attempts >= MAX_ATTEMPTS:
        return _finish(message, MessageStatus.FAILED, reason, now=now, outcome="failed")
    message.due_at = now + _backoff(message.attempts)
    return _finish(message, MessageStatus.PENDING, reason, now=now, outcome="retry")


def hand_over_lapse() -> timedelta:
    """How old a hand-over is before its sender is taken for dead: half the stale-claim time,
    far more than a live sender takes between committing the hand-over and locking the row
    again to call the provider (it holds the row's lock from then until the outcome)."""
    return timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS / 2)


UNCONFIRMED = "unconfirmed"
UNCONFIRMED_DETAIL = (
    "not confirmed: the sender stopped while handing it to the provider, so it may or may not "
    "have arrived; it is not sent again"
)


def _unconfirmed(message: OutboundMessage, appointment: Appointment, *, now: datetime) -> str:
    """Record a message whose sender died after its hand-over: counted as sent, since it may
    have gone out (the daily text cap counts it too), and never sent again."""
    message.attempts += 1
    message.sent_at = message.handed_at
    message.recipient = recipient(message.channel, appointment.patient)
    message.provider_id = ""
    logger.warning("message %s: %s", message.pk, UNCONFIRMED_DETAIL)
    return _finish(message, MessageStatus.SENT, UNCONFIRMED_DETAIL, now=now, outcome=UNCONFIRMED)


def _link_token_issue(
    kind: str, appointment: Appointment, *, now: datetime, token: str | None = None
) -> str:
    """The token of the link a message carries, stored hashed as it goes out: the one that
    confirms a tentative booking, or the patient's secure link."""
    if kind == MessageKind.VERIFY:
        return tentative_token_issue(appointment=appointment, now=now, token=token)
    return patient_link_issue(patient=appointment.patient, now=now, token=token)


def _once_the_database_answers(write: Callable[[], T]) -> T:
    """``write`` on a new connection, tried again while the database is away (a restart, a
    fail-over) for up to RECORD_RETRY_SECONDS and at most half the stale-claim time; past that
    its error is raised."""
    deadline = time.monotonic() + min(RECORD_RETRY_SECONDS, settings.OUTBOX_STALE_CLAIM_SECONDS / 2)
    pause = 0.5
    while True:
        connection.close()  # the broken one; the next query opens a new connection
        try:
            return write()
        except (OperationalError, InterfaceError):
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 5.0)


def _hand_over_withdraw(message_id: int, *, now: datetime) -> None:
    """Take back the hand-over of a send that failed before calling the provider."""
    OutboundMessage.objects.filter(
        pk=message_id, status=MessageStatus.SENDING, handed_at=now
    ).update(handed_at=None, handed_version=None)


def _record_accepted(sent: _Accepted, *, now: datetime) -> str:
    """Record a message the provider took once the database answers again: so that it is in
    the log, its link works, and it is not left unconfirmed.

    The row is marked sent if it is still this worker's claim, or was cancelled meanwhile (it
    went out before the cancel): a row a reschedule re-planned keeps its new plan, and the
    attempt alone records this send. Should the database stay away, the claim goes stale, and
    the next sender finds the hand-over and records the message as unconfirmed (without the
    link it carried, whose token went with the transaction).
    """
    with transaction.atomic():
        if DeliveryAttempt.objects.filter(message_id=sent.message_id, outcome="sent").exists():
            return "sent"  # the commit went through after all; only its answer was lost
        _link_token_issue(sent.kind, sent.appointment, now=now, token=sent.link_token)
        OutboundMessage.objects.filter(
            pk=sent.message_id,
            status__in=[MessageStatus.SENDING, MessageStatus.CANCELLED],
        ).update(
            status=MessageStatus.SENT,
            detail="",
            claimed_at=None,
            handed_at=None,
            handed_version=None,
            attempts=F("attempts") + 1,
            sent_at=now,
            recipient=sent.recipient,
            provider_id=sent.provider_id,
            updated_at=now,
        )
        DeliveryAttempt.objects.create(
            message_id=sent.message_id,
            at=now,
            outcome="sent",
            detail="recorded after the database came back",
        )
    logger.warning("message %s: sent, recorded after the database came back", sent.message_id)
    return "sent"


def link_email_send(*, patient_id: int, now: datetime | None = None) -> None:
    """Send a new secure link to the patient's address on record."""
    now = now or timezone.now()
    patient = Patient.objects.get(pk=patient_id)
    upcoming = (
        Appointment.objects.active()
        .filter(patient=patient, start__gt=now)
        .select_related("location")
        .first()
    )
    context = {
        "patient": patient,
        "link": link_url(patient_link_issue(patient=patient, now=now)),
        "location": upcoming.location if upcoming else None,
    }
    send_email("notifications/email/link", context, patient.email)

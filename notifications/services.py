"""The outbox: planning patients' messages from appointment changes, and delivering what is due.

Planning (:func:`appointment_messages_plan`) runs inside the booking transaction, through
booking's ``appointment_changed`` signal, so the rows commit or roll back with the change.
Delivery is one step, :func:`message_deliver_due`: recover claims of dead workers, claim due rows
(``SELECT … FOR UPDATE SKIP LOCKED`` then a compare-and-swap pending → sending) and hand batches
of ids to the send task. :func:`message_send` re-checks everything at send time while holding
the appointment's row lock, so a cancel that commits first always wins, and a send in flight
finishes before a cancel or reschedule can re-plan the row.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from smtplib import SMTPException, SMTPRecipientsRefused
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from booking.ics import appointment_ics
from booking.models import Appointment, AppointmentStatus, Patient, WaitlistOffer
from booking.preparation import appointment_preparation
from booking.services import patient_link_issue
from notifications.models import (
    CHANGE_KINDS,
    Channel,
    DeliveryAttempt,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    PhoneOptOut,
    ReminderRule,
)
from notifications.planning import Timing, before_quiet_hours, reminder_due
from notifications.sms import PermanentSendError, TransientSendError, get_backend
from scheduling.clock import in_quiet_hours, quiet_hours_end

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Reminders still sent when the visit is booked after their time (see _row); change notices are
# always due at once.
CATCH_UP_KINDS = frozenset(
    {
        MessageKind.CONFIRMATION,
        MessageKind.RESCHEDULED,
        MessageKind.CANCELLED,
        MessageKind.PREP,
        MessageKind.EVENING_BEFORE,
    }
)
CHANGE_NOTICE_LATE_CUTOFF = 24 * 60
_NOTICE_FOR_CHANGE = {
    "booked": MessageKind.CONFIRMATION,
    "rescheduled": MessageKind.RESCHEDULED,
    "cancelled": MessageKind.CANCELLED,
}


# --- Planning -----------------------------------------------------------------------------------


def patient_channels(patient: Patient) -> list[str]:
    channels: list[str] = []
    if patient.email and patient.email_reminders:
        channels.append(Channel.EMAIL)
    if patient.sms_consent and patient.sms_reminders and patient.phone:
        channels.append(Channel.SMS)
    return channels


def _row(
    appointment: Appointment, kind: str, channel: str, due: datetime, cutoff: int, *, now: datetime
) -> OutboundMessage:
    location = appointment.location
    status, detail = MessageStatus.PENDING, ""
    # Lateness is judged on the rule's own time: a text that quiet hours would have moved into
    # the past is held until they end (at send time), not dropped.
    if due < now and (kind not in CATCH_UP_KINDS or now - due > timedelta(minutes=cutoff)):
        # Planned late (a visit booked or moved at short notice): preparation still matters and
        # goes at once while it is useful; anything else is already covered by the notice the
        # patient gets for the booking itself.
        status, detail = MessageStatus.SKIPPED, "its time had passed when the visit was booked"
    if channel == Channel.SMS:
        due = before_quiet_hours(
            due, location.zone, location.quiet_hours_start, location.quiet_hours_end
        )
    due = max(due, now)
    return OutboundMessage(
        appointment=appointment,
        kind=kind,
        channel=channel,
        status=status,
        due_at=due,
        appointment_version=appointment.version,
        late_cutoff_minutes=cutoff,
        attempts=0,
        claimed_at=None,
        sent_at=None,
        provider_id="",
        detail=detail,
    )


# Read on every booking: a plain statement, because the ORM's filter (with the model's ordering
# through the type) cost more to build than the read.
_RULES_IN_FORCE_SQL = (
    f'SELECT * FROM "{ReminderRule._meta.db_table}" '  # noqa: S608 - the table's own name
    'WHERE "appointment_type_id" = %s AND "is_active" ORDER BY "kind"'
)


def rules_in_force(appointment_type_id: int) -> list[ReminderRule]:
    """The active reminder rules of one appointment type, by kind."""
    return list(ReminderRule.objects.raw(_RULES_IN_FORCE_SQL, [appointment_type_id]))


def reminder_rows(
    appointment: Appointment, channels: list[str], rules: Iterable[ReminderRule], *, now: datetime
) -> list[OutboundMessage]:
    appointment_type = appointment.appointment_type
    zone = appointment.location.zone
    rows = []
    for rule in rules:
        if (
            rule.kind == MessageKind.CONFIRM_REQUEST
            and appointment.status != AppointmentStatus.BOOKED
        ):
            continue  # already confirmed: never ask again
        due = reminder_due(
            start=appointment.start,
            zone=zone,
            timing=Timing(
                offset_minutes=rule.offset_minutes,
                local_time=rule.local_time,
                days_before=rule.days_before,
                follows_fasting=rule.kind == MessageKind.EVENING_BEFORE,
            ),
            fasting_solids_hours=appointment_type.fasting_solids_hours,
        )
        if rule.kind != MessageKind.FOLLOW_UP and due >= appointment.start:
            continue
        for channel in channels:
            if channel in rule.channels:
                rows.append(
                    _row(appointment, rule.kind, channel, due, rule.late_cutoff_minutes, now=now)
                )
    return rows


# One statement per write of a visit's rows, on PostgreSQL and SQLite alike: compiling the ORM's
# bulk upsert cost more than the database's work for it, on every booking.
_OUTBOX_COLUMNS = (
    "appointment_id",
    "kind",
    "channel",
    "status",
    "due_at",
    "appointment_version",
    "late_cutoff_minutes",
    "attempts",
    "claimed_at",
    "sent_at",
    "recipient",
    "provider_id",
    "detail",
    "created_at",
    "updated_at",
)
# A row planned again takes its new plan whole; who it was first written for and when stay.
_OUTBOX_REPLANNED = tuple(
    column
    for column in _OUTBOX_COLUMNS
    if column not in ("appointment_id", "kind", "channel", "recipient", "created_at")
)
_OUTBOX_UPSERT_SQL = (
    f"INSERT INTO {OutboundMessage._meta.db_table} ({', '.join(_OUTBOX_COLUMNS)}) "  # noqa: S608
    "VALUES {} ON CONFLICT (appointment_id, kind, channel) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _OUTBOX_REPLANNED)
)  # the table's and columns' own names; values are bound parameters
_OUTBOX_ROW = "(" + ", ".join(["%s"] * len(_OUTBOX_COLUMNS)) + ")"


def outbox_upsert(rows: list[OutboundMessage]) -> None:
    """Write planned rows: new ones inserted, a row already there for the same (appointment,
    kind, channel) replaced by its new plan."""
    if not rows:
        return
    adapt = connection.ops.adapt_datetimefield_value
    written = adapt(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            _OUTBOX_UPSERT_SQL.format(", ".join([_OUTBOX_ROW] * len(rows))),
            [
                value
                for row in rows
                for value in (
                    row.appointment_id,
                    row.kind,
                    row.channel,
                    row.status,
                    adapt(row.due_at),
                    row.appointment_version,
                    row.late_cutoff_minutes,
                    row.attempts,
                    adapt(row.claimed_at),
                    adapt(row.sent_at),
                    row.recipient,
                    row.provider_id,
                    row.detail,
                    written,
                    written,
                )
            ],
        )


def _unsent(appointment: Appointment) -> QuerySet[OutboundMessage]:
    # Built only where it is used: building a filter is a visible part of a booking's cost.
    return OutboundMessage.objects.filter(
        appointment=appointment, status__in=[MessageStatus.PENDING, MessageStatus.SENDING]
    )


def appointment_messages_plan(
    *, appointment: Appointment, change: str, now: datetime | None = None
) -> None:
    """(Re)write ``appointment``'s outbox after ``change``; call inside the change's transaction.

    Booked or moved: a notice now, and every reminder at its time for the (new) start: rows of
    an earlier version, sent or not, are planned again. Cancelled: every unsent message is
    cancelled and a cancellation notice planned. Confirmed: the request to confirm is dropped.
    """
    now = now or timezone.now()
    if change == "confirmed":
        _unsent(appointment).filter(kind=MessageKind.CONFIRM_REQUEST).update(
            status=MessageStatus.CANCELLED, detail="the patient confirmed", updated_at=now
        )
        return
    channels = patient_channels(appointment.patient)
    if not appointment.is_active:
        _unsent(appointment).update(
            status=MessageStatus.CANCELLED,
            detail=f"appointment {appointment.status}",
            updated_at=now,
        )
        if change == "cancelled" and appointment.start > now:
            outbox_upsert(
                [
                    _row(
                        appointment,
                        MessageKind.CANCELLED,
                        c,
                        now,
                        CHANGE_NOTICE_LATE_CUTOFF,
                        now=now,
                    )
                    for c in channels
                ]
            )
        return
    rows = []
    notice = _NOTICE_FOR_CHANGE.get(change)
    if notice is not None:
        rows += [
            _row(appointment, notice, c, now, CHANGE_NOTICE_LATE_CUTOFF, now=now) for c in channels
        ]
    if change in ("booked", "rescheduled", "resumed"):
        rules = rules_in_force(appointment.appointment_type_id)
        rows += reminder_rows(appointment, channels, rules, now=now)
    outbox_upsert(rows)


# --- Delivery -----------------------------------------------------------------------------------


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


def batch_publisher(stack: ExitStack) -> Callable[[list[int]], Any]:
    """Publishes batches to ``send_messages`` through one producer, taken from the pool at the
    first batch (a sweep with nothing due never touches the broker) and given back with
    ``stack``."""
    from notifications.tasks import send_messages

    producer = None

    def publish(ids: list[int]) -> None:
        nonlocal producer
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
    message.save(
        update_fields=[
            "status",
            "detail",
            "claimed_at",
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
    if message.kind == MessageKind.CANCELLED:
        if appointment.status != AppointmentStatus.CANCELLED:
            return MessageStatus.CANCELLED, "the appointment is no longer cancelled"
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
    patient: Patient
    link_token: str
    recipient: str
    provider_id: str


# How long a worker keeps trying to record a message the provider took while the database is
# away (a restart, a fail-over); at most half of OUTBOX_STALE_CLAIM_SECONDS, after which the
# claim would be given back and the message sent again.
RECORD_RETRY_SECONDS = 60.0


def message_send(*, message_id: int, now: datetime | None = None) -> str:
    """Send one claimed message, or say why not. Returns the outcome recorded."""
    now = now or timezone.now()
    appointment_id = (
        OutboundMessage.objects.filter(pk=message_id)
        .values_list("appointment_id", flat=True)
        .first()
    )
    if appointment_id is None:
        return "missing"
    accepted: list[_Accepted] = []
    try:
        with transaction.atomic():
            return _send_claimed(message_id, appointment_id, now=now, accepted=accepted)
    except (OperationalError, InterfaceError):
        if not accepted or connection.in_atomic_block:
            raise
        # The message is out, and the transaction recording it (its row, the attempt, the
        # patient's new link) went with the connection.
        return _record_accepted(accepted[0], now=now)


def _send_claimed(
    message_id: int, appointment_id: int, *, now: datetime, accepted: list[_Accepted]
) -> str:
    # The appointment first, as booking services lock it: a cancel or reschedule waits for this
    # send to finish, or this send sees their result. Never both orders.
    appointment = (
        Appointment.objects.select_for_update(of=("self",), no_key=True)
        .select_related("location", "appointment_type", "patient")
        .get(pk=appointment_id)
    )
    message = OutboundMessage.objects.select_for_update().get(pk=message_id)
    if message.status != MessageStatus.SENDING:
        return "not claimed"
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
    message.attempts += 1
    token = patient_link_issue(patient=appointment.patient, now=now)
    try:
        recipient, provider_id = _deliver(message, appointment, link_token=token, now=now)
    except TransientSendError as exc:
        if message.attempts >= MAX_ATTEMPTS:
            return _finish(message, MessageStatus.FAILED, str(exc), now=now, outcome="failed")
        message.due_at = now + _backoff(message.attempts)
        return _finish(message, MessageStatus.PENDING, str(exc), now=now, outcome="retry")
    except PermanentSendError as exc:
        return _finish(message, MessageStatus.FAILED, str(exc), now=now, outcome="failed")
    accepted.append(_Accepted(message_id, appointment.patient, token, recipient, provider_id))
    message.recipient = recipient
    message.provider_id = provider_id
    message.sent_at = now
    return _finish(message, MessageStatus.SENT, "", now=now, outcome="sent")


def _record_accepted(sent: _Accepted, *, now: datetime) -> str:
    """Record a message the provider took once the database answers again: so that it is in
    the log, its link works, and the stale-claim recovery does not send it a second time.

    The row is marked sent if it is still this worker's claim, or was cancelled meanwhile (it
    went out before the cancel): a row a reschedule re-planned keeps its new plan, and the
    attempt alone records this send. Past RECORD_RETRY_SECONDS the error is raised: the claim
    then goes stale and the message is sent again, the one duplicate left possible.
    """
    deadline = time.monotonic() + min(RECORD_RETRY_SECONDS, settings.OUTBOX_STALE_CLAIM_SECONDS / 2)
    pause = 0.5
    while True:
        connection.close()  # the broken one; the next query opens a new connection
        try:
            with transaction.atomic():
                if DeliveryAttempt.objects.filter(
                    message_id=sent.message_id, outcome="sent"
                ).exists():
                    return "sent"  # the commit went through after all; only its answer was lost
                patient_link_issue(patient=sent.patient, now=now, token=sent.link_token)
                OutboundMessage.objects.filter(
                    pk=sent.message_id,
                    status__in=[MessageStatus.SENDING, MessageStatus.CANCELLED],
                ).update(
                    status=MessageStatus.SENT,
                    detail="",
                    claimed_at=None,
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
            logger.warning(
                "message %s: sent, recorded after the database came back", sent.message_id
            )
            return "sent"
        except (OperationalError, InterfaceError):
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 5.0)


# --- Rendering and channels ----------------------------------------------------------------------


def _link(token: str) -> str:
    return settings.PUBLIC_BASE_URL + reverse("patient-link", args=[token])


def message_context(appointment: Appointment, *, link: str) -> dict[str, Any]:
    """What every message template may use: nothing beyond the minimum a patient needs."""
    location = appointment.location
    return {
        "appointment": appointment,
        "patient": appointment.patient,
        "location": location,
        "zone": location.timezone,
        "type_name": appointment.appointment_type.public_name,
        "prep": appointment_preparation(appointment),
        "link": link,
    }


def _deliver(
    message: OutboundMessage, appointment: Appointment, *, link_token: str, now: datetime
) -> tuple[str, str]:
    link = _link(link_token)
    context = message_context(appointment, link=link)
    template = f"notifications/messages/{message.kind}"
    if message.channel == Channel.SMS:
        body = " ".join(render_to_string(f"{template}.sms.txt", context).split())
        to = appointment.patient.phone
        return to, get_backend().send(to, body)
    attachment = None
    if message.kind in CHANGE_KINDS:
        method = "CANCEL" if message.kind == MessageKind.CANCELLED else "REQUEST"
        attachment = (
            "appointment.ics",
            appointment_ics(appointment, now=now, link=link),
            f"text/calendar; method={method}; charset=utf-8",
        )
    to = appointment.patient.email
    try:
        send_email(template, context, to, attachment)
    except SMTPRecipientsRefused as exc:
        raise PermanentSendError(f"recipient refused: {exc}") from exc
    except (SMTPException, OSError) as exc:
        raise TransientSendError(f"mail server: {exc}") from exc
    except Exception as exc:  # provider APIs through anymail raise their own errors
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500 and status != 429:
            raise PermanentSendError(str(exc)) from exc
        raise TransientSendError(str(exc)) from exc
    return to, ""


def send_email(
    template: str,
    context: dict[str, Any],
    to: str,
    attachment: tuple[str, bytes, str] | None = None,
) -> None:
    subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
    email = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    )
    email.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    if attachment:
        email.attach(*attachment)
    email.send()


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
        "link": _link(patient_link_issue(patient=patient, now=now)),
        "location": upcoming.location if upcoming else None,
    }
    send_email("notifications/email/link", context, patient.email)


def reminder_rules_replan(
    *,
    appointment_type_id: int,
    kinds: Collection[str] | None = None,
    now: datetime | None = None,
) -> int:
    """Re-plan the reminders of every future visit of one type after its rules changed.

    Returns how many appointments were re-planned. Each is planned as if just booked, so the
    result is exactly what a booking now would get, except that rows already sent (or being
    sent) for the visit's current version stay as they are, a visit the patient has confirmed
    keeps its request-to-confirm rows as they are, and a pending reminder no rule plans any
    more (rule removed, channel switched off) is cancelled. On PostgreSQL one set-based
    statement does it; elsewhere the visits are planned in Python, in batches, with the same
    result (:mod:`notifications.replan`).

    ``kinds`` limits the re-plan to the reminders of those kinds, for a change to their rules
    only: a rule's timing and channels decide its own kind's rows and no other's (the type's
    fasting time, its quiet hours or a patient's channels are not rules: re-plan every kind).
    """
    from notifications.replan import replan_python, replan_sql

    now = now or timezone.now()
    replan = replan_sql if connection.vendor == "postgresql" else replan_python
    return replan(appointment_type_id=appointment_type_id, now=now, kinds=kinds)

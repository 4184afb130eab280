"""The outbox, planned: which messages a visit gets, by rule and channel, written in the booking's
own transaction.

Planning (:func:`appointment_messages_plan`) runs inside the booking transaction, through
booking's ``appointment_changed`` signal, so the rows commit or roll back with the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from booking.models import Appointment, AppointmentStatus, Patient
from notifications.models import Channel, MessageKind, MessageStatus, OutboundMessage, ReminderRule
from notifications.planning import Timing, before_quiet_hours, reminder_due

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
# The link that confirms a tentative booking is no use once its hold (at most two hours) lapsed.
VERIFY_CUTOFF = 2 * 60
_NOTICE_FOR_CHANGE = {
    "booked": MessageKind.CONFIRMATION,
    "rescheduled": MessageKind.RESCHEDULED,
    "cancelled": MessageKind.CANCELLED,
}
# Changes that leave the visit inactive and still tell the patient: a cancellation, and the
# one neutral "please call us" when treatment stopped and the visits to come went on hold.
_NOTICE_WHEN_STOPPED = {
    "cancelled": MessageKind.CANCELLED,
    "treatment_stopped": MessageKind.PLEASE_CALL,
}


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
        location_id=appointment.location_id,
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
    "location_id",
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
    if column not in ("appointment_id", "location_id", "kind", "channel", "recipient", "created_at")
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
                    row.location_id,
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

    Tentative (an online booking waiting for its e-mail to be confirmed): the e-mail with the
    link that confirms it, nothing else. Booked or moved: a notice now, and every reminder at its
    time for the (new) start: rows of an earlier version, sent or not, are planned again.
    Cancelled: every unsent message is cancelled and a cancellation notice planned. Treatment
    stopped (the visit is on hold): the same, with a neutral "please call us" instead.
    Confirmed: the request to confirm is dropped.
    """
    now = now or timezone.now()
    if change == "tentative":
        # An online booking waiting for its patient to prove their address gets the link that
        # confirms it, by e-mail only, and nothing else until then: no reminder, and never a
        # text to a number nobody has proven (what a script would book for).
        if appointment.patient.email:
            outbox_upsert(
                [_row(appointment, MessageKind.VERIFY, Channel.EMAIL, now, VERIFY_CUTOFF, now=now)]
            )
        return
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
        notice = _NOTICE_WHEN_STOPPED.get(change)
        if notice is not None and appointment.start > now:
            outbox_upsert(
                [
                    _row(appointment, notice, c, now, CHANGE_NOTICE_LATE_CUTOFF, now=now)
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

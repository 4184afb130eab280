"""An appointment's history: every change the booking services announce becomes an event line
(the desk's own steps write theirs in ``booking.checkin``)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.utils import timezone

from booking.models import Appointment, AppointmentEvent

# Written on every booking, inside its transaction: the statement by hand, because compiling the
# ORM's insert cost three times what the database does for it.
_EVENT_INSERT_SQL = (
    f'INSERT INTO "{AppointmentEvent._meta.db_table}" '  # noqa: S608 - the table's own name
    '("appointment_id", "at", "kind", "detail", "by_id") VALUES (%s, %s, %s, %s, %s)'
)


def record_change(sender: Any, *, appointment: Appointment, change: str, **kwargs: Any) -> None:
    detail = ""
    if change in ("booked", "rescheduled"):
        detail = appointment.start.astimezone(appointment.location.zone).strftime(
            "%a %d %b %Y %H:%M %Z"
        )
    elif change == "cancelled":
        detail = appointment.cancel_reason
    by = kwargs.get("by")
    at = kwargs.get("now") or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _EVENT_INSERT_SQL,
            [
                appointment.pk,
                connection.ops.adapt_datetimefield_value(at),
                change,
                detail[:500],
                by.pk if by is not None else None,
            ],
        )

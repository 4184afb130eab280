"""An appointment's history: every change the booking services announce becomes an event line
(the desk's own steps write theirs in ``booking.desk``)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from booking.models import Appointment, AppointmentEvent


def record_change(sender: Any, *, appointment: Appointment, change: str, **kwargs: Any) -> None:
    detail = ""
    if change in ("booked", "rescheduled"):
        detail = appointment.start.astimezone(appointment.location.zone).strftime(
            "%a %d %b %Y %H:%M %Z"
        )
    elif change == "cancelled":
        detail = appointment.cancel_reason
    AppointmentEvent.objects.create(
        appointment=appointment,
        at=kwargs.get("now") or timezone.now(),
        kind=change,
        detail=detail[:500],
        by=kwargs.get("by"),
    )

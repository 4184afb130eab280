"""Putting visits on hold: kept, not cancelled, their reminders stopped (each announced as
``on_hold``), their chairs and staff released unless the location keeps them through holds.

A series put on hold, a treatment plan withdrawn and a patient declined all hold visits this
one way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from booking.models import CHANGEABLE_STATUSES, Allocation, Appointment, AppointmentStatus
from booking.signals import appointment_changed


def visits_hold(*, visits: Iterable[Appointment], now: datetime) -> list[Appointment]:
    """Hold those of ``visits`` still to come and still booked or confirmed; the caller holds
    their rows locked, in its transaction. Returns the visits held."""
    held = [v for v in visits if v.status in CHANGEABLE_STATUSES and v.start > now]
    released = [v.pk for v in held if not v.location.hold_keeps_chairs]
    Allocation.objects.filter(appointment_id__in=released, active=True).update(active=False)
    for visit in held:
        visit.status = AppointmentStatus.ON_HOLD
        visit.version += 1
        visit.save(update_fields=["status", "version", "updated_at"])
        appointment_changed.send(sender=Appointment, appointment=visit, change="on_hold", now=now)
    return held

"""What a patient must do around a visit, as moments in the clinic's wall-clock time.

The secure-link page and the reminders both read these, so "nothing to eat after 02:30" is
computed once. Every cutoff is a number of *elapsed* hours before the start: we subtract them
from the UTC instant and only then convert to the clinic's zone. Subtracting wall-clock hours
instead would be wrong on the nights the clocks change: 6 hours before 08:30 EDT on the morning
clocks spring forward is 01:30 EST (there is no 02:30 that night), and 6 hours before 07:30 EST on
the morning they fall back is the *second* 01:30 (EST, not EDT). The zone abbreviation shown with
each time tells the two 01:30s apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from booking.models import Appointment


@dataclass(frozen=True)
class Preparation:
    """Aware datetimes in the clinic's zone; ``None`` where the visit's type sets no rule."""

    arrive_at: datetime
    solids_until: datetime | None
    clear_liquids_until: datetime | None
    escort_required: bool
    no_driving_hours: int
    no_driving_until: datetime | None


def appointment_preparation(appointment: Appointment) -> Preparation:
    """Arrival time, fasting cutoffs and the no-driving period of ``appointment``."""
    appointment_type = appointment.appointment_type
    location = appointment.location
    zone = location.zone
    start = appointment.start.astimezone(UTC)
    end = appointment.end.astimezone(UTC)

    def hours_before(hours: int | None) -> datetime | None:
        return None if hours is None else (start - timedelta(hours=hours)).astimezone(zone)

    no_driving = appointment_type.no_driving_hours
    return Preparation(
        arrive_at=(start - timedelta(minutes=location.arrive_early_minutes)).astimezone(zone),
        solids_until=hours_before(appointment_type.fasting_solids_hours),
        clear_liquids_until=hours_before(appointment_type.fasting_clear_liquids_hours),
        escort_required=appointment_type.escort_required,
        no_driving_hours=no_driving,
        no_driving_until=(end + timedelta(hours=no_driving)).astimezone(zone)
        if no_driving
        else None,
    )

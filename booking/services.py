"""Booking services: every change of an appointment goes through one of these functions.

Each runs lock -> check -> write in one transaction. The check is the availability engine itself
(``scheduling.availability.allocate``), so an offered slot and an accepted booking can never
disagree. On PostgreSQL the exclusion constraints on allocations and appointments are the last
guard: two transactions that both passed the check cannot both commit overlapping lanes. The loser
gets an exclusion violation (or, when their inserts wait on each other, a deadlock); we retry it
from a fresh read, where the winner's rows are visible, and only then answer ``SlotTaken``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from booking.errors import BookingError, InvalidTransition, PatientBusy, PolicyViolation, SlotTaken
from booking.models import (
    CHANGEABLE_STATUSES,
    Allocation,
    Appointment,
    AppointmentStatus,
    Patient,
)
from booking.selectors import availability_problem
from booking.signals import appointment_changed
from scheduling.availability import (
    allocate,
    from_minutes,
    grid_starts,
    to_minutes,
)
from scheduling.models import AppointmentType

# Losing a race on one lane of a multi-lane resource (a nurse watching three chairs) is not
# losing the slot: the next read may find another lane free. Past this many tries it is taken.
PLACEMENT_ATTEMPTS = 3

# PostgreSQL's SQLSTATEs for "exclusion constraint violated" and "deadlock detected".
_EXCLUSION_VIOLATION = "23P01"
_DEADLOCK = "40P01"

T = TypeVar("T")


def _sqlstate(exc: Exception) -> tuple[str, str]:
    cause = exc.__cause__
    state = getattr(cause, "sqlstate", "") or ""
    diag = getattr(cause, "diag", None)
    return state, (getattr(diag, "constraint_name", "") or "")


def _with_retries(operation: Callable[[], T]) -> T:
    """Run ``operation`` (which opens its own atomic block) until it stops being contended."""
    lost_on = ""
    for _ in range(PLACEMENT_ATTEMPTS):
        try:
            with transaction.atomic():
                return operation()
        except IntegrityError as exc:
            state, constraint = _sqlstate(exc)
            if state != _EXCLUSION_VIOLATION:
                raise
            lost_on = constraint
        except OperationalError as exc:
            if _sqlstate(exc)[0] != _DEADLOCK:
                raise
            lost_on = "deadlock"
    if lost_on == "appointment_patient_no_overlap":
        raise PatientBusy("The patient already has a visit at that time.", field="start")
    raise SlotTaken("That time was just taken. Please choose another.", field="start")


def _require_aware(start: datetime) -> None:
    if timezone.is_naive(start):
        raise BookingError("Give the time with its UTC offset.", field="start")


def _check_policy(
    appointment_type: AppointmentType, start: datetime, now: datetime, *, online: bool
) -> None:
    """Refuse starts that no amount of free time would make bookable, with a reason."""
    zone = appointment_type.location.zone
    minutes = to_minutes(start)
    local_day = start.astimezone(zone).date()
    if minutes not in grid_starts(zone, [local_day], appointment_type.grid_minutes):
        raise PolicyViolation(
            f"Visits start on the {appointment_type.grid_minutes}-minute grid of the clinic's "
            "local time.",
            field="start",
        )
    if start <= now:
        raise PolicyViolation("That time has passed.", field="start")
    if online and start < now + timedelta(minutes=appointment_type.min_notice_minutes):
        raise PolicyViolation(
            f"Online bookings need {appointment_type.min_notice_minutes // 60} hours' notice.",
            field="start",
        )
    if start > now + timedelta(days=appointment_type.horizon_days):
        raise PolicyViolation(
            f"Bookings open {appointment_type.horizon_days} days ahead.", field="start"
        )


def _lock_patient_and_check(
    patient: Patient, start: datetime, end: datetime, *, exclude: int | None
) -> None:
    # The row lock serialises one patient's concurrent requests, so the overlap check below
    # cannot be raced by the same patient booking twice at once.
    Patient.objects.select_for_update().filter(pk=patient.pk).exists()
    clash = Appointment.objects.active().filter(patient_id=patient.pk).overlapping(start, end)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise PatientBusy("The patient already has a visit at that time.", field="start")


def _place(appointment: Appointment, *, online: bool, now: datetime) -> None:
    """Check the appointment's time with the engine and write its allocations."""
    appointment_type = appointment.appointment_type
    zone = appointment_type.location.zone
    start = to_minutes(appointment.start)
    problem = availability_problem(
        appointment_type=appointment_type,
        days=[appointment.start.astimezone(zone).date()],
        now=now,
        enforce_notice=online,
    )
    placements = allocate(problem, start)
    if placements is None:
        raise SlotTaken("That time is not available. Please choose another.", field="start")
    # A stable order (by resource, then lane) keeps two competing transactions from waiting on
    # each other in opposite orders.
    placements.sort(key=lambda p: (p.resource_id, p.lane))
    Allocation.objects.bulk_create(
        [
            Allocation(
                appointment=appointment,
                resource_id=p.resource_id,
                lane=p.lane,
                start=from_minutes(p.start),
                end=from_minutes(p.end),
            )
            for p in placements
        ]
    )


def appointment_book(
    *,
    appointment_type: AppointmentType,
    patient: Patient,
    start: datetime,
    source: str = "staff",
    now: datetime | None = None,
) -> Appointment:
    """Book ``patient`` into a visit of ``appointment_type`` starting at ``start``.

    ``source="online"`` applies the type's minimum notice; the front desk may book any future
    slot. Raises ``SlotTaken`` (409), ``PatientBusy`` (409) or ``PolicyViolation`` (422).
    """
    now = now or timezone.now()
    _require_aware(start)
    online = source == "online"
    _check_policy(appointment_type, start, now, online=online)
    end = start + timedelta(minutes=appointment_type.duration_minutes)

    def book() -> Appointment:
        _lock_patient_and_check(patient, start, end, exclude=None)
        appointment = Appointment.objects.create(
            location_id=appointment_type.location_id,
            appointment_type=appointment_type,
            patient=patient,
            start=start,
            end=end,
            source=source,
        )
        _place(appointment, online=online, now=now)
        appointment_changed.send(sender=Appointment, appointment=appointment, change="booked")
        return appointment

    return _with_retries(book)


def appointment_reschedule(
    *,
    appointment: Appointment,
    start: datetime,
    online: bool = False,
    now: datetime | None = None,
) -> Appointment:
    """Move ``appointment`` to ``start``: its old lanes are released and new ones taken at once,
    or nothing changes."""
    now = now or timezone.now()
    _require_aware(start)
    appointment_type = appointment.appointment_type
    _check_policy(appointment_type, start, now, online=online)
    end = start + timedelta(minutes=appointment_type.duration_minutes)

    def reschedule() -> Appointment:
        current = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if current.status not in CHANGEABLE_STATUSES:
            raise InvalidTransition(
                f"A {current.get_status_display().lower()} visit cannot be moved.", field="status"
            )
        _lock_patient_and_check(current.patient, start, end, exclude=current.pk)
        Allocation.objects.filter(appointment=current, active=True).update(active=False)
        current.start, current.end = start, end
        current.version += 1
        current.save(update_fields=["start", "end", "version", "updated_at"])
        _place(current, online=online, now=now)
        appointment_changed.send(sender=Appointment, appointment=current, change="rescheduled")
        return current

    return _with_retries(reschedule)


def appointment_cancel(
    *, appointment: Appointment, reason: str = "", now: datetime | None = None
) -> Appointment:
    """Cancel ``appointment`` and release its lanes. Cancelling twice is harmless."""
    del now  # the clock is part of every service's signature; cancel needs none yet
    with transaction.atomic():
        current = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if current.status == AppointmentStatus.CANCELLED:
            return current
        if current.status not in CHANGEABLE_STATUSES:
            raise InvalidTransition(
                f"A {current.get_status_display().lower()} visit cannot be cancelled.",
                field="status",
            )
        Allocation.objects.filter(appointment=current, active=True).update(active=False)
        current.status = AppointmentStatus.CANCELLED
        current.cancel_reason = reason[:500]
        current.version += 1
        current.save(update_fields=["status", "cancel_reason", "version", "updated_at"])
        appointment_changed.send(sender=Appointment, appointment=current, change="cancelled")
    return current

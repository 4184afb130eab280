"""Placing a visit on its resources: the building blocks every booking service shares.

Each booking runs lock -> check -> write in one transaction. The check is the availability engine
itself (``scheduling.availability.allocate``), so an offered slot and an accepted booking can
never disagree. On PostgreSQL the exclusion constraints on allocations and appointments are the
last guard: two transactions that both passed the check cannot both commit overlapping lanes.
Writers of a lane queue on an advisory lock (see ``write_allocations``), so the loser meets the
winner's committed row at once and gets an exclusion violation (a deadlock, should other code
insert without the lock); ``with_retries`` retries it from a fresh read, where the winner's rows
are visible, and only then answers ``SlotTaken``. The patient lock and clash check, the policy
check (notice, horizon, grid) and the allocation writes live here, used by the appointment
services, series, session changes and the waitlist alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from django.db import IntegrityError, OperationalError, connection, transaction

from booking.errors import PatientBusy, PolicyViolation, SlotTaken
from booking.models import ACTIVE_STATUSES, Appointment, AppointmentStatus, Patient
from booking.selectors import allocation_rows
from scheduling.availability import (
    MINUTES_PER_DAY,
    Placement,
    Problem,
    allocate,
    from_minutes,
    grid_starts,
    to_minutes,
)
from scheduling.models import AppointmentType
from scheduling.selectors import placeholders, schedule_load

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


def with_retries(
    operation: Callable[[], T],
    *,
    field: str = "start",
    taken: str = "That time was just taken. Please choose another.",
    busy: str = "The patient already has a visit at that time.",
) -> T:
    """Run ``operation`` in a transaction until it stops losing races: a lost race is retried
    from a fresh read, where the winner's rows are visible to the check. Past the attempts, the
    last loss is answered as ``SlotTaken`` (or ``PatientBusy``) naming ``field``."""
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
        raise PatientBusy(busy, field=field)
    raise SlotTaken(taken, field=field)


def check_policy(
    appointment_type: AppointmentType, start: datetime, now: datetime, *, online: bool
) -> None:
    """Refuse starts that no amount of free time would make bookable, with a reason."""
    zone = appointment_type.location.zone
    minutes = to_minutes(start)
    local_day = start.astimezone(zone).date()
    on_minute = start.second == 0 and start.microsecond == 0
    if not on_minute or minutes not in grid_starts(
        zone, [local_day], appointment_type.grid_minutes
    ):
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


# The hot path of every booking runs a few hand-written statements: building the equivalent ORM
# queries cost more CPU than everything PostgreSQL does for them. The overlap test is
# ``Appointment.objects.active().overlapping(start, end)`` spelled out.
_ACTIVE = sorted(ACTIVE_STATUSES)
_PATIENT_LOCK_SQL = 'SELECT 1 FROM "booking_patient" WHERE "id" = %s FOR NO KEY UPDATE'
_PATIENT_CLASH_SQL = f"""
    SELECT 1 FROM "booking_appointment"
    WHERE "patient_id" = %s AND "status" IN ({placeholders(_ACTIVE)})
      AND "start" < %s AND "end" > %s AND "id" <> %s
    LIMIT 1
"""  # noqa: S608 - only placeholders are formatted in


def lock_patient_and_check(
    patient: Patient, start: datetime, end: datetime, *, exclude: int | None
) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The row lock serialises one patient's concurrent requests, so the overlap check
            # below cannot be raced by the same patient booking twice at once. NO KEY UPDATE
            # still lets other transactions insert rows that point at the patient. (SQLite has
            # no row locks: its IMMEDIATE transactions serialise every writer.)
            cursor.execute(_PATIENT_LOCK_SQL, [patient.pk])
        cursor.execute(
            _PATIENT_CLASH_SQL, [patient.pk, *_ACTIVE, adapt(end), adapt(start), exclude or 0]
        )
        if cursor.fetchone() is not None:
            raise PatientBusy("The patient already has a visit at that time.", field="start")


def _visit_problem(
    appointment_type: AppointmentType, start: int, *, online: bool, now: datetime
) -> Problem:
    """The engine's input for a visit at ``start``: the day's schedule, and every allocation that
    could stand in the way of this one visit.

    The slot list loads a whole window of allocations; a booking only needs those overlapping
    the span its own holds can touch. The engine's answer for ``start`` is the same (lanes are
    judged on that span alone), and on a busy day the read is a short index probe per resource
    instead of the day's rows.
    """
    zone = appointment_type.location.zone
    problem = schedule_load(
        appointment_type=appointment_type,
        days=[from_minutes(start).astimezone(zone).date()],
        now=now,
        enforce_notice=online,
    )
    calendars = problem.calendars
    if not calendars:
        return problem
    lo = start + min(need.lead for need in problem.needs)
    hi = start + max(need.tail for need in problem.needs)
    for rid, lane, held_from, held_to in allocation_rows(list(calendars), lo, hi):
        calendar = calendars[rid]
        if lane < calendar.capacity:  # lanes above a lowered capacity stay booked but unused
            calendar.busy[lane].append((held_from, held_to))
    return problem


def visit_placements(
    appointment_type: AppointmentType, start: datetime, *, online: bool, now: datetime
) -> list[Placement]:
    """The lanes a visit at ``start`` takes, by the engine's own check; ``SlotTaken`` if none."""
    minutes = to_minutes(start)
    placements = allocate(
        _visit_problem(appointment_type, minutes, online=online, now=now), minutes
    )
    if placements is None:
        raise SlotTaken("That time is not available. Please choose another.", field="start")
    # A stable order (by resource, then lane) keeps two competing transactions from waiting on
    # each other in opposite orders.
    placements.sort(key=lambda p: (p.resource_id, p.lane))
    return placements


def _lane_lock_keys(placements: Iterable[Placement]) -> list[int]:
    # One advisory lock per (resource, lane, UTC day) a placement touches: two placements that
    # overlap on a lane share at least one day, hence one key. 20 bits of day number, 5 of lane
    # (capacity is at most 20), the resource id above them.
    return sorted(
        {
            (p.resource_id << 25) | (p.lane << 20) | (day & 0xFFFFF)
            for p in placements
            for day in range(p.start // MINUTES_PER_DAY, (p.end - 1) // MINUTES_PER_DAY + 1)
        }
    )


_ALLOCATION_INSERT_SQL = (
    'INSERT INTO "booking_allocation" ("appointment_id", "resource_id", "lane", "start", "end", '
    '"active") VALUES '
)


def write_allocations(batches: Sequence[tuple[Appointment, list[Placement]]]) -> None:
    """Take the checked lanes of one or more appointments (a visit, or a whole series).

    Two transactions that both passed the check for the same lane would otherwise meet inside
    the exclusion constraint, where concurrent inserts can wait on each other in a cycle that
    PostgreSQL breaks only after ``deadlock_timeout`` (1 s by default). Queuing the writers of a
    lane on an advisory lock first makes the later one find the earlier one's committed row at
    once: an immediate exclusion violation, retried from a fresh read. The lock only orders
    writers; the constraint still decides. SQLite's IMMEDIATE transactions already run one
    writer at a time.
    """
    rows = [(appointment.pk, p) for appointment, placements in batches for p in placements]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # unnest yields the sorted keys in order, so every transaction locks in one order.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k",
                [_lane_lock_keys([p for _, p in rows])],
            )
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            _ALLOCATION_INSERT_SQL + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows)),
            [
                value
                for appointment_id, p in rows
                for value in (
                    appointment_id,
                    p.resource_id,
                    p.lane,
                    adapt(from_minutes(p.start)),
                    adapt(from_minutes(p.end)),
                    True,
                )
            ],
        )


def visit_place(appointment: Appointment, *, online: bool, now: datetime) -> None:
    """Check the appointment's time with the engine and write its allocations."""
    placements = visit_placements(
        appointment.appointment_type, appointment.start, online=online, now=now
    )
    write_allocations([(appointment, placements)])


def visit_occupy(
    appointment_type: AppointmentType,
    patient: Patient,
    start: datetime,
    end: datetime,
    *,
    source: str,
    online: bool,
    now: datetime,
    status: str = AppointmentStatus.BOOKED,
) -> Appointment:
    """Write an appointment holding the lanes the engine finds for ``start`` (``SlotTaken`` if
    none). Inside ``with_retries``, after the patient's lock; announcing it is the caller's."""
    # Checked before the appointment row is written, so a refusal writes nothing.
    placements = visit_placements(appointment_type, start, online=online, now=now)
    appointment = Appointment.objects.create(
        # The instances, not their ids: the signal's receivers read them, from the cache.
        location=appointment_type.location,
        appointment_type=appointment_type,
        patient=patient,
        start=start,
        end=end,
        status=status,
        source=source,
    )
    write_allocations([(appointment, placements)])
    return appointment

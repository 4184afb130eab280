"""Reads: availability (the engine fed with allocations) and appointment lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from booking.models import Allocation
from scheduling.availability import (
    MAX_ALLOCATION_MINUTES,
    Problem,
    available_starts,
    from_minutes,
    to_minutes,
)
from scheduling.models import AppointmentType
from scheduling.selectors import hold_window, schedule_load


def availability_problem(
    *,
    appointment_type: AppointmentType,
    days: Sequence[date],
    now: datetime,
    enforce_notice: bool = True,
) -> Problem:
    """The engine's input for ``days``, with every active allocation in the window."""
    problem = schedule_load(
        appointment_type=appointment_type, days=days, now=now, enforce_notice=enforce_notice
    )
    calendars = problem.calendars
    if not calendars or not days:
        return problem
    lo, hi = hold_window(problem)
    # The lower bound on ``start`` keeps the (resource, start) index scan bounded: nothing that
    # starts earlier than the longest possible allocation can still be running at ``lo``.
    rows = Allocation.objects.filter(
        active=True,
        resource_id__in=list(calendars),
        start__gte=from_minutes(lo - MAX_ALLOCATION_MINUTES),
        start__lt=from_minutes(hi),
        end__gt=from_minutes(lo),
    )
    for rid, lane, start, end in rows.values_list("resource_id", "lane", "start", "end"):
        calendar = calendars[rid]
        if lane < calendar.capacity:  # lanes above a lowered capacity stay booked but unused
            calendar.busy[lane].append((to_minutes(start), to_minutes(end)))
    return problem


def available_slots(
    *,
    appointment_type: AppointmentType,
    first_day: date,
    last_day: date,
    now: datetime,
    enforce_notice: bool = True,
) -> list[tuple[datetime, datetime]]:
    """Free visits (start, end) in UTC on the local dates ``first_day`` to ``last_day``."""
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    problem = availability_problem(
        appointment_type=appointment_type, days=days, now=now, enforce_notice=enforce_notice
    )
    length = appointment_type.duration_minutes
    return [(from_minutes(t), from_minutes(t + length)) for t in available_starts(problem)]

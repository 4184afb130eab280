"""Reads that feed the availability engine: one bounded window of a type's resources."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q

from scheduling.availability import (
    MINUTES_PER_DAY,
    Calendar,
    Interval,
    Need,
    Problem,
    from_minutes,
    local_day_bounds,
    to_minutes,
)
from scheduling.models import (
    AppointmentType,
    Closure,
    Resource,
    ResourceKind,
    ResourceRequirement,
    TimeOff,
    WorkingHours,
)


def wall_clock_minutes(zone: ZoneInfo, day: date, bounds: Interval, moment: time) -> int:
    """UTC minutes of the wall-clock ``moment`` on local ``day`` (whose midnights are ``bounds``).

    Days without an offset change are plain arithmetic; on a change day the time is converted on
    its own (``fold=0``: a repeated time means its first occurrence, a skipped one lands just
    after the gap).
    """
    day_start, day_end = bounds
    if day_end - day_start == MINUTES_PER_DAY:
        return day_start + moment.hour * 60 + moment.minute
    return to_minutes(datetime.combine(day, moment, tzinfo=zone))


def _pool(requirement: ResourceRequirement) -> Q:
    if requirement.resource_id:
        return Q(id=requirement.resource_id)
    pool = Q(kind=requirement.resource_kind)
    if requirement.resource_kind == ResourceKind.STAFF and requirement.role:
        pool &= Q(role=requirement.role)
    return pool


def _matches(requirement: ResourceRequirement, kind: str, role: str, resource_id: int) -> bool:
    if requirement.resource_id:
        return requirement.resource_id == resource_id
    if kind != requirement.resource_kind:
        return False
    return not requirement.role or requirement.role == role


def schedule_load(
    *,
    appointment_type: AppointmentType,
    days: Sequence[date],
    now: datetime,
    enforce_notice: bool = True,
) -> Problem:
    """Build the engine's input for ``days`` (local dates), with empty lanes.

    Booking fills in the lanes' allocations (``booking.selectors``). Starts earlier than the
    type's minimum notice (or than ``now`` when ``enforce_notice`` is off, as for the front desk)
    and later than its horizon are excluded.
    """
    location = appointment_type.location
    zone = location.zone
    requirements = list(appointment_type.requirements.all())
    visit = appointment_type.duration_minutes
    spans = [req.held_span(visit) for req in requirements]
    pools = Q()
    for req in requirements:
        pools |= _pool(req)
    resources = (
        list(
            Resource.objects.filter(location_id=location.pk, is_active=True)
            .filter(pools)
            .order_by("id")
            .values_list("id", "kind", "role", "capacity")
        )
        if requirements
        else []
    )
    needs = [
        Need(
            lead=lead,
            tail=tail,
            candidates=tuple(
                rid for rid, kind, role, _ in resources if _matches(req, kind, role, rid)
            ),
        )
        for req, (lead, tail) in zip(requirements, spans, strict=True)
    ]
    calendars = {rid: Calendar(capacity=capacity) for rid, _, _, capacity in resources}

    now_minutes = to_minutes(now)
    earliest = now_minutes + (appointment_type.min_notice_minutes if enforce_notice else 0)
    latest = now_minutes + appointment_type.horizon_days * MINUTES_PER_DAY
    problem = Problem(
        zone=zone,
        days=list(days),
        grid=appointment_type.grid_minutes,
        earliest=earliest,
        latest=latest,
        needs=needs,
        calendars=calendars,
    )
    if not calendars or not days:
        return problem

    lo, hi = hold_window(problem)
    # Shifts of the day before and after too: a hold may cross local midnight.
    first, last = min(days) - timedelta(days=1), max(days) + timedelta(days=1)
    local_days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    by_weekday: dict[int, list[tuple[date, Interval]]] = {}
    for day in local_days:
        by_weekday.setdefault(day.weekday(), []).append((day, local_day_bounds(zone, day)))
    shifts = WorkingHours.objects.filter(resource_id__in=calendars).values_list(
        "resource_id", "weekday", "start", "end"
    )
    for rid, weekday, start, end in shifts:
        for day, bounds in by_weekday.get(weekday, ()):
            calendars[rid].working.append(
                (
                    wall_clock_minutes(zone, day, bounds, start),
                    wall_clock_minutes(zone, day, bounds, end),
                )
            )

    lo_dt, hi_dt = from_minutes(lo), from_minutes(hi)
    time_off = TimeOff.objects.filter(
        resource_id__in=calendars, start__lt=hi_dt, end__gt=lo_dt
    ).values_list("resource_id", "start", "end")
    for rid, off_start, off_end in time_off:
        calendars[rid].blocked.append((to_minutes(off_start), to_minutes(off_end)))
    closures = [
        (to_minutes(closed_from), to_minutes(closed_to))
        for closed_from, closed_to in Closure.objects.filter(
            location_id=location.pk, start__lt=hi_dt, end__gt=lo_dt
        ).values_list("start", "end")
    ]
    if closures:
        for calendar in calendars.values():
            calendar.blocked.extend(closures)
    return problem


def hold_window(problem: Problem) -> Interval:
    """Minutes any hold of a visit starting on ``problem.days`` can touch."""
    zone = problem.zone
    first = local_day_bounds(zone, min(problem.days))[0]
    last = local_day_bounds(zone, max(problem.days))[1]
    lead = min((need.lead for need in problem.needs), default=0)
    tail = max((need.tail for need in problem.needs), default=0)
    return first + min(lead, 0), last + tail

"""Reads: availability (the engine fed with allocations) and appointment lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any

from django.db import connection

from scheduling.availability import (
    MAX_ALLOCATION_MINUTES,
    Calendar,
    Problem,
    available_starts,
    from_minutes,
)
from scheduling.models import AppointmentType
from scheduling.selectors import (
    SCHEDULE_SOURCES,
    epoch_minutes_sql,
    hold_window,
    in_ids_sql,
    schedule_fill,
    schedule_problem,
    schedule_rows_sql,
)

# Allocation rows share a query with scheduling's rows, told apart by their first column.
_ALLOCATION = max(SCHEDULE_SOURCES) + 1
_RESOURCE = itemgetter(1)
_LANE = itemgetter(2)
_SPAN = itemgetter(3, 4)


def _allocations_sql(resource_ids: list[int], lo: int, hi: int) -> tuple[str, list[Any]]:
    """A query for ``(_ALLOCATION, resource, lane, start, end)``, start and end in UTC minutes,
    of the active allocations touching ``[lo, hi)``."""
    in_resources, ids = in_ids_sql('a."resource_id"', resource_ids)
    # The lower bound on ``start`` keeps each range scan of the partial (resource, start) index
    # short: nothing that starts earlier than the longest possible allocation can still be
    # running at ``lo``. ``a."active"`` repeats the index's condition so SQLite uses it too.
    # Only constants, conversion expressions and placeholders are formatted in.
    sql = f"""
        SELECT {_ALLOCATION}, a."resource_id", a."lane",
               {epoch_minutes_sql('a."start"')}, {epoch_minutes_sql('a."end"')}
        FROM "booking_allocation" a
        WHERE a."active" AND {in_resources}
          AND a."start" >= %s AND a."start" < %s AND a."end" > %s
    """  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    params: list[Any] = [
        *ids,
        adapt(from_minutes(lo - MAX_ALLOCATION_MINUTES)),
        adapt(from_minutes(hi)),
        adapt(from_minutes(lo)),
    ]
    return sql, params


def allocation_rows(resource_ids: list[int], lo: int, hi: int) -> list[tuple[int, int, int, int]]:
    """(resource, lane, start, end), start and end in UTC minutes, of the active allocations
    touching ``[lo, hi)``, ordered by resource and lane."""
    sql, params = _allocations_sql(resource_ids, lo, hi)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} ORDER BY 2, 3", params)
        return [row[1:] for row in cursor.fetchall()]


def availability_problem(
    *,
    appointment_type: AppointmentType,
    days: Sequence[date],
    now: datetime,
    enforce_notice: bool = True,
) -> Problem:
    """The engine's input for ``days``, with every active allocation in the window.

    Two queries: the type's requirements and resources, then their working hours, time off,
    closures and allocations in the window together.
    """
    problem = schedule_problem(
        appointment_type=appointment_type, days=days, now=now, enforce_notice=enforce_notice
    )
    calendars = problem.calendars
    if not calendars or not days:
        return problem
    lo, hi = hold_window(problem)
    schedule_sql, schedule_params = schedule_rows_sql(problem, appointment_type.location_id)
    allocations_sql, allocations_params = _allocations_sql(list(calendars), lo, hi)
    with connection.cursor() as cursor:
        cursor.execute(
            f"{schedule_sql} UNION ALL {allocations_sql}", [*schedule_params, *allocations_params]
        )
        rows = cursor.fetchall()
    schedule_fill(problem, [row for row in rows if row[0] != _ALLOCATION])
    _fill_lanes(calendars, [row for row in rows if row[0] == _ALLOCATION])
    return problem


def _fill_lanes(calendars: dict[int, Calendar], rows: list[tuple[int, ...]]) -> None:
    """Put allocation rows, in any order, into their calendars' lanes.

    Thousands of rows: the work stays in C (groupby, set, map) for each run of one resource's
    rows, as the index returns them; the engine sorts each lane itself. Sorting in SQL instead
    cost more than it saved.
    """
    for rid, run in groupby(rows, key=_RESOURCE):
        calendar = calendars[rid]
        held = list(run)
        lanes = set(map(_LANE, held))
        if len(lanes) == 1:
            lane = lanes.pop()
            if lane < calendar.capacity:  # lanes above a lowered capacity stay booked but unused
                calendar.busy[lane].extend(map(_SPAN, held))
            continue
        for _, _, lane, start, end in held:
            if lane < calendar.capacity:
                calendar.busy[lane].append((start, end))


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

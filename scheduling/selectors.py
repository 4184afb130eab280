"""Reads that feed the availability engine: one bounded window of a type's resources.

These reads run for every slot list and every booking, so they are hand-written queries rather
than one ORM query per model. The first reads the type's requirements with their pools of
resources (the location's own and the people who also work there); the second reads those
resources' hours at the location (weekly shifts valid on each day, replaced by date overrides),
their time off and the location's closures, and ``booking.selectors`` adds the lanes'
allocations (at every location: one person, one calendar) to that same query. The database
converts times to the engine's integer minutes: parsing thousands of timestamps in Python cost
more than the engine itself. SQLite (the embedded default) and PostgreSQL differ only in the
conversion expressions and the table of days below.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection

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
from scheduling.models import AppointmentType, ResourceRequirement


def epoch_minutes_sql(column: str) -> str:
    """SQL for the whole minutes since the Unix epoch of a datetime ``column`` (already quoted)."""
    if connection.vendor == "sqlite":
        # Datetimes are stored as UTC text; "%%" survives the placeholder translation as "%".
        return f"(CAST(STRFTIME('%%s', {column}) AS INTEGER) / 60)"
    # DATE_PART gives a double, about half the cost of EXTRACT's numeric over thousands of rows;
    # whole seconds divide exactly, so FLOOR matches to_minutes().
    return f"CAST(FLOOR(DATE_PART('epoch', {column}) / 60) AS INTEGER)"


def _minute_of_day_sql(column: str) -> str:
    if connection.vendor == "sqlite":
        # Times are stored as "HH:MM[:SS[.ffffff]]" text.
        return (
            f"(CAST(SUBSTR({column}, 1, 2) AS INTEGER) * 60 "
            f"+ CAST(SUBSTR({column}, 4, 2) AS INTEGER))"
        )
    return f"CAST(DATE_PART('hour', {column}) * 60 + DATE_PART('minute', {column}) AS INTEGER)"


def placeholders(values: Sequence[object]) -> str:
    """``%s, %s, …`` for an ``IN (…)`` list of ``values``."""
    return ", ".join(["%s"] * len(values))


def in_ids_sql(column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """SQL and parameters for ``column`` being one of ``ids``.

    One array parameter on PostgreSQL, so the statement's text (and its prepared plan) is the
    same whatever the number of ids; SQLite has no arrays and takes one placeholder per id.
    """
    if connection.vendor == "sqlite":
        return f"{column} IN ({placeholders(ids)})", list(ids)
    return f"{column} = ANY(%s)", [list(ids)]


def wall_clock_minutes(zone: ZoneInfo, day: date, bounds: Interval, minute_of_day: int) -> int:
    """UTC minutes of the wall-clock ``minute_of_day`` on local ``day`` (midnights ``bounds``).

    Days without an offset change are plain arithmetic; on a change day the time is converted on
    its own (``fold=0``: a repeated time means its first occurrence, a skipped one lands just
    after the gap).
    """
    day_start, day_end = bounds
    if day_end - day_start == MINUTES_PER_DAY:
        return day_start + minute_of_day
    hour, minute = divmod(minute_of_day, 60)
    return to_minutes(datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone))


def _needs_and_calendars(
    appointment_type: AppointmentType,
) -> tuple[list[Need], dict[int, Calendar]]:
    """The type's requirements, each with its pool of active resources, in one query."""
    # A requirement names one resource, or a kind (and, for staff, a role) of those serving the
    # location: its own and the people whose other sites include it (Resource.objects.at).
    # Both read by location through indexes, however many sites a chain has. The LEFT JOIN
    # keeps a requirement nobody can meet: its empty pool means no slots.
    sql = """
        SELECT q."id", q."offset_minutes", q."duration_minutes", q."buffer_before_minutes",
               q."buffer_after_minutes", r."id", r."capacity"
        FROM "scheduling_resourcerequirement" q
        LEFT JOIN (
            SELECT o."id", o."capacity", o."kind", o."role" FROM "scheduling_resource" o
            WHERE o."location_id" = %s AND o."is_active"
            UNION ALL
            SELECT v."id", v."capacity", v."kind", v."role"
            FROM "scheduling_resource_sites" s
            JOIN "scheduling_resource" v ON v."id" = s."resource_id"
            WHERE s."location_id" = %s AND v."location_id" <> %s AND v."is_active"
        ) r
          ON r."id" = q."resource_id"
             OR (q."resource_id" IS NULL AND r."kind" = q."resource_kind"
                 AND (q."role" = '' OR r."role" = q."role"))
        WHERE q."appointment_type_id" = %s
        ORDER BY q."id", r."id"
    """
    location_id = appointment_type.location_id
    with connection.cursor() as cursor:
        cursor.execute(sql, [location_id, location_id, location_id, appointment_type.pk])
        rows = cursor.fetchall()
    visit = appointment_type.duration_minutes
    pools: dict[int, tuple[tuple[int, int], list[int]]] = {}
    capacities: dict[int, int] = {}
    for req_id, offset, duration, before, after, resource_id, capacity in rows:
        if req_id not in pools:
            span = ResourceRequirement(
                offset_minutes=offset,
                duration_minutes=duration,
                buffer_before_minutes=before,
                buffer_after_minutes=after,
            ).held_span(visit)
            pools[req_id] = (span, [])
        if resource_id is not None:
            pools[req_id][1].append(resource_id)
            capacities[resource_id] = capacity
    needs = [
        Need(lead=lead, tail=tail, candidates=tuple(pool)) for (lead, tail), pool in pools.values()
    ]
    calendars = {rid: Calendar(capacity=capacities[rid]) for rid in sorted(capacities)}
    return needs, calendars


# The first column of a schedule row says what it is; other rows sharing a query with these
# (booking's allocations) use other values.
_WEEKLY, _TIME_OFF, _CLOSED, _DATED, _OVERRIDE = 0, 1, 2, 3, 4
SCHEDULE_SOURCES = (_WEEKLY, _TIME_OFF, _CLOSED, _DATED, _OVERRIDE)


def loaded_days(problem: Problem) -> list[date]:
    """The local days whose shifts a visit starting on ``problem.days`` can use: one more on
    either side, since a hold may cross local midnight."""
    first, last = min(problem.days) - timedelta(days=1), max(problem.days) + timedelta(days=1)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _days_sql(days: Sequence[date], alias: str) -> tuple[str, list[Any]]:
    """A derived table ``alias("idx", "day", "weekday")`` of ``days``, to join shifts with.

    Three array parameters on PostgreSQL, so the statement stays the same whatever the number of
    days; SQLite has no arrays and takes a ``VALUES`` row per day.
    """
    adapt = connection.ops.adapt_datefield_value
    if connection.vendor == "sqlite":
        rows = ", ".join(["(%s, %s, %s)"] * len(days))
        params: list[Any] = []
        for idx, day in enumerate(days):
            params += [idx, adapt(day), day.weekday()]
        # Only placeholders are formatted in.
        values = f"(VALUES {rows})"
        columns = 'column1 AS "idx", column2 AS "day", column3 AS "weekday"'
        return f"(SELECT {columns} FROM {values}) {alias}", params  # noqa: S608
    return (
        f'unnest(%s::integer[], %s::date[], %s::integer[]) AS {alias}("idx", "day", "weekday")',
        [list(range(len(days))), [adapt(day) for day in days], [day.weekday() for day in days]],
    )


def schedule_rows_sql(problem: Problem, location_id: int) -> tuple[str, list[Any]]:
    """A query for the schedule of ``problem``'s resources, to run as is or in a ``UNION ALL``.

    The hours are those at ``location_id`` only: time off is the person's, whichever site it is
    at, and their visits at any site take their time through the allocations
    ``booking.selectors`` adds. Rows are ``(source, resource, day, start, end)``:

    - weekly shifts valid on every date (most of them): ``day`` is the weekday;
    - shifts valid from or until a date, once for each day of :func:`loaded_days` they apply to
      (``valid_from <= day < valid_until``): ``day`` is its index there;
    - date overrides on those days, with their index: a row without times (``None``) only
      says the day is overridden;

    all three in local minutes of the day; then time off and closures touching the hold window
    in UTC minutes. Most shifts have no dates, so most rows stay one per weekly shift.
    """
    lo, hi = hold_window(problem)
    resource_ids = list(problem.calendars)
    days = loaded_days(problem)
    shift_days, days_params = _days_sql(days, "d")
    override_days, _ = _days_sql(days, "e")
    in_weekly, weekly_ids = in_ids_sql('w."resource_id"', resource_ids)
    in_dated, dated_ids = in_ids_sql('h."resource_id"', resource_ids)
    in_overrides, override_ids = in_ids_sql('o."resource_id"', resource_ids)
    in_time_off, time_off_ids = in_ids_sql('t."resource_id"', resource_ids)
    # Only fixed identifiers, conversion expressions and placeholders are formatted in.
    sql = f"""
        SELECT {_WEEKLY}, w."resource_id", w."weekday",
               {_minute_of_day_sql('w."start"')}, {_minute_of_day_sql('w."end"')}
        FROM "scheduling_workinghours" w
        WHERE w."location_id" = %s AND {in_weekly}
          AND w."valid_from" IS NULL AND w."valid_until" IS NULL
        UNION ALL
        SELECT {_DATED}, h."resource_id", d."idx",
               {_minute_of_day_sql('h."start"')}, {_minute_of_day_sql('h."end"')}
        FROM "scheduling_workinghours" h
        JOIN {shift_days} ON d."weekday" = h."weekday"
        WHERE h."location_id" = %s AND {in_dated}
          AND (h."valid_from" IS NOT NULL OR h."valid_until" IS NOT NULL)
          AND (h."valid_from" IS NULL OR h."valid_from" <= d."day")
          AND (h."valid_until" IS NULL OR d."day" < h."valid_until")
        UNION ALL
        SELECT {_OVERRIDE}, o."resource_id", e."idx",
               {_minute_of_day_sql('o."start"')}, {_minute_of_day_sql('o."end"')}
        FROM "scheduling_dateoverride" o
        JOIN {override_days} ON e."day" = o."date"
        WHERE o."location_id" = %s AND {in_overrides}
        UNION ALL
        SELECT {_TIME_OFF}, t."resource_id", 0,
               {epoch_minutes_sql('t."start"')}, {epoch_minutes_sql('t."end"')}
        FROM "scheduling_timeoff" t
        WHERE {in_time_off} AND t."start" < %s AND t."end" > %s
        UNION ALL
        SELECT {_CLOSED}, 0, 0, {epoch_minutes_sql('c."start"')}, {epoch_minutes_sql('c."end"')}
        FROM "scheduling_closure" c
        WHERE c."location_id" = %s AND c."start" < %s AND c."end" > %s
    """  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    lo_at, hi_at = adapt(from_minutes(lo)), adapt(from_minutes(hi))
    return sql, [
        location_id,
        *weekly_ids,
        *days_params,
        location_id,
        *dated_ids,
        *days_params,
        location_id,
        *override_ids,
        *time_off_ids,
        hi_at,
        lo_at,
        location_id,
        hi_at,
        lo_at,
    ]


def schedule_fill(problem: Problem, rows: Iterable[Sequence[Any]]) -> None:
    """Put the rows of :func:`schedule_rows_sql` into ``problem``'s calendars.

    A day with date overrides for a resource takes their times instead of its shifts: none when
    the overrides have no times (a day off there).
    """
    zone, calendars = problem.zone, problem.calendars
    rows = list(rows)
    # Most days are plain arithmetic from local midnight; only a day whose offset changes
    # converts its times, each distinct one once.
    days = loaded_days(problem)
    after = days[-1] + timedelta(days=1)
    midnights = [to_minutes(datetime(d.year, d.month, d.day, tzinfo=zone)) for d in [*days, after]]
    plain: dict[int, list[int]] = {weekday: [] for weekday in range(7)}
    changing: dict[int, list[int]] = {weekday: [] for weekday in range(7)}
    for idx, day in enumerate(days):
        if midnights[idx + 1] - midnights[idx] == MINUTES_PER_DAY:
            plain[day.weekday()].append(idx)
        else:
            changing[day.weekday()].append(idx)
    converted: dict[tuple[int, int], int] = {}

    def on_change_day(idx: int, minute_of_day: int) -> int:
        key = (idx, minute_of_day)
        if key not in converted:
            bounds = (midnights[idx], midnights[idx + 1])
            converted[key] = wall_clock_minutes(zone, days[idx], bounds, minute_of_day)
        return converted[key]

    def one_day(idx: int, start: int, end: int) -> Interval:
        midnight = midnights[idx]
        if midnights[idx + 1] - midnight == MINUTES_PER_DAY:
            return midnight + start, midnight + end
        return on_change_day(idx, start), on_change_day(idx, end)

    # The days each resource's overrides replace, before any shift is placed.
    overridden: dict[int, set[int]] = {}
    for source, rid, idx, start, end in rows:
        if source == _OVERRIDE:
            overridden.setdefault(rid, set()).add(idx)
            if start is not None:
                calendars[rid].working.append(one_day(idx, start, end))

    closures: list[Interval] = []
    for source, rid, day, start, end in rows:
        if source == _WEEKLY:
            working = calendars[rid].working
            replaced = overridden.get(rid)
            if replaced is None:
                working += [(midnights[i] + start, midnights[i] + end) for i in plain[day]]
                working += [one_day(i, start, end) for i in changing[day]]
            else:
                working += [one_day(i, start, end) for i in plain[day] if i not in replaced]
                working += [one_day(i, start, end) for i in changing[day] if i not in replaced]
        elif source == _DATED:
            if day not in overridden.get(rid, ()):
                calendars[rid].working.append(one_day(day, start, end))
        elif source == _TIME_OFF:
            calendars[rid].blocked.append((start, end))
        elif source == _CLOSED:
            closures.append((start, end))
    if closures:
        for calendar in calendars.values():
            calendar.blocked.extend(closures)


def schedule_problem(
    *,
    appointment_type: AppointmentType,
    days: Sequence[date],
    now: datetime,
    enforce_notice: bool = True,
) -> Problem:
    """The engine's input for ``days`` with the type's needs and empty calendars (one query).

    :func:`schedule_load` fills in the calendars; ``booking.selectors`` does it together with
    the lanes' allocations, in one more query.
    """
    needs, calendars = _needs_and_calendars(appointment_type)
    now_minutes = to_minutes(now)
    earliest = now_minutes + (appointment_type.min_notice_minutes if enforce_notice else 0)
    latest = now_minutes + appointment_type.horizon_days * MINUTES_PER_DAY
    return Problem(
        zone=appointment_type.location.zone,
        days=list(days),
        grid=appointment_type.grid_minutes,
        earliest=earliest,
        latest=latest,
        needs=needs,
        calendars=calendars,
    )


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
    problem = schedule_problem(
        appointment_type=appointment_type, days=days, now=now, enforce_notice=enforce_notice
    )
    if problem.calendars and problem.days:
        sql, params = schedule_rows_sql(problem, appointment_type.location_id)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            schedule_fill(problem, cursor.fetchall())
    return problem


def hold_window(problem: Problem) -> Interval:
    """Minutes any hold of a visit starting on ``problem.days`` can touch."""
    zone = problem.zone
    first = local_day_bounds(zone, min(problem.days))[0]
    last = local_day_bounds(zone, max(problem.days))[1]
    lead = min((need.lead for need in problem.needs), default=0)
    tail = max((need.tail for need in problem.needs), default=0)
    return first + min(lead, 0), last + tail

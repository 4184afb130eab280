"""The staff calendar's read: one location's columns (staff or chairs) and its visits on them.

A week of a busy clinic is thousands of visits, read on every page turn, so this selector runs a
fixed number of queries whatever the number of visits (the location's columns, its appointment
types, then every visit with its patient and lanes in one statement) and writes the events as
JSON text straight from the rows: no model instance, no dict per visit (``calendar_load`` parses
that text back for callers that want plain data).

Times go to the calendar as the clinic's **wall-clock** time without an offset ("floating"), so
the grid shows the clinic's hours wherever the browser is. ``offsets`` lists the UTC offsets in
force across the window, from which the page turns a wall-clock time the user picked back into an
instant (see ``calendar.js``); on a day the clocks change that table is the only way to get it
right in the browser.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection

from booking.models import AppointmentStatus
from scheduling.availability import MAX_ALLOCATION_MINUTES, from_minutes, local_day_bounds
from scheduling.models import AppointmentType, Location, Resource, ResourceKind
from scheduling.selectors import epoch_minutes_sql, in_ids_sql

COLUMN_KINDS: dict[str, str] = {"staff": ResourceKind.STAFF, "chair": ResourceKind.CHAIR}
MAX_CALENDAR_DAYS = 14
# An appointment type lasts at most 12 hours (AppointmentType.duration_minutes): anything
# starting earlier than that before the window cannot reach into it. The bound keeps the
# (location, start) index scan short.
_LONGEST_VISIT_MINUTES = 12 * 60

HELD_TITLE = "Held for waitlist"
# Colours by appointment type (in the order of the location's types), dark enough for white text.
PALETTE = (
    "#1f6feb",
    "#8250df",
    "#1a7f37",
    "#bc4c00",
    "#0969da",
    "#bf3989",
    "#57606a",
    "#9a6700",
    "#0a7b83",
    "#cf222e",
)
# A visit released from its lanes while still on the calendar (a no-show, a session on hold)
# shows where it was: its last lanes, told from older ones (before a move) by overlapping its time.
_RELEASED_STATUSES = (AppointmentStatus.NO_SHOW, AppointmentStatus.ON_HOLD)

# Each status's label for the page; a held slot is not a visit, and says what it is for.
STATUS_LABELS: dict[str, str] = {
    str(value): str(label) for value, label in AppointmentStatus.choices
} | {str(AppointmentStatus.HELD): HELD_TITLE}
_HELD = str(AppointmentStatus.HELD)

_MINUTES_PER_DAY = 24 * 60
_EPOCH = date(1970, 1, 1)
_CLOCK = [f"T{h:02d}:{m:02d}:00" for h in range(24) for m in range(60)]


def _offset_minutes(zone: ZoneInfo, minute: int) -> int:
    moment = datetime.fromtimestamp(minute * 60, tz=UTC).astimezone(zone)
    offset = moment.utcoffset()
    return int(offset.total_seconds()) // 60 if offset is not None else 0


def zone_offsets(zone: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int]]:
    """The UTC offsets in force in ``[lo, hi)`` (UTC minutes): ``[(from_minute, offset), …]``,
    the first from ``lo``. Changes are found between local midnights, then to the minute."""
    changes = [(lo, _offset_minutes(zone, lo))]
    day = lo
    while day < hi:
        nxt = min(day + _MINUTES_PER_DAY, hi)
        after = _offset_minutes(zone, nxt)
        if after != changes[-1][1]:
            # The change lies in (day, nxt]: find its first minute.
            low, high = day, nxt
            while high - low > 1:
                middle = (low + high) // 2
                if _offset_minutes(zone, middle) == after:
                    high = middle
                else:
                    low = middle
            if high < hi:
                changes.append((high, after))
        day = nxt
    return changes


class _WallClock:
    """UTC minutes → the clinic's wall-clock ISO text (thousands per read, few distinct)."""

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        # The first offset also covers anything before the window (a visit running into it).
        self._starts = [-(1 << 62)] + [start for start, _ in offsets[1:]]
        self._offsets = [offset for _, offset in offsets]
        self._spans: dict[tuple[int, int], tuple[str, str]] = {}

    def _local(self, minute: int) -> int:
        return minute + self._offsets[bisect_right(self._starts, minute) - 1]

    @staticmethod
    def _text(local: int) -> str:
        day, minute_of_day = divmod(local, _MINUTES_PER_DAY)
        return (_EPOCH + timedelta(days=day)).isoformat() + _CLOCK[minute_of_day]

    def span(self, start: int, end: int) -> tuple[str, str]:
        """The wall-clock texts of a visit's start and end (UTC minutes)."""
        key = (start, end)
        texts = self._spans.get(key)
        if texts is None:
            local_start, local_end = self._local(start), self._local(end)
            if local_end <= local_start:
                # Ends inside the hour repeated when clocks go back (01:30 EDT + 30 min is
                # 01:00 EST): drawn for its real length rather than as a negative span.
                local_end = local_start + (end - start)
            texts = self._spans[key] = (self._text(local_start), self._text(local_end))
        return texts


def _id_list_sql(column: str) -> str:
    """SQL aggregating the ids of ``column`` into a ``"3,7"`` text."""
    if connection.vendor == "sqlite":
        return f"group_concat({column})"
    return f"string_agg({column}::text, ',')"


@dataclass(frozen=True)
class _Window:
    """What a read of the calendar is about: the place, the UTC minutes ``[lo, hi)`` of its local
    dates, the offsets in force, its columns and its appointment types (by id)."""

    location: Location
    lo: int
    hi: int
    offsets: list[tuple[int, int]]
    resources: list[dict[str, Any]]
    types: dict[int, dict[str, Any]]

    def header(self) -> dict[str, Any]:
        return {
            "timezone": self.location.timezone,
            "offsets": [
                {
                    "from": None
                    if n == 0
                    else datetime.fromtimestamp(start * 60, tz=UTC)
                    .isoformat()
                    .replace("+00:00", "Z"),
                    "minutes": offset,
                }
                for n, (start, offset) in enumerate(self.offsets)
            ],
            "types": list(self.types.values()),
            "statuses": STATUS_LABELS,
            "resources": self.resources,
        }


def _window(*, location: Location, first_day: date, last_day: date, by: str) -> _Window:
    zone = location.zone
    lo = local_day_bounds(zone, first_day)[0]
    hi = local_day_bounds(zone, last_day)[1]
    resources = [
        {"id": rid, "title": name}
        for rid, name in Resource.objects.filter(
            location=location, kind=COLUMN_KINDS[by], is_active=True
        )
        .order_by("role", "name", "id")
        .values_list("id", "name")
    ]
    types = {
        tid: {"slug": slug, "name": name, "color": PALETTE[n % len(PALETTE)]}
        for n, (tid, slug, name) in enumerate(
            AppointmentType.objects.filter(location=location)
            .order_by("id")
            .values_list("id", "slug", "name")
        )
    }
    return _Window(location, lo, hi, zone_offsets(zone, lo, hi), resources, types)


def _events_sql(window: _Window, select: str) -> tuple[str, list[Any]]:
    """The visits of ``window`` on its columns, as ``select`` over ``visit v``, ``lane l``
    (``l."resources"``: the columns held), ``booking_patient p`` and ``series_length n``."""
    in_resources, ids = in_ids_sql('al."resource_id"', [r["id"] for r in window.resources])
    released = ", ".join(f"'{status}'" for status in _RELEASED_STATUSES)
    cancelled = AppointmentStatus.CANCELLED
    # Each visit in the window with the columns it holds, its patient's name and, for a series
    # session, the last session of the series still booked ("k of n"). Lanes in use come from
    # the partial (resource, start) index of active allocations; a no-show or a session on hold
    # that holds none is shown on the lanes it last had (its released rows over its own time).
    # UNION, not UNION ALL: a column held on two lanes (or released twice) is listed once.
    # Only constants, quoted column names and placeholders are formatted in.
    sql = f"""
        WITH visit AS (
            SELECT a."id", a."reference", a."appointment_type_id", a."patient_id", a."status",
                   a."series_id", a."series_index", a."tentative", a."start", a."end"
            FROM "booking_appointment" a
            WHERE a."location_id" = %s AND a."start" >= %s AND a."start" < %s AND a."end" > %s
              AND a."status" <> '{cancelled}'
        ),
        lane AS (
            SELECT u."appointment_id", {_id_list_sql('u."resource_id"')} AS "resources"
            FROM (
                SELECT al."appointment_id", al."resource_id"
                FROM "booking_allocation" al
                WHERE al."active" AND {in_resources}
                  AND al."start" >= %s AND al."start" < %s AND al."end" > %s
                UNION
                SELECT al."appointment_id", al."resource_id"
                FROM visit v JOIN "booking_allocation" al ON al."appointment_id" = v."id"
                WHERE v."status" IN ({released}) AND NOT al."active" AND {in_resources}
                  AND al."start" < v."end" AND al."end" > v."start"
                  AND NOT EXISTS (
                      SELECT 1 FROM "booking_allocation" x
                      WHERE x."appointment_id" = v."id" AND x."active"
                  )
            ) u
            GROUP BY u."appointment_id"
        ),
        series_length AS (
            -- One probe of the series index per series in the window.
            SELECT d."series_id", (
                SELECT MAX(s."series_index") FROM "booking_appointment" s
                WHERE s."series_id" = d."series_id" AND s."status" <> '{cancelled}'
            ) AS "sessions"
            FROM (SELECT DISTINCT v."series_id" FROM visit v WHERE v."series_id" IS NOT NULL) d
        )
        {select}
        FROM visit v
        JOIN lane l ON l."appointment_id" = v."id"
        JOIN "booking_patient" p ON p."id" = v."patient_id"
        LEFT JOIN series_length n ON n."series_id" = v."series_id"
    """  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    window_start, window_end = from_minutes(window.lo), adapt(from_minutes(window.hi))
    params = [
        window.location.pk,
        adapt(window_start - timedelta(minutes=_LONGEST_VISIT_MINUTES)),
        window_end,
        adapt(window_start),
        *ids,
        adapt(window_start - timedelta(minutes=MAX_ALLOCATION_MINUTES)),
        window_end,
        adapt(window_start),
        *ids,
    ]
    return sql, params


_ROWS_SELECT = """
    SELECT v."reference", v."appointment_type_id", v."status", v."series_index", n."sessions",
           v."tentative", {start}, {end}, p."first_name", p."last_name", l."resources"
"""


def calendar_json(*, location: Location, first_day: date, last_day: date, by: str) -> str:
    """The calendar of ``location`` for the local dates ``first_day`` to ``last_day`` (inclusive)
    with a column per active staff member (``by="staff"``) or chair (``by="chair"``), as JSON:
    ``{"timezone", "offsets", "types", "statuses", "resources", "events"}``.

    Every visit not cancelled that holds a lane of a column is an event, on all the columns it
    holds; a slot held for a waitlist offer shows as such. Three queries, whatever the number
    of visits. The events are written as JSON text straight from the rows: for a busy week that is
    several times faster than building thousands of dicts and encoding them (bench/calendar.py).
    """
    window = _window(location=location, first_day=first_day, last_day=last_day, by=by)
    events = "[]"
    if window.resources:
        select = _ROWS_SELECT.format(
            start=epoch_minutes_sql('v."start"'), end=epoch_minutes_sql('v."end"')
        )
        sql, params = _events_sql(window, select)
        with connection.cursor() as cursor:
            cursor.execute(sql + ' ORDER BY v."start", v."id"', params)
            rows = cursor.fetchall()
        events = _events_json(rows, window.types, _WallClock(window.offsets))
    header = json.dumps(window.header(), separators=(",", ":"))
    return f'{header[:-1]},"events":{events}}}'


def calendar_load(
    *, location: Location, first_day: date, last_day: date, by: str
) -> dict[str, Any]:
    """:func:`calendar_json` as plain data."""
    body: dict[str, Any] = json.loads(
        calendar_json(location=location, first_day=first_day, last_day=last_day, by=by)
    )
    return body


# A JSON string literal, quotes and escapes included (the json module's C encoder).
_quote: Any = getattr(json.encoder, "c_encode_basestring_ascii", None) or (
    json.encoder.py_encode_basestring_ascii
)


def _events_json(
    rows: list[tuple[Any, ...]], types: dict[int, dict[str, Any]], wall: _WallClock
) -> str:
    # Per type once: its JSON fields and the tail of a title.
    per_type = {
        tid: (f',"type":{_quote(t["slug"])},"color":{_quote(t["color"])}', f" · {t['name']}")
        for tid, t in types.items()
    }
    parts: list[str] = []
    append = parts.append
    for (
        reference,
        type_id,
        status,
        index,
        sessions,
        tentative,
        start,
        end,
        first_name,
        last_name,
        resources,
    ) in rows:
        type_fields, type_title = per_type[type_id]
        local_start, local_end = wall.span(start, end)
        name = HELD_TITLE if status == _HELD else f"{first_name} {last_name}"
        if index and sessions:
            label = f"Session {index} of {sessions}"
            title, series = f"{name}{type_title} · {label}", f'"{label}"'
        else:
            title, series = name + type_title, "null"
        # resources is "3,7": the ids the visit holds, as aggregated by the query.
        append(
            f'{{"id":{_quote(reference)},"resourceIds":[{resources}],'
            f'"start":"{local_start}","end":"{local_end}",'
            f'"title":{_quote(title)},"status":{_quote(status)}{type_fields},'
            f'"series":{series},"tentative":{"true" if tentative else "false"}}}'
        )
    return "[" + ",".join(parts) + "]"

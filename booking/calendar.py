"""The staff calendar's read: one location's columns (staff or chairs) and its visits on them.

A week of a busy clinic is thousands of visits, read on every page turn, so this selector runs a
fixed number of queries whatever the number of visits (the location's columns, its appointment
types, the visits with their patients, their lanes; see ``calendar_json``) and writes the events
as JSON text straight from the rows: no model instance, no dict per visit (``calendar_load`` parses
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
# An online booking whose patient has not confirmed their e-mail yet: what was typed is not
# proven, so no name is shown for it.
TENTATIVE_TITLE = "Awaiting e-mail confirmation"
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
} | {
    str(AppointmentStatus.HELD): HELD_TITLE,
    str(AppointmentStatus.TENTATIVE): "Tentative: the patient has not confirmed their e-mail yet",
}
_HELD = str(AppointmentStatus.HELD)
_TENTATIVE = str(AppointmentStatus.TENTATIVE)
_ON_HOLD = str(AppointmentStatus.ON_HOLD)

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
    """UTC minutes → the clinic's wall-clock ISO text, as a visit's JSON fields (thousands per
    read, few distinct)."""

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        # The first offset also covers anything before the window (a visit running into it).
        self._starts = [-(1 << 62)] + [start for start, _ in offsets[1:]]
        self._offsets = [offset for _, offset in offsets]
        self.spans: dict[tuple[int, int], str] = {}  # (start, end) → span(start, end)

    def _local(self, minute: int) -> int:
        return minute + self._offsets[bisect_right(self._starts, minute) - 1]

    @staticmethod
    def _text(local: int) -> str:
        day, minute_of_day = divmod(local, _MINUTES_PER_DAY)
        return (_EPOCH + timedelta(days=day)).isoformat() + _CLOCK[minute_of_day]

    def span(self, start: int, end: int) -> str:
        """The ``"start"`` and ``"end"`` JSON fields of a visit from its UTC minutes, kept in
        ``spans`` for the visits with the same times."""
        local_start, local_end = self._local(start), self._local(end)
        if local_end <= local_start:
            # Ends inside the hour repeated when clocks go back (01:30 EDT + 30 min is
            # 01:00 EST): drawn for its real length rather than as a negative span.
            local_end = local_start + (end - start)
        fields = f'"start":"{self._text(local_start)}","end":"{self._text(local_end)}"'
        self.spans[start, end] = fields
        return fields


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


def calendar_window(*, location: Location, first_day: date, last_day: date, by: str) -> _Window:
    zone = location.zone
    lo = local_day_bounds(zone, first_day)[0]
    hi = local_day_bounds(zone, last_day)[1]
    resources = [
        {"id": rid, "title": name}
        # A person working at several sites is a column at each of them.
        for rid, name in Resource.objects.at(location)
        .filter(kind=COLUMN_KINDS[by], is_active=True)
        .order_by("role", "name", "id")
        .values_list("id", "name")
    ]
    types = {
        tid: {"slug": slug, "name": name, "color": colour or PALETTE[n % len(PALETTE)]}
        for n, (tid, slug, name, colour) in enumerate(
            AppointmentType.objects.filter(location=location)
            .order_by("id")
            .values_list("id", "slug", "name", "colour")
        )
    }
    return _Window(location, lo, hi, zone_offsets(zone, lo, hi), resources, types)


def type_colours(location: Location) -> dict[int, str]:
    """Each type's colour on the calendar: its own, or the palette's by its place among the
    location's types (by id), as :func:`calendar_window` gives it."""
    rows = AppointmentType.objects.filter(location=location).order_by("id")
    return {
        tid: colour or PALETTE[n % len(PALETTE)]
        for n, (tid, colour) in enumerate(rows.values_list("id", "colour"))
    }


def visits_sql(window: _Window) -> tuple[str, list[Any]]:
    """Every visit of the window not cancelled, with the name it shows under: ``(start, id, end,
    reference, type, status, series, index, tentative, name)``, times in UTC minutes.

    In no order: the rows sort as they are into (start, id) order (ids are unique), in less time
    than the database takes to sort them."""
    cancelled = AppointmentStatus.CANCELLED
    # Only constants, conversion expressions and placeholders are formatted in.
    sql = f"""
        SELECT {epoch_minutes_sql('v."start"')}, v."id", {epoch_minutes_sql('v."end"')},
               v."reference", v."appointment_type_id", v."status", v."series_id",
               v."series_index", v."tentative",
               CASE WHEN v."status" = '{_HELD}' THEN %s
                    WHEN v."status" = '{_TENTATIVE}' THEN %s
                    ELSE p."first_name" || ' ' || p."last_name" END
        FROM "booking_appointment" v JOIN "booking_patient" p ON p."id" = v."patient_id"
        WHERE v."location_id" = %s AND v."start" >= %s AND v."start" < %s AND v."end" > %s
          AND v."status" <> '{cancelled}'
    """  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    window_start = from_minutes(window.lo)
    earliest = window_start - timedelta(minutes=_LONGEST_VISIT_MINUTES)
    return sql, [
        HELD_TITLE,
        TENTATIVE_TITLE,
        window.location.pk,
        adapt(earliest),
        adapt(from_minutes(window.hi)),
        adapt(window_start),
    ]


def lanes_sql(window: _Window) -> tuple[str, list[Any]]:
    """(appointment, column as text) for every active lane of a column in the window, from the
    partial (resource, start) index of active allocations."""
    in_resources, ids = in_ids_sql('al."resource_id"', [r["id"] for r in window.resources])
    sql = f"""
        SELECT al."appointment_id", CAST(al."resource_id" AS TEXT) FROM "booking_allocation" al
        WHERE al."active" AND {in_resources} AND al."start" >= %s AND al."start" < %s
          AND al."end" > %s
    """  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    window_start = from_minutes(window.lo)
    earliest = window_start - timedelta(minutes=MAX_ALLOCATION_MINUTES)
    return sql, [*ids, adapt(earliest), adapt(from_minutes(window.hi)), adapt(window_start)]


def _released_lanes_sql(window: _Window, appointment_ids: list[int]) -> tuple[str, list[Any]]:
    """(appointment, column as text) of the lanes a visit last held over its own time, for
    visits released from all their lanes (a no-show, a session on hold)."""
    in_resources, ids = in_ids_sql('al."resource_id"', [r["id"] for r in window.resources])
    in_visits, visit_ids = in_ids_sql('v."id"', appointment_ids)
    sql = f"""
        SELECT al."appointment_id", CAST(al."resource_id" AS TEXT)
        FROM "booking_appointment" v JOIN "booking_allocation" al ON al."appointment_id" = v."id"
        WHERE {in_visits} AND NOT al."active" AND {in_resources}
          AND al."start" < v."end" AND al."end" > v."start"
          AND NOT EXISTS (
              SELECT 1 FROM "booking_allocation" x WHERE x."appointment_id" = v."id" AND x."active"
          )
    """  # noqa: S608
    return sql, [*visit_ids, *ids]


def _series_lengths_sql(series_ids: list[int]) -> tuple[str, list[Any]]:
    """The last session still booked of each series ("k of n")."""
    in_series, ids = in_ids_sql('s."series_id"', series_ids)
    sql = f"""
        SELECT s."series_id", MAX(s."series_index") FROM "booking_appointment" s
        WHERE {in_series} AND s."status" <> '{AppointmentStatus.CANCELLED}'
        GROUP BY s."series_id"
    """  # noqa: S608
    return sql, ids


def calendar_json(*, location: Location, first_day: date, last_day: date, by: str) -> str:
    """The calendar of ``location`` for the local dates ``first_day`` to ``last_day`` (inclusive)
    with a column per active staff member (``by="staff"``) or chair (``by="chair"``), as JSON:
    ``{"timezone", "offsets", "types", "statuses", "resources", "events"}``.

    Every visit not cancelled that holds a lane of a column is an event, on all the columns it
    holds; a slot held for a waitlist offer shows as such. At most six queries, whatever the
    number of visits: the columns, the types, the visits with their patients, the lanes on the
    columns, and (only when there are some) the lanes of released visits and the length of the
    series in view. Visits and lanes are read apart and joined (and the visits sorted) here:
    one index range scan each, no aggregation or sort in the database. The events are written
    as JSON text straight from the rows (bench/calendar.py).
    """
    window = calendar_window(location=location, first_day=first_day, last_day=last_day, by=by)
    events = "[]"
    if window.resources:
        with connection.cursor() as cursor:
            cursor.execute(*visits_sql(window))
            visits = cursor.fetchall()
            cursor.execute(*lanes_sql(window))
            lanes = _columns_by_visit(cursor.fetchall())
            released = [
                row[1] for row in visits if row[5] in _RELEASED_STATUSES and row[1] not in lanes
            ]
            if released:
                cursor.execute(*_released_lanes_sql(window, released))
                lanes.update(_columns_by_visit(cursor.fetchall()))
            series_ids = sorted({row[6] for row in visits if row[6] is not None})
            lengths: dict[int, int] = {}
            if series_ids:
                cursor.execute(*_series_lengths_sql(series_ids))
                lengths = dict(cursor.fetchall())
        visits.sort()
        events = _events_json(visits, lanes, lengths, window.types, _WallClock(window.offsets))
    header = json.dumps(window.header(), separators=(",", ":"))
    return f'{header[:-1]},"events":{events}}}'


def _columns_by_visit(rows: list[tuple[int, str]]) -> dict[int, str]:
    """``{appointment: "3,7"}``: the columns each visit holds, once each, in the order read."""
    held: dict[int, str] = {}
    get = held.get
    for appointment_id, resource_id in rows:
        columns = get(appointment_id)
        if columns is None:
            held[appointment_id] = resource_id
        elif resource_id not in columns.split(","):
            held[appointment_id] = f"{columns},{resource_id}"
    return held


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
    visits: list[tuple[Any, ...]],
    lanes: dict[int, str],
    lengths: dict[int, int],
    types: dict[int, dict[str, Any]],
    wall: _WallClock,
) -> str:
    # Per type once: its JSON fields and the tail of a title.
    per_type = {
        tid: (f',"type":{_quote(t["slug"])},"color":{_quote(t["color"])}', f" · {t['name']}")
        for tid, t in types.items()
    }
    spans = wall.spans
    parts: list[str] = []
    append = parts.append
    for (
        start,
        appointment_id,
        end,
        reference,
        type_id,
        status,
        series_id,
        index,
        tentative,
        name,
    ) in visits:
        # resources is "3,7": the columns the visit holds; a visit on none of them is not shown.
        resources = lanes.get(appointment_id)
        if resources is None:
            continue
        type_fields, type_title = per_type[type_id]
        times = spans.get((start, end)) or wall.span(start, end)
        sessions = lengths.get(series_id) if index else None
        if sessions:
            label = f"Session {index} of {sessions}"
            title, series = f"{name}{type_title} · {label}", f'"{label}"'
        else:
            title, series = name + type_title, "null"
        if status == _ON_HOLD:
            title = f"On hold: call the patient · {title}"
        append(
            f'{{"id":{_quote(reference)},"resourceIds":[{resources}],{times},'
            f'"title":{_quote(title)},"status":{_quote(status)}{type_fields},'
            f'"series":{series},"tentative":{"true" if tentative else "false"}}}'
        )
    return "[" + ",".join(parts) + "]"

"""The staff calendar's read: one location's columns (staff, chairs, rooms) and, on each, the
part of each visit that column really holds.

A visit holds each of its resources for that resource's own time (its allocation): a mood
infusion holds its chair for the whole 90 minutes and 10 more to turn the chair over, its nurse
for the 90 minutes and its prescriber for the first 15 only. The calendar therefore draws one
event per (visit, column it holds) at that column's time without its turnover, the turnover as
a piece of its own, and for a column with several lanes (a nurse watching three chairs) how
many of them are in use. :func:`resource_spans` works out the held time of each allocation; the
staff calendar feeds (``booking.feeds``) use the same function, so a feed and the grid agree.

A week of a busy clinic is thousands of visits, read on every page turn, so this selector runs a
fixed number of queries whatever the number of visits (the location's resources, its appointment
types and their resource needs, the visits with their patients, their lanes; see
``calendar_json``) and writes the events as JSON text straight from the rows: no model instance,
no dict per visit (``calendar_load`` parses that text back for callers that want plain data).

Times go to the calendar as the clinic's **wall-clock** time without an offset ("floating"), so
the grid shows the clinic's hours wherever the browser is. ``offsets`` lists the UTC offsets in
force across the window, from which the page turns a wall-clock time the user picked back into an
instant (see ``calendar.js``); on a day the clocks change that table is the only way to get it
right in the browser.

A person who also works at other sites is one resource everywhere, and a visit at one site takes
their time at all of them; the desk at one site must see that time as busy, not as a gap to book
into. So, for a column working at several sites, the read also gives each of their active
allocations on a visit elsewhere as an ``elsewhere`` piece: its held time (turnover included)
and the other site's neutral public name, nothing about the visit itself (not the patient, the
type, the reference or the status: who is seen at another site is none of this desk's business).
That is one more query, only when a column of the window works at several sites
(:func:`elsewhere_sql`); the staff feeds show the same time as opaque busy events.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Exists, OuterRef

from booking.models import CHANGEABLE_STATUSES, AppointmentStatus
from scheduling.availability import MAX_ALLOCATION_MINUTES, from_minutes, local_day_bounds
from scheduling.models import (
    AppointmentType,
    Location,
    Resource,
    ResourceKind,
    ResourceRequirement,
    StaffRole,
)
from scheduling.selectors import epoch_minutes_sql, in_ids_sql

# The kinds of resource each ``by`` shows as columns.
COLUMN_KINDS: dict[str, tuple[str, ...]] = {
    "staff": (ResourceKind.STAFF,),
    "chair": (ResourceKind.CHAIR,),
    "all": (ResourceKind.STAFF, ResourceKind.CHAIR, ResourceKind.ROOM),
}
# The groups columns come in, in display order: staff by role, places by kind.
GROUPS: dict[str, str] = {
    StaffRole.PRESCRIBER: "Prescribers",
    StaffRole.NURSE: "Nurses",
    "staff": "Staff",
    ResourceKind.CHAIR: "Chairs",
    ResourceKind.ROOM: "Rooms",
}
_GROUP_ORDER = {key: n for n, key in enumerate(GROUPS)}
MAX_CALENDAR_DAYS = 14
# An appointment type lasts at most 12 hours (AppointmentType.duration_minutes): anything
# starting earlier than that before the window cannot reach into it. The bound keeps the
# (location, start) index scan short.
_LONGEST_VISIT_MINUTES = 12 * 60

HELD_TITLE = "Held for waitlist"
# An online booking whose patient has not confirmed their e-mail yet: what was typed is not
# proven, so no name is shown for it.
TENTATIVE_TITLE = "Awaiting e-mail confirmation"
TURNOVER_TITLE = "Turnover"
# A column's time taken at another site: where, never what or whom.
ELSEWHERE_TITLE = "At {site}"
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
_CHANGEABLE = frozenset(str(status) for status in CHANGEABLE_STATUSES)
# The state the page draws, by status, where it is not the status itself.
_STATES = {str(AppointmentStatus.CHECKED_IN): "arrived"}
NEEDS_NEW_TIME = "needs_new_time"

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
    """UTC minutes → the clinic's wall-clock ISO text, for the events' JSON fields (thousands
    per read, few distinct)."""

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        # The first offset also covers anything before the window (a visit running into it).
        self._starts = [-(1 << 62)] + [start for start, _ in offsets[1:]]
        self._offsets = [offset for _, offset in offsets]
        # (start, end) → their texts, read directly by the events' writer.
        self.spans: dict[tuple[int, int], tuple[str, str]] = {}

    def _local(self, minute: int) -> int:
        return minute + self._offsets[bisect_right(self._starts, minute) - 1]

    @staticmethod
    def _text(local: int) -> str:
        day, minute_of_day = divmod(local, _MINUTES_PER_DAY)
        return (_EPOCH + timedelta(days=day)).isoformat() + _CLOCK[minute_of_day]

    def span(self, start: int, end: int) -> tuple[str, str]:
        """The wall-clock texts of ``[start, end)`` (UTC minutes), kept for the next span with
        the same times."""
        texts = self.spans.get((start, end))
        if texts is None:
            local_start, local_end = self._local(start), self._local(end)
            if local_end <= local_start:
                # Ends inside the hour repeated when clocks go back (01:30 EDT + 30 min is
                # 01:00 EST): drawn for its real length rather than as a negative span.
                local_end = local_start + (end - start)
            texts = self.spans[start, end] = (self._text(local_start), self._text(local_end))
        return texts

    def fields(self, start: int, end: int) -> str:
        """The ``"start"`` and ``"end"`` JSON fields of a span."""
        first, last = self.span(start, end)
        return f'"start":"{first}","end":"{last}"'


def group_key(kind: str, role: str) -> str:
    """The group a resource is shown in: its role for staff, its kind for places."""
    if kind == ResourceKind.STAFF:
        return role or "staff"
    return kind


def group_title(key: str) -> str:
    """A group's heading (a role added since :data:`GROUPS` was written: its key)."""
    return GROUPS.get(key) or key.replace("_", " ").capitalize()


@dataclass(frozen=True)
class _Window:
    """What a read of the calendar is about: the place, the UTC minutes ``[lo, hi)`` of its local
    dates, the offsets in force, its columns, every resource serving it (``known``: id → name,
    kind, role, lanes), its appointment types (by id) and each type's resource needs."""

    location: Location
    lo: int
    hi: int
    offsets: list[tuple[int, int]]
    resources: list[dict[str, Any]]
    types: dict[int, dict[str, Any]]
    known: dict[int, tuple[str, str, str, int]] = field(default_factory=dict)
    needs: dict[int, list[tuple[int | None, str, str, int, int | None, int, int]]] = field(
        default_factory=dict
    )
    groups: list[dict[str, str]] = field(default_factory=list)
    public_names: dict[int, str] = field(default_factory=dict)
    # The resources serving the location that also work at another site (their visits there
    # take their time here).
    many_sites: frozenset[int] = frozenset()

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
            "groups": self.groups,
            "resources": self.resources,
        }


def calendar_window(
    *,
    location: Location,
    first_day: date,
    last_day: date,
    by: str = "staff",
    resource_id: int | None = None,
    group: str | None = None,
) -> _Window:
    """The columns and types of a read (three queries: the resources serving the location, its
    types, their needs).

    The columns are the active resources of the kinds ``by`` names; ``group`` (a key of
    :data:`GROUPS`) instead shows that group only, and ``resource_id`` that one resource
    (whatever ``by`` and ``group`` say; not a column here: none). ``groups`` lists the groups
    ``by`` offers, for the page's choice of group.
    """
    zone = location.zone
    lo = local_day_bounds(zone, first_day)[0]
    hi = local_day_bounds(zone, last_day)[1]
    known: dict[int, tuple[str, str, str, int]] = {}
    active: list[tuple[int, str, str, str, int]] = []
    many_sites: set[int] = set()
    # A person working at several sites is a column at each of them; an inactive resource is no
    # column but may still be one a visit holds (named among its others). Anyone with a site
    # besides their home works at several (here as a visitor, or elsewhere as one).
    for rid, name, kind, role, capacity, is_active, elsewhere in (
        Resource.objects.at(location)
        .annotate(
            elsewhere=Exists(Resource.sites.through.objects.filter(resource_id=OuterRef("pk")))
        )
        .order_by()
        .values_list("id", "name", "kind", "role", "capacity", "is_active", "elsewhere")
    ):
        known[rid] = (name, kind, role, capacity)
        if elsewhere:
            many_sites.add(rid)
        if is_active:
            active.append((rid, name, kind, role, capacity))
    last = len(_GROUP_ORDER)
    active.sort(key=lambda r: (_GROUP_ORDER.get(group_key(r[2], r[3]), last), r[1], r[0]))
    offered = [r for r in active if r[2] in COLUMN_KINDS[by]]
    if resource_id is not None:
        columns = [r for r in active if r[0] == resource_id]
    elif group is not None:
        columns = [r for r in active if group_key(r[2], r[3]) == group]
    else:
        columns = offered
    present = {group_key(kind, role) for _, _, kind, role, _ in offered}
    resources = [
        {
            "id": rid,
            "title": name,
            "kind": kind,
            "role": role,
            "group": group_key(kind, role),
            "groupTitle": group_title(group_key(kind, role)),
            "lanes": capacity,
        }
        for rid, name, kind, role, capacity in columns
    ]
    types: dict[int, dict[str, Any]] = {}
    public_names: dict[int, str] = {}
    for n, (tid, slug, name, public_name, colour) in enumerate(
        AppointmentType.objects.filter(location=location)
        .order_by("id")
        .values_list("id", "slug", "name", "public_name", "colour")
    ):
        types[tid] = {"slug": slug, "name": name, "color": colour or PALETTE[n % len(PALETTE)]}
        public_names[tid] = public_name
    needs: dict[int, list[tuple[int | None, str, str, int, int | None, int, int]]] = {}
    for tid, named, kind, role, offset, duration, before, after in (
        ResourceRequirement.objects.filter(appointment_type__location=location)
        .order_by("id")
        .values_list(
            "appointment_type_id",
            "resource_id",
            "resource_kind",
            "role",
            "offset_minutes",
            "duration_minutes",
            "buffer_before_minutes",
            "buffer_after_minutes",
        )
    ):
        needs.setdefault(tid, []).append((named, kind, role, offset, duration, before, after))
    return _Window(
        location,
        lo,
        hi,
        zone_offsets(zone, lo, hi),
        resources,
        types,
        known,
        needs,
        [
            {"key": key, "title": group_title(key)}
            for key in sorted(present, key=lambda k: (_GROUP_ORDER.get(k, last), k))
        ],
        public_names,
        frozenset(many_sites),
    )


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
    reference, type, status, series, index, tentative, name, needs a new time)``, times in UTC
    minutes.

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
                    ELSE p."first_name" || ' ' || p."last_name" END,
               v."needs_new_time_since" IS NOT NULL
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


def lanes_sql(window: _Window, resource_ids: Sequence[int]) -> tuple[str, list[Any]]:
    """``(appointment, resource, lane, start, end)`` (UTC minutes) of every active lane of
    ``resource_ids`` in the window, from the partial (resource, start) index of active
    allocations."""
    in_resources, ids = in_ids_sql('al."resource_id"', resource_ids)
    sql = f"""
        SELECT al."appointment_id", al."resource_id", al."lane",
               {epoch_minutes_sql('al."start"')}, {epoch_minutes_sql('al."end"')}
        FROM "booking_allocation" al
        WHERE al."active" AND {in_resources} AND al."start" >= %s AND al."start" < %s
          AND al."end" > %s
    """  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    window_start = from_minutes(window.lo)
    earliest = window_start - timedelta(minutes=MAX_ALLOCATION_MINUTES)
    return sql, [*ids, adapt(earliest), adapt(from_minutes(window.hi)), adapt(window_start)]


def elsewhere_sql(window: _Window, resource_ids: Sequence[int]) -> tuple[str, list[Any]]:
    """``(allocation, appointment, resource, start, end, site)`` (UTC minutes; the site's public
    name) of every active lane of ``resource_ids`` in the window on a visit at another location:
    the same index range as :func:`lanes_sql`, and only what says where the person is."""
    in_resources, ids = in_ids_sql('al."resource_id"', resource_ids)
    sql = f"""
        SELECT al."id", al."appointment_id", al."resource_id",
               {epoch_minutes_sql('al."start"')}, {epoch_minutes_sql('al."end"')},
               l."public_name"
        FROM "booking_allocation" al
        JOIN "booking_appointment" v ON v."id" = al."appointment_id"
        JOIN "scheduling_location" l ON l."id" = v."location_id"
        WHERE al."active" AND {in_resources} AND al."start" >= %s AND al."start" < %s
          AND al."end" > %s AND v."location_id" <> %s
    """  # noqa: S608
    adapt = connection.ops.adapt_datetimefield_value
    window_start = from_minutes(window.lo)
    earliest = window_start - timedelta(minutes=MAX_ALLOCATION_MINUTES)
    return sql, [
        *ids,
        adapt(earliest),
        adapt(from_minutes(window.hi)),
        adapt(window_start),
        window.location.pk,
    ]


class Elsewhere(NamedTuple):
    """A resource's time held by a visit at another site, in UTC minutes, turnover included;
    ``allocation`` is the first of the visit's lanes of it (several lanes are one piece)."""

    allocation: int
    resource: int
    start: int
    end: int
    site: str


def elsewhere_spans(rows: Iterable[tuple[int, int, int, int, int, str]]) -> list[Elsewhere]:
    """The rows of :func:`elsewhere_sql` as one :class:`Elsewhere` per (visit, resource), in
    (resource, start) order."""
    merged: dict[tuple[int, int], Elsewhere] = {}
    for allocation, appointment_id, resource_id, start, end, site in rows:
        key = (appointment_id, resource_id)
        other = merged.get(key)
        if other is not None:
            allocation = min(allocation, other.allocation)
            start, end = min(start, other.start), max(end, other.end)
        merged[key] = Elsewhere(allocation, resource_id, start, end, site)
    return sorted(merged.values(), key=lambda e: (e.resource, e.start, e.allocation))


def _released_lanes_sql(
    resource_ids: Sequence[int], appointment_ids: list[int]
) -> tuple[str, list[Any]]:
    """The lanes a visit last held over its own time, as :func:`lanes_sql` gives them, for
    visits released from all their lanes (a no-show, a session on hold)."""
    in_resources, ids = in_ids_sql('al."resource_id"', resource_ids)
    in_visits, visit_ids = in_ids_sql('v."id"', appointment_ids)
    sql = f"""
        SELECT al."appointment_id", al."resource_id", al."lane",
               {epoch_minutes_sql('al."start"')}, {epoch_minutes_sql('al."end"')}
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


class Span(NamedTuple):
    """What one resource holds of one visit, in UTC minutes: ``[start, end)`` is the time it is
    needed, ``[held_from, held_until)`` the whole allocation with its buffers (turnover), on
    ``lanes`` lanes from ``lane``."""

    resource: int
    lane: int
    start: int
    end: int
    held_from: int
    held_until: int
    lanes: int = 1


def resource_spans(
    allocations: Iterable[tuple[int, int, int, int, int]],
    *,
    visits: dict[int, Sequence[Any]],
    window: _Window,
) -> dict[int, list[Span]]:
    """Each visit's :class:`Span` per resource, in the order read, from its allocation rows
    ``(appointment, resource, lane, start, end)``; ``visits`` gives each visit's row of
    :func:`visits_sql` by id, and rows of other visits are left out.

    An allocation holds ``[start, end)`` with its buffers; which part is buffer comes from the
    need of the visit's type it fills: the one naming the resource, else the one of its kind and
    role, else of its kind with any role. When the allocation is as long as that need holds a
    resource for the visit, its buffers are the need's; otherwise (no need explains it, or the
    need changed since it was booked) the part outside the visit is turnover. A visit holding
    several lanes of one resource is one span over them, on its first lane, counting them
    (``lanes``).
    """
    spans: dict[int, list[Span]] = {}
    get_spans, get_visit = spans.get, visits.get
    # (type, resource, visit minutes), packed in one int → (buffer before, after, the
    # allocation's length with them), or None when no need explains the allocation: a handful
    # of keys per read. Ints, not tuples: nothing per row is left for the garbage collector.
    shapes: dict[int, tuple[int, int, int] | None] = {}
    get_shape = shapes.get
    new = tuple.__new__  # a Span without NamedTuple's Python-level constructor: thousands a read
    for appointment_id, resource_id, lane, start, end in allocations:
        visit = get_visit(appointment_id)
        if visit is None:
            continue
        visit_start, visit_end = visit[0], visit[2]
        key = (visit[4] << 52) | (resource_id << 20) | (visit_end - visit_start)
        shape = get_shape(key, _UNKNOWN)
        if shape is _UNKNOWN:
            shape = shapes[key] = _shape(window, visit[4], resource_id, visit_end - visit_start)
        if shape is not None and end - start == shape[2]:
            before, after = shape[0], shape[1]
        else:
            before = max(min(visit_start, end) - start, 0)
            after = max(end - max(visit_end, start), 0)
        if before + after >= end - start:
            before = after = 0
        held = get_spans(appointment_id)
        if held is None:
            spans[appointment_id] = [
                new(Span, (resource_id, lane, start + before, end - after, start, end, 1))
            ]
            continue
        for n, other in enumerate(held):
            if other[0] == resource_id:
                held[n] = Span(
                    resource_id,
                    min(other.lane, lane),
                    min(other.start, start + before),
                    max(other.end, end - after),
                    min(other.held_from, start),
                    max(other.held_until, end),
                    other.lanes + 1,
                )
                break
        else:
            held.append(new(Span, (resource_id, lane, start + before, end - after, start, end, 1)))
    return spans


_UNKNOWN: Any = object()


def _shape(
    window: _Window, type_id: int, resource_id: int, visit_minutes: int
) -> tuple[int, int, int] | None:
    """(buffer before, buffer after, allocation length) of the need of ``type_id`` that
    ``resource_id`` fills in a visit of ``visit_minutes``; None when it fills none."""
    need = _need(window.needs.get(type_id, ()), resource_id, window.known.get(resource_id))
    if need is None:
        return None
    offset, duration, before, after = need
    needed = duration or max(visit_minutes - offset, 0)
    return before, after, before + needed + after


def _need(
    needs: Iterable[tuple[int | None, str, str, int, int | None, int, int]],
    resource_id: int,
    resource: tuple[str, str, str, int] | None,
) -> tuple[int, int | None, int, int] | None:
    """``(offset, duration, buffer before, buffer after)`` of the need ``resource_id`` fills."""
    if resource is None:
        return None
    _, kind, role, _ = resource
    candidates = list(needs)
    for rank in range(3):
        for named, k, r, offset, duration, before, after in candidates:
            if (
                (rank == 0 and named == resource_id)
                or (rank == 1 and named is None and k == kind and r == role)
                or (rank == 2 and named is None and k == kind and r == "")
            ):
                return offset, duration, before, after
    return None


@dataclass
class CalendarRows:
    """One read of the window: its visits in (start, id) order, each one's spans on the
    resources read, and the length of each series in view."""

    visits: list[tuple[Any, ...]]
    spans: dict[int, list[Span]]
    series_lengths: dict[int, int]
    elsewhere: list[Elsewhere] = field(default_factory=list)


def calendar_rows(
    window: _Window, resource_ids: Sequence[int], *, elsewhere_for: Sequence[int] = ()
) -> CalendarRows:
    """The visits of ``window`` not cancelled and their spans on ``resource_ids`` (none read when
    empty), in at most five queries whatever the number of visits: the visits with their
    patients, their lanes, and (only when there are some) the lanes of released visits and the
    length of the series in view, and (only when one of ``elsewhere_for`` works at several
    sites) their time at other sites. Visits and lanes are read apart and joined (and the visits
    sorted) here: one index range scan each, no aggregation or sort in the database."""
    spans: dict[int, list[Span]] = {}
    lengths: dict[int, int] = {}
    elsewhere: list[Elsewhere] = []
    travelling = sorted(rid for rid in elsewhere_for if rid in window.many_sites)
    with connection.cursor() as cursor:
        cursor.execute(*visits_sql(window))
        visits = cursor.fetchall()
        held = {row[1]: row for row in visits}
        if resource_ids:
            cursor.execute(*lanes_sql(window, resource_ids))
            spans = resource_spans(cursor.fetchall(), visits=held, window=window)
            released = [
                row[1] for row in visits if row[5] in _RELEASED_STATUSES and row[1] not in spans
            ]
            if released:
                cursor.execute(*_released_lanes_sql(resource_ids, released))
                spans.update(resource_spans(cursor.fetchall(), visits=held, window=window))
        series_ids = sorted({row[6] for row in visits if row[6] is not None})
        if series_ids:
            cursor.execute(*_series_lengths_sql(series_ids))
            lengths = dict(cursor.fetchall())
        if travelling:
            cursor.execute(*elsewhere_sql(window, travelling))
            elsewhere = elsewhere_spans(cursor.fetchall())
    visits.sort()
    return CalendarRows(visits, spans, lengths, elsewhere)


def visit_title(name: str, type_name: str, status: str, label: str | None) -> str:
    """How a visit is titled: whose (when ``name`` is given), what (and which session), and a
    session on hold says so."""
    title = f"{name} · {type_name}" if name else type_name
    if label:
        title = f"{title} · {label}"
    if status == _ON_HOLD:
        title = f"On hold: call the patient · {title}"
    return title


def visit_state(status: str, needs_new_time: bool) -> str:
    """What the page draws a visit as: held for a waitlist offer, awaiting its patient's e-mail,
    waiting for a new time after a setup change, or its status (``arrived`` once checked in)."""
    if status in (_HELD, _TENTATIVE):
        return status
    if needs_new_time:
        return NEEDS_NEW_TIME
    return _STATES.get(status, status)


def calendar_json(
    *,
    location: Location,
    first_day: date,
    last_day: date,
    by: str = "staff",
    resource_id: int | None = None,
    group: str | None = None,
) -> str:
    """The calendar of ``location`` for the local dates ``first_day`` to ``last_day``
    (inclusive), its columns chosen as :func:`calendar_window` says, as JSON: ``{"timezone",
    "offsets", "types", "statuses", "groups", "resources", "events"}``.

    Every visit not cancelled that holds a lane of a column is an event on each column it holds,
    at that column's own time without its buffers (``start``, ``end``; the whole visit in
    ``visitStart``, ``visitEnd``), with the buffers as ``turnover`` pieces; a column with more
    than one lane has ``watch`` pieces saying how many are in use, and a column working at
    several sites has an ``elsewhere`` piece for each visit holding it at another. At most eight
    queries, whatever the number of visits: the resources, the types, their needs, then
    :func:`calendar_rows` (reading the lanes of every resource serving the location, for the
    visits' ``others``, and the time elsewhere of the columns working at several sites). The
    events are written as JSON text straight from the rows (bench/calendar.py).
    """
    window = calendar_window(
        location=location,
        first_day=first_day,
        last_day=last_day,
        by=by,
        resource_id=resource_id,
        group=group,
    )
    events = "[]"
    if window.resources:
        rows = calendar_rows(
            window, sorted(window.known), elsewhere_for=[r["id"] for r in window.resources]
        )
        events = _events_json(rows, window, _WallClock(window.offsets))
    header = json.dumps(window.header(), separators=(",", ":"))
    return f'{header[:-1]},"events":{events}}}'


def calendar_load(
    *,
    location: Location,
    first_day: date,
    last_day: date,
    by: str = "staff",
    resource_id: int | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """:func:`calendar_json` as plain data."""
    body: dict[str, Any] = json.loads(
        calendar_json(
            location=location,
            first_day=first_day,
            last_day=last_day,
            by=by,
            resource_id=resource_id,
            group=group,
        )
    )
    return body


# A JSON string literal, quotes and escapes included (the json module's C encoder).
_quote: Any = getattr(json.encoder, "c_encode_basestring_ascii", None) or (
    json.encoder.py_encode_basestring_ascii
)


def _events_json(rows: CalendarRows, window: _Window, wall: _WallClock) -> str:
    # Per type once: its JSON fields and name; per resource once: its name as JSON, and for a
    # column its lanes; per (status, needs a new time) once: those fields.
    per_type = {
        tid: (f',"type":{_quote(t["slug"])},"color":{_quote(t["color"])}', t["name"])
        for tid, t in window.types.items()
    }
    names = {rid: f'{{"id":{rid},"title":{_quote(r[0])}}}' for rid, r in window.known.items()}
    lanes_of = {r["id"]: r["lanes"] for r in window.resources}
    per_status: dict[tuple[str, bool], str] = {}
    spans_of, lengths = rows.spans, rows.series_lengths
    texts, span_texts = wall.spans.get, wall.span
    parts: list[str] = []
    append = parts.append
    # Per watched column: the marks (see watch_intervals) of each visit's lanes taken and given
    # back.
    watched: dict[int, list[int]] = {rid: [] for rid, n in lanes_of.items() if n > 1}
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
        needs_new_time,
    ) in rows.visits:
        spans = spans_of.get(appointment_id)
        # A visit on none of the columns is not shown.
        if spans is None:
            continue
        tags = [names[span[0]] for span in spans]
        columns = [n for n, span in enumerate(spans) if span[0] in lanes_of]
        if not columns:
            continue
        type_fields, type_name = per_type[type_id]
        sessions = lengths.get(series_id) if index else None
        label = f"Session {index} of {sessions}" if sessions else None
        visit_start, visit_end = texts((start, end)) or span_texts(start, end)
        state = per_status.get((status, needs_new_time))
        if state is None:
            state = per_status[status, needs_new_time] = (
                f'"status":{_quote(status)},"state":"{visit_state(status, needs_new_time)}",'
                f'"editable":{"true" if status in _CHANGEABLE else "false"}'
            )
        ref = _quote(reference)
        common = (
            f'"visitStart":"{visit_start}","visitEnd":"{visit_end}",'
            f'"title":{_quote(visit_title(name, type_name, status, label))},{state}'
            f'{type_fields},"series":{_quote(label) if label else "null"},'
            f'"tentative":{"true" if tentative else "false"}'
        )
        released = status in _RELEASED_STATUSES
        single = len(tags) == 1
        for n in columns:
            rid, lane, held_start, held_end, held_from, held_until, count = spans[n]
            first, last = texts((held_start, held_end)) or span_texts(held_start, held_end)
            others = "" if single else ",".join(tags[:n] + tags[n + 1 :])
            append(
                f'{{"id":"{reference}/{rid}","visit":{ref},"kind":"visit","resourceIds":[{rid}],'
                f'"start":"{first}","end":"{last}",{common},"others":[{others}],'
                f'"lane":{lane},"lanes":{lanes_of[rid]}}}'
            )
            if released:
                continue
            if held_from < held_start:
                append(
                    f'{{"id":"{reference}/{rid}/before","visit":{ref},"kind":"turnover",'
                    f'"resourceIds":[{rid}],{wall.fields(held_from, held_start)},'
                    f'"title":"{TURNOVER_TITLE}"}}'
                )
            if held_end < held_until:
                append(
                    f'{{"id":"{reference}/{rid}/after","visit":{ref},"kind":"turnover",'
                    f'"resourceIds":[{rid}],{wall.fields(held_end, held_until)},'
                    f'"title":"{TURNOVER_TITLE}"}}'
                )
            marks = watched.get(rid)
            if marks is not None:
                # Lanes held together by one visit count each (``Span.lanes``).
                # watch_mark(held_from, count) and watch_mark(held_until, -count), inline.
                marks.append((held_from << _MARK_BITS) | (_MARK_ZERO + count))
                marks.append((held_until << _MARK_BITS) | (_MARK_ZERO - count))
    for rid, marks in watched.items():
        _watch_json(rid, marks, lanes_of[rid], window.known[rid][1], wall, append)
    for piece in rows.elsewhere:
        if piece.resource in lanes_of:
            append(
                f'{{"id":"elsewhere/{piece.allocation}","kind":"elsewhere",'
                f'"resourceIds":[{piece.resource}],{wall.fields(piece.start, piece.end)},'
                f'"title":{_quote(ELSEWHERE_TITLE.format(site=piece.site))}}}'
            )
    return "[" + ",".join(parts) + "]"


_MARK_BITS = 8
_MARK_ZERO = 1 << (_MARK_BITS - 1)


def watch_mark(minute: int, change: int) -> int:
    """``change`` lanes taken (or given back, negative) at ``minute``, packed in one int that
    sorts by minute: thousands per read, and ints cost the garbage collector nothing."""
    return (minute << _MARK_BITS) | (change + _MARK_ZERO)


def watch_intervals(marks: list[int]) -> list[tuple[int, int, int]]:
    """``(start, end, used)`` for each interval over which the count of lanes in use is the same
    and above zero, from the :func:`watch_mark` of each change."""
    marks.sort()
    intervals: list[tuple[int, int, int]] = []
    used, since = 0, 0
    n, total = 0, len(marks)
    while n < total:
        minute = marks[n] >> _MARK_BITS
        change = 0
        while n < total and marks[n] >> _MARK_BITS == minute:
            change += (marks[n] & ((1 << _MARK_BITS) - 1)) - _MARK_ZERO
            n += 1
        if change == 0:
            continue
        if used > 0:
            intervals.append((since, minute, used))
        used += change
        since = minute
    return intervals


def _watch_json(
    resource_id: int,
    marks: list[int],
    lanes: int,
    kind: str,
    wall: _WallClock,
    append: Any,
) -> None:
    what = "chairs watched" if kind == ResourceKind.STAFF else "places in use"
    for n, (start, end, used) in enumerate(watch_intervals(marks), start=1):
        append(
            f'{{"id":"watch/{resource_id}/{n}","kind":"watch","resourceIds":[{resource_id}],'
            f'{wall.fields(start, end)},"title":"{used} of {lanes} {what}",'
            f'"used":{used},"lanes":{lanes}}}'
        )

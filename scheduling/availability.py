"""The availability engine: pure functions over integer minutes since the Unix epoch (UTC).

No ORM in here. A loader (``booking.selectors``) reads one bounded window of working hours,
time off, closures and allocations into a :class:`Problem`; these functions answer which visit
starts are free (``available_starts``) and which resource lanes a given start would take
(``allocate``). The slot list and the booking check both go through ``lane_free``, so a slot that
is offered is bookable unless somebody takes it first.

Every interval is half-open, ``[start, end)``, in minutes. A visit starting at ``t`` holds each
required resource from ``t + need.lead`` to ``t + need.tail`` on one of its lanes (a resource of
capacity 3 has lanes 0, 1 and 2). A lane is usable for that span when the span lies inside the
resource's working time, touches none of its time off or the location's closures, and overlaps no
allocation already on that lane.

Daylight saving: candidate starts are the local wall-clock grid (every ``grid`` minutes from local
midnight), converted to UTC one day at a time. A local time that does not exist (the hour skipped
when clocks go forward) is never offered. A local time that happens twice (the hour repeated when
clocks go back) is offered once, at its **first** occurrence (``fold=0``): patients see each
wall-clock label at most once per day. Durations are real minutes, so a 90-minute visit that spans
a change still lasts 90 minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[int, int]

MINUTES_PER_DAY = 24 * 60
# No allocation is longer than this; loaders use it to bound their index range scan.
MAX_ALLOCATION_MINUTES = 24 * 60


@dataclass(frozen=True, slots=True)
class Need:
    """One required resource: held from ``t + lead`` to ``t + tail``, taken from ``candidates``
    (resource ids, in order of preference)."""

    lead: int
    tail: int
    candidates: tuple[int, ...]


@dataclass(slots=True)
class Calendar:
    """One resource within the loaded window."""

    capacity: int
    working: list[Interval] = field(default_factory=list)
    blocked: list[Interval] = field(default_factory=list)
    busy: list[list[Interval]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.busy:
            self.busy = [[] for _ in range(self.capacity)]


@dataclass(slots=True)
class Problem:
    zone: ZoneInfo
    days: Sequence[date]
    grid: int
    earliest: int
    latest: int
    needs: Sequence[Need]
    calendars: dict[int, Calendar]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one need of a visit lands."""

    resource_id: int
    lane: int
    start: int
    end: int


# --- Conversions ----------------------------------------------------------------------------


def to_minutes(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return int(moment.timestamp()) // 60


def from_minutes(minutes: int) -> datetime:
    return datetime.fromtimestamp(minutes * 60, tz=UTC)


def local_day_bounds(zone: ZoneInfo, day: date) -> Interval:
    """UTC minutes of local midnight at the start and end of ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    after = day + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=zone)
    return to_minutes(start), to_minutes(end)


def local_to_minutes(zone: ZoneInfo, day: date, minute_of_day: int) -> int | None:
    """UTC minutes of a local wall-clock time, or ``None`` when that time does not exist.

    ``fold=0`` picks the first occurrence of a repeated (fall-back) time.
    """
    hour, minute = divmod(minute_of_day, 60)
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    moment = local.astimezone(UTC)
    if moment.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None  # skipped by a spring-forward change
    return to_minutes(moment)


# --- Interval algebra -------------------------------------------------------------------------


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort, drop empty intervals and merge overlapping or touching ones."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def subtract(base: list[Interval], cuts: list[Interval]) -> list[Interval]:
    """``base`` minus ``cuts``; both normalized."""
    if not cuts:
        return base
    out: list[Interval] = []
    j = 0
    n = len(cuts)
    for start, end in base:
        while j < n and cuts[j][1] <= start:
            j += 1
        k = j
        cursor = start
        while k < n and cuts[k][0] < end:
            cut_start, cut_end = cuts[k]
            if cut_start > cursor:
                out.append((cursor, cut_start))
            if cut_end > cursor:
                cursor = cut_end
            if cursor >= end:
                break
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """Intersection of two normalized lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _covers(intervals: list[Interval], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in intervals)


# --- The engine -------------------------------------------------------------------------------


def open_time(calendar: Calendar) -> list[Interval]:
    """Working time less time off and closures."""
    return subtract(normalize(calendar.working), normalize(calendar.blocked))


def lane_free(
    calendar: Calendar, lane: int, opened: list[Interval] | None = None
) -> list[Interval]:
    """When one lane of a resource is usable: open time less that lane's allocations."""
    if opened is None:
        opened = open_time(calendar)
    return subtract(opened, normalize(calendar.busy[lane]))


def need_starts(need: Need, calendars: dict[int, Calendar]) -> list[Interval]:
    """Visit starts ``t`` for which some candidate lane can hold ``[t+lead, t+tail)``."""
    span = need.tail - need.lead
    found: list[Interval] = []
    for resource_id in need.candidates:
        calendar = calendars.get(resource_id)
        if calendar is None:
            continue
        opened = open_time(calendar)
        for lane in range(calendar.capacity):
            for start, end in lane_free(calendar, lane, opened):
                if end - start >= span:
                    # t + lead >= start and t + tail <= end  <=>  t in [start-lead, end-tail]
                    found.append((start - need.lead, end - need.tail + 1))
    return normalize(found)


def feasible_starts(problem: Problem) -> list[Interval]:
    """Every visit start at which all needs can be met, ignoring the grid."""
    result: list[Interval] | None = None
    for need in problem.needs:
        starts = need_starts(need, problem.calendars)
        result = starts if result is None else intersect(result, starts)
        if not result:
            return []
    return result or []


def grid_starts(zone: ZoneInfo, days: Iterable[date], grid: int) -> list[int]:
    """The local wall-clock grid of ``days`` in UTC minutes, DST rules as in the module doc."""
    out: list[int] = []
    for day in days:
        day_start, day_end = local_day_bounds(zone, day)
        if day_end - day_start == MINUTES_PER_DAY:
            # No change of offset today: the grid is plain arithmetic from local midnight.
            out.extend(range(day_start, day_end, grid))
            continue
        seen: set[int] = set()
        for minute_of_day in range(0, MINUTES_PER_DAY, grid):
            moment = local_to_minutes(zone, day, minute_of_day)
            if moment is not None and moment not in seen:
                seen.add(moment)
                out.append(moment)
    return sorted(out)


def available_starts(problem: Problem) -> list[int]:
    """Free visit starts on the grid of ``problem.days``, within notice and horizon."""
    feasible = feasible_starts(problem)
    out: list[int] = []
    if not feasible:
        return out
    i = 0
    for t in grid_starts(problem.zone, problem.days, problem.grid):
        if t < problem.earliest or t > problem.latest:
            continue
        while i < len(feasible) and feasible[i][1] <= t:
            i += 1
        if i == len(feasible):
            break
        if feasible[i][0] <= t:
            out.append(t)
    return out


def allocate(problem: Problem, start: int) -> list[Placement] | None:
    """The lanes a visit starting at ``start`` would take, or ``None`` if it is not available.

    Uses :func:`available_starts` itself, so it agrees with the slot list by construction. Each
    need takes its first candidate resource and lowest lane that are free for its span.
    """
    if start not in available_starts(problem):
        return None
    placements: list[Placement] = []
    for need in problem.needs:
        lo, hi = start + need.lead, start + need.tail
        placement = None
        for resource_id in need.candidates:
            calendar = problem.calendars.get(resource_id)
            if calendar is None:
                continue
            opened = open_time(calendar)
            for lane in range(calendar.capacity):
                if _covers(lane_free(calendar, lane, opened), lo, hi):
                    placement = Placement(resource_id, lane, lo, hi)
                    break
            if placement:
                break
        if placement is None:  # pragma: no cover - excluded by available_starts above
            return None
        placements.append(placement)
    return placements


# --- Reference implementation -------------------------------------------------------------------


def available_starts_bruteforce(problem: Problem) -> list[int]:
    """The same answer as :func:`available_starts`, by scanning every slot, resource and lane.

    Deliberately naive (no interval algebra, every grid time converted on its own): the oracle for
    the property tests and the baseline of ``bench.availability``.
    """
    out: list[int] = []
    for day in problem.days:
        seen: set[int] = set()
        for minute_of_day in range(0, MINUTES_PER_DAY, problem.grid):
            t = local_to_minutes(problem.zone, day, minute_of_day)
            if t is None or t in seen:
                continue
            seen.add(t)
            if t < problem.earliest or t > problem.latest:
                continue
            if all(_need_met_naively(need, problem.calendars, t) for need in problem.needs):
                out.append(t)
    return sorted(out)


def _need_met_naively(need: Need, calendars: dict[int, Calendar], t: int) -> bool:
    lo, hi = t + need.lead, t + need.tail
    for resource_id in need.candidates:
        calendar = calendars.get(resource_id)
        if calendar is None or not _covered_by_union(calendar.working, lo, hi):
            continue
        if any(s < hi and lo < e for s, e in calendar.blocked):
            continue
        for lane in range(calendar.capacity):
            if not any(s < hi and lo < e for s, e in calendar.busy[lane]):
                return True
    return False


def _covered_by_union(intervals: list[Interval], lo: int, hi: int) -> bool:
    cursor = lo
    for start, end in sorted(intervals):
        if start <= cursor < end:
            cursor = end
        if cursor >= hi:
            return True
    return cursor >= hi

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

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[int, int]

MINUTES_PER_DAY = 24 * 60
_ONE_DAY = timedelta(days=1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
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
    current_start = current_end = 0
    started = False
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if started and start <= current_end:
            if end > current_end:
                current_end = end
            continue
        if started:
            out.append((current_start, current_end))
        current_start, current_end, started = start, end, True
    if started:
        out.append((current_start, current_end))
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


def _lane_starts(
    opened: list[Interval], busy: list[Interval], lead: int, tail: int, out: list[Interval]
) -> None:
    """Append to ``out`` the starts ``t`` whose hold ``[t+lead, t+tail)`` fits in a gap of
    ``opened`` less ``busy`` (one lane's allocations, in any order, possibly overlapping).

    One pass over both sorted lists, the same gaps as ``subtract(opened, normalize(busy))``
    without building them: this runs once per lane and dominates the engine's time.
    """
    # A gap must be non-empty as well as long enough, as subtract() never yields empty ones.
    shortest = max(tail - lead, 1)
    n = len(opened)
    i = 0
    start, end = opened[0]
    cursor = start  # where the current open interval's free time resumes
    for busy_start, busy_end in sorted(busy):
        if busy_end <= cursor or busy_end <= busy_start:  # nothing left to cut, or empty
            continue
        while end <= busy_start:
            if end - cursor >= shortest:
                out.append((cursor - lead, end - tail + 1))
            i += 1
            if i == n:
                return
            start, end = opened[i]
            if cursor < start:
                cursor = start
        if busy_start - cursor >= shortest:
            out.append((cursor - lead, busy_start - tail + 1))
        if busy_end > cursor:
            cursor = busy_end
    while True:
        if end - cursor >= shortest:
            out.append((cursor - lead, end - tail + 1))
        i += 1
        if i == n:
            return
        start, end = opened[i]
        if cursor < start:
            cursor = start


def need_starts(need: Need, calendars: dict[int, Calendar]) -> list[Interval]:
    """Visit starts ``t`` for which some candidate lane can hold ``[t+lead, t+tail)``."""
    lead, tail = need.lead, need.tail
    shortest = max(tail - lead, 1)
    found: list[Interval] = []
    for resource_id in need.candidates:
        calendar = calendars.get(resource_id)
        if calendar is None:
            continue
        # Open time too short for the hold stays too short whatever the lanes hold.
        opened = [(start, end) for start, end in open_time(calendar) if end - start >= shortest]
        if not opened:
            continue
        for lane in range(calendar.capacity):
            _lane_starts(opened, calendar.busy[lane], lead, tail, found)
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


def _offset(zone: ZoneInfo, t: int) -> int | None:
    """The zone's UTC offset at UTC minute ``t`` in minutes, or ``None`` if not whole minutes."""
    offset = from_minutes(t).astimezone(zone).utcoffset()
    if offset is None:  # pragma: no cover - a ZoneInfo always has one
        return None
    minutes, seconds = divmod(int(offset.total_seconds()), 60)
    return None if seconds else minutes


def _change_day_grid(zone: ZoneInfo, day: date, bounds: Interval, grid: int) -> list[int] | None:
    """The grid of a day whose offset changes once, from the two offsets and the change.

    The same answer as converting each wall-clock time (``_change_day_grid_by_conversion``) at a
    fraction of the cost; ``None`` when the day is not that simple and must be done that way.
    """
    day_start, day_end = bounds
    before, after = _offset(zone, day_start), _offset(zone, day_end - 1)
    if before is None or after is None:
        return None
    change = day_end  # a change at either midnight leaves one offset for the whole day
    if before != after:
        # Bisect for the first minute on the new offset.
        lo, hi, at_hi = day_start, day_end - 1, after
        while hi - lo > 1:
            mid = (lo + hi) // 2
            offset = _offset(zone, mid)
            if offset is None:
                return None
            if offset == before:
                lo = mid
            else:
                hi, at_hi = mid, offset
        if at_hi != after:
            return None  # more than one change today
        change = hi
    midnight = (day.toordinal() - _EPOCH_ORDINAL) * MINUTES_PER_DAY  # local midnight, as if UTC
    out: list[int] = []
    seen: set[int] = set()
    # In UTC order, so a wall-clock time that happens twice is kept at its first occurrence; one
    # that falls in the gap of a spring-forward change lies in neither segment.
    for start, end, offset in ((day_start, change, before), (change, day_end, after)):
        first = max(start + offset - midnight, 0)
        first += -first % grid
        for minute_of_day in range(first, min(end + offset - midnight, MINUTES_PER_DAY), grid):
            if minute_of_day not in seen:
                seen.add(minute_of_day)
                out.append(midnight + minute_of_day - offset)
    return out


def _change_day_grid_by_conversion(zone: ZoneInfo, day: date, grid: int) -> list[int]:
    seen: set[int] = set()
    out: list[int] = []
    for minute_of_day in range(0, MINUTES_PER_DAY, grid):
        moment = local_to_minutes(zone, day, minute_of_day)
        if moment is not None and moment not in seen:
            seen.add(moment)
            out.append(moment)
    return out


def grid_starts(zone: ZoneInfo, days: Iterable[date], grid: int) -> list[int]:
    """The local wall-clock grid of ``days`` in UTC minutes, DST rules as in the module doc."""
    out: list[int] = []
    midnights: dict[date, int] = {}

    def midnight(day: date) -> int:
        if day not in midnights:
            midnights[day] = to_minutes(datetime(day.year, day.month, day.day, tzinfo=zone))
        return midnights[day]

    for day in days:
        bounds = day_start, day_end = midnight(day), midnight(day + _ONE_DAY)
        if day_end - day_start == MINUTES_PER_DAY:
            # No change of offset today: the grid is plain arithmetic from local midnight.
            out.extend(range(day_start, day_end, grid))
            continue
        change_day = _change_day_grid(zone, day, bounds, grid)
        if change_day is None:
            change_day = _change_day_grid_by_conversion(zone, day, grid)
        out.extend(change_day)
    out.sort()
    return out


def available_starts(problem: Problem) -> list[int]:
    """Free visit starts on the grid of ``problem.days``, within notice and horizon."""
    feasible = feasible_starts(problem)
    if not feasible:
        return []
    grid = grid_starts(problem.zone, problem.days, problem.grid)
    lo = bisect_left(grid, problem.earliest)
    hi = bisect_right(grid, problem.latest)
    out: list[int] = []
    for start, end in feasible:
        first = bisect_left(grid, start, lo, hi)
        after = bisect_left(grid, end, first, hi)
        if first < after:
            out += grid[first:after]
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

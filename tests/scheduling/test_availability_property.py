"""The availability engine against its brute-force oracle, over random clinics and days.

Random calendars are drawn in UTC minutes around one or two local days, in zones whose offset
changes by an hour, half an hour, at midnight, or never, on and around their change dates.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.availability import (
    Calendar,
    Interval,
    Need,
    Problem,
    allocate,
    available_starts,
    available_starts_bruteforce,
    grid_starts,
    intersect,
    local_day_bounds,
    normalize,
    subtract,
    to_minutes,
)

# Each zone with its 2026 offset changes; half the examples use an ordinary summer day instead.
CHANGE_DAYS = {
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],
    "Europe/Berlin": [date(2026, 3, 29), date(2026, 10, 25)],
    "Australia/Lord_Howe": [date(2026, 4, 5), date(2026, 10, 4)],  # moves by 30 minutes
    "America/Santiago": [date(2026, 4, 4), date(2026, 9, 6)],  # changes at local midnight
    "Asia/Kolkata": [],  # a half-hour offset and no DST
    "UTC": [],
}
ORDINARY_DAY = date(2026, 6, 15)
GRIDS = [5, 10, 15, 20, 30, 60]
LAST_MINUTE = 24 * 60 - 1


@st.composite
def intervals(draw: st.DrawFn, lo: int, hi: int, step: int, longest: int) -> Interval:
    start = draw(st.integers(lo // step, hi // step)) * step
    return start, start + draw(st.integers(1, longest // step)) * step


def wall_clock(zone: ZoneInfo, day: date, minute_of_day: int) -> int:
    hour, minute = divmod(minute_of_day, 60)
    return to_minutes(datetime.combine(day, time(hour, minute), tzinfo=zone))


@st.composite
def local_shifts(draw: st.DrawFn, zone: ZoneInfo, days: list[date], step: int) -> list[Interval]:
    """One or two wall-clock shifts a day (a split shift), converted as the loader does."""
    out = []
    for day in [days[0] - timedelta(days=1), *days, days[-1] + timedelta(days=1)]:
        cursor = draw(st.integers(0, 10 * 60 // step)) * step
        for _ in range(draw(st.integers(1, 2))):
            end = min(cursor + draw(st.integers(1, 14 * 60 // step)) * step, LAST_MINUTE)
            if end <= cursor:
                break
            out.append((wall_clock(zone, day, cursor), wall_clock(zone, day, end)))
            cursor = end + draw(st.integers(0, 120 // step)) * step
    return out


@st.composite
def problems(draw: st.DrawFn, max_days: int = 2, grids: list[int] = GRIDS) -> Problem:
    name = draw(st.sampled_from(sorted(CHANGE_DAYS)))
    zone = ZoneInfo(name)
    on_a_change: bool = draw(st.booleans())
    if CHANGE_DAYS[name] and on_a_change:
        # The change day itself, or the day before so that a two-day window spans it.
        first = draw(st.sampled_from(CHANGE_DAYS[name])) - timedelta(
            days=draw(st.sampled_from([0, 0, 1]))
        )
    else:
        first = ORDINARY_DAY
    days = [first + timedelta(days=n) for n in range(draw(st.integers(1, max_days)))]
    lo = local_day_bounds(zone, days[0])[0] - 180
    hi = local_day_bounds(zone, days[-1])[1] + 180
    # Coarse steps make boundaries coincide with grid marks and with each other.
    step = draw(st.sampled_from([1, 5, 15]))

    n_needs = draw(st.integers(1, 3))
    ids = list(range(1, n_needs + draw(st.integers(0, 3)) + 1))
    calendars: dict[int, Calendar] = {}
    for rid in ids:
        capacity = draw(st.integers(1, 3))
        working = draw(local_shifts(zone, days, step))
        working += draw(st.lists(intervals(lo, hi, step, 600), max_size=2))
        calendars[rid] = Calendar(
            capacity=capacity,
            working=working,
            blocked=draw(st.lists(intervals(lo, hi, step, 180), max_size=2)),
            busy=[
                draw(st.lists(intervals(lo, hi, step, 120), max_size=4)) for _ in range(capacity)
            ],
        )
    closures = draw(st.lists(intervals(lo, hi, step, 120), max_size=1))
    for calendar in calendars.values():
        calendar.blocked.extend(closures)

    # Needs draw on separate pools, as requirements do; a pool may also name a resource that is
    # not loaded (an inactive one).
    pools: list[list[int]] = [[rid] for rid in ids[:n_needs]]
    for rid in ids[n_needs:]:
        pools[draw(st.integers(0, n_needs - 1))].append(rid)
    needs = []
    for pool in pools:
        if draw(st.integers(0, 3)) == 0:
            pool.insert(draw(st.integers(0, len(pool))), 999)
        lead = draw(st.integers(-30, 60))
        tail = lead + draw(st.integers(5, 180))
        needs.append(Need(lead=lead, tail=tail, candidates=tuple(pool)))

    # Mostly a clock well before the window and a far horizon; sometimes either cuts into it.
    now = draw(st.integers(lo - 24 * 60, lo + 12 * 60))
    horizon = draw(st.one_of(st.just(90 * 24 * 60), st.integers(0, 3 * 24 * 60)))
    return Problem(
        zone=zone,
        days=days,
        grid=draw(st.sampled_from(grids)),
        earliest=now + draw(st.sampled_from([0, 1, 60, 12 * 60])),
        latest=now + horizon,
        needs=needs,
        calendars=calendars,
    )


@settings(max_examples=200, deadline=None)
@given(problems())
def test_the_engine_offers_exactly_what_the_brute_force_scan_finds(problem):
    assert available_starts(problem) == available_starts_bruteforce(problem)


def overlaps(intervals: list[Interval], lo: int, hi: int) -> bool:
    return any(start < hi and lo < end for start, end in intervals)


def covered(intervals: list[Interval], lo: int, hi: int) -> bool:
    minutes = {m for start, end in intervals for m in range(max(start, lo), min(end, hi))}
    return len(minutes) == hi - lo


@settings(max_examples=60, deadline=None)
@given(problems(max_days=1, grids=[15, 20, 30, 60]), st.lists(st.integers(0, 24 * 60 - 1)))
def test_a_start_can_be_allocated_exactly_when_it_is_offered(problem, odd_minutes):
    offered = set(available_starts(problem))
    day_start = local_day_bounds(problem.zone, problem.days[0])[0]
    candidates = set(grid_starts(problem.zone, problem.days, problem.grid))
    candidates |= {day_start + minute for minute in odd_minutes}

    for t in sorted(candidates):
        placements = allocate(problem, t)
        assert (placements is not None) == (t in offered), t
        if placements is None:
            continue
        assert len(placements) == len(problem.needs)
        for need, placement in zip(problem.needs, placements, strict=True):
            calendar = problem.calendars[placement.resource_id]
            assert placement.resource_id in need.candidates
            assert 0 <= placement.lane < calendar.capacity
            assert (placement.start, placement.end) == (t + need.lead, t + need.tail)
            assert covered(calendar.working, placement.start, placement.end)
            assert not overlaps(calendar.blocked, placement.start, placement.end)
            assert not overlaps(calendar.busy[placement.lane], placement.start, placement.end)


# --- Interval algebra ---------------------------------------------------------------------------


def minutes_of(intervals: list[Interval]) -> set[int]:
    return {m for start, end in intervals for m in range(start, end)}


def is_normal(intervals: list[Interval]) -> bool:
    """Sorted, non-empty, and neither overlapping nor touching."""
    return all(start < end for start, end in intervals) and all(
        a[1] < b[0] for a, b in pairwise(intervals)
    )


raw_intervals = st.lists(
    st.tuples(st.integers(-50, 50), st.integers(-50, 50)), max_size=8
)  # includes empty and reversed ones, which mean nothing


def test_normalize_sorts_merges_overlapping_and_touching_and_drops_empty():
    assert normalize([(30, 40), (0, 10), (10, 20), (15, 18), (50, 50), (60, 55)]) == [
        (0, 20),
        (30, 40),
    ]
    assert normalize([]) == []


def test_subtract_cuts_holes_and_edges():
    assert subtract([(0, 100)], [(10, 20), (30, 40)]) == [(0, 10), (20, 30), (40, 100)]
    assert subtract([(0, 10), (20, 30)], [(5, 25)]) == [(0, 5), (25, 30)]
    assert subtract([(0, 10)], [(0, 10)]) == []
    assert subtract([(0, 10)], [(-5, 0), (10, 15)]) == [(0, 10)]
    assert subtract([(0, 10)], []) == [(0, 10)]


def test_intersect_keeps_the_common_parts_only():
    assert intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    assert intersect([(0, 10)], [(10, 20)]) == []
    assert intersect([(0, 100)], [(10, 20), (30, 40)]) == [(10, 20), (30, 40)]
    assert intersect([], [(0, 1)]) == []


@settings(max_examples=200, deadline=None)
@given(raw_intervals)
def test_normalize_keeps_the_same_minutes_in_normal_form(raw):
    result = normalize(raw)

    assert is_normal(result)
    assert minutes_of(result) == minutes_of(raw)


@settings(max_examples=200, deadline=None)
@given(raw_intervals, raw_intervals)
def test_subtract_and_intersect_agree_with_sets_of_minutes(a, b):
    a, b = normalize(a), normalize(b)

    difference = subtract(a, b)
    common = intersect(a, b)

    assert minutes_of(difference) == minutes_of(a) - minutes_of(b)
    assert minutes_of(common) == minutes_of(a) & minutes_of(b)
    assert all(start < end for start, end in difference + common)
    assert difference == sorted(difference)
    assert common == sorted(common)

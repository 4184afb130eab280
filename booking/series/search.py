"""The schedule search, pure: given each candidate day's free starts, the schedule that keeps the
same local time most often, then strays from it by the fewest minutes, then finishes earliest,
within the protocol's cadence; and the alternatives for sessions that could not be placed. No
ORM here: :mod:`booking.series.services` loads the days and calls it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

# The free starts of each local day, as (wall-clock minute of the day, UTC minute), in time
# order.
Options = Mapping[date, Sequence[tuple[int, int]]]
# (sessions not placed, sessions away from the chosen time, minutes away in all, UTC minute of
# the last placed session's start): smaller is better, compared in that order.
Score = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Cadence:
    """The spacing rules a schedule must keep, in calendar days of the clinic's zone."""

    sessions: int
    min_gap: int
    max_gap: int
    window: int
    weekdays: frozenset[int]

    def days(self, first_day: date, last_day: date | None = None) -> list[date]:
        """The days a series asked for from ``first_day`` may use: the window's days (to
        ``last_day`` at the latest) on the allowed days of the week."""
        out = []
        for n in range(self.window):
            day = first_day + timedelta(days=n)
            if last_day is not None and day > last_day:
                break
            if day.weekday() in self.weekdays:
                out.append(day)
        return out

    def fits_between(self, day: date, before: date | None, after: date | None) -> bool:
        if before is not None and not self.min_gap <= (day - before).days <= self.max_gap:
            return False
        return after is None or self.min_gap <= (after - day).days <= self.max_gap


@dataclass(frozen=True, slots=True)
class Schedule:
    """The best schedule found: a day for every session (for a session that could not be
    placed, the day it would have taken) and its start, ``None`` when not placed."""

    score: Score
    time_of_day: int | None
    days: tuple[date, ...]
    starts: tuple[int | None, ...]

    @property
    def missing(self) -> list[int]:
        return [n for n, start in enumerate(self.starts, start=1) if start is None]


def _closest(
    options: Sequence[tuple[int, int]], minutes: list[int], target: int
) -> tuple[int, int]:
    """The option whose minute of the day is nearest ``target``; the earlier one on a tie."""
    i = bisect_left(minutes, target)
    best = options[i] if i < len(options) else options[-1]
    if i > 0:
        before = options[i - 1]
        if abs(before[0] - target) <= abs(best[0] - target):
            best = before
    return best


def _day_costs(
    days: Sequence[date], options: Options, minutes: Mapping[date, list[int]], target: int | None
) -> list[tuple[int, int, int] | None]:
    """Per day, (away from the target?, minutes away, UTC start) of its best start, or ``None``.

    The score adds the first two over the sessions and only the last session's start counts
    for the finish, so the start nearest the target (the earlier on a tie) is the best a day
    can offer whichever sessions surround it.
    """
    costs: list[tuple[int, int, int] | None] = []
    for day in days:
        choices = options.get(day)
        if not choices:
            costs.append(None)
        elif target is None:
            costs.append((0, 0, choices[0][1]))
        else:
            minute, start = _closest(choices, minutes[day], target)
            away = abs(minute - target)
            costs.append((1 if away else 0, away, start))
    return costs


def _search_at(
    cadence: Cadence, days: list[date], costs: list[tuple[int, int, int] | None]
) -> tuple[Score, list[int], list[bool]] | None:
    """Dynamic programming over (session, day): the best score of sessions 1..k with session k
    on a day depends only on that day and the best score of 1..k-1 on the days a gap allows.

    The score's parts are sums over the sessions except the finish, which the last placed
    session sets; a session that cannot be placed keeps its predecessor's. Both keep the
    lexicographic order of predecessors, so the best of the predecessors gives the best here.
    """
    count = len(days)
    if not count:
        return None
    ordinals = [day.toordinal() for day in days]
    # The predecessors of day j: the days min_gap to max_gap before it, a run of the sorted list.
    preds = [
        (
            bisect_left(ordinals, ordinal - cadence.max_gap),
            bisect_right(ordinals, ordinal - cadence.min_gap),
        )
        for ordinal in ordinals
    ]
    current: list[Score | None] = []
    for cost in costs:
        current.append((0, cost[0], cost[1], cost[2]) if cost else (1, 0, 0, 0))
    back: list[list[int]] = []
    for _ in range(cadence.sessions - 1):
        following: list[Score | None] = [None] * count
        parents = [-1] * count
        for j in range(count):
            lo, hi = preds[j]
            best: Score | None = None
            parent = -1
            for i in range(lo, hi):
                candidate = current[i]
                if candidate is not None and (best is None or candidate < best):
                    best, parent = candidate, i
            if best is None:
                continue
            holes, away_count, away_minutes, finish = best
            cost = costs[j]
            following[j] = (
                (holes, away_count + cost[0], away_minutes + cost[1], cost[2])
                if cost
                else (holes + 1, away_count, away_minutes, finish)
            )
            parents[j] = parent
        current = following
        back.append(parents)
    last = -1
    score: Score | None = None
    for j, candidate in enumerate(current):
        if candidate is not None and (score is None or candidate < score):
            score, last = candidate, j
    if score is None:
        return None
    chosen = [last]
    for parents in reversed(back):
        chosen.append(parents[chosen[-1]])
    chosen.reverse()
    return score, chosen, [costs[j] is not None for j in chosen]


def schedule_search(
    *,
    cadence: Cadence,
    first_day: date,
    options: Options,
    preferred: int | None,
    same_time: bool = True,
    last_day: date | None = None,
) -> Schedule | None:
    """The best schedule on the days from ``first_day`` (to ``last_day`` at the latest), or
    ``None`` when no sequence of days keeps the cadence at all.

    ``preferred`` is a local minute of the day. Without one, a protocol that prefers the same
    time tries every time any candidate day offers and keeps the best; one that does not takes
    each day's earliest start.
    """
    days = cadence.days(first_day, last_day)
    minutes = {day: [minute for minute, _ in options.get(day, ())] for day in days}
    if preferred is not None:
        targets: list[int | None] = [preferred]
    elif same_time:
        # The best common time is one some day offers: any other misses every session.
        targets = [*sorted({minute for day in days for minute in minutes[day]})] or [None]
    else:
        targets = [None]
    best: Schedule | None = None
    for target in targets:
        found = _search_at(cadence, days, _day_costs(days, options, minutes, target))
        if found is None:
            return None  # the cadence, not availability, rules every sequence out
        score, chosen, placed = found
        if best is not None and score >= best.score:
            continue
        starts: list[int | None] = []
        for j, is_placed in zip(chosen, placed, strict=True):
            if not is_placed:
                starts.append(None)
                continue
            choices = options[days[j]]
            if target is None:
                starts.append(choices[0][1])
            else:
                starts.append(_closest(choices, minutes[days[j]], target)[1])
        best = Schedule(
            score=score,
            time_of_day=target,
            days=tuple(days[j] for j in chosen),
            starts=tuple(starts),
        )
    return best


def alternatives_for(
    schedule: Schedule, options: Options, cadence: Cadence, *, first_day: date, limit: int
) -> dict[int, list[int]]:
    """For each session the schedule could not place, the best starts on other free days:
    those that keep the cadence with its neighbours first, then the nearest to its day."""
    taken = {
        day for day, start in zip(schedule.days, schedule.starts, strict=True) if start is not None
    }
    out: dict[int, list[int]] = {}
    for n in schedule.missing:
        day = schedule.days[n - 1]
        before = schedule.days[n - 2] if n > 1 else None
        after = schedule.days[n] if n < len(schedule.days) else None
        candidates = sorted(
            (
                not cadence.fits_between(other, before, after),
                abs((other - day).days),
                other,
            )
            for other, choices in options.items()
            if choices and other >= first_day and other not in taken
        )
        starts = []
        for _, _, other in candidates[:limit]:
            choices = options[other]
            if schedule.time_of_day is None:
                starts.append(choices[0][1])
            else:
                minutes = [minute for minute, _ in choices]
                starts.append(_closest(choices, minutes, schedule.time_of_day)[1])
        out[n] = starts
    return out

"""Series proposal: the search against an exhaustive enumeration of the same schedules.

Run against PostgreSQL (the clinic is built on every run, in a few seconds, and rolled back)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_bench \\
        .venv/bin/python -m bench.series

One location in America/New_York, open Monday to Saturday 07:00-20:00: 6 chairs, 2 nurses
watching three chairs each, 3 prescribers. Five weeks of mood infusions fill about 80% of the
chairs' time (the three weeks asked for, and two more where a later first day would be sought).
A patient asks for the 6-session mood series (Monday to Saturday, a free day between sessions,
at most 7 days apart, all within 21 days) from Monday 2026-10-26, across the fall-back change of
2026-11-01, around 10:00. ``series_propose`` (the approval check, one read, then the search) is
timed; the exhaustive search reads the same availability and scores every cadence-valid choice
of days and times, and must reach the same best score. Everything is built in one transaction
that is rolled back. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import mock

from bench.common import machine_info, percentile, setup_django

ZONE_NAME = "America/New_York"
FIRST_DAY = date(2026, 10, 26)
NOW = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
# The window the proposal may use (21 days) and the later first days it may offer (14).
BOOKED_DAYS = 35
SLUG = "bench-series"
PATIENT_DOMAIN = "bench-series.invalid"
CHAIRS, NURSES, PRESCRIBERS = 6, 2, 3
OPEN_HOURS = (7 * 60, 20 * 60)
TARGET_OCCUPANCY = 0.80
PREFERRED_MINUTE = 10 * 60
SEED = 20261026
TARGET_P50_MS = 50.0


# --- The exhaustive search ------------------------------------------------------------------------

Options = Mapping[date, Sequence[tuple[int, int]]]
Score = tuple[int, int, int, int]


def exhaustive_best(
    *,
    sessions: int,
    min_gap: int,
    max_gap: int,
    window: int,
    weekdays: frozenset[int],
    first_day: date,
    options: Options,
    preferred: int | None,
    same_time: bool = True,
    last_day: date | None = None,
) -> Score | None:
    """The best score over every schedule, found by visiting each one.

    A schedule takes ``sessions`` days from ``first_day`` on (within ``window`` days, on
    ``weekdays``, not after ``last_day``), each ``min_gap``..``max_gap`` days after the one
    before, and on each day one of its ``options`` (minute of the day, UTC minute), or leaves
    the session unplaced when the day has none. Its score is (unplaced sessions, sessions away
    from the time kept, minutes away in all, UTC start of the last placed session); the time
    kept is ``preferred``, else the best of the schedule's own times when ``same_time``, else
    none. ``None`` when no days keep the spacing. No pruning: every schedule is scored.
    """
    days = [
        first_day + timedelta(days=n)
        for n in range(window)
        if (first_day + timedelta(days=n)).weekday() in weekdays
        and (last_day is None or first_day + timedelta(days=n) <= last_day)
    ]
    best: list[Score] = []

    def consider(score: Score) -> None:
        if not best or score < best[0]:
            best[:] = [score]

    def leaf(holes: int, chosen: list[tuple[int, int]]) -> Score:
        # Without a preferred time: the best of the schedule's own times, or none at all.
        finish = chosen[-1][1] if chosen else 0
        if not same_time or not chosen:
            return (holes, 0, 0, finish)
        return min(
            (
                holes,
                sum(1 for minute, _ in chosen if minute != target),
                sum(abs(minute - target) for minute, _ in chosen),
                finish,
            )
            for target in {minute for minute, _ in chosen}
        )

    def visit(k: int, previous: date | None, holes: int, chosen: list[tuple[int, int]]) -> None:
        if k == sessions:
            consider(leaf(holes, chosen))
            return
        for day in days:
            if previous is not None and not min_gap <= (day - previous).days <= max_gap:
                continue
            choices = options.get(day) or ()
            if not choices:
                visit(k + 1, day, holes + 1, chosen)
                continue
            for choice in choices:
                chosen.append(choice)
                visit(k + 1, day, holes, chosen)
                chosen.pop()

    if preferred is not None:
        return _exhaustive_at(days, sessions, min_gap, max_gap, options, preferred)
    visit(0, None, 0, [])
    return best[0] if best else None


def _exhaustive_at(
    days: list[date],
    sessions: int,
    min_gap: int,
    max_gap: int,
    options: Options,
    target: int,
) -> Score | None:
    """:func:`exhaustive_best` for a given time: running sums instead of scoring each leaf from
    its list, so that the benchmark's millions of schedules take seconds, not minutes. Still
    every schedule is visited and scored."""
    best: Score | None = None
    costed = {
        day: [(1 if minute != target else 0, abs(minute - target), start) for minute, start in opts]
        for day, opts in options.items()
    }

    def visit(k: int, previous: date | None, holes: int, off: int, away: int, finish: int) -> None:
        nonlocal best
        for day in days:
            if previous is not None and not min_gap <= (day - previous).days <= max_gap:
                continue
            choices = costed.get(day) or ()
            if k + 1 == sessions:
                if not choices:
                    score = (holes + 1, off, away, finish)
                    if best is None or score < best:
                        best = score
                for c_off, c_away, start in choices:
                    score = (holes, off + c_off, away + c_away, start)
                    if best is None or score < best:
                        best = score
                continue
            if not choices:
                visit(k + 1, day, holes + 1, off, away, finish)
            for c_off, c_away, start in choices:
                visit(k + 1, day, holes, off + c_off, away + c_away, start)

    visit(0, None, 0, 0, 0, 0)
    return best


def schedule_count(protocol: Any, weekdays: frozenset[int], options: Options) -> int:
    """How many schedules :func:`exhaustive_best` visits (counted, not visited)."""
    days = [
        FIRST_DAY + timedelta(days=n)
        for n in range(protocol.window_days)
        if (FIRST_DAY + timedelta(days=n)).weekday() in weekdays
    ]
    ways = [max(1, len(options.get(day, ()))) for day in days]
    for _ in range(protocol.sessions - 1):
        ways = [
            sum(
                ways[i]
                for i, before in enumerate(days)
                if protocol.min_gap_days <= (day - before).days <= protocol.max_gap_days
            )
            * max(1, len(options.get(day, ())))
            for day in days
        ]
    return sum(ways)


# --- The clinic ----------------------------------------------------------------------------------


def booked_days() -> list[date]:
    return [FIRST_DAY + timedelta(days=n) for n in range(BOOKED_DAYS)]


def _to_utc_minutes(day: date, minute: int) -> int:
    from zoneinfo import ZoneInfo

    from scheduling.availability import to_minutes

    zone = ZoneInfo(ZONE_NAME)
    return to_minutes(
        datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone)
    )


def build(rng: random.Random) -> tuple[Any, dict[str, float]]:
    """The clinic, its three weeks (and two more) of visits, and an approved patient's plan.

    Visits are placed by the engine itself, day by day, at random free starts until 80% of the
    chairs' open time is taken or nothing fits. Returns the plan and the occupancy reached.
    """
    from datetime import time as clock

    from django.contrib.auth.models import Permission, User

    from booking.defaults import protocols_install_defaults
    from booking.eligibility import contraindications_none, eligibility_decide
    from booking.models import Allocation, Appointment, DecisionOutcome, Patient, TreatmentPlan
    from scheduling.availability import Placement, from_minutes
    from scheduling.defaults import appointment_types_install_defaults
    from scheduling.models import Location, Resource, ResourceKind, StaffRole, WorkingHours

    location = Location.objects.create(
        slug=SLUG, name="Bench series clinic", public_name="Bench Health", timezone=ZONE_NAME
    )
    types = {t.slug: t for t in appointment_types_install_defaults(location=location)}
    protocols = {p.slug: p for p in protocols_install_defaults(location=location)}
    resources = Resource.objects.bulk_create(
        [
            *(
                Resource(location=location, kind=ResourceKind.CHAIR, name=f"Chair {n}")
                for n in range(1, CHAIRS + 1)
            ),
            *(
                Resource(
                    location=location,
                    kind=ResourceKind.STAFF,
                    role=StaffRole.NURSE,
                    name=f"Nurse {n}",
                    capacity=3,
                )
                for n in range(1, NURSES + 1)
            ),
            *(
                Resource(
                    location=location,
                    kind=ResourceKind.STAFF,
                    role=StaffRole.PRESCRIBER,
                    name=f"Dr. {n}",
                )
                for n in range(1, PRESCRIBERS + 1)
            ),
        ]
    )
    opens, closes = (clock(m // 60, m % 60) for m in OPEN_HOURS)
    WorkingHours.objects.bulk_create(
        WorkingHours(resource=r, location=location, weekday=weekday, start=opens, end=closes)
        for r in resources
        for weekday in range(6)
    )

    mood = types["iv-mood"]
    chairs = {r.pk for r in resources if r.kind == ResourceKind.CHAIR}
    nurses = {r.pk for r in resources if r.role == StaffRole.NURSE}
    day_minutes = OPEN_HOURS[1] - OPEN_HOURS[0]
    visits: list[tuple[int, list[Any]]] = []
    held = {"chair": 0, "nurse": 0}
    open_minutes = {"chair": 0, "nurse": 0}
    prescribers = [r.pk for r in resources if r.role == StaffRole.PRESCRIBER]
    busy: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def free(resource_id: int, lane: int, lo: int, hi: int) -> bool:
        return not any(s < hi and lo < e for s, e in busy.get((resource_id, lane), ()))

    for day in booked_days():
        if day.weekday() == 6:
            continue
        open_minutes["chair"] += CHAIRS * day_minutes
        open_minutes["nurse"] += NURSES * 3 * day_minutes
        # A front desk books each chair back to back from a staggered first visit, with the odd
        # quarter hour between. Visits left out at random (with the chance that keeps 80% of
        # the chairs' time booked) leave the rest free; a second pass in random order tops up
        # what clashes over nurses and prescribers left short.
        wanted = []
        for chair in sorted(chairs):
            cursor = OPEN_HOURS[0] + rng.choice([0, 15, 30, 45])
            while cursor + 100 <= OPEN_HOURS[1]:
                wanted.append((cursor, chair))
                cursor += 105 + rng.choice([0, 0, 0, 0, 15])
        target = TARGET_OCCUPANCY * CHAIRS * day_minutes
        keep = target / (100 * len(wanted))
        wanted.sort()
        first = [visit for visit in wanted if rng.random() < keep]
        rest = [visit for visit in wanted if visit not in first]
        rng.shuffle(rest)
        taken = 0
        for order, (minute, chair) in enumerate(first + rest):
            if order >= len(first) and taken >= target:
                break
            start = _to_utc_minutes(day, minute)
            if not free(chair, 0, start, start + 100):
                continue
            nurse = next(
                (
                    (n, lane)
                    for n in sorted(nurses)
                    for lane in range(3)
                    if free(n, lane, start, start + 90)
                ),
                None,
            )
            doctor = next((d for d in prescribers if free(d, 0, start, start + 15)), None)
            if nurse is None or doctor is None:
                continue
            placements = [
                Placement(chair, 0, start, start + 100),
                Placement(nurse[0], nurse[1], start, start + 90),
                Placement(doctor, 0, start, start + 15),
            ]
            for p in placements:
                busy.setdefault((p.resource_id, p.lane), []).append((p.start, p.end))
            taken += 100
            held["nurse"] += 90
            visits.append((start, placements))
        held["chair"] += taken

    patients = Patient.objects.bulk_create(
        Patient(
            first_name=f"S{n}",
            last_name="Bench",
            email=f"s{n}@{PATIENT_DOMAIN}",
            phone="+12125550000",
            date_of_birth=date(1980, 1, 1),
        )
        for n in range(len(visits) + 1)
    )
    appointments = Appointment.objects.bulk_create(
        Appointment(
            location=location,
            appointment_type=mood,
            patient=patient,
            start=from_minutes(start),
            end=from_minutes(start + mood.duration_minutes),
        )
        for (start, _), patient in zip(visits, patients, strict=False)
    )
    Allocation.objects.bulk_create(
        Allocation(
            appointment=appointment,
            resource_id=p.resource_id,
            lane=p.lane,
            start=from_minutes(p.start),
            end=from_minutes(p.end),
        )
        for appointment, (_, placements) in zip(appointments, visits, strict=True)
        for p in placements
    )

    prescriber = User.objects.create_user(f"{SLUG}-prescriber")
    prescriber.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="booking", codename="add_eligibilitydecision"
        )
    )
    patient = patients[-1]
    eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.APPROVED,
        contraindications=contraindications_none(),
        protocol=protocols["mood-induction"],
        sessions_authorised=6,
        valid_until=FIRST_DAY + timedelta(days=90),
        decided_by=prescriber,
        now=NOW,
    )
    plan = TreatmentPlan.objects.select_related(
        "patient", "protocol__appointment_type__location"
    ).get(patient=patient)
    occupancy = {kind: held[kind] / open_minutes[kind] for kind in held}
    occupancy["visits"] = len(visits)
    return plan, occupancy


# --- Measurement ---------------------------------------------------------------------------------


def options_of(plan: Any, weekdays: frozenset[int]) -> dict[date, list[tuple[int, int]]]:
    """The free starts of the window's days, read and grouped independently of the search:
    every start converted to clinic time on its own."""
    from zoneinfo import ZoneInfo

    from booking.selectors import availability_problem
    from scheduling.availability import available_starts, from_minutes

    protocol = plan.protocol
    days = [
        FIRST_DAY + timedelta(days=n)
        for n in range(protocol.window_days)
        if (FIRST_DAY + timedelta(days=n)).weekday() in weekdays
    ]
    problem = availability_problem(
        appointment_type=protocol.appointment_type, days=days, now=NOW, enforce_notice=False
    )
    zone = ZoneInfo(ZONE_NAME)
    options: dict[date, list[tuple[int, int]]] = {}
    for t in available_starts(problem):
        moment = from_minutes(t).astimezone(zone)
        options.setdefault(moment.date(), []).append((moment.hour * 60 + moment.minute, t))
    return options


def proposal_score(proposal: Any, preferred: int) -> Score:
    from zoneinfo import ZoneInfo

    from scheduling.availability import to_minutes

    zone = ZoneInfo(ZONE_NAME)
    minutes = [
        local.hour * 60 + local.minute
        for _, start, _ in proposal.sessions
        for local in (start.astimezone(zone),)
    ]
    finish = to_minutes(proposal.sessions[-1][1]) if proposal.sessions else 0
    return (
        len(proposal.missing),
        sum(1 for m in minutes if m != preferred),
        sum(abs(m - preferred) for m in minutes),
        finish,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--exhaustive-limit", type=int, default=50_000_000)
    args = parser.parse_args()

    setup_django()
    from datetime import time as clock

    from django.db import transaction

    from booking.eligibility import plan_in_force
    from booking.series.services import SeriesPreferences, series_propose

    info = machine_info()
    print("machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    rng = random.Random(SEED)
    # Everything is built in one transaction that is rolled back at the end: the benchmark
    # leaves nothing behind.
    with transaction.atomic():
        started = time.perf_counter()
        plan, occupancy = build(rng)
        print(
            f"clinic: {CHAIRS} chairs, {NURSES} nurses (3 chairs each), {PRESCRIBERS} "
            f"prescribers, Mon-Sat {OPEN_HOURS[0] // 60:02d}:00-{OPEN_HOURS[1] // 60:02d}:00; "
            f"{occupancy['visits']:.0f} visits over {BOOKED_DAYS} days from {FIRST_DAY}: chairs "
            f"{occupancy['chair']:.0%} and nurses {occupancy['nurse']:.0%} occupied "
            f"(built in {time.perf_counter() - started:.1f} s)"
        )
        preferred = PREFERRED_MINUTE
        # Any day the protocol allows (Monday to Saturday), around 10:00.
        preferences = SeriesPreferences(time_of_day=clock(preferred // 60, preferred % 60))

        def propose(prefs: SeriesPreferences) -> Any:
            return series_propose(plan=plan, first_day=FIRST_DAY, preferences=prefs, now=NOW)

        for _ in range(10):  # imports, zone caches, PostgreSQL's buffers and plans
            propose(preferences)
        samples: list[float] = []
        gc.collect()
        for _ in range(args.iterations):
            started_ns = time.perf_counter_ns()
            proposal = propose(preferences)
            samples.append((time.perf_counter_ns() - started_ns) / 1e6)
        # The approval check on its own, and the proposal with the check's answer given in
        # advance: how the time divides between booking.eligibility and the search.
        gate: list[float] = []
        for _ in range(max(args.iterations // 4, 5)):
            started_ns = time.perf_counter_ns()
            in_force = plan_in_force(
                patient=plan.patient, appointment_type=plan.protocol.appointment_type, now=NOW
            )
            gate.append((time.perf_counter_ns() - started_ns) / 1e6)
        ungated: list[float] = []
        with mock.patch("booking.series.services.plan_in_force", return_value=in_force):
            for _ in range(args.iterations):
                started_ns = time.perf_counter_ns()
                propose(preferences)
                ungated.append((time.perf_counter_ns() - started_ns) / 1e6)
        any_time: list[float] = []
        open_preferences = SeriesPreferences()
        for _ in range(max(args.iterations // 4, 5)):
            started_ns = time.perf_counter_ns()
            propose(open_preferences)
            any_time.append((time.perf_counter_ns() - started_ns) / 1e6)

        protocol = plan.protocol
        weekdays = frozenset(int(d) for d in protocol.allowed_weekdays)
        count = schedule_count(protocol, weekdays, options_of(plan, weekdays))
        print(f"exhaustive: {count:,} schedules to score")
        if count > args.exhaustive_limit:
            sys.exit(f"more than --exhaustive-limit={args.exhaustive_limit:,} schedules")
        started_ns = time.perf_counter_ns()
        options = options_of(plan, weekdays)
        exhaustive = exhaustive_best(
            sessions=protocol.sessions,
            min_gap=protocol.min_gap_days,
            max_gap=protocol.max_gap_days,
            window=protocol.window_days,
            weekdays=weekdays,
            first_day=FIRST_DAY,
            options=options,
            preferred=preferred,
        )
        exhaustive_ms = (time.perf_counter_ns() - started_ns) / 1e6
        transaction.set_rollback(True)

    found = proposal_score(proposal, preferred)
    per_day = {day: len(starts) for day, starts in sorted(options.items())}
    print(
        "free starts per chosen day: "
        + ", ".join(f"{day:%a %m-%d} {count}" for day, count in per_day.items())
    )
    zone = plan.protocol.appointment_type.location.zone
    for n, start, _ in proposal.sessions:
        print(f"  session {n}: {start.astimezone(zone):%a %Y-%m-%d %H:%M %Z}")
    if proposal.missing:
        print(f"  missing: {proposal.missing}")
    p50 = percentile(samples, 50)
    print(
        f"series_propose, 10:00 preferred: p50 {p50:.2f} ms, p95 {percentile(samples, 95):.2f} ms, "
        f"n={len(samples)} (target <= {TARGET_P50_MS:.0f} ms)"
    )
    print(
        f"  the approval check alone (booking.eligibility.plan_in_force): p50 "
        f"{percentile(gate, 50):.2f} ms, n={len(gate)}"
    )
    search_p50 = percentile(ungated, 50)
    print(
        f"  series_propose with the approval check's answer given: p50 {search_p50:.2f} ms, "
        f"p95 {percentile(ungated, 95):.2f} ms, n={len(ungated)}"
    )
    print(
        f"series_propose, best common time: p50 {percentile(any_time, 50):.2f} ms, "
        f"n={len(any_time)}"
    )
    print(
        f"exhaustive (same read, every schedule scored): {exhaustive_ms:.0f} ms; "
        f"best score {exhaustive}, proposal's {found}: "
        f"{'same' if exhaustive == found else 'DIFFERENT'}"
    )
    print(
        json.dumps(
            {
                "bench": "series",
                "propose_p50_ms": round(p50, 2),
                "ratio_vs_exhaustive": round(exhaustive_ms / p50, 1),
                "propose_without_approval_check_p50_ms": round(search_p50, 2),
                "ratio_without_approval_check": round(exhaustive_ms / search_p50, 1),
                "same_quality": exhaustive == found,
            }
        )
    )


if __name__ == "__main__":
    main()

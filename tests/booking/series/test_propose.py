"""Proposing an infusion series: one read of availability, then a search for the best schedule
(issue 5; DESIGN §1 step 3, §2 mood and pain series)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.series import exhaustive_best
from booking.defaults import protocols_install_defaults
from booking.eligibility import contraindications_none, eligibility_decide, plan_revoke
from booking.errors import NotEligible, PolicyViolation
from booking.models import DecisionOutcome, Patient, Protocol, TreatmentPlan
from booking.series import services as series_module
from booking.series.search import Cadence, schedule_search
from booking.series.services import Proposal, SeriesPreferences, series_propose
from booking.services import appointment_book
from scheduling.models import AppointmentType, Closure, Location

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime.fromisoformat("2026-05-29T16:00:00+00:00")  # Friday, noon in New York
MONDAY = date(2026, 6, 1)
MON_WED_FRI = {0, 2, 4}
TEN = time(10)


def local(moment: datetime) -> datetime:
    return moment.astimezone(NEW_YORK)


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def protocols(clinic: Location) -> dict[str, Protocol]:
    return {p.slug: p for p in protocols_install_defaults(location=clinic)}


@pytest.fixture
def prescriber(db: None) -> User:
    user = User.objects.create_user("dr.series", password="unused-in-tests")
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="booking", codename="add_eligibilitydecision"
        )
    )
    return user


@pytest.fixture
def approve(prescriber: User) -> Callable[..., TreatmentPlan]:
    """Approve ``patient`` for ``protocol`` as a prescriber would, returning the plan."""

    def make(
        patient: Patient,
        protocol: Protocol,
        *,
        sessions: int | None = None,
        valid_until: date = date(2026, 12, 31),
        now: datetime = NOW,
    ) -> TreatmentPlan:
        eligibility_decide(
            patient=patient,
            outcome=DecisionOutcome.APPROVED,
            contraindications=contraindications_none(),
            protocol=protocol,
            sessions_authorised=sessions or protocol.sessions,
            valid_until=valid_until,
            decided_by=prescriber,
            now=now,
        )
        return TreatmentPlan.objects.select_related(
            "patient", "protocol__appointment_type__location"
        ).get(patient=patient, protocol=protocol, revoked_at__isnull=True)

    return make


@pytest.fixture
def mood_plan(protocols, approve, make_patient) -> TreatmentPlan:
    return approve(make_patient(), protocols["mood-induction"])


def local_days(proposal: Proposal) -> list[date]:
    return [local(start).date() for _, start, _ in proposal.sessions]


def local_times(proposal: Proposal) -> set[time]:
    return {local(start).time() for _, start, _ in proposal.sessions}


def block_both_chairs(infusion: AppointmentType, start: datetime, make_patient, approve) -> None:
    """Two other patients take both chairs at ``start``."""
    protocol = protocols_install_defaults(location=infusion.location)[0]
    assert protocol.appointment_type == infusion
    for _ in range(2):
        patient = make_patient()
        approve(patient, protocol)
        appointment_book(appointment_type=infusion, patient=patient, start=start, now=NOW)


# --- With the database ----------------------------------------------------------------------


def test_it_proposes_every_session_at_the_preferred_local_time_on_the_chosen_days(mood_plan):
    proposal = series_propose(
        plan=mood_plan,
        first_day=MONDAY,
        preferences=SeriesPreferences(weekdays=MON_WED_FRI, time_of_day=TEN),
        now=NOW,
    )

    assert proposal.complete
    assert [n for n, _, _ in proposal.sessions] == [1, 2, 3, 4, 5, 6]
    assert local_days(proposal) == [MONDAY + timedelta(days=n) for n in (0, 2, 4, 7, 9, 11)]
    assert local_times(proposal) == {TEN}
    assert all(end - start == timedelta(minutes=90) for _, start, end in proposal.sessions)
    assert proposal.time_of_day == TEN


def test_it_moves_a_session_to_another_day_rather_than_off_the_preferred_time(
    mood_plan, infusion, make_patient, approve
):
    # Wednesday 10:00 is gone. Taking Wednesday at another time (first fit) would be worse
    # than keeping 10:00 on a later day, which the cadence allows.
    block_both_chairs(infusion, at(MONDAY + timedelta(days=2)), make_patient, approve)

    proposal = series_propose(
        plan=mood_plan,
        first_day=MONDAY,
        preferences=SeriesPreferences(weekdays=MON_WED_FRI, time_of_day=TEN),
        now=NOW,
    )

    assert proposal.complete
    assert local_times(proposal) == {TEN}
    days = local_days(proposal)
    assert MONDAY + timedelta(days=2) not in days
    assert days == [MONDAY + timedelta(days=n) for n in (0, 4, 7, 9, 11, 14)]


def test_when_the_day_cannot_change_it_takes_the_nearest_time_to_the_preferred_one(
    infusion, approve, make_patient
):
    # Five sessions on consecutive days: no session can move to another day.
    daily = Protocol.objects.create(
        appointment_type=infusion,
        slug="daily",
        name="Daily",
        sessions=5,
        min_gap_days=1,
        max_gap_days=1,
        window_days=5,
    )
    plan = approve(make_patient(), daily)
    thursday = MONDAY + timedelta(days=3)
    block_both_chairs(infusion, at(thursday), make_patient, approve)

    proposal = series_propose(
        plan=plan, first_day=MONDAY, preferences=SeriesPreferences(time_of_day=TEN), now=NOW
    )

    assert proposal.complete
    starts = {local(start).date(): local(start).time() for _, start, _ in proposal.sessions}
    assert list(starts) == [MONDAY + timedelta(days=n) for n in range(5)]
    # The chairs are busy 10:00-11:40 (turnover included): 08:15 (ending 09:55) and 11:45 are
    # both 105 minutes away; the earlier wins.
    assert starts[thursday] == time(8, 15)
    assert {t for day, t in starts.items() if day != thursday} == {TEN}


def test_without_a_preferred_time_it_finds_one_time_every_session_can_keep(
    mood_plan, infusion, make_patient, approve
):
    # Both chairs are busy on Monday 08:00-09:40, so 08:00 cannot be kept from Monday on.
    block_both_chairs(infusion, at(MONDAY, 8), make_patient, approve)

    proposal = series_propose(
        plan=mood_plan,
        first_day=MONDAY,
        preferences=SeriesPreferences(weekdays=MON_WED_FRI),
        now=NOW,
    )

    assert proposal.complete
    # The earliest time free on Monday, kept all through, finishes before any 08:00 series
    # that would have to start on Wednesday.
    assert local_times(proposal) == {time(9, 45)}
    assert local_days(proposal)[0] == MONDAY
    assert proposal.time_of_day == time(9, 45)


def test_it_honours_the_protocols_gaps_weekdays_and_window(
    clinic, protocols, approve, make_patient
):
    mood = protocols["mood-induction"]
    plan = approve(make_patient(), mood)

    proposal = series_propose(plan=plan, first_day=MONDAY, now=NOW)

    days = local_days(proposal)
    assert len(days) == 6
    allowed = {int(d) for d in mood.allowed_weekdays}
    assert all(day.weekday() in allowed for day in days)
    gaps = [(b - a).days for a, b in itertools.pairwise(days)]
    assert all(mood.min_gap_days <= gap <= mood.max_gap_days for gap in gaps)
    assert (days[-1] - MONDAY).days < mood.window_days


def test_it_avoids_times_the_patient_already_has_a_visit(mood_plan, consultation, clinic):
    appointment_book(
        appointment_type=consultation, patient=mood_plan.patient, start=at(MONDAY, 10), now=NOW
    )

    proposal = series_propose(
        plan=mood_plan,
        first_day=MONDAY,
        preferences=SeriesPreferences(weekdays=MON_WED_FRI, time_of_day=TEN),
        now=NOW,
    )

    assert at(MONDAY, 10) not in proposal.starts
    assert local_times(proposal) == {TEN}


def test_a_series_across_the_clocks_going_back_keeps_its_local_time(mood_plan):
    # 2026-11-01: New York goes from EDT (UTC-4) to EST (UTC-5).
    proposal = series_propose(
        plan=mood_plan,
        first_day=date(2026, 10, 26),
        preferences=SeriesPreferences(weekdays=MON_WED_FRI, time_of_day=TEN),
        now=datetime.fromisoformat("2026-10-20T12:00:00+00:00"),
    )

    assert local_times(proposal) == {TEN}
    utc_hours = [start.hour for _, start, _ in proposal.sessions]
    assert utc_hours == [14, 14, 14, 15, 15, 15]


def test_when_a_session_cannot_be_placed_it_says_which_and_offers_alternatives(
    clinic, protocols, approve, make_patient
):
    pain = protocols["pain-series"]
    plan = approve(make_patient(), pain)
    thursday = MONDAY + timedelta(days=3)
    Closure.objects.create(location=clinic, start=at(thursday, 0), end=at(thursday, 23, 59))

    proposal = series_propose(
        plan=plan, first_day=MONDAY, preferences=SeriesPreferences(time_of_day=TEN), now=NOW
    )

    assert not proposal.complete
    assert proposal.missing == [4]
    assert [n for n, _, _ in proposal.sessions] == [1, 2, 3, 5]
    assert local_times(proposal) == {TEN}
    # Nearest other days first, at the series' time.
    assert [local(s) for s in proposal.alternatives[4]] == [
        at(thursday + timedelta(days=n)) for n in (2, 3, 4)
    ]
    # Or start the whole series after the closure.
    assert proposal.later_first_day == thursday + timedelta(days=1)
    assert [local(s) for _, s, _ in proposal.later_sessions] == [
        at(thursday + timedelta(days=n)) for n in range(1, 6)
    ]


def test_it_reads_availability_once_even_when_it_looks_for_a_later_first_day(
    clinic, protocols, approve, make_patient, monkeypatch
):
    pain = protocols["pain-series"]
    plan = approve(make_patient(), pain)
    thursday = MONDAY + timedelta(days=3)
    Closure.objects.create(location=clinic, start=at(thursday, 0), end=at(thursday, 23, 59))
    calls: list[Any] = []
    real = series_module.availability_problem

    def counted(**kwargs: Any) -> Any:
        calls.append(kwargs["days"])
        return real(**kwargs)

    monkeypatch.setattr(series_module, "availability_problem", counted)

    proposal = series_propose(plan=plan, first_day=MONDAY, now=NOW)

    assert proposal.later_first_day is not None
    assert len(calls) == 1


def test_it_proposes_no_more_sessions_than_the_plan_has_left(
    clinic, protocols, approve, make_patient
):
    plan = approve(make_patient(), protocols["mood-induction"], sessions=4)

    proposal = series_propose(plan=plan, first_day=MONDAY, now=NOW)

    assert [n for n, _, _ in proposal.sessions] == [1, 2, 3, 4]


def test_it_refuses_a_withdrawn_plan(mood_plan, prescriber):
    plan_revoke(plan=mood_plan, revoked_by=prescriber, now=NOW)

    with pytest.raises(NotEligible):
        series_propose(plan=mood_plan, first_day=MONDAY, now=NOW)


def test_it_refuses_weekdays_that_leave_no_schedule_keeping_the_cadence(mood_plan):
    # Mondays only: six sessions a week apart need 36 days, more than the 21-day window.
    with pytest.raises(PolicyViolation) as refused:
        series_propose(
            plan=mood_plan, first_day=MONDAY, preferences=SeriesPreferences(weekdays={0}), now=NOW
        )

    assert refused.value.field == "weekdays"


def test_it_refuses_a_place_the_plan_does_not_cover(mood_plan, make_location):
    elsewhere = make_location()

    with pytest.raises(PolicyViolation) as refused:
        series_propose(
            plan=mood_plan,
            first_day=MONDAY,
            preferences=SeriesPreferences(location=elsewhere),
            now=NOW,
        )

    assert refused.value.field == "location"


def test_it_refuses_a_first_day_in_the_past(mood_plan):
    with pytest.raises(PolicyViolation) as refused:
        series_propose(plan=mood_plan, first_day=date(2026, 5, 28), now=NOW)

    assert refused.value.field == "first_day"


# --- The search alone, against visiting every schedule -------------------------------------------

START_MINUTES = [8 * 60, 8 * 60 + 15, 8 * 60 + 30, 9 * 60, 10 * 60, 10 * 60 + 15, 13 * 60]


@st.composite
def search_cases(draw: st.DrawFn) -> dict[str, Any]:
    sessions = draw(st.integers(1, 4))
    min_gap = draw(st.integers(1, 3))
    max_gap = draw(st.integers(min_gap, 4))
    window = draw(st.integers(1, 10))
    weekdays = frozenset(draw(st.sets(st.integers(0, 6), min_size=1)))
    first_day = date(2026, 10, 26) + timedelta(days=draw(st.integers(0, 6)))
    options = {}
    for n in range(window):
        day = first_day + timedelta(days=n)
        minutes = sorted(draw(st.sets(st.sampled_from(START_MINUTES), max_size=3)))
        if minutes:
            midnight = int(datetime.combine(day, time(), tzinfo=NEW_YORK).timestamp()) // 60
            options[day] = [(m, midnight + m) for m in minutes]
    return {
        "cadence": Cadence(sessions, min_gap, max_gap, window, weekdays),
        "first_day": first_day,
        "options": options,
        "preferred": draw(st.one_of(st.none(), st.sampled_from([*START_MINUTES, 9 * 60 + 45]))),
        "same_time": draw(st.booleans()),
        "last_day": draw(
            st.one_of(st.none(), st.integers(0, 9).map(lambda n: first_day + timedelta(days=n)))
        ),
    }


def rescore(case: dict[str, Any], days: tuple[date, ...], starts: tuple[int | None, ...]) -> Any:
    """The schedule's score, from its own days and starts."""
    by_start = {t: m for opts in case["options"].values() for m, t in opts}
    chosen = [by_start[t] for t in starts if t is not None]
    holes = sum(1 for t in starts if t is None)
    finish = next((t for t in reversed(starts) if t is not None), 0)
    target = case["preferred"]
    if target is None and case["same_time"] and chosen:
        return min(
            (holes, sum(m != x for m in chosen), sum(abs(m - x) for m in chosen), finish)
            for x in chosen
        )
    if target is None:
        return (holes, 0, 0, finish)
    return (holes, sum(m != target for m in chosen), sum(abs(m - target) for m in chosen), finish)


@settings(max_examples=300, deadline=None)
@given(search_cases())
def test_the_search_finds_the_schedule_an_exhaustive_search_finds(case):
    cadence: Cadence = case["cadence"]
    found = schedule_search(**case)
    best = exhaustive_best(
        sessions=cadence.sessions,
        min_gap=cadence.min_gap,
        max_gap=cadence.max_gap,
        window=cadence.window,
        weekdays=cadence.weekdays,
        first_day=case["first_day"],
        options=case["options"],
        preferred=case["preferred"],
        same_time=case["same_time"],
        last_day=case["last_day"],
    )

    assert (found.score if found else None) == best
    if found is None:
        return
    # The schedule is real: it keeps the cadence and scores what it claims.
    days = found.days
    assert all(day.weekday() in cadence.weekdays for day in days)
    assert all(
        cadence.min_gap <= (b - a).days <= cadence.max_gap for a, b in itertools.pairwise(days)
    )
    assert (days[-1] - case["first_day"]).days < cadence.window
    assert all(
        start is None or start in {t for _, t in case["options"][day]}
        for day, start in zip(days, found.starts, strict=True)
    )
    assert rescore(case, days, found.starts) == found.score

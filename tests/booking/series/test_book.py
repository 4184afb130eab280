"""Booking an infusion series all or nothing (issue 5; DESIGN §1 step 3, §3 booking integrity)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import time_machine
from django.db import connection

from booking.eligibility import plan_revoke
from booking.errors import BookingError, NotEligible, PatientBusy, PolicyViolation, SlotTaken
from booking.models import Allocation, Appointment, AppointmentStatus, Series, TreatmentPlan
from booking.series import services as series_module
from booking.series.services import SeriesPreferences, series_book, series_propose
from booking.services import appointment_book, appointment_cancel
from scheduling.availability import Placement, Problem
from tests.booking.series import test_propose as proposing
from tests.booking.series.test_propose import (
    MON_WED_FRI,
    MONDAY,
    NEW_YORK,
    NOW,
    TEN,
    at,
    block_both_chairs,
    local,
)

# The plan fixtures the proposal tests use.
protocols = proposing.protocols
prescriber = proposing.prescriber
approve = proposing.approve
mood_plan = proposing.mood_plan

# Monday, Wednesday and Friday at 10:00 for two weeks: the mood series' proposal.
STARTS = [at(MONDAY + timedelta(days=n)) for n in (0, 2, 4, 7, 9, 11)]


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def series_rows(plan: TreatmentPlan) -> tuple[int, int, int]:
    """(series, appointments, active allocations) written for ``plan``'s patient."""
    appointments = Appointment.objects.filter(patient=plan.patient)
    return (
        Series.objects.filter(plan=plan).count(),
        appointments.count(),
        Allocation.objects.filter(appointment__in=appointments, active=True).count(),
    )


def test_a_six_session_series_books_at_once(mood_plan, announcements):
    series = series_book(plan=mood_plan, starts=STARTS, now=NOW)

    sessions = list(series.sessions.order_by("series_index"))
    assert [s.series_index for s in sessions] == [1, 2, 3, 4, 5, 6]
    assert [s.start for s in sessions] == STARTS
    assert all(s.end - s.start == timedelta(minutes=90) for s in sessions)
    assert all(s.status == AppointmentStatus.BOOKED for s in sessions)
    # The prescriber reviews after session 2: the rest wait for that review.
    assert [s.tentative for s in sessions] == [False, False, True, True, True, True]
    assert series.plan == mood_plan
    assert series.protocol == mood_plan.protocol
    assert series_rows(mood_plan) == (1, 6, 18)  # chair, nurse, prescriber for each
    for session in sessions:
        held = {a.resource.kind: a for a in session.allocations.select_related("resource")}
        assert held["chair"].start == session.start
        assert held["chair"].end == session.end + timedelta(minutes=10)  # turnover
    assert [(a.change, a.in_transaction) for a in announcements] == [("booked", True)] * 6
    assert {a.appointment_id for a in announcements} == {s.pk for s in sessions}


def test_it_books_the_proposal_it_was_offered(mood_plan):
    proposal = series_propose(
        plan=mood_plan,
        first_day=MONDAY,
        preferences=SeriesPreferences(weekdays=MON_WED_FRI, time_of_day=TEN),
        now=NOW,
    )

    series = series_book(plan=mood_plan, starts=proposal.starts, source="link", now=NOW)

    assert [s.start for s in series.sessions.order_by("series_index")] == proposal.starts
    assert set(series.sessions.values_list("source", flat=True)) == {"link"}


def test_a_conflict_in_session_four_rolls_back_the_whole_series_and_the_proposal_moves_it(
    mood_plan, infusion, make_patient, approve
):
    block_both_chairs(infusion, STARTS[3], make_patient, approve)

    with pytest.raises(SlotTaken) as taken:
        series_book(plan=mood_plan, starts=STARTS, now=NOW)

    assert taken.value.field == "starts.3"
    assert "Session 4" in taken.value.message
    assert series_rows(mood_plan) == (0, 0, 0)

    proposal = series_propose(
        plan=mood_plan,
        first_day=MONDAY,
        preferences=SeriesPreferences(weekdays=MON_WED_FRI, time_of_day=TEN),
        now=NOW,
    )
    assert proposal.complete
    assert STARTS[3] not in proposal.starts
    assert {local(s).time() for s in proposal.starts} == {TEN}
    series = series_book(plan=mood_plan, starts=proposal.starts, now=NOW)
    assert series_rows(mood_plan) == (1, 6, 18)
    assert series.sessions.count() == 6


def test_a_cancelled_visit_frees_its_chair_for_the_series(
    mood_plan, infusion, make_patient, approve
):
    block_both_chairs(infusion, STARTS[3], make_patient, approve)
    appointment_cancel(appointment=Appointment.objects.filter(start=STARTS[3])[0], now=NOW)

    series_book(plan=mood_plan, starts=STARTS, now=NOW)

    assert series_rows(mood_plan) == (1, 6, 18)


def test_it_refuses_starts_that_break_the_cadence_and_writes_nothing(mood_plan):
    too_close = [*STARTS[:2], STARTS[1] + timedelta(days=1), *STARTS[3:]]

    with pytest.raises(PolicyViolation) as refused:
        series_book(plan=mood_plan, starts=too_close, now=NOW)

    assert refused.value.field == "starts.2"
    assert series_rows(mood_plan) == (0, 0, 0)


def test_it_refuses_a_series_that_outgrows_its_window(mood_plan):
    weekly = [at(MONDAY + timedelta(days=7 * n)) for n in range(6)]  # 36 days

    with pytest.raises(PolicyViolation) as refused:
        series_book(plan=mood_plan, starts=weekly, now=NOW)

    assert refused.value.field == "starts.3"  # day 21 is the 22nd day


def test_it_refuses_a_day_the_protocol_does_not_allow(mood_plan):
    sunday = MONDAY - timedelta(days=1)
    starts = [at(sunday), *STARTS[1:]]

    with pytest.raises(PolicyViolation) as refused:
        series_book(plan=mood_plan, starts=starts, now=NOW)

    assert refused.value.field == "starts.0"


@pytest.mark.parametrize(
    "starts", [STARTS[:5], [*STARTS, at(MONDAY + timedelta(days=14))]], ids=["five", "seven"]
)
def test_it_wants_one_start_for_every_session(mood_plan, starts):
    with pytest.raises(PolicyViolation) as refused:
        series_book(plan=mood_plan, starts=starts, now=NOW)

    assert refused.value.field == "starts"
    assert series_rows(mood_plan) == (0, 0, 0)


def test_it_books_only_as_many_sessions_as_the_plan_has_left(protocols, approve, make_patient):
    plan = approve(make_patient(), protocols["mood-induction"], sessions=4)

    series = series_book(plan=plan, starts=STARTS[:4], now=NOW)

    assert series.sessions.count() == 4
    with pytest.raises(NotEligible):
        series_propose(plan=plan, first_day=MONDAY + timedelta(days=14), now=NOW)


def test_it_refuses_a_withdrawn_plan(mood_plan, prescriber):
    plan_revoke(plan=mood_plan, revoked_by=prescriber, now=NOW)

    with pytest.raises(NotEligible):
        series_book(plan=mood_plan, starts=STARTS, now=NOW)

    assert series_rows(mood_plan) == (0, 0, 0)


def test_it_refuses_sessions_after_the_approval_ends(protocols, approve, make_patient):
    plan = approve(make_patient(), protocols["mood-induction"], valid_until=date(2026, 6, 10))

    with pytest.raises(NotEligible) as refused:
        series_book(plan=plan, starts=STARTS, now=NOW)

    assert refused.value.field == "starts.5"


def test_it_refuses_a_session_over_the_patients_other_visit(mood_plan, consultation):
    appointment_book(
        appointment_type=consultation,
        patient=mood_plan.patient,
        start=STARTS[1] + timedelta(minutes=30),
        now=NOW,
    )

    with pytest.raises(PatientBusy) as refused:
        series_book(plan=mood_plan, starts=STARTS, now=NOW)

    assert refused.value.field == "starts.1"
    assert Series.objects.count() == 0


def test_online_booking_keeps_the_minimum_notice(mood_plan):
    # Five hours from now, then Monday, Wednesday, Saturday, Monday, Wednesday.
    this_evening = [at(date(2026, 5, 29), 17), *(s - timedelta(days=2) for s in STARTS[1:])]

    with pytest.raises(PolicyViolation) as refused:
        series_book(plan=mood_plan, starts=this_evening, source="link", now=NOW)

    assert refused.value.field == "starts.0"


def test_it_refuses_a_start_off_the_grid_or_without_an_offset(mood_plan):
    with pytest.raises(PolicyViolation) as off_grid:
        series_book(
            plan=mood_plan, starts=[*STARTS[:4], STARTS[4] + timedelta(minutes=5), STARTS[5]]
        )
    naive = [*STARTS[:5], STARTS[5].replace(tzinfo=None)]
    with pytest.raises(BookingError) as no_offset:
        series_book(plan=mood_plan, starts=naive, now=NOW)

    assert off_grid.value.field == "starts.4"
    assert no_offset.value.field == "starts.5"


def test_a_series_across_the_clocks_going_back_keeps_its_local_time(mood_plan):
    # New York leaves daylight saving time on Sunday 2026-11-01.
    days = [date(2026, 10, 26) + timedelta(days=n) for n in (0, 2, 4, 7, 9, 11)]
    now = datetime.fromisoformat("2026-10-20T12:00:00+00:00")
    proposal = series_propose(
        plan=mood_plan,
        first_day=days[0],
        preferences=SeriesPreferences(weekdays=MON_WED_FRI, time_of_day=TEN),
        now=now,
    )
    assert proposal.starts == [at(day) for day in days]

    series = series_book(plan=mood_plan, starts=proposal.starts, now=now)

    sessions = list(series.sessions.order_by("series_index"))
    assert {local(s.start).strftime("%H:%M") for s in sessions} == {"10:00"}
    assert [local(s.start).tzname() for s in sessions] == ["EDT"] * 3 + ["EST"] * 3
    assert [s.start.astimezone(NEW_YORK).utcoffset() for s in sessions][::3] == [
        timedelta(hours=-4),
        timedelta(hours=-5),
    ]
    chairs = Allocation.objects.filter(appointment__series=series, resource__kind="chair").order_by(
        "start"
    )
    assert [a.start for a in chairs] == proposal.starts


# --- Concurrency, on PostgreSQL --------------------------------------------------------------

# Only guards against a thread dying before the barrier; never reached when the test passes.
BARRIER_TIMEOUT = 120


def race(attempts: list[Callable[[], object]]) -> list[str]:
    """Run every attempt in its own thread (own connection), released together."""
    barrier = threading.Barrier(len(attempts), timeout=BARRIER_TIMEOUT)
    outcomes: list[str] = [""] * len(attempts)

    def work(n: int) -> None:
        try:
            barrier.wait()
            attempts[n]()
            outcomes[n] = "booked"
        except BookingError as exc:
            outcomes[n] = type(exc).__name__
        except Exception as exc:  # anything but a domain error is a failure to report
            outcomes[n] = f"unexpected {exc!r}"
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(attempts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def competing_series(
    protocols: dict[str, Any], approve: Any, make_patient: Any, count: int
) -> list[tuple[TreatmentPlan, list[datetime]]]:
    """``count`` patients, each with a series wanting 10:00 on the clinic's two chairs: half
    from one Monday, half from the next, so every series shares three days with every other."""
    out = []
    for n in range(count):
        plan = approve(make_patient(), protocols["mood-induction"])
        offset = 0 if n % 2 == 0 else 7
        out.append((plan, [start + timedelta(days=offset) for start in STARTS]))
    return out


def assert_all_or_nothing(plans: list[TreatmentPlan], outcomes: list[str]) -> None:
    for plan, outcome in zip(plans, outcomes, strict=True):
        sessions = Appointment.objects.filter(patient=plan.patient, series__isnull=False)
        assert sessions.count() == (6 if outcome == "booked" else 0), outcome
        assert Series.objects.filter(plan=plan).count() == (1 if outcome == "booked" else 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_series_for_the_same_chairs_book_whole_or_not_at_all(
    protocols, approve, make_patient, count_overlaps
):
    contenders = competing_series(protocols, approve, make_patient, 8)

    outcomes = race(
        [partial(series_book, plan=plan, starts=starts, now=NOW) for plan, starts in contenders]
    )

    assert set(outcomes) <= {"booked", "SlotTaken"}, outcomes
    assert count_overlaps() == 0
    assert_all_or_nothing([plan for plan, _ in contenders], outcomes)
    # Two chairs at each shared 10:00: two series, whichever they are, and no more.
    assert outcomes.count("booked") == 2
    booked_starts = Counter(
        Appointment.objects.filter(series__isnull=False).values_list("start", flat=True)
    )
    assert max(booked_starts.values()) == 2


@pytest.fixture
def slow_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold every series between its availability check and its writes, so that concurrent
    bookings all pass the check before any of them writes."""
    real = series_module.allocate

    def slow(problem: Problem, start: int) -> list[Placement] | None:
        placements = real(problem, start)
        time.sleep(0.05)
        return placements

    monkeypatch.setattr(series_module, "allocate", slow)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_series_that_all_pass_the_check_still_book_whole_or_not_at_all(
    protocols, approve, make_patient, count_overlaps, slow_check
):
    contenders = competing_series(protocols, approve, make_patient, 6)

    outcomes = race(
        [partial(series_book, plan=plan, starts=starts, now=NOW) for plan, starts in contenders]
    )

    assert set(outcomes) <= {"booked", "SlotTaken"}, outcomes
    assert count_overlaps() == 0
    assert_all_or_nothing([plan for plan, _ in contenders], outcomes)
    assert outcomes.count("booked") == 2


LANE_GUARD_DEFINITION = (
    "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s "
    "AND conrelid = 'booking_allocation'::regclass"
)


@pytest.fixture
def lane_guard_off(transactional_db: None) -> Iterator[None]:
    """Drop the lane exclusion constraint for one test and put it back exactly as it was."""
    with connection.cursor() as cursor:
        cursor.execute(LANE_GUARD_DEFINITION, ["allocation_lane_no_overlap"])
        (definition,) = cursor.fetchone()
        cursor.execute("ALTER TABLE booking_allocation DROP CONSTRAINT allocation_lane_no_overlap")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            # The double bookings the test made would stop the constraint from coming back.
            cursor.execute("DELETE FROM booking_allocation")
            cursor.execute(
                f"ALTER TABLE booking_allocation ADD CONSTRAINT allocation_lane_no_overlap "
                f"{definition}"
            )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_control_without_the_lane_guard_the_same_race_double_books(
    protocols, approve, make_patient, count_overlaps, slow_check, lane_guard_off
):
    contenders = competing_series(protocols, approve, make_patient, 6)

    race([partial(series_book, plan=plan, starts=starts, now=NOW) for plan, starts in contenders])

    assert count_overlaps() > 0

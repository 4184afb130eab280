"""Real threads, each with its own PostgreSQL connection, booking the same lanes at once.

The exclusion constraint on allocations is the last guard against double booking; the control
tests take it away to show the race these tests would otherwise miss is real.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial

import pytest
import time_machine
from django.db import connection

from booking import placement
from booking.errors import BookingError
from booking.models import Allocation, Appointment, Patient
from booking.services import appointment_book
from scheduling.availability import Placement, Problem
from scheduling.models import AppointmentKind, AppointmentType, ResourceKind, StaffRole
from tests.conftest import CHAIR_ONLY, approve

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
OPENING = datetime.fromisoformat("2026-06-03T08:00:00-04:00")
# Only guards against a thread dying before the barrier; never reached when the test passes.
BARRIER_TIMEOUT = 120

BOOKED = "booked"


def outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except BookingError as exc:
        return type(exc).__name__
    except Exception as exc:  # anything but a domain error is a failure to report
        return f"unexpected {exc!r}"
    return BOOKED


def together(
    workers: int, rounds: int, attempt: Callable[[int, int], object]
) -> list[Counter[str]]:
    """Run ``attempt(worker, round)`` in ``workers`` threads, each round released at once by a
    barrier; return how each round's attempts ended."""
    barrier = threading.Barrier(workers, timeout=BARRIER_TIMEOUT)
    outcomes: list[list[str]] = [[] for _ in range(rounds)]

    def work(worker: int) -> None:
        try:
            for round_no in range(rounds):
                barrier.wait()
                outcomes[round_no].append(outcome(partial(attempt, worker, round_no)))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [Counter(ended) for ended in outcomes]


@pytest.fixture
def slow_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold every booking for a moment between its availability check and its write, so that
    concurrent bookings all pass the check before any of them writes."""
    real = placement.allocate

    def slow(problem: Problem, start: int) -> list[Placement] | None:
        placements = real(problem, start)
        time.sleep(0.05)
        return placements

    monkeypatch.setattr(placement, "allocate", slow)


LANE_GUARD = (
    "ALTER TABLE booking_allocation ADD CONSTRAINT allocation_lane_no_overlap "
    'EXCLUDE USING gist (resource_id WITH =, lane WITH =, tstzrange(start, "end") WITH &&) '
    "WHERE (active)"
)
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
            # The double bookings the test produced would stop the constraint from coming back;
            # the data goes at the end of the test anyway.
            cursor.execute("DELETE FROM booking_allocation")
            cursor.execute(LANE_GUARD)
            cursor.execute(LANE_GUARD_DEFINITION, ["allocation_lane_no_overlap"])
            assert cursor.fetchone() == (definition,)


@pytest.fixture
def half_hour_on_one_chair(make_location, make_resource, make_type) -> AppointmentType:
    location = make_location()
    make_resource(location, ResourceKind.CHAIR)
    # Not a treatment: a round's winner races again the same day, which one treatment a day
    # would refuse; the lanes are what this race is about.
    return make_type(location, duration=30, needs=CHAIR_ONLY, kind=AppointmentKind.CONSULTATION)


def race_for_one_chair(
    appointment_type: AppointmentType, patients: list[Patient], rounds: int
) -> list[Counter[str]]:
    def attempt(worker: int, round_no: int) -> object:
        return appointment_book(
            appointment_type=appointment_type,
            patient=patients[worker],
            start=OPENING + timedelta(minutes=30 * round_no),
            now=NOW,
        )

    return together(len(patients), rounds, attempt)


@time_machine.travel(NOW, tick=False)
def test_fifty_people_racing_for_one_chair_get_one_visit_each_round(
    half_hour_on_one_chair, make_patient, count_overlaps
):
    patients = [make_patient() for _ in range(50)]

    rounds = race_for_one_chair(half_hour_on_one_chair, patients, rounds=20)

    assert rounds == [Counter({BOOKED: 1, "SlotTaken": 49})] * 20
    assert count_overlaps() == 0
    assert Appointment.objects.count() == 20
    assert Allocation.objects.filter(active=True).count() == 20


@time_machine.travel(NOW, tick=False)
def test_without_the_lane_guard_a_slow_check_lets_two_people_into_one_chair(
    lane_guard_off, slow_check, half_hour_on_one_chair, make_patient, count_overlaps
):
    patients = [make_patient() for _ in range(8)]

    rounds = race_for_one_chair(half_hour_on_one_chair, patients, rounds=4)

    assert all(set(ended) <= {BOOKED, "SlotTaken"} for ended in rounds), rounds
    assert max(ended[BOOKED] for ended in rounds) > 1, rounds
    assert count_overlaps() > 0


@time_machine.travel(NOW, tick=False)
def test_with_the_lane_guard_a_slow_check_still_lets_one_person_in(
    slow_check, half_hour_on_one_chair, make_patient, count_overlaps
):
    patients = [make_patient() for _ in range(8)]

    rounds = race_for_one_chair(half_hour_on_one_chair, patients, rounds=4)

    assert rounds == [Counter({BOOKED: 1, "SlotTaken": 7})] * 4
    assert count_overlaps() == 0


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("widened", [False, True], ids=["plain", "slow-check"])
def test_a_nurse_takes_three_concurrent_infusions_and_refuses_the_fourth(
    one_nurse_four_chairs, make_patient, count_overlaps, request, widened
):
    if widened:
        request.getfixturevalue("slow_check")
    patients = [approve(make_patient(), one_nurse_four_chairs) for _ in range(4)]
    # A round a day: one treatment a day is each patient's, the nurse's lanes are the race.
    starts = [OPENING + timedelta(days=n) for n in range(4)]

    def attempt(worker: int, round_no: int) -> object:
        return appointment_book(
            appointment_type=one_nurse_four_chairs,
            patient=patients[worker],
            start=starts[round_no],
            now=NOW,
        )

    rounds = together(4, len(starts), attempt)

    assert rounds == [Counter({BOOKED: 3, "SlotTaken": 1})] * len(starts)
    for start in starts:
        held = Allocation.objects.filter(active=True, appointment__start=start)
        nurse = held.filter(resource__role=StaffRole.NURSE)
        chairs = held.filter(resource__kind=ResourceKind.CHAIR)
        assert sorted(nurse.values_list("lane", flat=True)) == [0, 1, 2]
        assert len(set(chairs.values_list("resource_id", flat=True))) == 3
    assert count_overlaps() == 0


@pytest.fixture
def chair_and_room(make_location, make_resource, make_type) -> tuple[AppointmentType, ...]:
    location = make_location()
    make_resource(location, ResourceKind.CHAIR)
    make_resource(location, ResourceKind.ROOM)
    return (
        make_type(location, duration=60, needs=CHAIR_ONLY),
        make_type(location, duration=60, needs=[{"resource_kind": ResourceKind.ROOM}]),
    )


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("widened", [False, True], ids=["plain", "slow-check"])
def test_one_patient_booking_two_overlapping_visits_at_once_gets_one(
    chair_and_room, make_patient, request, widened
):
    if widened:
        request.getfixturevalue("slow_check")
    in_chair, in_room = chair_and_room
    patients = [make_patient() for _ in range(5)]

    def attempt(worker: int, round_no: int) -> object:
        # Each round a different patient asks for a chair at 10:00 and a room at 10:30.
        day = timedelta(days=round_no)
        if worker == 0:
            start = OPENING + day + timedelta(hours=2)
            return appointment_book(
                appointment_type=in_chair, patient=patients[round_no], start=start, now=NOW
            )
        start = OPENING + day + timedelta(hours=2, minutes=30)
        return appointment_book(
            appointment_type=in_room, patient=patients[round_no], start=start, now=NOW
        )

    rounds = together(2, len(patients), attempt)

    assert rounds == [Counter({BOOKED: 1, "PatientBusy": 1})] * len(patients)
    for patient in patients:
        assert Appointment.objects.filter(patient=patient).count() == 1

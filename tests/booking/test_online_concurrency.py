"""Tentative online bookings under real concurrency, on PostgreSQL: the lane exclusion constraint
still refuses a double booking when the holders are unconfirmed online bookings, the ceilings
hold under parallel requests, and a confirmation racing the expiry sweep ends one way only.

Real threads, each with its own connection; the control test takes the lane constraint away to
show that the race it guards against is real for tentative holds too.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import partial

import pytest
import time_machine
from django.db import connection

from booking.models import Allocation, Appointment, AppointmentStatus, Patient, TentativeHold
from booking.online import (
    consultation_request_online,
    tentative_confirm,
    tentative_holds_expire,
    tentative_token_issue,
)
from booking.services import IntakeAnswers, PatientDetails, appointment_book
from scheduling.models import AppointmentKind, AppointmentType, ResourceKind
from tests.booking.test_concurrency import BARRIER_TIMEOUT, BOOKED, outcome, together

# Fixtures the tests request by name: imported "as" themselves, they are re-exported.
from tests.booking.test_concurrency import lane_guard_off as lane_guard_off
from tests.booking.test_concurrency import slow_check as slow_check
from tests.conftest import CHAIR_ONLY

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
OPENING = datetime.fromisoformat("2026-06-03T08:00:00-04:00")

ADA = PatientDetails(
    first_name="Ada",
    last_name="Lovelace",
    email="ada@example.com",
    phone="+12125550123",
    date_of_birth=date(1985, 12, 10),
)


@pytest.fixture
def half_hour_on_one_chair(make_location, make_resource, make_type) -> AppointmentType:
    """A visit bookable online on one chair; the location lets holds take the whole day, so
    only the lanes decide."""
    location = make_location(phone="+12125550100", tentative_day_percent=100)
    make_resource(location, ResourceKind.CHAIR)
    return make_type(
        location,
        duration=30,
        needs=CHAIR_ONLY,
        kind=AppointmentKind.CONSULTATION,
        bookable_online=True,
        needs_approval=False,
    )


def hold(appointment_type: AppointmentType, start: datetime, worker: int) -> object:
    return consultation_request_online(
        appointment_type=appointment_type,
        start=start,
        details=replace(ADA, email=f"p{worker}@example.com", phone=f"+1212555{worker:04d}"),
        intake=IntakeAnswers(),
        sms_consent=False,
        client=f"192.0.2.{worker}",
        now=NOW,
    )


@time_machine.travel(NOW, tick=False)
def test_people_racing_online_for_one_chair_get_one_hold_each_round(
    half_hour_on_one_chair, count_overlaps
):
    # Each round's twelve are new people on new networks (worker + 12 * round): a thread that
    # wins three rounds would otherwise meet the ceiling of holds per network (TooManyHolds).
    rounds = together(
        12,
        6,
        lambda worker, n: hold(
            half_hour_on_one_chair, OPENING + timedelta(minutes=30 * n), worker + 12 * n
        ),
    )

    assert rounds == [Counter({BOOKED: 1, "SlotTaken": 11})] * 6
    assert Appointment.objects.filter(status=AppointmentStatus.TENTATIVE).count() == 6
    assert count_overlaps() == 0


def online_or_at_the_desk(appointment_type: AppointmentType, patients: list[Patient]):
    """Odd workers hold the time online, even ones book it at the desk (which takes no
    advisory lock of the online ceilings: only the lanes stand between them)."""

    def attempt(worker: int, round_no: int) -> object:
        start = OPENING + timedelta(minutes=30 * round_no)
        if worker % 2:
            return hold(appointment_type, start, worker)
        return appointment_book(
            appointment_type=appointment_type, patient=patients[worker], start=start, now=NOW
        )

    return attempt


@time_machine.travel(NOW, tick=False)
def test_with_a_slow_check_a_tentative_hold_and_a_desk_booking_still_get_one_chair(
    slow_check, half_hour_on_one_chair, make_patient, count_overlaps
):
    patients = [make_patient() for _ in range(6)]

    rounds = together(6, 3, online_or_at_the_desk(half_hour_on_one_chair, patients))

    assert rounds == [Counter({BOOKED: 1, "SlotTaken": 5})] * 3
    assert count_overlaps() == 0


@time_machine.travel(NOW, tick=False)
def test_without_the_lane_guard_a_slow_check_lets_a_hold_and_a_visit_into_one_chair(
    lane_guard_off, slow_check, half_hour_on_one_chair, make_patient, count_overlaps
):
    patients = [make_patient() for _ in range(6)]

    rounds = together(6, 3, online_or_at_the_desk(half_hour_on_one_chair, patients))

    assert all(set(ended) <= {BOOKED, "SlotTaken"} for ended in rounds), rounds
    assert max(ended[BOOKED] for ended in rounds) > 1, rounds
    assert count_overlaps() > 0


@time_machine.travel(NOW, tick=False)
def test_the_days_share_holds_under_parallel_requests(
    make_location, make_resource, make_type, count_overlaps
):
    location = make_location(phone="+12125550100", tentative_day_percent=25)
    for _ in range(4):
        make_resource(location, ResourceKind.CHAIR)
    visit = make_type(
        location,
        duration=60,
        needs=CHAIR_ONLY,
        kind=AppointmentKind.CONSULTATION,
        bookable_online=True,
        needs_approval=False,
    )
    # Four chairs, 08:00-18:00, an hour each: 40 visits a day, a quarter of them 10.
    starts = [OPENING + timedelta(hours=n % 10) for n in range(40)]

    (ended,) = together(40, 1, lambda worker, _: hold(visit, starts[worker], worker))

    assert ended[BOOKED] == 10, ended
    assert set(ended) == {BOOKED, "DayHeld"}
    assert Appointment.objects.filter(status=AppointmentStatus.TENTATIVE).count() == 10
    assert count_overlaps() == 0


@time_machine.travel(NOW, tick=False)
def test_one_client_racing_itself_holds_no_more_than_its_ceiling(
    make_location, make_resource, make_type
):
    location = make_location(phone="+12125550100", tentative_day_percent=100)
    for _ in range(10):
        make_resource(location, ResourceKind.CHAIR)
    visit = make_type(
        location,
        duration=60,
        needs=CHAIR_ONLY,
        kind=AppointmentKind.CONSULTATION,
        bookable_online=True,
        needs_approval=False,
    )

    def attempt(worker: int, _: int) -> object:
        return consultation_request_online(
            appointment_type=visit,
            start=OPENING + timedelta(hours=worker),
            details=replace(ADA, email=f"bot{worker}@example.com"),
            intake=IntakeAnswers(),
            sms_consent=False,
            client="2001:db8:1:2::/64",
            now=NOW,
        )

    (ended,) = together(10, 1, attempt)

    assert ended == Counter({BOOKED: 3, "TooManyHolds": 7})


@time_machine.travel(NOW + timedelta(minutes=15), tick=False)
def test_a_confirmation_racing_the_expiry_sweep_ends_one_way(
    half_hour_on_one_chair, count_overlaps
):
    for n in range(10):
        hold(half_hour_on_one_chair, OPENING + timedelta(minutes=30 * n), n)
    tokens = []
    for hold_row in TentativeHold.objects.select_related("appointment"):
        tokens.append(tentative_token_issue(appointment=hold_row.appointment))
    # Lapsed a moment ago for the sweep; the confirmations come a moment "before" it.
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
    confirmed: list[str] = []

    def confirm_all() -> None:
        try:
            barrier.wait()
            for token in tokens:
                confirmed.append(outcome(partial(tentative_confirm, token=token, now=NOW)))
        finally:
            connection.close()

    def sweep() -> None:
        try:
            barrier.wait()
            for _ in range(20):
                tentative_holds_expire(NOW + timedelta(minutes=15))
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm_all), threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    booked = Appointment.objects.filter(status=AppointmentStatus.BOOKED).count()
    assert Counter(confirmed)[BOOKED] == booked
    assert set(confirmed) <= {BOOKED, "HoldNotFound", "HoldNotKept"}
    assert not Appointment.objects.filter(status=AppointmentStatus.TENTATIVE).exists()
    assert Allocation.objects.filter(active=True).count() == booked
    assert count_overlaps() == 0

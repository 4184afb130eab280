"""The online booking limit holds when one address fires many bookings at once.

Real threads, each with its own client and PostgreSQL connection, post real bookings past the
limit together. The counter lives in the shared cache (Redis in CI, the local-memory cache
otherwise, where the threads share it too). The control test swaps in a read-then-write counter
to show that the race these tests would otherwise miss is real.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test import Client

from booking import throttle
from booking.models import Appointment
from booking.selectors import available_slots
from scheduling.models import AppointmentType, Location

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # mid-window: no hour turns over
ATTEMPTS = 3 * throttle.BOOKINGS_PER_HOUR
BARRIER_TIMEOUT = 120  # only guards against a thread dying before the barrier


@pytest.fixture
def location(location: Location) -> Location:
    """A clinic that books online bookings at once: these tests are about that booking.
    The default, held until the patient confirms by e-mail, is tested with booking.online."""
    Location.objects.filter(pk=location.pk).update(verify_online_bookings=False)
    location.verify_online_bookings = False
    return location


@pytest.fixture(autouse=True)
def _clock_and_cache() -> Iterator[None]:
    cache.clear()
    with time_machine.travel(NOW, tick=False):
        yield
    cache.clear()


def bookings(consultation: AppointmentType) -> list[dict[str, Any]]:
    """One valid booking per attempt, each at its own free time for its own patient."""
    slots = available_slots(
        appointment_type=consultation,
        first_day=date(2026, 6, 3),
        last_day=date(2026, 7, 31),
        now=NOW,
    )
    # Far enough apart that no visit, nor its turnover, can take another's time.
    apart: list[datetime] = []
    for start, end in slots:
        if not apart or start >= apart[-1] + 2 * (end - start):
            apart.append(start)
    assert len(apart) >= ATTEMPTS
    return [
        {
            "location": consultation.location.slug,
            "appointment_type": consultation.slug,
            "start": start.isoformat(),
            "patient": {
                "first_name": f"Pat{n}",
                "last_name": "Example",
                "email": f"pat{n}@example.com",
                "phone": f"+1212555{n:04d}",
                "date_of_birth": "1980-01-01",
            },
            "sms_consent": False,
        }
        for n, start in enumerate(apart[:ATTEMPTS])
    ]


def post_together(bodies: list[dict[str, Any]]) -> Counter[int]:
    """POST every body to the booking API at once from one address; count the statuses."""
    barrier = threading.Barrier(len(bodies), timeout=BARRIER_TIMEOUT)

    def post(body: dict[str, Any]) -> int:
        try:
            client = Client(REMOTE_ADDR="203.0.113.7")
            barrier.wait()
            response = client.post(
                "/api/v1/bookings/", json.dumps(body), content_type="application/json"
            )
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "throttled"
            return response.status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return Counter(pool.map(post, bodies))


def test_concurrent_bookings_from_one_address_stop_at_the_limit(consultation) -> None:
    statuses = post_together(bookings(consultation))

    assert statuses[429] == ATTEMPTS - throttle.BOOKINGS_PER_HOUR, statuses
    assert statuses[201] == throttle.BOOKINGS_PER_HOUR, statuses
    assert Appointment.objects.count() == throttle.BOOKINGS_PER_HOUR


def test_control_a_read_then_write_counter_lets_more_through(consultation, monkeypatch) -> None:
    def racy(key: str, *, limit: int, window: int, now: float | None = None) -> int | None:
        cache_key = f"racy:{key}"
        count = cache.get(cache_key, 0) + 1
        time.sleep(0.05)  # every thread reads before any writes, as on a busy server
        cache.set(cache_key, count, timeout=window)
        return 60 if count > limit else None

    monkeypatch.setattr(throttle, "rate_limit_hit", racy)

    statuses = post_together(bookings(consultation))

    assert statuses[429] < ATTEMPTS - throttle.BOOKINGS_PER_HOUR, statuses
    assert Appointment.objects.count() > throttle.BOOKINGS_PER_HOUR

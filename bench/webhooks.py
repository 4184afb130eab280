"""Webhooks and the booking: a receiver that hangs must not slow a booking down.

Run against PostgreSQL::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_bench \\
        .venv/bin/python -m bench.webhooks

One location (eight prescribers, eight consult rooms, open 08:00-18:00 New York time); each booking
is a consultation for a new patient through ``appointment_book``, the service every booking
path calls, in rounds that alternate between:

* ``no_subscription``: the location has no webhook subscription (the baseline);
* ``hanging_receiver``: an active subscription to every event, patient details included,
  whose receiver on 127.0.0.1 accepts each connection and never answers.

p50 and p95 of one booking call are printed for both, and their ratio (target: about 1, the
cost of writing one outbox row more). Then one sweep of the webhooks' outbox runs in a thread,
as a worker would, against the hanging receiver, while bookings go on in the main thread
(``during_sweep``): the sweep waits out its timeout once for the whole receiver (the events
behind the first wait for its retry), and the bookings made meanwhile are as fast as before.

Celery tasks queued after each commit go to an in-memory broker nobody consumes, in every
round alike. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import machine_info, percentile, setup_django

SLUG = "bench-webhooks"
ZONE = ZoneInfo("America/New_York")
NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
FIRST_DAY = date(2026, 1, 6)
HOURS = (8, 10, 12, 14, 16)
ROOMS = 8


class HangingReceiver:
    """Accepts connections on 127.0.0.1 and never answers; keeps them open until closed."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.stopped.set()
        for conn in self.held:
            conn.close()
        self.listener.close()


def build() -> Any:
    from scheduling.defaults import appointment_types_install_defaults
    from scheduling.models import (
        AppointmentType,
        Location,
        Resource,
        ResourceKind,
        StaffRole,
        WorkingHours,
    )

    # A location of its own each run: earlier runs' visits stay where they were.
    location = Location.objects.create(
        slug=f"{SLUG}-{time.time_ns()}",
        name="Bench webhooks",
        public_name="Bench",
        timezone=str(ZONE),
    )
    appointment_types_install_defaults(location=location)
    resources = [
        Resource.objects.create(
            location=location, kind=ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name=f"Dr {n}"
        )
        for n in range(ROOMS)
    ] + [
        Resource.objects.create(location=location, kind=ResourceKind.ROOM, name=f"Room {n}")
        for n in range(ROOMS)
    ]
    WorkingHours.objects.bulk_create(
        WorkingHours(resource=r, location=location, weekday=day, start=clock(8), end=clock(18))
        for r in resources
        for day in range(7)
    )
    return AppointmentType.objects.select_related("location").get(
        location=location, slug="consultation"
    )


def slots() -> Any:
    day = FIRST_DAY
    while True:
        for hour in HOURS:
            start = datetime.combine(day, clock(hour), tzinfo=ZONE).astimezone(UTC)
            for _ in range(ROOMS):
                yield start
        day += timedelta(days=1)


def book(consultation: Any, starts: Any, count: int, serial: list[int]) -> list[float]:
    from booking.models import Patient
    from booking.services import appointment_book

    timings = []
    for _ in range(count):
        serial[0] += 1
        n = serial[0]
        patient = Patient.objects.create(
            first_name=f"Bench{n}",
            last_name="Webhooks",
            email=f"bench{n}@webhooks.example",
            phone=f"+1212555{n % 10000:04d}",
            date_of_birth=date(1980, 1, 1),
        )
        start = next(starts)
        began = time.perf_counter()
        appointment_book(appointment_type=consultation, patient=patient, start=start, now=NOW)
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def summary(timings: list[float]) -> dict[str, float]:
    return {
        "n": len(timings),
        "p50_ms": round(percentile(timings, 50), 3),
        "p95_ms": round(percentile(timings, 95), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=40)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.db import connection

    from config.celery import app as celery_app
    from notifications.models import WebhookDelivery, WebhookEventType
    from notifications.webhooks_outbox import (
        webhook_deliver_due,
        webhook_send_batch,
        webhook_subscription_create,
    )

    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOKS_ALLOW_HTTP = True
    celery_app.conf.update(broker_url="memory://localhost/", task_always_eager=False)

    consultation = build()
    receiver = HangingReceiver()
    subscription = webhook_subscription_create(
        location=consultation.location,
        url=f"http://127.0.0.1:{receiver.port}/hooks",
        events=WebhookEventType.values,
        include_patient=True,
        by=None,
        now=NOW,
    )
    starts = slots()
    serial = [0]
    book(consultation, starts, 10, serial)  # warm-up: caches, connections, first queries
    plain: list[float] = []
    hooked: list[float] = []
    for _ in range(args.rounds):
        subscription.is_active = False
        subscription.save(update_fields=["is_active"])
        plain += book(consultation, starts, args.per_round, serial)
        subscription.is_active = True
        subscription.save(update_fields=["is_active"])
        hooked += book(consultation, starts, args.per_round, serial)
    queued = WebhookDelivery.objects.filter(subscription=subscription).count()

    sweep_result: dict[str, Any] = {}

    def sweep() -> None:
        began = time.perf_counter()
        outcomes: list[str] = []
        claimed = webhook_deliver_due(
            now=NOW,
            enqueue=lambda ids: outcomes.extend(webhook_send_batch(delivery_ids=ids, now=NOW)),
        )
        sweep_result.update(
            seconds=round(time.perf_counter() - began, 2),
            claimed=claimed,
            outcomes={o: outcomes.count(o) for o in sorted(set(outcomes))},
        )
        connection.close()

    worker = threading.Thread(target=sweep)
    worker.start()
    during: list[float] = []
    while worker.is_alive():
        during += book(consultation, starts, 5, serial)
    worker.join()
    receiver.close()

    plain_s, hooked_s, during_s = summary(plain), summary(hooked), summary(during)
    result = {
        "bench": "webhooks",
        "no_subscription": plain_s,
        "hanging_receiver": hooked_s,
        "ratio_p50": round(hooked_s["p50_ms"] / plain_s["p50_ms"], 3),
        "ratio_p95": round(hooked_s["p95_ms"] / plain_s["p95_ms"], 3),
        "events_queued": queued,
        "sweep": {
            **sweep_result,
            "timeout_s": settings.WEBHOOK_TIMEOUT,
        },
        "during_sweep": during_s,
        "during_sweep_ratio_p50": round(during_s["p50_ms"] / plain_s["p50_ms"], 3),
        "machine": machine_info(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

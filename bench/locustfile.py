"""Locust scenario for ``bench/load.py``: patients browse and book, the front desk moves and
cancels, all over HTTP against a running server.

Started by ``bench/load.py``, which seeds the clinic and passes everything through the
environment:

- ``LOAD_LOCATION``, ``LOAD_TYPE``: the location and appointment type slugs to book;
- ``LOAD_TOKEN``: a staff API token (``manage.py staff_token``) for reschedule and cancel;
- ``LOAD_DAYS``: how many days ahead slots are looked for; ``LOAD_WINDOW_DAYS``: days per look;
- ``LOAD_JOURNAL``: a JSON-lines file where every acknowledged (and every unanswered) booking,
  move and cancel is written, for the integrity check;
- ``LOAD_SUMMARY``: a JSON file written at the end with per-request latencies and status counts;
- ``LOAD_WAIT_MS``: think time between a user's requests (0: as fast as the server answers).

Every booking is a new patient (unique e-mail and phone), so the clinic's per-patient caps never
refuse one. Each visit is moved at most once and cancelled at most once, which keeps every outbox
row planned once: the integrity check relies on that to count sends.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, constant, events, task

# locust puts this file's folder on the path, not the project's.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.load_rate import REFUSALS, booking_request

LOCATION = os.environ.get("LOAD_LOCATION", "load-clinic")
APPOINTMENT_TYPE = os.environ.get("LOAD_TYPE", "load-consult")
TOKEN = os.environ.get("LOAD_TOKEN", "")
DAYS = int(os.environ.get("LOAD_DAYS", "60"))
WINDOW_DAYS = int(os.environ.get("LOAD_WINDOW_DAYS", "3"))
JOURNAL = os.environ.get("LOAD_JOURNAL", "var/load/journal.jsonl")
SUMMARY = os.environ.get("LOAD_SUMMARY", "var/load/summary.json")
WAIT_MS = float(os.environ.get("LOAD_WAIT_MS", "0"))
# Patients of this run are told apart from any earlier run's by this tag in their e-mail.
RUN = os.environ.get("LOAD_RUN", uuid.uuid4().hex[:8])

AVAILABILITY = "GET /api/v1/availability/"
BOOK = "POST /api/v1/bookings/"
RESCHEDULE = "POST /api/v1/appointments/<ref>/reschedule/"
CANCEL = "POST /api/v1/appointments/<ref>/cancel/"

_sequence = itertools.count()

_journal = open(JOURNAL, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the run
_latencies: dict[str, list[float]] = {}
_statuses: dict[str, dict[str, int]] = {}
_window: dict[str, float] = {}


def _record(op: str, **fields: Any) -> None:
    _journal.write(json.dumps({"op": op, "at": time.time(), **fields}) + "\n")


@events.request.add_listener
def _on_request(
    name: str, response_time: float, response: Any = None, exception: Any = None, **_: Any
) -> None:
    now = time.time()
    _window.setdefault("first", now - response_time / 1000)
    _window["last"] = now
    _latencies.setdefault(name, []).append(response_time)
    code = getattr(response, "status_code", 0) or 0
    key = str(code) if code else "connection_error"
    counts = _statuses.setdefault(name, {})
    counts[key] = counts.get(key, 0) + 1


@events.test_stop.add_listener
def _on_stop(**_: Any) -> None:
    _journal.flush()
    with open(SUMMARY, "w", encoding="utf-8") as f:
        json.dump(
            {
                "first_request_at": _window.get("first"),
                "last_response_at": _window.get("last"),
                "latencies_ms": _latencies,
                "statuses": _statuses,
            },
            f,
        )


class Patient(FastHttpUser):
    """Browses a few days, books one of the times offered; now and then the desk moves or cancels
    one of the visits this user booked."""

    wait_time = constant(0) if WAIT_MS <= 0 else between(0, 2 * WAIT_MS / 1000)
    # A dropped connection is an answer to record, not a reason to stop the user.
    network_timeout = 10.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        self.slots: list[str] = []
        self.movable: list[str] = []
        self.cancellable: list[str] = []
        self.staff = {"Authorization": f"Token {TOKEN}"}

    # --- patients -----------------------------------------------------------------------------

    @task(3)
    def browse(self) -> None:
        first = datetime.now(tz=UTC).date() + timedelta(
            days=random.randint(1, max(1, DAYS - WINDOW_DAYS))
        )
        last = first + timedelta(days=WINDOW_DAYS - 1)
        with self.client.get(
            f"/api/v1/availability/?location={LOCATION}&appointment_type={APPOINTMENT_TYPE}"
            f"&start={first.isoformat()}&end={last.isoformat()}",
            name=AVAILABILITY,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}")
                return
            slots = [slot["start"] for slot in response.json()["slots"]]
            response.success()
        random.shuffle(slots)
        self.slots = slots[:20]

    @task(6)
    def book(self) -> None:
        if not self.slots:
            self.browse()
            if not self.slots:
                return
        start = self.slots.pop()
        n = next(_sequence)
        email, body = booking_request(
            n, run=RUN, location=LOCATION, appointment_type=APPOINTMENT_TYPE, start=start
        )
        with self.client.post(
            "/api/v1/bookings/",
            json=body,
            headers={"Idempotency-Key": f"{RUN}-{n}"},
            name=BOOK,
            catch_response=True,
        ) as response:
            code = response.status_code or 0
            if code == 201:
                reference = response.json()["reference"]
                _record("booked", ref=reference, email=email, start=start)
                self.movable.append(reference)
                self.cancellable.append(reference)
                response.success()
            elif code in REFUSALS:
                # A taken slot is part of the workload, not a failure: drop the stale list.
                if code == 409:
                    self.slots.clear()
                response.success()
            else:
                _record("book_unknown", email=email, start=start, status=code)
                response.failure(f"{code or response.error}")

    # --- the front desk -------------------------------------------------------------------------

    def _staff_change(self, reference: str, change: str, body: dict[str, str], name: str) -> None:
        """POST one change to a visit; journal it as done (200) or unknown (no answer, 5xx)."""
        with self.client.post(
            f"/api/v1/appointments/{reference}/{change}/",
            json=body,
            headers=self.staff,
            name=name,
            catch_response=True,
        ) as response:
            code = response.status_code or 0
            op = {"reschedule": "rescheduled", "cancel": "cancelled"}[change]
            if code == 200:
                _record(op, ref=reference, **body)
                response.success()
            elif code in REFUSALS:
                response.success()
            else:
                _record(f"{change}_unknown", ref=reference, status=code, **body)
                response.failure(f"{code or response.error}")

    @task(1)
    def reschedule(self) -> None:
        if not self.movable or not self.slots:
            return
        reference = self.movable.pop(random.randrange(len(self.movable)))
        self._staff_change(reference, "reschedule", {"start": self.slots.pop()}, RESCHEDULE)

    @task(1)
    def cancel(self) -> None:
        if not self.cancellable:
            return
        reference = self.cancellable.pop(random.randrange(len(self.cancellable)))
        if reference in self.movable:
            self.movable.remove(reference)
        self._staff_change(reference, "cancel", {"reason": "load test"}, CANCEL)

"""Steady load for ``bench/load.py --rate``: requests at a fixed arrival rate per route, whatever
the server does, with each latency measured from the moment the request was due.

A closed-loop client (locust's users, each waiting for its answer before the next request) sends
less when the server slows down, so a stall shows as fewer requests rather than as latency
(coordinated omission). Here every route has a schedule fixed before the run, evenly spaced at
its rate: request ``i`` is due at ``phase + i / rate`` seconds. A request is started at its due
time even if earlier ones are still waiting, and its latency runs from that due time to the end
of the answer's body, so time spent queued anywhere (in this client's connection pool, in the
kernel's accept queue, behind a busy gunicorn worker) counts. A request with no answer within
``TIMEOUT_S`` is an error whose latency is the time waited.

The generator is one asyncio loop on ``aiohttp`` (its C HTTP parser) in the benchmark's own
process: no extra processes, no gevent. Against a server that answers at once it spends about
0.7 ms of CPU per request at 300 requests/s (a quarter of it the kernel's side of a new loopback
connection per request, which gunicorn's sync workers require), more per request at low rates
where nothing is batched; its CPU time is read from the process itself (``getrusage``) and
reported beside the server's, so what it takes from the two cores is known. Locust's
``constant_throughput`` paces each user but keeps it closed-loop (a user waits for its answer),
and a separate fixed-rate tool (wrk2, vegeta) could not follow the booking flow (a time the
availability offered, a new patient each time, the journal the integrity check reads): its lower
cost per request would not outweigh a second scenario to keep. ``aiohttp`` is pinned in the
``load`` dependency group.

Routes (``--rate book=20,availability=200,calendar=20,patient=50``, times ``--scale``):

- ``book``: ``POST /api/v1/bookings/`` for a new patient at a start time taken from a pool the
  availability answers fill (each start taken once per answer that offered it), as a patient
  books what was just shown. 201 is success; 409 (the time was taken meanwhile) is counted as
  a conflict, not an error. Every 201, and every booking without a clear answer, goes to the
  journal the integrity report reads.
- ``availability``: ``GET /api/v1/availability/`` for three days starting on a random day of
  the bookable window.
- ``calendar``: ``GET /api/v1/calendar/`` for a week from a random day, by staff or by chair in
  turn, with the front desk's API token.
- ``patient``: ``GET /a/<token>/``, the secure-link page of one of the patients booked (over
  HTTP, before the measured window) for the run, chosen at random.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp

from bench.common import percentile

ROUTES = {
    "book": "POST /api/v1/bookings/",
    "availability": "GET /api/v1/availability/",
    "calendar": "GET /api/v1/calendar/",
    "patient": "GET /a/<token>/",
}
DEFAULT_RATES = "book=20,availability=200,calendar=20,patient=50"
# p95 targets on a 2-core machine with everything on it (DESIGN §6).
P95_TARGETS_MS = {"book": 150.0, "availability": 60.0, "calendar": 200.0, "patient": 100.0}
# The answer a route expects; anything else (other than a booking's 409) is an error.
EXPECTED = {"book": 201, "availability": 200, "calendar": 200, "patient": 200}
# Answers that say for certain nothing was done (a taken slot, a refused rule): anything else
# that is not a success (a dropped connection, a 5xx) may or may not have been committed.
REFUSALS = frozenset({400, 404, 409, 422, 429})
TIMEOUT_S = 10.0
# Connections open at once; requests beyond it wait (and that wait is part of their latency).
CONNECTIONS = 256
EMAIL_DOMAIN = "load.chairside.invalid"
# New York mobile-capable area codes; exchanges 220-289 avoid the N11 service codes.
_AREAS = ("212", "347", "646", "718", "917")
AVAILABILITY_DAYS = 3
CALENDAR_DAYS = 7
SLOT_POOL = 400


def parse_rates(spec: str, scale: float = 1.0) -> dict[str, float]:
    """``book=20,availability=200`` → requests per second per route, each times ``scale``.

    Routes left out are not loaded; a rate of 0 leaves one out too. Unknown routes, rates that
    are not non-negative numbers and a route named twice are refused with the route named.
    """
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, not {scale!r}")
    rates: dict[str, float] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"{part.strip()!r}: expected route=rate, e.g. book=20")
        if name not in ROUTES:
            raise ValueError(f"unknown route {name!r}; routes are {', '.join(ROUTES)}")
        if name in rates:
            raise ValueError(f"route {name!r} is given twice")
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(f"{name}: rate {value.strip()!r} is not a number") from None
        if not math.isfinite(rate) or rate < 0:
            raise ValueError(f"{name}: rate must be a non-negative number, not {value.strip()!r}")
        rates[name] = rate * scale
    rates = {name: rate for name, rate in rates.items() if rate > 0}
    if not rates:
        raise ValueError("no route has a rate above 0")
    return rates


def intended_times(rate: float, duration: float, phase: float = 0.0) -> list[float]:
    """When each request of a route is due, in seconds from the start: evenly spaced at
    ``rate`` per second from ``phase`` (< 1 / rate), every one before ``duration``."""
    if rate <= 0 or duration <= 0:
        return []
    interval = 1.0 / rate
    count = math.ceil((duration - phase) * rate)
    return [phase + i * interval for i in range(count) if phase + i * interval < duration]


def route_figures(
    latencies_ms: list[float],
    statuses: dict[str, int],
    *,
    route: str,
    offered_per_s: float,
    duration_s: float,
) -> dict[str, Any]:
    """One route's line: percentiles of every request's latency (errors included, a timeout at
    the time waited), errors, conflicts, and the rate achieved against the rate offered."""
    expected = str(EXPECTED[route])
    ok = statuses.get(expected, 0)
    conflicts = statuses.get("409", 0) if route == "book" else 0
    sent = sum(statuses.values())
    target = P95_TARGETS_MS[route]
    p95 = round(percentile(latencies_ms, 95), 1) if latencies_ms else None
    return {
        "route": ROUTES[route],
        "offered_per_s": round(offered_per_s, 2),
        "achieved_per_s": round(ok / duration_s, 2) if duration_s else 0.0,
        "sent": sent,
        "ok": ok,
        "conflicts": conflicts,
        "errors": sent - ok - conflicts,
        "statuses": dict(sorted(statuses.items())),
        "p50_ms": round(percentile(latencies_ms, 50), 1) if latencies_ms else None,
        "p95_ms": p95,
        "p99_ms": round(percentile(latencies_ms, 99), 1) if latencies_ms else None,
        "max_ms": round(max(latencies_ms), 1) if latencies_ms else None,
        "p95_target_ms": target,
        "p95_met": p95 is not None and p95 <= target,
    }


def phone(n: int) -> str:
    rest = n // len(_AREAS)
    exchange = 220 + (rest // 10_000) % 70
    return f"+1{_AREAS[n % len(_AREAS)]}{exchange}{rest % 10_000:04d}"


def booking_request(
    n: int, *, run: str, location: str, appointment_type: str, start: str
) -> tuple[str, dict[str, Any]]:
    """The ``n``-th booking of a run (both load scenarios): a new patient each time (unique
    e-mail and phone, so no per-patient cap refuses it) and the patient's e-mail, which tells
    the integrity check whose visit an unanswered booking would have made."""
    email = f"p{n}-{run}@{EMAIL_DOMAIN}"
    return email, {
        "location": location,
        "appointment_type": appointment_type,
        "start": start,
        "patient": {
            "first_name": "Load",
            "last_name": f"Patient {n}",
            "email": email,
            "phone": phone(n),
            "date_of_birth": "1985-06-15",
        },
        "intake": {"conditions": [], "medications": "", "prior_treatments": ""},
        "sms_consent": n % 2 == 0,
    }


@dataclass
class Clinic:
    """What the requests need to know about the seeded clinic."""

    base_url: str
    location: str
    appointment_type: str
    staff_token: str
    days: int


@dataclass
class Samples:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    # How late the generator itself started requests (its own lag, not the server's).
    send_lag_ms: list[float] = field(default_factory=list)


class Generator:
    """The four routes' requests over one aiohttp session, recorded per route."""

    def __init__(self, clinic: Clinic, journal: IO[str], seed: int = 0) -> None:
        self.clinic = clinic
        self.journal = journal
        self.random = random.Random(seed)
        self.run_tag = uuid.uuid4().hex[:8]
        self.sequence = itertools.count()
        self.slots: deque[str] = deque(maxlen=SLOT_POOL)
        self.patient_tokens: list[str] = []
        self.samples: dict[str, Samples] = {}
        self._session: aiohttp.ClientSession | None = None
        self.calendar_turn = itertools.cycle(("staff", "chair"))

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the generator as an async context manager")
        return self._session

    async def __aenter__(self) -> Generator:
        self._session = aiohttp.ClientSession(
            base_url=self.clinic.base_url,
            connector=aiohttp.TCPConnector(limit=CONNECTIONS, force_close=True),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _journal(self, op: str, **fields: Any) -> None:
        self.journal.write(json.dumps({"op": op, "at": time.time(), **fields}) + "\n")

    def _first_day(self, span: int) -> str:
        # From tomorrow: today's remaining times may be inside the booking notice.
        offset = self.random.randint(1, max(1, self.clinic.days - span))
        return (datetime.now(tz=UTC).date() + timedelta(days=offset)).isoformat()

    def _last_day(self, first: str, span: int) -> str:
        return (datetime.fromisoformat(first).date() + timedelta(days=span - 1)).isoformat()

    async def _get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        async with self.session.get(url, headers=headers) as response:
            return response.status, await response.read()

    # --- one request of each route: its status, or raises on no answer ------------------------

    async def availability(self) -> int:
        first = self._first_day(AVAILABILITY_DAYS)
        status, body = await self._get(
            f"/api/v1/availability/?location={self.clinic.location}"
            f"&appointment_type={self.clinic.appointment_type}"
            f"&start={first}&end={self._last_day(first, AVAILABILITY_DAYS)}"
        )
        # The answer is read in full either way; its slots are only parsed while the pool
        # needs them, which keeps the generator's own CPU per request down.
        if status == 200 and len(self.slots) < SLOT_POOL // 2:
            starts = [slot["start"] for slot in json.loads(body)["slots"]]
            self.random.shuffle(starts)
            self.slots.extend(starts[:20])
        return status

    async def book(self) -> int:
        return (await self._book())[0]

    async def _book(self) -> tuple[int, str]:
        if not self.slots:
            await self.availability()
            if not self.slots:
                return 0, ""
        start = self.slots.pop()
        n = next(self.sequence)
        email, body = booking_request(
            n,
            run=self.run_tag,
            location=self.clinic.location,
            appointment_type=self.clinic.appointment_type,
            start=start,
        )
        try:
            async with self.session.post(
                "/api/v1/bookings/",
                json=body,
                headers={"Idempotency-Key": f"{self.run_tag}-{n}"},
            ) as response:
                status = response.status
                answer = await response.read()
        except BaseException:
            # No answer: the booking may or may not have been committed.
            self._journal("book_unknown", email=email, start=start, status=0)
            raise
        if status == 201:
            self._journal("booked", ref=json.loads(answer)["reference"], email=email, start=start)
        elif status not in REFUSALS:
            self._journal("book_unknown", email=email, start=start, status=status)
        return status, email

    async def calendar(self) -> int:
        first = self._first_day(CALENDAR_DAYS)
        status, _ = await self._get(
            f"/api/v1/calendar/?location={self.clinic.location}&by={next(self.calendar_turn)}"
            f"&start={first}&end={self._last_day(first, CALENDAR_DAYS)}",
            headers={"Authorization": f"Token {self.clinic.staff_token}"},
        )
        return status

    async def patient(self) -> int:
        status, _ = await self._get(f"/a/{self.random.choice(self.patient_tokens)}/")
        return status

    # --- setup and the measured window ---------------------------------------------------------

    async def book_patients(self, count: int) -> list[str]:
        """``count`` bookings before the window, four at a time (their patients' e-mails, for
        the secure links); they also fill the slot pool."""
        emails: list[str] = []
        lock = asyncio.Semaphore(4)

        async def one() -> None:
            async with lock:
                for _attempt in range(5):
                    status, email = await self._book()
                    if status == 201:
                        emails.append(email)
                        return

        await asyncio.gather(*(one() for _ in range(count)))
        return emails

    async def prepare(self, patients: int) -> list[str]:
        """A few availability reads to fill the slot pool, then ``patients`` bookings."""
        async with self:
            for _ in range(5):
                await self.availability()
            return await self.book_patients(patients) if patients else []

    async def window(self, rates: dict[str, float], duration: float) -> dict[str, Any]:
        async with self:
            return await self.run(rates, duration)

    async def _timed(self, route: str, due: float, call: Callable[[], Awaitable[int]]) -> None:
        loop = asyncio.get_running_loop()
        samples = self.samples[route]
        samples.send_lag_ms.append((loop.time() - due) * 1000)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                key = str(await call())
        except TimeoutError:
            key = "timeout"
        except (aiohttp.ClientError, OSError, ValueError) as error:
            key = type(error).__name__
        samples.latencies_ms.append((loop.time() - due) * 1000)
        samples.statuses[key] += 1

    async def run(self, rates: dict[str, float], duration: float) -> dict[str, Any]:
        """Every route at its rate for ``duration`` seconds, then wait for the answers."""
        loop = asyncio.get_running_loop()
        calls = {
            "book": self.book,
            "availability": self.availability,
            "calendar": self.calendar,
            "patient": self.patient,
        }
        pending: set[asyncio.Task[None]] = set()
        start = loop.time() + 0.2
        started_at = time.time() + 0.2

        async def pace(route: str, phase: float) -> None:
            self.samples[route] = Samples()
            for offset in intended_times(rates[route], duration, phase):
                due = start + offset
                if (delay := due - loop.time()) > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._timed(route, due, calls[route]))
                pending.add(task)
                task.add_done_callback(pending.discard)

        # Routes start at different fractions of their interval so their requests interleave.
        await asyncio.gather(
            *(pace(route, (i / len(rates)) / rate) for i, (route, rate) in enumerate(rates.items()))
        )
        scheduled_end = loop.time()
        while pending:
            await asyncio.wait(set(pending))
        return {
            "started_at": started_at,
            "schedule_s": round(scheduled_end - start, 2),
            "last_answer_s": round(loop.time() - start, 2),
        }


def run(
    clinic: Clinic,
    *,
    rates: dict[str, float],
    duration: float,
    journal_path: Path,
    patients: int,
    issue_links: Callable[[list[str]], list[str]],
    window_edge: Callable[[str], None],
) -> dict[str, Any]:
    """Book the patients whose pages are read and make their links (``issue_links``: e-mails to
    tokens, outside the event loop since it uses the ORM), then the measured window, bracketed
    by ``window_edge("start")`` and ``window_edge("end")`` (the caller's CPU readings)."""
    with journal_path.open("a", encoding="utf-8", buffering=1) as journal:
        generator = Generator(clinic, journal)
        emails = asyncio.run(generator.prepare(patients if "patient" in rates else 0))
        if "patient" in rates:
            generator.patient_tokens = issue_links(emails)
            if not generator.patient_tokens:
                raise SystemExit("no patient could be booked for the patient pages")
        window_edge("start")
        window = asyncio.run(generator.window(rates, duration))
        window_edge("end")
    lags = [lag for samples in generator.samples.values() for lag in samples.send_lag_ms]
    return {
        "window": window,
        "routes": {
            route: route_figures(
                samples.latencies_ms,
                dict(samples.statuses),
                route=route,
                offered_per_s=rates[route],
                duration_s=duration,
            )
            for route, samples in generator.samples.items()
        },
        # How late the generator started requests: near 0 unless it was itself short of CPU.
        "generator_send_lag_ms": {
            "p50": round(percentile(lags, 50), 2),
            "p99": round(percentile(lags, 99), 2),
            "max": round(max(lags), 2),
        }
        if lags
        else None,
        "patients_with_links": len(generator.patient_tokens),
    }

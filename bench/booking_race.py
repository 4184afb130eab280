"""Booking integrity and write throughput (DESIGN §6), against PostgreSQL.

1. Race: 50 processes, each with its own connection, are released together by a barrier to
   book the same chair-limited slot through ``appointment_book``; 20 rounds. Exactly one must
   win each round, the rest must get ``SlotTaken``; afterwards a self-join counts overlapping
   active allocations (must be 0). Target: every answer < 100 ms.
2. Throughput: 8 client processes book distinct slots of one busy prescriber through the same
   service for 10 s. Targets: >= 1,000 bookings/s, p99 <= 15 ms.
3. Raw ceiling, same run: 8 processes insert single allocation rows with plain SQL (autocommit,
   one INSERT per transaction, exclusion constraint present). ratio_vs_raw >= 0.14.
4. The booking's transaction alone, same run: the statements one real booking sent (recorded
   through Django's execute wrapper) replayed by 8 plain psycopg clients with each booking's own
   values (patient, appointment, reference, a day of its own) and committed. No Python runs
   around them: what this transaction allows on this machine, whatever the client is written in.

Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_bench \
     .venv/bin/python -m bench.booking_race
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bench.common import machine_info, percentile, setup_django

SLUG = "bench-booking-race"
ZONE = ZoneInfo("America/New_York")
# Bench patients are found (and removed on the next run) by this address domain.
EMAIL_DOMAIN = "booking-race.bench.invalid"
BUSY_TYPE = "bench-prescriber-visit"
RACE_TYPE = "bench-chair-session"
PRESCRIBER_USER = "bench-booking-race-prescriber"

RACE_WORKERS = 50
RACE_ROUNDS = 20
# Bookings per worker before the rounds: connections open, and past psycopg's prepare threshold
# (5), as in a long-running server.
RACE_WARMUP = 6
RACE_TARGET_MS = 100.0

CLIENTS = 8
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "10"))
SLOTS_PER_CLIENT = 6_000  # more than a client can book in the run: slots never run out
CLIENT_WARMUP = 30
BOOKINGS_TARGET = 1_000.0
BOOKING_P99_TARGET_MS = 15.0
RATIO_TARGET = 0.14

# The busy prescriber works around the clock, so a day holds 95 quarter-hour visits.
OPEN = (clock(0, 0), clock(23, 59))

# Each booking queues a delivery sweep once it commits. The default in-process transport keeps
# thousands of bench tasks out of the shared broker; BENCH_BROKER_URL=redis://... measures the
# publish too.
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "memory://")

_FORK = mp.get_context("fork")
# Only guards against a process dying before the barrier; never reached in a healthy run.
BARRIER_TIMEOUT_S = 300.0

T = TypeVar("T")


def _patiently(connect: Callable[[], T]) -> T:
    """``connect()``, retried while the server is out of connection slots: other work on a
    shared server may hold most of ``max_connections`` for a moment."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return connect()
        except Exception as exc:
            if "too many clients" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _child(target: Callable[..., Any], index: int, barrier: Any, results: Any, *args: Any) -> None:
    # Any failure breaks the barrier for the others and is reported: a run fails, never hangs.
    try:
        results.put((index, target(index, barrier, *args), None))
    except BaseException as exc:
        barrier.abort()
        results.put((index, None, f"{type(exc).__name__}: {exc}"))


def _in_processes(target: Callable[..., Any], count: int, *args: Any) -> list[Any]:
    """``target(index, barrier, *args)`` in ``count`` forked processes; their results in order."""
    from django.db import connections

    connections.close_all()  # each child opens its own
    barrier = _FORK.Barrier(count, timeout=BARRIER_TIMEOUT_S)
    results = _FORK.Queue()
    processes = [
        _FORK.Process(target=_child, args=(target, i, barrier, results, *args))
        for i in range(count)
    ]
    for process in processes:
        process.start()
    gathered = sorted(results.get(timeout=3 * BARRIER_TIMEOUT_S) for _ in processes)
    for process in processes:
        process.join()
    # The first cause first: the others typically report only the broken barrier.
    errors = sorted(
        (f"process {i}: {error}" for i, _, error in gathered if error),
        key=lambda line: "BrokenBarrierError" in line,
    )
    if errors:
        raise SystemExit("a benchmark process failed:\n  " + "\n  ".join(errors[:5]))
    return [value for _, value, _ in gathered]


def _django_connection() -> None:
    from django.db import connection

    _patiently(connection.ensure_connection)


@dataclass(frozen=True)
class Fixture:
    location_id: int
    race_type_id: int
    busy_type_id: int
    race_resource_ids: list[int]
    busy_resource_ids: list[int]
    raw_resource_id: int
    raw_appointment_id: int
    race_patients: list[list[int]]  # [worker][round + warm-up]
    client_patients: list[list[int]]  # [client][booking]


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)


def _today() -> date:
    return datetime.now(tz=ZONE).date()


def _remove_previous() -> None:
    from django.contrib.auth.models import User

    from booking.models import (
        Allocation,
        Appointment,
        EligibilityDecision,
        Patient,
        Protocol,
        TreatmentPlan,
    )
    from scheduling.models import AppointmentType, Location, Resource

    bench_patients = Patient.objects.filter(email__endswith="@" + EMAIL_DOMAIN)
    for location in Location.objects.filter(slug=SLUG):
        Allocation.objects.filter(appointment__location=location).delete()
        Appointment.objects.filter(location=location).delete()
        TreatmentPlan.objects.filter(protocol__appointment_type__location=location).delete()
        Protocol.objects.filter(appointment_type__location=location).delete()
        AppointmentType.objects.filter(location=location).delete()
        Resource.objects.filter(location=location).delete()
        location.delete()
    TreatmentPlan.objects.filter(patient__in=bench_patients).delete()
    EligibilityDecision.objects.filter(patient__in=bench_patients).delete()
    bench_patients.delete()
    User.objects.filter(username=PRESCRIBER_USER).delete()


def _patients(count: int, tag: str) -> list[int]:
    from booking.models import Patient

    created = Patient.objects.bulk_create(
        Patient(
            first_name=f"{tag}{n}",
            last_name="Bench",
            email=f"{tag.lower()}{n}@{EMAIL_DOMAIN}",
            phone=f"+1202555{n % 10_000:04d}",
            date_of_birth=date(1980, 1, 1),
        )
        for n in range(count)
    )
    return [p.pk for p in created]


def _approve(appointment_type: Any, patient_ids: list[int]) -> None:
    """A prescriber's approval of each race patient for the race's treatment, written in bulk
    (what ``eligibility_decide`` stores, without its per-patient checks): only a consultation
    may be booked unapproved, and the race books through the real gate."""
    from django.contrib.auth.models import User

    from booking.models import DecisionOutcome, EligibilityDecision, Protocol, TreatmentPlan

    protocol = Protocol.objects.create(
        appointment_type=appointment_type,
        slug="bench-session",
        name="One session",
        sessions=1,
        window_days=1,
    )
    prescriber = User.objects.create(username=PRESCRIBER_USER)
    decided = datetime.now(tz=UTC)
    decisions = EligibilityDecision.objects.bulk_create(
        EligibilityDecision(
            patient_id=pk,
            outcome=DecisionOutcome.APPROVED,
            decided_by=prescriber,
            decided_at=decided,
        )
        for pk in patient_ids
    )
    TreatmentPlan.objects.bulk_create(
        TreatmentPlan(
            patient_id=decision.patient_id,
            decision=decision,
            protocol=protocol,
            sessions_authorised=100,  # the most a prescriber may authorise
            valid_until=_today() + timedelta(days=365),
        )
        for decision in decisions
    )


def build() -> Fixture:
    """A clinic of its own: one chair, one nurse, one round-the-clock prescriber."""
    from django.db import transaction

    from booking.models import Appointment
    from scheduling.models import (
        AppointmentKind,
        AppointmentType,
        Location,
        Resource,
        ResourceKind,
        ResourceRequirement,
        StaffRole,
        WorkingHours,
    )

    _remove_previous()
    with transaction.atomic():
        location = Location.objects.create(
            slug=SLUG,
            name="Booking race bench",
            public_name="Bench Health",
            timezone=ZONE.key,
        )
        prescriber = Resource.objects.create(
            location=location, kind=ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name="Dr. Busy"
        )
        nurse = Resource.objects.create(
            location=location,
            kind=ResourceKind.STAFF,
            role=StaffRole.NURSE,
            name="Nurse",
            capacity=3,
        )
        chair = Resource.objects.create(location=location, kind=ResourceKind.CHAIR, name="Chair")
        # Out of service, so availability never sees it: only the raw INSERTs write here.
        raw = Resource.objects.create(
            location=location,
            kind=ResourceKind.CHAIR,
            name="Raw lanes",
            capacity=CLIENTS,
            is_active=False,
        )
        WorkingHours.objects.bulk_create(
            WorkingHours(
                resource=resource,
                location=location,
                weekday=day,
                start=OPEN[0],
                end=OPEN[1],
            )
            for resource in (prescriber, nurse, chair)
            for day in range(7)
        )
        # The infusion's shape (chair with turnover, nurse throughout, prescriber for the first
        # 15 minutes), gated as every treatment is: its patients are approved below, in bulk.
        race_type = AppointmentType.objects.create(
            location=location,
            slug=RACE_TYPE,
            name="Chair session",
            public_name="Treatment session",
            kind=AppointmentKind.INFUSION,
            duration_minutes=90,
        )
        ResourceRequirement.objects.bulk_create(
            ResourceRequirement(appointment_type=race_type, **hold)
            for hold in (
                {"resource_kind": ResourceKind.CHAIR, "buffer_after_minutes": 10},
                {"resource_kind": ResourceKind.STAFF, "role": StaffRole.NURSE},
                {
                    "resource_kind": ResourceKind.STAFF,
                    "role": StaffRole.PRESCRIBER,
                    "duration_minutes": 15,
                },
            )
        )
        busy_type = AppointmentType.objects.create(
            location=location,
            slug=BUSY_TYPE,
            name="Prescriber visit",
            public_name="Follow-up appointment",
            kind=AppointmentKind.CONSULTATION,
            duration_minutes=15,
            grid_minutes=15,
            min_notice_minutes=0,
            horizon_days=3_650,
            needs_approval=False,
        )
        ResourceRequirement.objects.create(
            appointment_type=busy_type,
            resource_kind=ResourceKind.STAFF,
            role=StaffRole.PRESCRIBER,
        )
    race_patients = _patients(RACE_WORKERS * (RACE_ROUNDS + RACE_WARMUP), "Race")
    _approve(race_type, race_patients)
    client_patients = _patients(CLIENTS * SLOTS_PER_CLIENT, "Client")
    far = _local(_today() + timedelta(days=3_000), 12)
    raw_appointment = Appointment.objects.create(
        location=location,
        appointment_type=busy_type,
        patient_id=race_patients[0],
        start=far,
        end=far + timedelta(minutes=15),
    )
    per_worker = RACE_ROUNDS + RACE_WARMUP
    per_client = SLOTS_PER_CLIENT
    return Fixture(
        location_id=location.pk,
        race_type_id=race_type.pk,
        busy_type_id=busy_type.pk,
        race_resource_ids=[chair.pk, nurse.pk, prescriber.pk],
        busy_resource_ids=[prescriber.pk],
        raw_resource_id=raw.pk,
        raw_appointment_id=raw_appointment.pk,
        race_patients=[
            race_patients[w * per_worker : (w + 1) * per_worker] for w in range(RACE_WORKERS)
        ],
        client_patients=[
            client_patients[c * per_client : (c + 1) * per_client] for c in range(CLIENTS)
        ],
    )


def _load_type(type_id: int) -> Any:
    from scheduling.models import AppointmentType

    return AppointmentType.objects.select_related("location").get(pk=type_id)


def _load_patients(ids: list[int]) -> list[Any]:
    from booking.models import Patient

    found = Patient.objects.in_bulk(ids)
    return [found[pk] for pk in ids]


# --- 1. The race ---------------------------------------------------------------------------------

# Round r fights over one 10:00 infusion on its own day; the single chair makes it one winner.
RACE_FIRST_DAY = 2
WARMUP_FIRST_DAY = 40  # warm-up bookings (distinct slots, all succeed) far from the rounds


def _race_slot(round_no: int) -> datetime:
    return _local(_today() + timedelta(days=RACE_FIRST_DAY + round_no), 10)


def _warmup_slot(worker: int, n: int) -> datetime:
    # The chair is held 100 minutes: one warm-up infusion every two hours from 04:00 (clear of
    # any DST change), 9 a day.
    index = worker * RACE_WARMUP + n
    day, slot = divmod(index, 9)
    return _local(_today() + timedelta(days=WARMUP_FIRST_DAY + day), 4 + 2 * slot)


def _race_worker(
    worker: int, barrier: Any, fixture: Fixture, slots: list[datetime]
) -> list[tuple[int, str, float]]:
    from booking.errors import SlotTaken
    from booking.services import appointment_book

    _django_connection()
    appointment_type = _load_type(fixture.race_type_id)
    patients = _load_patients(fixture.race_patients[worker])
    for n in range(RACE_WARMUP):
        appointment_book(
            appointment_type=appointment_type,
            patient=patients[RACE_ROUNDS + n],
            start=_warmup_slot(worker, n),
        )
    records: list[tuple[int, str, float]] = []
    for round_no, start in enumerate(slots):
        barrier.wait()
        began = time.perf_counter()
        try:
            appointment_book(
                appointment_type=appointment_type, patient=patients[round_no], start=start
            )
            outcome = "won"
        except SlotTaken:
            outcome = "taken"
        except Exception as exc:  # every other answer is a failure the report must show
            outcome = f"{type(exc).__name__}: {exc}"
        records.append((round_no, outcome, (time.perf_counter() - began) * 1000))
    return records


def _count_overlaps(resource_ids: list[int]) -> int:
    from django.db import connection

    # Pairs of active allocations on one lane of one resource whose ranges intersect; the
    # GiST index behind the exclusion constraint serves the inner side of the join.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*)
            FROM booking_allocation a
            JOIN booking_allocation b
              ON b.resource_id = a.resource_id
             AND b.lane = a.lane
             AND b.active
             AND b.id > a.id
             AND tstzrange(b.start, b."end") && tstzrange(a.start, a."end")
            WHERE a.active AND a.resource_id = ANY(%s)
            """,
            [resource_ids],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else -1


def race(fixture: Fixture) -> dict[str, Any]:
    slots = [_race_slot(r) for r in range(RACE_ROUNDS)]
    gathered = _in_processes(_race_worker, RACE_WORKERS, fixture, slots)

    winners = Counter[int]()
    failures: list[str] = []
    latencies: list[float] = []
    for records in gathered:
        for round_no, outcome, ms in records:
            latencies.append(ms)
            if outcome == "won":
                winners[round_no] += 1
            elif outcome != "taken":
                failures.append(f"round {round_no}: {outcome}")
    per_round = [winners[r] for r in range(RACE_ROUNDS)]
    return {
        "winners_per_round": per_round,
        "max_winners": max(per_round),
        "min_winners": min(per_round),
        "failures": failures,
        "answers": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "overlaps": _count_overlaps(fixture.race_resource_ids),
    }


# --- 2. Throughput through the service -----------------------------------------------------------

BUSY_FIRST_DAY = 100


def _client_slots(client: int) -> list[datetime]:
    """Client c books whole days d with d % CLIENTS == c: disjoint from every other client.

    Days whose clocks change are left out, so every day is 95 plain quarter-hours.
    """
    out: list[datetime] = []
    day_no = client
    while len(out) < SLOTS_PER_CLIENT:
        day = _today() + timedelta(days=BUSY_FIRST_DAY + day_no)
        day_no += CLIENTS
        midnight = _local(day, 0).astimezone(UTC)
        if _local(day + timedelta(days=1), 0).astimezone(UTC) - midnight != timedelta(days=1):
            continue
        out.extend(midnight + timedelta(minutes=15 * q) for q in range(95))
    return out[:SLOTS_PER_CLIENT]


def _silence_listeners() -> list[Any]:
    """Attribution only: what the service costs without the work its listeners add to the
    booking's transaction (reminder planning). Returns what was silenced."""
    from booking.signals import appointment_changed

    saved = appointment_changed.receivers
    appointment_changed.receivers = []
    appointment_changed.sender_receivers_cache.clear()
    return saved


@contextlib.contextmanager
def _listeners_silenced() -> Iterator[None]:
    from booking.signals import appointment_changed

    saved = _silence_listeners()
    try:
        yield
    finally:
        appointment_changed.receivers = saved
        appointment_changed.sender_receivers_cache.clear()


def _backend_cpu_s(pid: int) -> float | None:
    # The server's CPU for our connection, when it runs on this machine (Linux /proc).
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _client_worker(
    client: int, barrier: Any, fixture: Fixture, listeners: bool, first: int
) -> dict[str, Any]:
    from booking.services import appointment_book

    _django_connection()
    if not listeners:
        _silence_listeners()  # for good: this process ends with the phase

    appointment_type = _load_type(fixture.busy_type_id)
    patients = _load_patients(fixture.client_patients[client])
    slots = _client_slots(client)
    n = first
    for _ in range(CLIENT_WARMUP):
        appointment_book(appointment_type=appointment_type, patient=patients[n], start=slots[n])
        n += 1
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    backend = _backend_pid()
    barrier.wait()
    began = time.perf_counter()
    cpu, server = time.process_time(), _backend_cpu_s(backend)
    deadline = began + DURATION_S
    while n < len(slots):
        t0 = time.perf_counter()
        if t0 >= deadline:
            break
        try:
            appointment_book(appointment_type=appointment_type, patient=patients[n], start=slots[n])
        except Exception as exc:  # counted and reported, never hidden
            errors[type(exc).__name__] += 1
        else:
            latencies.append((time.perf_counter() - t0) * 1000)
        n += 1
    server_after = _backend_cpu_s(backend)
    return {
        "latencies": latencies,
        "errors": dict(errors),
        "seconds": time.perf_counter() - began,
        "slots_used": n,
        "client_cpu_s": time.process_time() - cpu,
        "server_cpu_s": None if server is None or server_after is None else server_after - server,
    }


def _cpu_figures(gathered: list[dict[str, Any]], count: int, elapsed: float) -> dict[str, Any]:
    """CPU our processes and their PostgreSQL backends used, per operation and in cores: on a
    shared machine, what the figures cost, apart from what others took."""
    client = sum(g["client_cpu_s"] for g in gathered)
    servers = [g["server_cpu_s"] for g in gathered]
    server = None if None in servers else sum(servers)
    return {
        "client_cpu_ms_per_op": 1000 * client / max(count, 1),
        "server_cpu_ms_per_op": None if server is None else 1000 * server / max(count, 1),
        "cores_used": None if server is None else (client + server) / elapsed,
    }


def throughput(fixture: Fixture, *, listeners: bool = True, first: int = 0) -> dict[str, Any]:
    """8 clients for DURATION_S; each starts at slot (and patient) ``first`` of its own list."""
    gathered = _in_processes(_client_worker, CLIENTS, fixture, listeners, first)
    latencies = [ms for g in gathered for ms in g["latencies"]]
    errors: Counter[str] = Counter()
    for g in gathered:
        errors.update(g["errors"])
    elapsed = max(g["seconds"] for g in gathered)
    return {
        **_cpu_figures(gathered, len(latencies), elapsed),
        "bookings": len(latencies),
        "seconds": elapsed,
        "bookings_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "errors": dict(errors),
        "ran_out_of_slots": any(g["slots_used"] >= SLOTS_PER_CLIENT for g in gathered),
        "slots_used": max(g["slots_used"] for g in gathered),
        "overlaps": _count_overlaps(fixture.busy_resource_ids),
    }


def _run_for_duration(operation: Callable[[], None], backend: int, barrier: Any) -> dict[str, Any]:
    """``operation`` warmed up, then run back to back for DURATION_S once every process is
    ready: each run's latency, and the CPU this process and its PostgreSQL backend used."""
    for _ in range(CLIENT_WARMUP):
        operation()
    latencies: list[float] = []
    barrier.wait()
    began = time.perf_counter()
    cpu, server = time.process_time(), _backend_cpu_s(backend)
    deadline = began + DURATION_S
    while (t0 := time.perf_counter()) < deadline:
        operation()
        latencies.append((time.perf_counter() - t0) * 1000)
    server_after = _backend_cpu_s(backend)
    return {
        "latencies": latencies,
        "seconds": time.perf_counter() - began,
        "client_cpu_s": time.process_time() - cpu,
        "server_cpu_s": None if server is None or server_after is None else server_after - server,
    }


# --- 3. Raw INSERT ceiling -----------------------------------------------------------------------

RAW_SQL = (
    'INSERT INTO booking_allocation (appointment_id, resource_id, lane, start, "end", active) '
    "VALUES (%s, %s, %s, %s, %s, true)"
)


def _raw_worker(client: int, barrier: Any, fixture: Fixture) -> dict[str, Any]:
    import psycopg

    base = _local(_today() + timedelta(days=BUSY_FIRST_DAY), 0).astimezone(UTC)
    step = timedelta(minutes=15)
    n = 0
    url = os.environ["DATABASE_URL"]
    with _patiently(lambda: psycopg.connect(url, autocommit=True)) as conn:

        def insert() -> None:
            nonlocal n
            start = base + step * n
            conn.execute(
                RAW_SQL,
                [
                    fixture.raw_appointment_id,
                    fixture.raw_resource_id,
                    client,
                    start,
                    start + step,
                ],
            )
            n += 1

        return _run_for_duration(insert, conn.info.backend_pid, barrier)


def raw_ceiling(fixture: Fixture) -> dict[str, Any]:
    gathered = _in_processes(_raw_worker, CLIENTS, fixture)
    inserts = sum(len(g["latencies"]) for g in gathered)
    elapsed = max(g["seconds"] for g in gathered)
    return {
        **_cpu_figures(gathered, inserts, elapsed),
        "inserts": inserts,
        "seconds": elapsed,
        "inserts_per_s": inserts / elapsed,
        "overlaps": _count_overlaps([fixture.raw_resource_id]),
    }


# --- 4. The booking's own statements, and nothing else -----------------------------------------

# Replayed bookings take whole days of their own, far past everything else the run books; the
# two recorded ones are between the race's warm-up days and the throughput's.
REPLAY_FIRST_DAY = 20_000
RECORDED_DAY = 85


@dataclass(frozen=True)
class Recording:
    """The statements one booking sent, and where its own values sit in their parameters."""

    statements: list[tuple[str, list[Any]]]
    # (statement, parameter) positions of: the appointment's id, which the replay learns from
    # its own INSERT … RETURNING; the patient's id; the reference; instants; lock keys.
    roles: dict[tuple[int, int], str]
    appointment_insert: int


def _record(appointment_type: Any, patient: Any, start: datetime) -> tuple[list[Any], Any]:
    from django.db import connection

    from booking.services import appointment_book

    statements: list[tuple[str, list[Any]]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        appointment = appointment_book(
            appointment_type=appointment_type, patient=patient, start=start
        )
    return statements, appointment


def record_booking(fixture: Fixture) -> Recording:
    """Two real bookings through the service, told apart parameter by parameter: what differs
    between them is what makes a booking that booking, and each differing value is matched to
    the appointment, patient, reference, instant or lock it is."""
    appointment_type = _load_type(fixture.busy_type_id)
    # A week apart, on days nothing else books: the same weekday, a different lock.
    slots = [_local(_today() + timedelta(days=RECORDED_DAY + 7 * n), 6) for n in range(2)]
    patients = _load_patients(fixture.race_patients[-1][-2:])
    (first, a), (second, b) = (
        _record(appointment_type, patient, start)
        for patient, start in zip(patients, slots, strict=True)
    )
    if [sql for sql, _ in first] != [sql for sql, _ in second]:
        raise SystemExit("two bookings of one type sent different statements")
    roles: dict[tuple[int, int], str] = {}
    insert = -1
    for n, ((sql, one), (_, two)) in enumerate(zip(first, second, strict=True)):
        if sql.lstrip().startswith('INSERT INTO "booking_appointment"'):
            insert = n
        for i, (x, y) in enumerate(zip(one, two, strict=True)):
            if x == y:
                continue
            if (x, y) == (a.pk, b.pk):
                roles[n, i] = "appointment"
            elif (x, y) == (patients[0].pk, patients[1].pk):
                roles[n, i] = "patient"
            elif (x, y) == (a.reference, b.reference):
                roles[n, i] = "reference"
            elif isinstance(x, date):  # a datetime too
                roles[n, i] = "instant"
            elif isinstance(x, list) and x and all(isinstance(v, date) for v in x):
                roles[n, i] = "days"  # the schedule's loaded days (scheduling.selectors)
            elif "pg_advisory_xact_lock" in sql:
                roles[n, i] = "lock"
            elif isinstance(x, str):
                continue  # words about the booking (its history line): the first one's will do
            else:
                raise SystemExit(f"statement {n}, parameter {i}: {x!r} / {y!r} is not understood")
    if insert < 0 or "RETURNING" not in first[insert][0]:
        raise SystemExit("the booking's appointment INSERT … RETURNING was not found")
    return Recording(first, roles, insert)


def _replay_worker(
    client: int, barrier: Any, fixture: Fixture, recording: Recording
) -> dict[str, Any]:
    import psycopg

    from booking.models import new_reference

    patients = fixture.client_patients[client]
    url = os.environ["DATABASE_URL"]
    # As the service's connection: parameters bound on the server, statements prepared.
    with _patiently(lambda: psycopg.connect(url, prepare_threshold=5)) as conn:
        n = 0

        def book() -> None:
            nonlocal n
            days = REPLAY_FIRST_DAY + n * CLIENTS + client  # a day of its own
            shift = timedelta(days=days)
            values = {"patient": patients[n % len(patients)], "reference": new_reference()}
            for index, (sql, params) in enumerate(recording.statements):
                bound = list(params)
                for (statement, i), role in recording.roles.items():
                    if statement != index:
                        continue
                    if role == "instant":
                        bound[i] = params[i] + shift
                    elif role == "days":
                        bound[i] = [day + shift for day in params[i]]
                    elif role == "lock":
                        # Keys end in 20 bits of day number (booking.placement._lane_lock_keys).
                        bound[i] = [k + days for k in params[i]]
                    else:
                        bound[i] = values[role]
                cursor = conn.execute(sql, bound)
                if index == recording.appointment_insert:
                    (values["appointment"],) = cursor.fetchone() or (None,)
            conn.commit()
            n += 1

        return _run_for_duration(book, conn.info.backend_pid, barrier)


def replay(fixture: Fixture) -> dict[str, Any]:
    """8 clients send a booking's recorded statements, values changed to a day of their own,
    and commit: the service's transaction with no Python around it. What the database allows
    for this transaction on this machine, whatever the client."""
    recording = record_booking(fixture)
    gathered = _in_processes(_replay_worker, CLIENTS, fixture, recording)
    latencies = [ms for g in gathered for ms in g["latencies"]]
    elapsed = max(g["seconds"] for g in gathered)
    return {
        **_cpu_figures(gathered, len(latencies), elapsed),
        "statements": len(recording.statements),
        "bookings": len(latencies),
        "seconds": elapsed,
        "bookings_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "overlaps": _count_overlaps(fixture.busy_resource_ids),
    }


# --- Queries per booking -------------------------------------------------------------------------


def queries_per_booking(fixture: Fixture) -> dict[str, Any]:
    """One booking of each kind under CaptureQueriesContext: how many round trips, and which."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from booking.errors import SlotTaken
    from booking.services import appointment_book

    busy_type = _load_type(fixture.busy_type_id)
    race_type = _load_type(fixture.race_type_id)
    patients = _load_patients(fixture.race_patients[0][:2])
    far = _today() + timedelta(days=80)
    out: dict[str, Any] = {}
    cases = [
        ("busy_booking", busy_type, _local(far, 6), patients[0]),
        ("infusion_booking", race_type, _local(far, 12), patients[1]),
        ("infusion_taken", race_type, _local(far, 12), patients[0]),
    ]
    for label, appointment_type, start, patient in cases:
        with CaptureQueriesContext(connection) as captured, contextlib.suppress(SlotTaken):
            appointment_book(appointment_type=appointment_type, patient=patient, start=start)
        out[label] = len(captured.captured_queries)
        if os.environ.get("BENCH_VERBOSE"):
            for query in captured.captured_queries:
                print(f"    [{label}] {query['time']}s {query['sql'][:160]}")
    return out


COST_SAMPLE = 200


def cost_per_booking(fixture: Fixture) -> dict[str, Any]:
    """One client alone: CPU per booking in this process and in its PostgreSQL backend, with
    and without the listeners of ``appointment_changed``. Stable where wall-clock figures on a
    shared machine are not."""

    from booking.services import appointment_book

    appointment_type = _load_type(fixture.busy_type_id)
    # The tail of the last client's slots: the throughput phases never get that far.
    slots = _client_slots(CLIENTS - 1)[-2 * COST_SAMPLE - 20 :]
    patients = _load_patients(fixture.client_patients[CLIENTS - 1][-len(slots) :])
    for n in range(20):
        appointment_book(appointment_type=appointment_type, patient=patients[n], start=slots[n])
    backend = _backend_pid()
    out: dict[str, Any] = {}
    for label, first in (("with_listeners", 20), ("unheard", 20 + COST_SAMPLE)):
        with contextlib.ExitStack() as stack:
            if label == "unheard":
                stack.enter_context(_listeners_silenced())
            server_before = _backend_cpu_s(backend)
            wall, cpu = time.perf_counter(), time.process_time()
            for n in range(first, first + COST_SAMPLE):
                appointment_book(
                    appointment_type=appointment_type, patient=patients[n], start=slots[n]
                )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            server_after = _backend_cpu_s(backend)
        out[label] = {
            "wall_ms": 1000 * wall / COST_SAMPLE,
            "python_cpu_ms": 1000 * cpu / COST_SAMPLE,
            "postgres_cpu_ms": (
                1000 * (server_after - server_before) / COST_SAMPLE
                if server_before is not None and server_after is not None
                else None
            ),
        }
    return out


def _cpu_line(figures: dict[str, Any], unit: str) -> str:
    server = figures["server_cpu_ms_per_op"]
    if server is None:
        return f"client CPU {figures['client_cpu_ms_per_op']:.2f} ms per {unit}"
    return (
        f"CPU {figures['client_cpu_ms_per_op']:.2f} ms client + {server:.2f} ms PostgreSQL per "
        f"{unit}, {figures['cores_used']:.2f} of {os.cpu_count()} cores"
    )


def main() -> None:
    setup_django()
    from config.celery import app

    app.conf.update(broker_url=BROKER_URL)
    info = machine_info()
    print("machine:", json.dumps(info))
    print(f"load average before: {os.getloadavg()}; broker for after-commit tasks: {BROKER_URL}")
    fixture = build()
    print(f"queries per booking: {queries_per_booking(fixture)}")
    for label, cost in cost_per_booking(fixture).items():
        server = cost["postgres_cpu_ms"]
        print(
            f"one client alone, {label}: {cost['wall_ms']:.2f} ms wall, "
            f"{cost['python_cpu_ms']:.2f} ms Python CPU"
            + (f" + {server:.2f} ms PostgreSQL CPU" if server is not None else "")
            + " per booking"
        )

    r = race(fixture)
    print(
        f"race: {RACE_WORKERS} processes x {RACE_ROUNDS} rounds, winners per round "
        f"{r['winners_per_round']}, {len(r['failures'])} failures, overlaps {r['overlaps']}"
    )
    for failure in r["failures"][:10]:
        print(f"  failure: {failure}")
    print(
        f"race answers: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"max {r['max_ms']:.1f} ms (target each < {RACE_TARGET_MS:.0f} ms)"
    )

    t = throughput(fixture)
    alone = throughput(fixture, listeners=False, first=t["slots_used"])
    for label, figures in (("throughput", t), ("  same, appointment_changed unheard", alone)):
        print(
            f"{label}: {CLIENTS} clients x {DURATION_S:.0f} s, one prescriber: "
            f"{figures['bookings']} bookings in {figures['seconds']:.2f} s = "
            f"{figures['bookings_per_s']:.0f}/s, p50 {figures['p50_ms']:.2f} ms, "
            f"p99 {figures['p99_ms']:.2f} ms, errors {figures['errors']}, "
            f"overlaps {figures['overlaps']}; {_cpu_line(figures, 'booking')}"
        )
        if figures["ran_out_of_slots"]:
            print("  warning: a client ran out of slots before the deadline")
    print(
        f"  targets: >= {BOOKINGS_TARGET:.0f} bookings/s, p99 <= {BOOKING_P99_TARGET_MS:.0f} ms "
        "(the first line: the real service, with its listeners)"
    )

    raw = raw_ceiling(fixture)
    ratio = t["bookings_per_s"] / raw["inserts_per_s"]
    print(
        f"raw ceiling: {CLIENTS} processes, single-row autocommit INSERTs: {raw['inserts']} in "
        f"{raw['seconds']:.2f} s = {raw['inserts_per_s']:.0f}/s, overlaps {raw['overlaps']}; "
        f"{_cpu_line(raw, 'insert')}"
    )
    print(f"ratio vs raw: {ratio:.3f} (target >= {RATIO_TARGET})")
    rep = replay(fixture)
    print(
        f"the booking's own {rep['statements']} statements and its commit, replayed by "
        f"{CLIENTS} plain clients: {rep['bookings']} in {rep['seconds']:.2f} s = "
        f"{rep['bookings_per_s']:.0f}/s, p50 {rep['p50_ms']:.2f} ms, p99 {rep['p99_ms']:.2f} ms, "
        f"overlaps {rep['overlaps']}; {_cpu_line(rep, 'booking')}; "
        f"{rep['bookings_per_s'] / raw['inserts_per_s']:.3f} of the raw ceiling"
    )
    print(f"load average after: {os.getloadavg()}")

    overlaps = r["overlaps"] + t["overlaps"] + alone["overlaps"] + raw["overlaps"] + rep["overlaps"]
    print(
        json.dumps(
            {
                "bench": "booking_race",
                "rounds": RACE_ROUNDS,
                "max_winners": r["max_winners"],
                "min_winners": r["min_winners"],
                "overlaps": overlaps,
                "failures": len(r["failures"]),
                "p99_ms": round(r["p99_ms"], 2),
                "bookings_per_s": round(t["bookings_per_s"], 1),
                "booking_p99_ms": round(t["p99_ms"], 2),
                "raw_inserts_per_s": round(raw["inserts_per_s"], 1),
                "ratio_vs_raw": round(ratio, 3),
                "unheard_bookings_per_s": round(alone["bookings_per_s"], 1),
                "unheard_booking_p99_ms": round(alone["p99_ms"], 2),
                "replayed_bookings_per_s": round(rep["bookings_per_s"], 1),
                "replayed_ratio_vs_raw": round(rep["bookings_per_s"] / raw["inserts_per_s"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()

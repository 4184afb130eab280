"""Availability read path: the engine alone, the engine fed from PostgreSQL, and a naive scan.

Run against PostgreSQL (the data is built on first run and reused afterwards)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_bench \\
        .venv/bin/python -m bench.availability

One location in America/New_York: 8 prescribers, 12 nurses watching three chairs each, 16 chairs
and 2 consult rooms, split shifts, time off and a closure. The 14 days measured (2026-10-26 to
2026-11-08) contain the fall-back change of 2026-11-01 and ~2,500 active allocations; the table
holds over a million allocation rows in all (a year of history, later weeks, cancelled visits
and a second, larger location). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.common import machine_info, percentile, setup_django

ZONE_NAME = "America/New_York"
FIRST_DAY = date(2026, 10, 26)
LAST_DAY = date(2026, 11, 8)
NOW = datetime(2026, 10, 25, 12, 0, tzinfo=UTC)
MAIN_SLUG = "bench-availability"
OTHER_SLUG = "bench-availability-other"
PATIENT_DOMAIN = "bench-availability.invalid"
# Written last, once every part is committed: a location carrying it holds complete data.
DATA_VERSION = "bench.availability data v1"
TARGET_WINDOW_ALLOCATIONS = 2_500
TARGET_TOTAL_ALLOCATIONS = 1_000_000
OTHER_STREAMS = 100
PATIENTS_PER_STREAM = 20
SLOTS_PER_DAY = 8
CANCELLED_VISITS = 150
SEED = 20261101


def days() -> list[date]:
    return [FIRST_DAY + timedelta(days=n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]


# --- Data ------------------------------------------------------------------------------------


def _delete_previous() -> bool:
    """Remove this benchmark's rows; whether there were any."""
    from django.db import connection

    from scheduling.models import AppointmentType, Location, Resource

    locations = list(Location.objects.filter(slug__in=[MAIN_SLUG, OTHER_SLUG]))
    with connection.cursor() as cur:
        if locations:
            # The million rows go by hand: they were inserted without signals, so nothing else
            # refers to them, and the ORM would load each one to find out.
            ids = [location.pk for location in locations]
            cur.execute(
                "DELETE FROM booking_allocation WHERE appointment_id IN "
                "(SELECT id FROM booking_appointment WHERE location_id = ANY(%s))",
                [ids],
            )
            cur.execute("DELETE FROM booking_appointment WHERE location_id = ANY(%s)", [ids])
            # The rest through the ORM, so whatever other apps attach to types, resources and
            # locations goes with them.
            AppointmentType.objects.filter(location__in=locations).delete()
            Resource.objects.filter(location__in=locations).delete()
            Location.objects.filter(pk__in=ids).delete()
        cur.execute("DELETE FROM booking_patient WHERE email LIKE %s", [f"%@{PATIENT_DOMAIN}"])
        return bool(locations) or cur.rowcount > 0


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(ZONE_NAME))


def _staff_and_rooms(location: Any) -> dict[str, list[Any]]:
    from datetime import time as clock

    from scheduling.models import Resource, ResourceKind, StaffRole, TimeOff, WorkingHours

    def make(kind: str, role: str, name: str, capacity: int = 1) -> Resource:
        return Resource(location=location, kind=kind, role=role, name=name, capacity=capacity)

    prescribers = [make(ResourceKind.STAFF, StaffRole.PRESCRIBER, f"Dr. {n}") for n in range(1, 9)]
    nurses = [make(ResourceKind.STAFF, StaffRole.NURSE, f"Nurse {n}", 3) for n in range(1, 13)]
    chairs = [make(ResourceKind.CHAIR, "", f"Chair {n}") for n in range(1, 17)]
    rooms = [make(ResourceKind.ROOM, "", f"Room {n}") for n in range(1, 3)]
    Resource.objects.bulk_create(prescribers + nurses + chairs + rooms)

    hours: list[WorkingHours] = []

    def shift(resource: Resource, weekdays: range | list[int], *spans: tuple[str, str]) -> None:
        for weekday in weekdays:
            for start, end in spans:
                hours.append(
                    WorkingHours(
                        resource=resource,
                        location=location,
                        weekday=weekday,
                        start=clock.fromisoformat(start),
                        end=clock.fromisoformat(end),
                    )
                )

    weekdays = range(5)
    for n, prescriber in enumerate(prescribers):
        if n < 4:  # split shifts around lunch
            shift(prescriber, weekdays, ("08:00", "12:00"), ("13:00", "18:00"))
        else:
            shift(prescriber, weekdays, ("10:00", "14:00"), ("14:30", "19:00"))
    shift(prescribers[0], [5], ("09:00", "13:00"))
    shift(prescribers[5], [5], ("09:00", "15:00"))
    shift(prescribers[7], [6], ("10:00", "14:00"))
    for n, nurse in enumerate(nurses):
        if n < 6:
            shift(nurse, weekdays, ("07:30", "16:00"))
        else:
            shift(nurse, weekdays, ("11:00", "15:00"), ("15:30", "20:00"))
    for nurse in nurses[:4]:
        shift(nurse, [5], ("08:30", "15:00"))
    shift(nurses[4], [6], ("09:30", "14:30"))
    for chair in chairs:
        shift(chair, range(6), ("07:00", "20:00"))
        shift(chair, [6], ("09:00", "15:00"))
    for room in rooms:
        shift(room, weekdays, ("08:00", "18:30"))
    WorkingHours.objects.bulk_create(hours)

    TimeOff.objects.bulk_create(
        [
            TimeOff(
                resource=prescribers[2],
                start=_local(date(2026, 10, 28), 0),
                end=_local(date(2026, 10, 29), 0),
                reason="sick",
            ),
            TimeOff(
                resource=prescribers[5],
                start=_local(date(2026, 11, 4), 0),
                end=_local(date(2026, 11, 7), 0),
                reason="vacation",
            ),
            TimeOff(
                resource=prescribers[1],
                start=_local(date(2026, 11, 3), 14, 30),
                end=_local(date(2026, 11, 3), 16, 0),
                reason="appointment",
            ),
            TimeOff(
                resource=nurses[4],
                start=_local(date(2026, 11, 2), 12),
                end=_local(date(2026, 11, 2), 20),
                reason="",
            ),
            TimeOff(
                resource=nurses[9],
                start=_local(date(2026, 10, 30), 0),
                end=_local(date(2026, 11, 3), 0),
                reason="vacation",
            ),
            TimeOff(
                resource=chairs[3],
                start=_local(date(2026, 10, 30), 7),
                end=_local(date(2026, 10, 31), 20),
                reason="maintenance",
            ),
            TimeOff(
                resource=prescribers[0],
                start=_local(date(2026, 9, 1), 0),
                end=_local(date(2026, 9, 8), 0),
                reason="vacation",
            ),
            TimeOff(
                resource=nurses[0],
                start=_local(date(2026, 12, 24), 0),
                end=_local(date(2026, 12, 27), 0),
                reason="holiday",
            ),
        ]
    )
    return {"prescriber": prescribers, "nurse": nurses, "chair": chairs, "room": rooms}


def _place_window_visits(types: dict[str, Any], rng: random.Random) -> list[tuple[str, int, list]]:
    """Visits in the window placed on free lanes: (type slug, start minute, placements)."""
    from scheduling.availability import local_to_minutes
    from scheduling.selectors import schedule_load

    problems = {
        slug: schedule_load(appointment_type=t, days=days(), now=NOW, enforce_notice=False)
        for slug, t in types.items()
    }
    busy: dict[tuple[int, int], list[tuple[int, int]]] = {}
    capacity: dict[int, int] = {}
    working: dict[int, list[tuple[int, int]]] = {}
    blocked: dict[int, list[tuple[int, int]]] = {}
    for problem in problems.values():
        for rid, calendar in problem.calendars.items():
            capacity[rid] = calendar.capacity
            working[rid] = calendar.working
            blocked[rid] = calendar.blocked

    def usable(rid: int, lane: int, lo: int, hi: int) -> bool:
        if not any(s <= lo and hi <= e for s, e in working[rid]):
            return False
        if any(s < hi and lo < e for s, e in blocked[rid]):
            return False
        return not any(s < hi and lo < e for s, e in busy.get((rid, lane), ()))

    zone = problems["iv-mood"].zone
    visits: list[tuple[str, int, list]] = []
    allocations = 0
    attempts = 0
    while allocations < TARGET_WINDOW_ALLOCATIONS and attempts < 200_000:
        attempts += 1
        slug = "iv-mood" if rng.random() < 0.75 else "consultation"
        day = rng.choice(days())
        t = local_to_minutes(zone, day, rng.randrange(7 * 60, 19 * 60, 15))
        if t is None:
            continue
        placements = []
        for need in problems[slug].needs:
            lo, hi = t + need.lead, t + need.tail
            candidates = list(need.candidates)
            rng.shuffle(candidates)
            spot = next(
                (
                    (rid, lane)
                    for rid in candidates
                    for lane in range(capacity[rid])
                    if usable(rid, lane, lo, hi)
                ),
                None,
            )
            if spot is None:
                break
            placements.append((spot[0], spot[1], lo, hi))
        else:
            for rid, lane, lo, hi in placements:
                busy.setdefault((rid, lane), []).append((lo, hi))
            visits.append((slug, t, placements))
            allocations += len(placements)
    return visits


def _insert_window_visits(
    location: Any, types: dict[str, Any], visits: list[tuple[str, int, list]], rng: random.Random
) -> None:
    from booking.models import Allocation, Appointment, AppointmentStatus, Patient
    from scheduling.availability import from_minutes

    # Cancelled visits keep their (inactive) rows, sometimes over a time that is booked again.
    cancelled = []
    for slug, t, placements in rng.sample(visits, CANCELLED_VISITS):
        shift = rng.choice([-30, 0, 15, 45])
        moved = [(rid, lane, lo + shift, hi + shift) for rid, lane, lo, hi in placements]
        cancelled.append((slug, t + shift, moved))
    everything = [(v, True) for v in visits] + [(v, False) for v in cancelled]
    patients = Patient.objects.bulk_create(
        Patient(
            first_name=f"W{n}",
            last_name="Bench",
            email=f"window{n}@{PATIENT_DOMAIN}",
            phone="+12125550000",
            date_of_birth=date(1980, 1, 1),
        )
        for n in range(len(everything))
    )
    appointments = Appointment.objects.bulk_create(
        Appointment(
            reference=f"BAW{n:09d}",
            location=location,
            appointment_type=types[slug],
            patient=patient,
            start=from_minutes(t),
            end=from_minutes(t + types[slug].duration_minutes),
            status=AppointmentStatus.BOOKED if active else AppointmentStatus.CANCELLED,
        )
        for n, (((slug, t, _), active), patient) in enumerate(
            zip(everything, patients, strict=True)
        )
    )
    Allocation.objects.bulk_create(
        Allocation(
            appointment=appointment,
            resource_id=rid,
            lane=lane,
            start=from_minutes(lo),
            end=from_minutes(hi),
            active=active,
        )
        for appointment, ((_, _, placements), active) in zip(appointments, everything, strict=True)
        for rid, lane, lo, hi in placements
    )


def _columns(cur: Any, table: str) -> list[str]:
    from django.db import connection

    return [c.name for c in connection.introspection.get_table_description(cur, table)]


def _templated_select(cur: Any, table: str, values: dict[str, str]) -> tuple[str, str]:
    """Column list and select list for ``table``: ``values`` where given, else the template's.

    Columns other apps add later (with Python-side defaults) are copied from a template row
    created through the ORM, so the bulk insert keeps working as the models grow.
    """
    columns = [c for c in _columns(cur, table) if c != "id"]
    missing = set(values) - set(columns)
    if missing:
        raise RuntimeError(f"{table} has no column(s) {sorted(missing)}")
    quoted = ", ".join(f'"{c}"' for c in columns)
    selected = ", ".join(values.get(c, f'tmpl."{c}"') for c in columns)
    return quoted, selected


def _stream_insert_sql(cur: Any) -> str:
    appt_columns, appt_select = _templated_select(
        cur,
        "booking_appointment",
        {
            "reference": "%(prefix)s || lpad((row_number() OVER ())::text, 9, '0')",
            "start": "v.start",
            "end": "v.start + interval '90 minutes'",
            "status": "CASE WHEN v.start < %(now)s THEN 'discharged' ELSE 'booked' END",
            "appointment_type_id": "%(type_id)s",
            "location_id": "%(location_id)s",
            "patient_id": "v.patient_id",
        },
    )
    alloc_columns, alloc_select = _templated_select(
        cur,
        "booking_allocation",
        {
            "lane": "h.lane",
            "start": "appt.start",
            "end": "appt.start + h.minutes * interval '1 minute'",
            "active": "true",
            "resource_id": "h.resource_id",
            "appointment_id": "appt.id",
        },
    )
    return f"""
WITH appt AS (
    INSERT INTO booking_appointment ({appt_columns})
    SELECT {appt_select}
    FROM (
        SELECT sp.patient_id,
               %(base)s::timestamptz + d * interval '1 day'
                   + (sp.offs + k * 120) * interval '1 minute' AS start
        FROM bench_stream_patient sp
        CROSS JOIN unnest(%(days)s::int[]) AS d
        CROSS JOIN generate_series(0, %(slots)s - 1) AS k
        WHERE sp.location_id = %(location_id)s
          AND ((d + 1000) * %(slots)s + k) %% %(per_stream)s = sp.slot
        -- In time order: the GiST indexes of the exclusion constraints grow faster that way.
        ORDER BY start
    ) v
    CROSS JOIN (SELECT * FROM booking_appointment WHERE id = %(appointment_template)s) tmpl
    RETURNING id, patient_id, start
)
INSERT INTO booking_allocation ({alloc_columns})
SELECT {alloc_select}
FROM appt
JOIN bench_stream_patient sp ON sp.patient_id = appt.patient_id
CROSS JOIN LATERAL (
    VALUES (sp.chair, 0, 100), (sp.nurse, sp.nurse_lane, 90), (sp.prescriber, 0, 15)
) AS h(resource_id, lane, minutes)
CROSS JOIN (SELECT * FROM booking_allocation WHERE id = %(allocation_template)s) tmpl
"""


def _insert_streams(
    cur: Any,
    location: Any,
    appointment_type: Any,
    streams: list[tuple[int, int, int, int, int]],
    prefix: str,
    day_offsets: list[int],
) -> None:
    """Back-to-back infusions, one every two hours per stream (chair, nurse lane, prescriber)."""
    from booking.models import Allocation, Appointment, AppointmentStatus, Patient

    patients = Patient.objects.bulk_create(
        Patient(
            first_name=f"{prefix}{n}",
            last_name="Bench",
            email=f"{prefix.lower()}{n}@{PATIENT_DOMAIN}",
            phone="+12125550000",
            date_of_birth=date(1980, 1, 1),
        )
        for n in range(len(streams) * PATIENTS_PER_STREAM)
    )
    template = Appointment.objects.create(
        reference=f"{prefix}TEMPLATE",
        location=location,
        appointment_type=appointment_type,
        patient=patients[0],
        start=NOW - timedelta(days=3650),
        end=NOW - timedelta(days=3650) + timedelta(minutes=90),
        status=AppointmentStatus.CANCELLED,
    )
    template_allocation = Allocation.objects.create(
        appointment=template,
        resource_id=streams[0][0],
        start=template.start,
        end=template.end,
        active=False,
    )
    rows = [
        (
            patients[s * PATIENTS_PER_STREAM + slot].pk,
            location.pk,
            chair,
            nurse,
            nurse_lane,
            prescriber,
            offs,
            slot,
        )
        for s, (chair, nurse, nurse_lane, prescriber, offs) in enumerate(streams)
        for slot in range(PATIENTS_PER_STREAM)
    ]
    cur.executemany(
        "INSERT INTO bench_stream_patient VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows
    )
    cur.execute(
        _stream_insert_sql(cur),
        {
            "prefix": prefix,
            "now": NOW,
            "type_id": appointment_type.pk,
            "location_id": location.pk,
            "base": datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, 12, tzinfo=UTC),
            "days": day_offsets,
            "slots": SLOTS_PER_DAY,
            "per_stream": PATIENTS_PER_STREAM,
            "appointment_template": template.pk,
            "allocation_template": template_allocation.pk,
        },
    )
    template_allocation.delete()
    template.delete()


def _stream_worker(
    jobs: list[tuple[int, int, list[tuple[int, int, int, int, int]], str, list[int]]],
) -> None:
    """Insert ``jobs`` (location, type, streams, prefix, days) in one transaction of its own."""
    from django.db import connection, transaction

    from scheduling.models import AppointmentType, Location

    try:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE bench_stream_patient (patient_id bigint PRIMARY KEY, "
                "location_id bigint, chair bigint, nurse bigint, nurse_lane int, "
                "prescriber bigint, offs int, slot int) ON COMMIT DROP"
            )
            for location_id, type_id, streams, prefix, day_offsets in jobs:
                _insert_streams(
                    cur,
                    Location.objects.get(pk=location_id),
                    AppointmentType.objects.get(pk=type_id),
                    streams,
                    prefix,
                    day_offsets,
                )
    finally:
        connection.close()


def build() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, transaction

    from scheduling.defaults import appointment_types_install_defaults
    from scheduling.models import Closure, Location, Resource, ResourceKind, StaffRole

    rng = random.Random(SEED)
    started = time.perf_counter()

    def phase(label: str) -> None:
        print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)

    with transaction.atomic():
        deleted = _delete_previous()
    if deleted:
        # Inserting next to a million dead rows makes every exclusion check wade through their
        # index entries; vacuum them away first.
        with connection.cursor() as cur:
            for table in ("booking_allocation", "booking_appointment", "booking_patient"):
                cur.execute(f"VACUUM {table}")
        phase("previous data removed")
    with transaction.atomic():
        main = Location.objects.create(
            slug=MAIN_SLUG,
            name="Bench clinic",
            public_name="Bench Health",
            timezone=ZONE_NAME,
            address="building",
        )
        other = Location.objects.create(
            slug=OTHER_SLUG, name="Bench clinic 2", public_name="Bench Health 2", timezone=ZONE_NAME
        )
        types = {t.slug: t for t in appointment_types_install_defaults(location=main)}
        other_types = {t.slug: t for t in appointment_types_install_defaults(location=other)}
        resources = _staff_and_rooms(main)
        Closure.objects.create(
            location=main,
            start=_local(date(2026, 11, 5), 12),
            end=_local(date(2026, 11, 5), 14),
            reason="staff training",
        )
        visits = _place_window_visits(
            {"iv-mood": types["iv-mood"], "consultation": types["consultation"]}, rng
        )
        _insert_window_visits(main, types, visits, rng)
        other_resources = Resource.objects.bulk_create(
            Resource(location=other, kind=kind, role=role, name=f"{kind} {role} {n}", capacity=1)
            for n in range(OTHER_STREAMS)
            for kind, role in (
                (ResourceKind.CHAIR, ""),
                (ResourceKind.STAFF, StaffRole.NURSE),
                (ResourceKind.STAFF, StaffRole.PRESCRIBER),
            )
        )
    phase("clinics and the window's visits")

    # A year of history and later weeks of the measured clinic, outside the window (its
    # (resource, start) index must skip them), and a second location's year: a table of 1M+ rows.
    # Every row is active, so the exclusion constraint's GiST index is maintained for each one:
    # that is most of the building time, so two connections share it.
    main_streams = [
        (
            resources["chair"][i].pk,
            resources["nurse"][i].pk,
            0,
            resources["prescriber"][i % 8].pk,
            (i // 8) * 20,  # prescribers shared by two streams see them 20 minutes apart
        )
        for i in range(12)
    ]
    other_streams = [
        (
            other_resources[3 * n].pk,
            other_resources[3 * n + 1].pk,
            0,
            other_resources[3 * n + 2].pk,
            0,
        )
        for n in range(OTHER_STREAMS)
    ]
    main_days = list(range(-365, -2)) + list(range(17, 91))
    main_rows = len(main_streams) * len(main_days) * SLOTS_PER_DAY * 3
    window_rows = sum(len(p) for _, _, p in visits) + CANCELLED_VISITS * 3
    per_day = OTHER_STREAMS * SLOTS_PER_DAY * 3
    other_days = -(-(TARGET_TOTAL_ALLOCATIONS - main_rows - window_rows) // per_day) + 5
    other_day_offsets = list(range(20 - other_days, 20))
    # Balanced halves: the measured clinic's history with part of the second location, the rest.
    split = (
        (OTHER_STREAMS * other_days * SLOTS_PER_DAY * 3 - main_rows)
        // 2
        // (other_days * SLOTS_PER_DAY * 3)
    )
    halves = [
        [
            (main.pk, types["iv-mood"].pk, main_streams, "BAM", main_days),
            (other.pk, other_types["iv-mood"].pk, other_streams[:split], "BAO", other_day_offsets),
        ],
        [(other.pk, other_types["iv-mood"].pk, other_streams[split:], "BAP", other_day_offsets)],
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(_stream_worker, jobs) for jobs in halves]:
            done.result()
    phase("history and the second location")
    with connection.cursor() as cur:
        cur.execute("ANALYZE booking_allocation")
        cur.execute("ANALYZE booking_appointment")
        cur.execute("ANALYZE booking_patient")
    Location.objects.filter(pk=main.pk).update(address=DATA_VERSION)
    phase("analyzed")


def ensure_data(rebuild: bool) -> float:
    """Build the data unless a complete copy is there; seconds spent building."""
    from scheduling.models import Location

    if not rebuild and Location.objects.filter(slug=MAIN_SLUG, address=DATA_VERSION).exists():
        return 0.0
    started = time.perf_counter()
    build()
    return time.perf_counter() - started


# --- Measurement --------------------------------------------------------------------------------


def timed(fn: Any, iterations: int, prepare: Any = None) -> tuple[list[float], Any]:
    """Milliseconds of each call; ``prepare`` builds each call's argument outside the clock."""
    samples: list[float] = []
    result = None
    gc.collect()
    for _ in range(iterations):
        arg = prepare() if prepare else None
        started = time.perf_counter_ns()
        result = fn(arg)
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples, result


def explain_allocation_query(appointment_type: Any) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from booking.selectors import availability_problem

    with CaptureQueriesContext(connection) as captured:
        availability_problem(appointment_type=appointment_type, days=days(), now=NOW)
    sql = next(q["sql"] for q in captured.captured_queries if "booking_allocation" in q["sql"])
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS) " + sql)
        return [row[0] for row in cur.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--naive-iterations", type=int, default=10)
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data")
    parser.add_argument("--explain", action="store_true", help="print the allocation query plan")
    args = parser.parse_args()

    setup_django()
    from django.db import connection

    from booking.selectors import availability_problem
    from scheduling.availability import (
        allocate,
        available_starts,
        available_starts_bruteforce,
        from_minutes,
        grid_starts,
    )
    from scheduling.models import AppointmentType

    info = machine_info()
    print("machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    built = ensure_data(args.rebuild)
    print(f"data: built in {built:.1f} s" if built else "data: reused")

    appointment_type = AppointmentType.objects.select_related("location").get(
        location__slug=MAIN_SLUG, slug="iv-mood"
    )
    window = days()
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM booking_allocation")
        total_rows = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) FROM booking_allocation a JOIN scheduling_resource r "
            "ON r.id = a.resource_id JOIN scheduling_location l ON l.id = r.location_id "
            "WHERE l.slug = ANY(%s)",
            [[MAIN_SLUG, OTHER_SLUG]],
        )
        own_rows = cur.fetchone()[0]
    problem = availability_problem(appointment_type=appointment_type, days=window, now=NOW)
    busy = sum(len(lane) for c in problem.calendars.values() for lane in c.busy)
    print(
        f"problem: {len(window)} days {window[0]}..{window[-1]} ({ZONE_NAME}, "
        f"{problem.grid}-minute grid), {len(problem.calendars)} resources, "
        f"{busy} active allocations loaded; {own_rows} allocation rows of this benchmark, "
        f"{total_rows} in the table"
    )
    if own_rows < TARGET_TOTAL_ALLOCATIONS:
        sys.exit(f"expected at least {TARGET_TOTAL_ALLOCATIONS} allocation rows; try --rebuild")

    # Warm-up: imports, zone caches, the connection, PostgreSQL's buffers and plan.
    for _ in range(20):
        available_starts(copy.deepcopy(problem))
        available_starts(
            availability_problem(appointment_type=appointment_type, days=window, now=NOW)
        )

    # Each call gets its own copy so nothing computed by one call can serve the next.
    compute, fast = timed(available_starts, args.iterations, prepare=lambda: copy.deepcopy(problem))

    fetched_results: list[list[int]] = []

    def fetch_and_compute(_: object) -> list[int]:
        result = available_starts(
            availability_problem(appointment_type=appointment_type, days=window, now=NOW)
        )
        fetched_results.append(result)
        return result

    fetch, _ = timed(fetch_and_compute, args.iterations)
    naive, slow = timed(
        available_starts_bruteforce, args.naive_iterations, prepare=lambda: copy.deepcopy(problem)
    )

    identical = fast == slow and all(result == slow for result in fetched_results)
    # allocate() must agree with the slot list: placements exactly for the offered starts.
    offered = set(slow)
    grid = [
        t
        for t in grid_starts(problem.zone, problem.days, problem.grid)
        if problem.earliest <= t <= problem.latest
    ]
    sample = random.Random(SEED).sample(grid, min(60, len(grid))) + slow[:10] + slow[-10:]
    agrees = all((allocate(problem, t) is not None) == (t in offered) for t in sample)
    identical = identical and agrees

    local = [from_minutes(t).astimezone(problem.zone) for t in slow]
    print(
        f"slots: {len(slow)} of {len(grid)} grid starts free; first {local[0]:%a %Y-%m-%d %H:%M %Z}"
        f", last {local[-1]:%a %Y-%m-%d %H:%M %Z}"
        if local
        else "slots: none"
    )
    compute_p50, fetch_p50, naive_p50 = (percentile(s, 50) for s in (compute, fetch, naive))
    rows = [
        ("compute (available_starts)", compute),
        ("fetch + compute (availability_problem + available_starts)", fetch),
        ("naive (available_starts_bruteforce)", naive),
    ]
    for label, samples in rows:
        print(
            f"{label}: p50 {percentile(samples, 50):.3f} ms, p95 {percentile(samples, 95):.3f} ms,"
            f" n={len(samples)}"
        )
    ratio = naive_p50 / compute_p50
    print(f"ratio naive/compute p50: {ratio:.1f}x; identical output: {identical}")
    if args.explain:
        print("\n".join(explain_allocation_query(appointment_type)))
    print(
        json.dumps(
            {
                "bench": "availability",
                "compute_p50_ms": round(compute_p50, 3),
                "fetch_compute_p50_ms": round(fetch_p50, 3),
                "ratio_vs_naive": round(ratio, 1),
                "identical": identical,
            }
        )
    )


if __name__ == "__main__":
    main()

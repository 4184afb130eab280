"""Chairside side by side with django-appointment on the same clinic and the same answers.

Run against PostgreSQL (the first run needs the network, to build the peer's virtualenv)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_bench \\
        .venv/bin/python -m bench.peers

django-appointment is a Django app, not a dependency of ours: it is installed into a virtualenv
of its own under ``var/bench/peer-venv`` (rebuilt when the pinned versions change) and runs in
its own process, from ``bench/peers_peer/``, which imports nothing of Chairside. Both systems
get one generated clinic (seeded): 20 staff with the same weekly hours (Monday to Friday
08:00-18:00, Saturday 09:00-13:00) in America/New_York, 14 days from a Monday at least a week
ahead with no change of UTC offset (the peer keeps naive wall-clock times, so a window across a
change would compare different questions), and 2,500 one-staff visits of 30 or 45 minutes on a
15-minute grid. The peer cannot book a chair, so nothing here needs one.

Both are asked for every free start of a 30-minute visit, in two ways:

- the window: Chairside's availability read as the API makes it (``availability_problem`` +
  ``available_starts``, one call for any of the 20 staff over 14 days) against the peer's loop
  over staff and days of ``get_available_slots_for_staff``, the function its booking page calls;
- per staff and day, the peer's own granularity: both called once per staff member and day
  (Chairside through a visit type that names that staff member).

The starts must be the same, exactly (per staff member and in the window), or the command exits
non-zero. Then one overlapping visit is attempted in each: through the peer's booking views
(the request form, then the client-information form of a signed-in client) and through
Chairside's ``appointment_book``. Chairside's data is built in one transaction that is rolled
back; the peer's database is made afresh on every run. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from bench.common import machine_info, percentile, setup_django

ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = Path(__file__).resolve().parent / "peers_peer"
PEER_REQUIREMENTS = PEER_DIR / "requirements.txt"
PEER_VENV = ROOT / "var" / "bench" / "peer-venv"
PEER_SQLITE = ROOT / "var" / "bench" / "peer.sqlite3"

ZONE_NAME = "America/New_York"
STAFF = 20
DAYS = 14
VISITS = 2_500
GRID = 15
SEED = 20270104
# Minutes of the local day, by Python weekday (Monday 0): the same for every staff member. One
# span a day, as the peer holds one working-hours row per staff member and weekday.
HOURS = {0: (480, 1080), 1: (480, 1080), 2: (480, 1080), 3: (480, 1080), 4: (480, 1080)}
HOURS[5] = (540, 780)
SERVICES = {"check-up": 30, "long-visit": 45}
ASKED = "check-up"
LOCATION_SLUG = "bench-peers"
PATIENT_DOMAIN = "bench-peers.invalid"
TARGET_WINDOW_RATIO = 100.0
TARGET_STAFF_DAY_RATIO = 20.0

# --- The clinic (plain data, shared by both systems) -------------------------------------------


def window_first_day(today: date, zone: ZoneInfo, days: int = DAYS) -> date:
    """The first Monday at least a week after ``today`` whose ``days`` keep one UTC offset."""
    day = today + timedelta(days=7)
    day += timedelta(days=-day.weekday() % 7)
    while True:
        offsets = {
            datetime(d.year, d.month, d.day, tzinfo=zone).utcoffset()
            for d in (day + timedelta(days=n) for n in range(days + 1))
        }
        if len(offsets) == 1:
            return day
        day += timedelta(days=7)


def clinic_generate(
    *, first_day: date, staff: int = STAFF, days: int = DAYS, visits: int = VISITS, seed: int = SEED
) -> dict[str, Any]:
    """One clinic as plain JSON-able data: staff, weekly hours, services and placed visits.

    Visits are ``[staff index, ISO date, minute of the local day, service slug]``, placed at
    random on the grid inside the hours without overlapping the same staff member's others: the
    same ``first_day`` and ``seed`` give the same clinic, whichever system loads it.
    """
    rng = random.Random(seed)
    window = [first_day + timedelta(days=n) for n in range(days)]
    open_days = [day for day in window if day.weekday() in HOURS]
    taken: dict[tuple[int, date], list[tuple[int, int]]] = {}
    placed: list[list[Any]] = []
    slugs = list(SERVICES)
    attempts = 0
    while len(placed) < visits:
        attempts += 1
        if attempts > visits * 200:
            raise ValueError(f"only {len(placed)} of {visits} visits fit; ask for fewer")
        person = rng.randrange(staff)
        day = rng.choice(open_days)
        slug = slugs[0] if rng.random() < 0.7 else slugs[1]
        length = SERVICES[slug]
        opens, closes = HOURS[day.weekday()]
        start = rng.randrange(opens, closes - length + 1, GRID)
        busy = taken.setdefault((person, day), [])
        if any(s < start + length and start < e for s, e in busy):
            continue
        busy.append((start, start + length))
        placed.append([person, day.isoformat(), start, slug])
    placed.sort(key=lambda v: (v[1], v[0], v[2]))
    return {
        "zone": ZONE_NAME,
        "days": [day.isoformat() for day in window],
        "grid": GRID,
        "hours": {str(weekday): list(span) for weekday, span in HOURS.items()},
        "services": dict(SERVICES),
        "asked": ASKED,
        "staff": [f"Staff {n + 1:02d}" for n in range(staff)],
        "visits": placed,
    }


def overlap_target(clinic: dict[str, Any]) -> list[Any]:
    """The visit both systems are asked to double-book: the first of the asked service."""
    return next(v for v in clinic["visits"] if v[3] == clinic["asked"])


def local_label(moment: datetime, zone: ZoneInfo) -> str:
    """A start as both systems can name it: the local wall-clock time, to the minute."""
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


# --- Chairside ------------------------------------------------------------------------------------


def chairside_load(clinic: dict[str, Any]) -> dict[str, Any]:
    """The clinic in Chairside's tables: the location, staff, types and booked visits.

    Returns the asked type for any staff member (``pooled``), one type per staff member naming
    them (``per_staff``, in staff order) and the staff resources.
    """
    from datetime import time as clock

    from booking.models import Allocation, Appointment, AppointmentStatus, Patient
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

    zone = ZoneInfo(clinic["zone"])
    location = Location.objects.create(
        slug=LOCATION_SLUG, name="Peer bench clinic", public_name="Bench Care", timezone=zone.key
    )
    staff = Resource.objects.bulk_create(
        Resource(location=location, kind=ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name=name)
        for name in clinic["staff"]
    )
    WorkingHours.objects.bulk_create(
        WorkingHours(
            resource=person,
            location=location,
            weekday=int(weekday),
            start=clock(opens // 60, opens % 60),
            end=clock(closes // 60, closes % 60),
        )
        for person in staff
        for weekday, (opens, closes) in clinic["hours"].items()
    )

    def visit_type(slug: str, minutes: int, person: Resource | None = None) -> AppointmentType:
        appointment_type = AppointmentType.objects.create(
            location=location,
            slug=slug,
            name=slug,
            public_name="Appointment",
            kind=AppointmentKind.CONSULTATION,
            duration_minutes=minutes,
            grid_minutes=clinic["grid"],
            needs_approval=False,
        )
        ResourceRequirement.objects.create(
            appointment_type=appointment_type,
            resource_kind=ResourceKind.STAFF,
            role="" if person else StaffRole.PRESCRIBER,
            resource=person,
        )
        return appointment_type

    types = {slug: visit_type(slug, minutes) for slug, minutes in clinic["services"].items()}
    asked_minutes = clinic["services"][clinic["asked"]]
    per_staff = [
        visit_type(f"{clinic['asked']}-{n + 1}", asked_minutes, person)
        for n, person in enumerate(staff)
    ]

    visits = clinic["visits"]
    patients = Patient.objects.bulk_create(
        Patient(
            first_name=f"P{n}",
            last_name="Bench",
            email=f"p{n}@{PATIENT_DOMAIN}",
            phone="+12125550000",
            date_of_birth=date(1980, 1, 1),
        )
        for n in range(len(visits))
    )
    spans = []
    for person, day, minute, slug in visits:
        on = date.fromisoformat(day)
        start = datetime(on.year, on.month, on.day, minute // 60, minute % 60, tzinfo=zone)
        spans.append((staff[person], start, start + timedelta(minutes=clinic["services"][slug])))
    appointments = Appointment.objects.bulk_create(
        Appointment(
            reference=f"BPR{n:09d}",
            location=location,
            appointment_type=types[visit[3]],
            patient=patient,
            start=start,
            end=end,
            status=AppointmentStatus.BOOKED,
        )
        for n, (visit, patient, (_, start, end)) in enumerate(
            zip(visits, patients, spans, strict=True)
        )
    )
    Allocation.objects.bulk_create(
        Allocation(appointment=appointment, resource=person, lane=0, start=start, end=end)
        for appointment, (person, start, end) in zip(appointments, spans, strict=True)
    )
    return {"pooled": types[clinic["asked"]], "per_staff": per_staff, "staff": staff}


def chairside_starts(appointment_type: Any, days: Sequence[date], now: datetime) -> list[int]:
    """Free starts (UTC minutes) as the availability endpoint reads and computes them."""
    from booking.selectors import availability_problem
    from scheduling.availability import available_starts

    return available_starts(
        availability_problem(appointment_type=appointment_type, days=days, now=now)
    )


def chairside_overlap(
    clinic: dict[str, Any], loaded: dict[str, Any], now: datetime
) -> tuple[bool, str]:
    """Try to book the target visit's staff member again at its time, through the service."""
    from django.db import transaction

    from booking.errors import BookingError
    from booking.models import Patient
    from booking.services import appointment_book

    person, day, minute, _ = overlap_target(clinic)
    on = date.fromisoformat(day)
    start = datetime(
        on.year, on.month, on.day, minute // 60, minute % 60, tzinfo=ZoneInfo(clinic["zone"])
    )
    patient = Patient.objects.create(
        first_name="Overlap",
        last_name="Bench",
        email=f"overlap@{PATIENT_DOMAIN}",
        phone="+12125550001",
        date_of_birth=date(1980, 1, 1),
    )
    try:
        with transaction.atomic():
            appointment_book(
                appointment_type=loaded["per_staff"][person],
                patient=patient,
                start=start,
                now=now,
            )
    except BookingError as refused:
        return False, f"{type(refused).__name__}: {refused}"
    return True, "booked"


def timed_calls(calls: Sequence[Callable[[], object]], repetitions: int) -> list[list[float]]:
    """Seconds of each call, per repetition; one untimed pass first, to warm caches and plans."""
    for call in calls:
        call()
    rounds = []
    gc.collect()
    for _ in range(repetitions):
        samples = []
        for call in calls:
            started = time.perf_counter_ns()
            call()
            samples.append((time.perf_counter_ns() - started) / 1e9)
        rounds.append(samples)
    return rounds


# --- The peer -------------------------------------------------------------------------------------


def peer_pins() -> str:
    return PEER_REQUIREMENTS.read_text(encoding="utf-8")


def peer_version() -> str:
    pin = next(line for line in peer_pins().splitlines() if line.startswith("django-appointment=="))
    return "django-appointment " + pin.split("==", 1)[1]


def peer_venv(rebuild: bool = False) -> Path:
    """The peer's interpreter, its virtualenv made (or remade) for the pinned versions."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / ".pins"
    pins = peer_pins()
    if rebuild or not marker.exists() or marker.read_text(encoding="utf-8") != pins:
        print(f"peer: building {PEER_VENV.relative_to(ROOT)} ({peer_version()})", flush=True)
        shutil.rmtree(PEER_VENV, ignore_errors=True)
        PEER_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(PEER_REQUIREMENTS)],
            check=True,
        )
        marker.write_text(pins, encoding="utf-8")
    return python


def peer_database(kind: str) -> str:
    """A fresh, empty database for the peer: PostgreSQL beside ours, or a SQLite file."""
    if kind == "sqlite":
        PEER_SQLITE.parent.mkdir(parents=True, exist_ok=True)
        PEER_SQLITE.unlink(missing_ok=True)
        return f"sqlite:///{PEER_SQLITE}"
    import psycopg
    from psycopg import sql

    parts = urlsplit(os.environ["DATABASE_URL"])
    name = parts.path.lstrip("/") + "_peer"
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return parts._replace(path="/" + name).geturl()


def peer_run(
    python: Path, clinic: dict[str, Any], database: str, repetitions: int
) -> dict[str, Any]:
    """Load the clinic into the peer, ask it, time it and try the overlap, in its own process."""
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as scratch:
        request, answer = Path(scratch) / "request.json", Path(scratch) / "answer.json"
        request.write_text(
            json.dumps(
                {"clinic": clinic, "repetitions": repetitions, "target": overlap_target(clinic)}
            ),
            encoding="utf-8",
        )
        # -E -s: no PYTHONPATH or user site, so nothing of ours can leak into the peer's process.
        # The peer logs to stdout at DEBUG level whatever its settings say: kept for failures.
        done = subprocess.run(  # noqa: S603
            [str(python), "-E", "-s", str(PEER_DIR / "run.py"), str(request), str(answer)],
            check=False,
            capture_output=True,
            text=True,
            cwd=scratch,
            env={"PATH": os.environ.get("PATH", ""), "PEER_DATABASE_URL": database},
        )
        if done.returncode != 0:
            sys.exit(f"the peer's run failed:\n{done.stdout}\n{done.stderr}")
        return json.loads(answer.read_text(encoding="utf-8"))


# --- The comparison -------------------------------------------------------------------------------


def differences(ours: set[Any], theirs: set[Any], limit: int = 10) -> list[str]:
    """The first differences between two answers, for the report."""
    return [f"only Chairside: {item}" for item in sorted(ours - theirs)[:limit]] + [
        f"only the peer: {item}" for item in sorted(theirs - ours)[:limit]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--staff", type=int, default=STAFF)
    parser.add_argument("--visits", type=int, default=VISITS)
    parser.add_argument("--repetitions", type=int, default=5, help="timed rounds of each side")
    parser.add_argument(
        "--peer-database",
        choices=["postgres", "sqlite"],
        default="postgres",
        help="the peer's database: PostgreSQL on our server (default) or a SQLite file",
    )
    parser.add_argument("--rebuild-venv", action="store_true", help="remake the peer's venv")
    args = parser.parse_args()

    setup_django()
    from django.db import transaction

    from scheduling.availability import from_minutes

    info = machine_info()
    print("machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    python = peer_venv(args.rebuild_venv)
    zone = ZoneInfo(ZONE_NAME)
    now = datetime.now(UTC)
    first_day = window_first_day(now.astimezone(zone).date(), zone)
    clinic = clinic_generate(first_day=first_day, staff=args.staff, visits=args.visits)
    days = [date.fromisoformat(day) for day in clinic["days"]]
    staff_days = [(n, day) for day in days for n in range(len(clinic["staff"]))]
    print(
        f"clinic: {len(clinic['staff'])} staff, {len(days)} days {days[0]}..{days[-1]} "
        f"({ZONE_NAME}), {len(clinic['visits'])} visits; asked: {clinic['asked']} "
        f"({clinic['services'][clinic['asked']]} min, {GRID}-minute grid)",
        flush=True,
    )

    peer = peer_run(python, clinic, peer_database(args.peer_database), args.repetitions)
    print(f"peer: {peer['version']} on Django {peer['django']}, {peer['database']}", flush=True)

    with transaction.atomic():
        loaded = chairside_load(clinic)
        pooled, per_staff, names = loaded["pooled"], loaded["per_staff"], clinic["staff"]

        window_answer = chairside_starts(pooled, days, now)
        ours_window = {local_label(from_minutes(t), zone) for t in window_answer}
        ours_staff = {
            (names[n], local_label(from_minutes(t), zone))
            for n, day in staff_days
            for t in chairside_starts(per_staff[n], [day], now)
        }
        # The window is one call: twenty of them a round, for a median as steady as the peer's.
        window_rounds = timed_calls(
            [functools.partial(chairside_starts, pooled, days, now)] * 20, args.repetitions
        )
        staff_day_rounds = timed_calls(
            [
                functools.partial(chairside_starts, per_staff[n], [day], now)
                for n, day in staff_days
            ],
            args.repetitions,
        )
        chairside_allowed, chairside_said = chairside_overlap(clinic, loaded, now)
        transaction.set_rollback(True)

    theirs_staff = {(person, start) for person, start in peer["starts"]}
    theirs_window = {start for _, start in theirs_staff}
    same_window = ours_window == theirs_window
    same_staff = ours_staff == theirs_staff
    print(
        f"free starts: window Chairside {len(ours_window)}, peer {len(theirs_window)}, "
        f"same: {same_window}; per staff member Chairside {len(ours_staff)}, "
        f"peer {len(theirs_staff)}, same: {same_staff}"
    )
    for line in differences(ours_window, theirs_window) + differences(ours_staff, theirs_staff):
        print("  " + line)

    window_s = {
        "chairside": percentile([s for r in window_rounds for s in r], 50),
        "peer": percentile([sum(r) for r in peer["rounds"]], 50),
    }
    per_staff_day_ms = {
        "chairside": percentile([s for r in staff_day_rounds for s in r], 50) * 1000,
        "peer": percentile([s for r in peer["rounds"] for s in r], 50) * 1000,
    }
    ratio_window = window_s["peer"] / window_s["chairside"]
    ratio_staff_day = per_staff_day_ms["peer"] / per_staff_day_ms["chairside"]
    print(
        f"window ({len(staff_days)} staff-days): Chairside {window_s['chairside'] * 1000:.2f} ms "
        f"(one call), peer {window_s['peer']:.3f} s (a call per staff-day); "
        f"{ratio_window:.0f}x (target >= {TARGET_WINDOW_RATIO:.0f}x)"
    )
    print(
        f"per staff-day: Chairside {per_staff_day_ms['chairside']:.3f} ms, "
        f"peer {per_staff_day_ms['peer']:.3f} ms; {ratio_staff_day:.1f}x "
        f"(target >= {TARGET_STAFF_DAY_RATIO:.0f}x); medians of {args.repetitions} rounds"
    )
    print(f"overlap: peer {peer['overlap_said']}; Chairside {chairside_said}")
    print(
        json.dumps(
            {
                "bench": "peers",
                "free_starts": {
                    "chairside": len(ours_window),
                    "peer": len(theirs_window),
                    "same": same_window and same_staff,
                },
                "free_staff_starts": {"chairside": len(ours_staff), "peer": len(theirs_staff)},
                "window_s": {k: round(v, 6) for k, v in window_s.items()},
                "per_staff_day_ms": {k: round(v, 4) for k, v in per_staff_day_ms.items()},
                "ratio_window": round(ratio_window, 1),
                "ratio_per_staff_day": round(ratio_staff_day, 1),
                "peer_overlap_allowed": peer["overlap_allowed"],
                "chairside_overlap_allowed": chairside_allowed,
                "peer": peer["version"],
                "peer_database": args.peer_database,
            }
        )
    )
    if not (same_window and same_staff):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Growth: the same window read and written at 1M, 10M (and more) visits of a chain's history.

Run against a database of its own (``--fresh`` drops and recreates the one DATABASE_URL names)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_growth \\
        .venv/bin/python -m bench.growth --fresh --sizes 1M,10M

One database grows: the window is built first, then history is added (in SQL, straight from
``generate_series``) up to the smallest size, the operations are timed, more history is added up
to the next size, and they are timed again. The window is one location in America/New_York with
10 chairs, 10 nurses and 10 prescribers (a stream each) and 2 rooms, and its visits of one week
at least a week ahead (two thirds of the slots), booked with their reminders planned by
notifications itself. The history is the chain's past: ``CHAIN_LOCATIONS`` locations (the
window's among them) of 10 streams, six 90-minute visits a stream a day, filled location by
location for the last year, then the year before, and so on. Per visit: 3 allocations (chair
with turnover, nurse, prescriber), 10 outbox rows (5 kinds by e-mail and text, sent; one in 200
failed), 3 audit rows in the month-partitioned log, 2 history events; a patient for every 5
visits.

Timed at each size, always on the window's same rows: availability (``availability_problem`` +
``available_starts`` for the week), a booking (``appointment_book``, rolled back), the calendar
week (``calendar_json``), the outbox claim (``messages_claim``, rolled back), the day board, the
message log and the audit log's first page (their views, through ``RequestFactory`` without the
middleware, as an administrator of the window's location), and the desk's patient search
(``patients_search``). The views write their own audit rows, as they do in production: a few
dozen rows of the window's location over the run. Before each size's timings the grown tables
are vacuumed and analysed, and the run waits for the machine to be idle (``--idle-load``).
Medians of ``--repetitions`` calls after a warm-up, and their ratio to the smallest size. After
each size the summary and one JSON object are printed, so the last line is always the JSON of
every size measured so far (~5.7 GB of database a million visits: a size the disk cannot hold
ends the run with the ones before).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import machine_info, setup_django
from bench.peers import window_first_day

ZONE_NAME = "America/New_York"
WINDOW_SLUG = "growth-window"
LOCATION_SLUG = "growth-{:03d}"
PATIENT_DOMAIN = "growth.invalid"
USERNAME = "growth-admin"
CHAIN_LOCATIONS = 100
STREAMS = 10  # per location: a chair, a nurse and a prescriber each
SLOTS = 6  # visits per stream and day, two hours apart
VISITS_PER_UNIT = STREAMS * SLOTS  # a unit of history is one location's day
DAYS_PER_YEAR = 365
PATIENT_DAYS = 5  # a history patient comes at the same hour on five consecutive days
# Window visits: stream s, day d, slot k is booked unless (s + d + k) % 3 == 0.
WINDOW_DAYS = 7
SEARCH_TEXT = "quill"  # the window's patients are Quill000..; nobody in the history is
# History outbox rows get ids below this; the window's (and anything written live) come from
# the sequence above it: newest first, as in a chain where today's messages are the newest.
OUTBOX_LIVE_IDS = 10**12
TARGET = 1.3
KINDS = ("confirmation", "prep", "evening_before", "confirm_request", "morning_of")
KIND_LEAD_MINUTES = (7 * 1440, 48 * 60, 17 * 60, 24 * 60, 3 * 60)
FIRST_NAMES = [
    "Ada",
    "Ben",
    "Cora",
    "Dev",
    "Eli",
    "Fay",
    "Gus",
    "Hana",
    "Ivo",
    "Jade",
    "Kai",
    "Lena",
    "Milo",
    "Nia",
    "Otto",
    "Pia",
    "Rex",
    "Sia",
    "Tom",
    "Uma",
]
LAST_NAMES = [
    "Adams",
    "Baker",
    "Clark",
    "Davis",
    "Evans",
    "Fisher",
    "Garcia",
    "Hill",
    "Irwin",
    "Jones",
    "King",
    "Lopez",
    "Moore",
    "Nash",
    "Owens",
    "Price",
    "Reed",
    "Smith",
    "Turner",
    "Usher",
    "Vance",
    "Walker",
    "Young",
    "Zimmer",
    "Allen",
    "Brooks",
    "Carter",
    "Dunn",
    "Ellis",
    "Ford",
    "Gray",
    "Hayes",
    "Ito",
    "Jensen",
    "Kelly",
    "Lewis",
    "Mason",
    "Nolan",
    "Ortiz",
    "Patel",
    "Ross",
    "Scott",
    "Torres",
    "Vega",
    "Ward",
    "Bishop",
    "Cole",
    "Diaz",
    "Flynn",
    "Grant",
]
OPERATIONS = (
    "availability",
    "booking",
    "calendar",
    "claim",
    "day_board",
    "message_log",
    "patient_search",
    "audit_log",
)
GROWN_TABLES = (
    "booking_patient",
    "booking_appointment",
    "booking_allocation",
    "notifications_outboundmessage",
    "booking_auditevent",
    "booking_appointmentevent",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """``10k``, ``1M``, ``2.5M`` or ``50000`` as a number of visits."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100k, 1M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return value


def size_label(visits: int) -> str:
    if visits % 1_000_000 == 0:
        return f"{visits // 1_000_000}M"
    if visits % 1_000 == 0:
        return f"{visits // 1_000}k"
    return str(visits)


# --- The database ------------------------------------------------------------------------------


def database_recreate(url: str) -> None:
    """Drop and create the database ``url`` names (before Django connects to it)."""
    from urllib.parse import urlsplit

    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        sys.exit("DATABASE_URL must name a database")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _columns(cur: Any, table: str) -> list[str]:
    from django.db import connection

    return [c.name for c in connection.introspection.get_table_description(cur, table)]


def _templated(cur: Any, table: str, values: dict[str, str]) -> tuple[str, str]:
    """Column list and select list for ``table``: ``values`` where given, else the template's
    (``tmpl``), so columns the models add later keep the window's values."""
    columns = [c for c in _columns(cur, table) if c != "id" or "id" in values]
    missing = set(values) - set(columns)
    if missing:
        raise RuntimeError(f"{table} has no column(s) {sorted(missing)}")
    return (
        ", ".join(f'"{c}"' for c in columns),
        ", ".join(values.get(c, f'tmpl."{c}"') for c in columns),
    )


def _reserve_ids(cur: Any, table: str, count: int) -> int:
    """The first of ``count`` consecutive ids taken from ``table``'s sequence."""
    cur.execute(
        "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
        "nextval(pg_get_serial_sequence(%s, 'id')) + %s - 1) - %s + 1",
        [table, table, count, count],
    )
    first: int = cur.fetchone()[0]
    return first


@dataclass
class Place:
    """One location of the chain: its iv-mood type and its streams' resources."""

    location_id: int
    type_id: int
    chairs: list[int]
    nurses: list[int]
    prescribers: list[int]


@dataclass
class Window:
    location: Any
    days: list[date]
    now: datetime
    claim_now: datetime
    board_day: date
    iv_mood: Any
    consultation: Any
    spare_patient: Any
    booking_start: datetime
    user_id: int
    templates: dict[str, int]
    place: Place


@dataclass
class Chain:
    window: Window
    history_end: date  # the last day of history (UTC)
    places: dict[int, Place] = field(default_factory=dict)
    units: int = 0  # location-days of history built
    window_visits: int = 0

    def visits(self) -> int:
        return self.window_visits + self.units * VISITS_PER_UNIT


def _resources(location: Any, rooms: int = 0) -> dict[str, list[Any]]:
    from scheduling.models import Resource, ResourceKind, StaffRole

    made = {
        "chair": [
            Resource(location=location, kind=ResourceKind.CHAIR, name=f"Chair {n + 1}")
            for n in range(STREAMS)
        ],
        "nurse": [
            Resource(
                location=location,
                kind=ResourceKind.STAFF,
                role=StaffRole.NURSE,
                name=f"Nurse {n + 1}",
            )
            for n in range(STREAMS)
        ],
        "prescriber": [
            Resource(
                location=location,
                kind=ResourceKind.STAFF,
                role=StaffRole.PRESCRIBER,
                name=f"Dr. {n + 1}",
            )
            for n in range(STREAMS)
        ],
        "room": [
            Resource(location=location, kind=ResourceKind.ROOM, name=f"Room {n + 1}")
            for n in range(rooms)
        ],
    }
    Resource.objects.bulk_create([r for group in made.values() for r in group])
    return made


def _place(location: Any, resources: dict[str, list[Any]]) -> Place:
    from scheduling.models import AppointmentType

    return Place(
        location_id=location.pk,
        type_id=AppointmentType.objects.get(location=location, slug="iv-mood").pk,
        chairs=[r.pk for r in resources["chair"]],
        nurses=[r.pk for r in resources["nurse"]],
        prescribers=[r.pk for r in resources["prescriber"]],
    )


def window_build(now: datetime) -> tuple[Window, int]:
    """The measured location and its week, through the ORM and notifications' own planning;
    the window and how many visits it holds."""
    from datetime import time as clock

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection, transaction

    from booking.access.roles import Role
    from booking.models import (
        Allocation,
        Appointment,
        AppointmentEvent,
        AppointmentStatus,
        AuditAction,
        AuditEvent,
        Patient,
        StaffProfile,
    )
    from booking.selectors import availability_problem
    from notifications.outbox import appointment_messages_plan
    from scheduling.availability import available_starts, from_minutes
    from scheduling.defaults import appointment_types_install_defaults
    from scheduling.models import Location, WorkingHours

    zone = ZoneInfo(ZONE_NAME)
    first = window_first_day(now.astimezone(zone).date(), zone, days=WINDOW_DAYS)
    days = [first + timedelta(days=n) for n in range(WINDOW_DAYS)]
    with transaction.atomic(), connection.cursor() as cur:
        # Newest first: live outbox rows above every history row (see OUTBOX_LIVE_IDS).
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('notifications_outboundmessage', 'id'), %s)",
            [OUTBOX_LIVE_IDS],
        )
        location = Location.objects.create(
            slug=WINDOW_SLUG,
            name="Growth clinic",
            public_name="Growth Health",
            timezone=ZONE_NAME,
        )
        types = {t.slug: t for t in appointment_types_install_defaults(location=location)}
        resources = _resources(location, rooms=2)
        WorkingHours.objects.bulk_create(
            WorkingHours(
                resource=r,
                location=location,
                weekday=weekday,
                start=clock(7, 0),
                end=clock(21, 0),
            )
            for group in resources.values()
            for r in group
            for weekday in range(7)
        )
        slots = [
            (s, d, k)
            for d in range(WINDOW_DAYS)
            for s in range(STREAMS)
            for k in range(SLOTS)
            if (s + d + k) % 3
        ]
        patients = Patient.objects.bulk_create(
            Patient(
                first_name=FIRST_NAMES[n % len(FIRST_NAMES)],
                last_name=f"Quill{n:03d}",
                email=f"quill{n}@{PATIENT_DOMAIN}",
                phone=f"+1212555{n:04d}",
                date_of_birth=date(1970 + n % 30, 1 + n % 12, 1 + n % 28),
                sms_consent=True,
                sms_consent_at=now,
                sms_consent_version="2026-11",
            )
            for n in range(len(slots) + 1)
        )
        spare = patients.pop()
        iv_mood = types["iv-mood"]
        visits = []
        for (_s, d, k), patient in zip(slots, patients, strict=True):
            day = days[d]
            start = datetime(day.year, day.month, day.day, 8 + 2 * k, tzinfo=zone)
            visits.append(
                Appointment(
                    location=location,
                    appointment_type=iv_mood,
                    patient=patient,
                    start=start,
                    end=start + timedelta(minutes=iv_mood.duration_minutes),
                    status=AppointmentStatus.BOOKED,
                )
            )
        Appointment.objects.bulk_create(visits)
        Allocation.objects.bulk_create(
            Allocation(
                appointment=visit,
                resource=resources[kind][s],
                lane=0,
                start=visit.start,
                end=visit.start + timedelta(minutes=minutes),
            )
            for visit, (s, _, _) in zip(visits, slots, strict=True)
            for kind, minutes in (("chair", 100), ("nurse", 90), ("prescriber", 15))
        )
        for visit in visits:
            appointment_messages_plan(appointment=visit, change="booked", now=now)
        AppointmentEvent.objects.bulk_create(
            AppointmentEvent(appointment=visit, at=now, kind="booked") for visit in visits
        )
        user = get_user_model().objects.create_user(
            username=USERNAME, email=f"admin@{PATIENT_DOMAIN}", password=None
        )
        user.groups.add(Group.objects.get(name=Role.ADMIN))
        profile = StaffProfile.objects.create(user=user)
        profile.locations.add(location)
        AuditEvent.objects.bulk_create(
            AuditEvent(
                at=now,
                user=user,
                username=USERNAME,
                action=AuditAction.CREATE,
                object_type="appointment",
                object_id=str(visit.pk),
                patient_id=visit.patient_id,
                location=location,
                method="POST",
                path="/staff/book/",
            )
            for visit in visits
        )
        consultation = types["consultation"]
        free = available_starts(
            availability_problem(appointment_type=consultation, days=days[2:3], now=now)
        )
        if not free:
            raise RuntimeError("no free consultation on the window's Wednesday")
        templates = {
            "booking_patient": patients[0].pk,
            "booking_appointment": visits[0].pk,
            "booking_allocation": Allocation.objects.filter(appointment=visits[0]).values_list(
                "pk", flat=True
            )[0],
            "booking_appointmentevent": AppointmentEvent.objects.filter(
                appointment=visits[0]
            ).values_list("pk", flat=True)[0],
        }
        cur.execute(
            "SELECT id FROM notifications_outboundmessage WHERE appointment_id = %s LIMIT 1",
            [visits[0].pk],
        )
        templates["notifications_outboundmessage"] = cur.fetchone()[0]
    window = Window(
        location=location,
        days=days,
        now=now,
        claim_now=datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC),
        board_day=days[2],
        iv_mood=iv_mood,
        consultation=consultation,
        spare_patient=spare,
        booking_start=from_minutes(free[len(free) // 2]),
        user_id=user.pk,
        templates=templates,
        place=_place(location, resources),
    )
    return window, len(visits)


def _chain_place(chain: Chain, index: int) -> Place:
    """Location ``index`` of the chain (0 is the window's), made on first use."""
    from django.db import transaction

    from scheduling.defaults import appointment_types_install_defaults
    from scheduling.models import Location

    if index == 0:
        return chain.window.place
    if index not in chain.places:
        with transaction.atomic():
            location = Location.objects.create(
                slug=LOCATION_SLUG.format(index),
                name=f"Growth clinic {index}",
                public_name=f"Growth Health {index}",
                timezone=ZONE_NAME,
            )
            appointment_types_install_defaults(location=location)
            chain.places[index] = _place(location, _resources(location))
    return chain.places[index]


def _history_sql(cur: Any, table: str) -> str:
    """One run of history (one location, consecutive days) for ``table``, as INSERT ... SELECT.

    Visit ``v`` of the run is on day ``v / 60``, stream ``v / 6 % 10``, slot ``v % 6``: in time
    order, which keeps the exclusion constraints' GiST indexes growing cheaply.
    """
    visit = f"""
        SELECT v, %(abase)s + v AS appointment_id,
               mod(v / {SLOTS}, {STREAMS}) + 1 AS stream,
               %(pbase)s + (mod(v / {SLOTS}, {STREAMS}) * %(groups)s
                            + v / {VISITS_PER_UNIT} / {PATIENT_DAYS}) * {SLOTS}
                   + mod(v, {SLOTS}) AS patient_id,
               %(day0)s::timestamptz + (v / {VISITS_PER_UNIT}) * interval '1 day'
                   + mod(v, {SLOTS}) * interval '120 minutes' AS start
        FROM generate_series(0, %(visits)s - 1) AS v
    """
    template = f"CROSS JOIN (SELECT * FROM {table} WHERE id = %(template)s) AS tmpl"
    if table == "booking_patient":
        columns, select = _templated(
            cur,
            table,
            {
                "id": "%(pbase)s + i",
                "first_name": f"(%(first_names)s::text[])[mod(i, {len(FIRST_NAMES)}) + 1]",
                "last_name": "(%(last_names)s::text[])"
                f"[mod(i * 7 + i / 50, {len(LAST_NAMES)}) + 1]",
                "email": f"'p' || (%(pbase)s + i) || '@{PATIENT_DOMAIN}'",
                "phone": "'+1646' || lpad(mod(%(pbase)s + i, 10000000)::text, 7, '0')",
                "date_of_birth": "date '1940-01-01' + mod(%(pbase)s + i, 23000)::int",
                "created_at": "%(day0)s::timestamptz",
            },
        )
        return (
            f"INSERT INTO {table} ({columns}) SELECT {select} "
            f"FROM generate_series(0, %(patients)s - 1) AS i {template}"
        )
    if table == "booking_appointment":
        columns, select = _templated(
            cur,
            table,
            {
                "id": "g.appointment_id",
                "reference": "'H' || lpad(g.appointment_id::text, 11, '0')",
                "location_id": "%(location_id)s",
                "appointment_type_id": "%(type_id)s",
                "patient_id": "g.patient_id",
                "start": "g.start",
                "end": "g.start + interval '90 minutes'",
                "status": "'discharged'",
                "version": "1",
                "created_at": "g.start - interval '7 days'",
                "updated_at": "g.start + interval '90 minutes'",
                "checked_in_at": "g.start - interval '10 minutes'",
                "discharged_at": "g.start + interval '90 minutes'",
            },
        )
        return f"INSERT INTO {table} ({columns}) SELECT {select} FROM ({visit}) AS g {template}"
    if table == "booking_allocation":
        columns, select = _templated(
            cur,
            table,
            {
                "appointment_id": "g.appointment_id",
                "resource_id": "h.resource_id",
                "lane": "0",
                "start": "g.start",
                "end": "g.start + h.minutes * interval '1 minute'",
                "active": "true",
            },
        )
        return f"""
            INSERT INTO {table} ({columns}) SELECT {select} FROM ({visit}) AS g
            CROSS JOIN LATERAL (VALUES ((%(chairs)s::bigint[])[g.stream], 100),
                                       ((%(nurses)s::bigint[])[g.stream], 90),
                                       ((%(prescribers)s::bigint[])[g.stream], 15))
                AS h(resource_id, minutes)
            {template}
        """
    if table == "notifications_outboundmessage":
        failed = "mod(g.appointment_id * 10 + j, 200) = 7"
        due = "g.start - (%(leads)s::int[])[j / 2 + 1] * interval '1 minute'"
        columns, select = _templated(
            cur,
            table,
            {
                "id": "g.appointment_id * 10 + j",
                "appointment_id": "g.appointment_id",
                "location_id": "%(location_id)s",
                "kind": "(%(kinds)s::text[])[j / 2 + 1]",
                "channel": "CASE WHEN mod(j, 2) = 0 THEN 'email' ELSE 'sms' END",
                "status": f"CASE WHEN {failed} THEN 'failed' ELSE 'sent' END",
                "due_at": due,
                "appointment_version": "1",
                "attempts": "1",
                "claimed_at": due,
                "sent_at": f"CASE WHEN {failed} THEN NULL ELSE {due} END",
                "recipient": "CASE WHEN mod(j, 2) = 0 THEN 'p' || g.patient_id || "
                f"'@{PATIENT_DOMAIN}' ELSE '+1646' || lpad(mod(g.patient_id, 10000000)::text, "
                "7, '0') END",
                "provider_id": "'hist-' || (g.appointment_id * 10 + j)",
                "detail": f"CASE WHEN {failed} THEN 'provider refused' ELSE '' END",
                "created_at": "g.start - interval '7 days'",
                "updated_at": due,
            },
        )
        return f"""
            INSERT INTO {table} ({columns}) SELECT {select} FROM ({visit}) AS g
            CROSS JOIN generate_series(0, 9) AS j {template}
        """
    if table == "booking_appointmentevent":
        columns, select = _templated(
            cur,
            table,
            {
                "appointment_id": "g.appointment_id",
                "at": "g.start + h.after",
                "kind": "h.kind",
                "detail": "''",
                "by_id": "NULL",
            },
        )
        return f"""
            INSERT INTO {table} ({columns}) SELECT {select} FROM ({visit}) AS g
            CROSS JOIN (VALUES ('booked', interval '-7 days'),
                               ('discharged', interval '90 minutes'))
                AS h(kind, after)
            {template}
        """
    if table == "booking_auditevent":
        # Explicit columns: the log is append-only, so no template row can be made and removed.
        return f"""
            INSERT INTO booking_auditevent (at, username, action, object_type, object_id, method,
                                            path, ip, detail, location_id, patient_id, user_id)
            SELECT g.start + h.after, 'desk' || %(location_id)s, h.action, 'appointment',
                   g.appointment_id::text, h.method, h.path, NULL, '{{}}'::jsonb,
                   %(location_id)s, g.patient_id, NULL
            FROM ({visit}) AS g
            CROSS JOIN (VALUES (interval '-7 days', 'create', 'POST', '/staff/book/'),
                               (interval '-10 minutes', 'view', 'GET', '/staff/board/'),
                               (interval '2 hours', 'update', 'POST', '/staff/board/step/'))
                AS h(after, action, method, path)
        """
    raise ValueError(table)


HISTORY_TABLES = (
    "booking_patient",
    "booking_appointment",
    "booking_allocation",
    "notifications_outboundmessage",
    "booking_appointmentevent",
    "booking_auditevent",
)


def _history_run(chain: Chain, index: int, year: int, lo: int, hi: int) -> None:
    """Days ``[lo, hi)`` of history year ``year`` (0: the last year) at location ``index``."""
    from django.db import connection, transaction

    place = _chain_place(chain, index)
    days = hi - lo
    # Day ``n`` of the year ``year`` lies ``year * 365 + n`` days before the end of history.
    first = chain.history_end - timedelta(days=year * DAYS_PER_YEAR + hi - 1)
    day0 = datetime(first.year, first.month, first.day, 12, tzinfo=UTC)
    groups = math.ceil(days / PATIENT_DAYS)
    visits = days * VISITS_PER_UNIT
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = off")
        # The months' partitions first: a row of a month without one would sit in the default.
        cur.execute(
            "SELECT booking_audit_partition_create(m::date) FROM generate_series("
            "date_trunc('month', %s::timestamptz - interval '8 days'), "
            "date_trunc('month', %s::timestamptz + interval '1 day'), interval '1 month') AS m",
            [day0, day0 + timedelta(days=days)],
        )
        params: dict[str, Any] = {
            "pbase": _reserve_ids(cur, "booking_patient", STREAMS * groups * SLOTS),
            "abase": _reserve_ids(cur, "booking_appointment", visits),
            "groups": groups,
            "patients": STREAMS * groups * SLOTS,
            "visits": visits,
            "day0": day0,
            "location_id": place.location_id,
            "type_id": place.type_id,
            "chairs": place.chairs,
            "nurses": place.nurses,
            "prescribers": place.prescribers,
            "first_names": list(FIRST_NAMES),
            "last_names": list(LAST_NAMES),
            "kinds": list(KINDS),
            "leads": list(KIND_LEAD_MINUTES),
        }
        for table in HISTORY_TABLES:
            cur.execute(
                _history_sql(cur, table),
                {**params, "template": chain.window.templates.get(table, 0)},
            )


def history_grow(chain: Chain, visits: int) -> None:
    """Add history until the chain holds ``visits`` visits (to the day: a few more at most).

    Units (location-days) are taken year by year back in time, location by location within a
    year: both the chain's locations and its years grow with the size.
    """
    wanted = max(0, math.ceil((visits - chain.window_visits) / VISITS_PER_UNIT))
    per_year = CHAIN_LOCATIONS * DAYS_PER_YEAR
    started = time.perf_counter()
    last_report, units_before = started, chain.units
    while chain.units < wanted:
        year, rest = divmod(chain.units, per_year)
        index, day = divmod(rest, DAYS_PER_YEAR)
        end = min(DAYS_PER_YEAR, day + wanted - chain.units)
        _history_run(chain, index, year, day, end)
        chain.units += end - day
        if time.perf_counter() - last_report > 20 or chain.units == wanted:
            last_report = time.perf_counter()
            rate = (chain.units - units_before) * VISITS_PER_UNIT / (last_report - started)
            log(
                f"  history: {chain.visits():,} visits ({chain.units:,} location-days, "
                f"year {year + 1}, location {index}); {last_report - started:.0f} s"
                f" ({rate:,.0f} visits/s)"
            )


def vacuum_analyze() -> None:
    """What a chain's database has long done for its older rows: vacuumed (their pages all
    visible, so that index-only scans skip the heap), and its statistics taken. Without it the
    timings meet autovacuum working through the rows just added, on the same two cores."""
    from django.db import connection

    with connection.cursor() as cur:
        for table in GROWN_TABLES:
            cur.execute(f"VACUUM (ANALYZE) {table}")


def table_rows() -> dict[str, int]:
    from django.db import connection

    counts = {}
    with connection.cursor() as cur:
        for table in GROWN_TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cur.fetchone()[0]
        cur.execute("SELECT pg_database_size(current_database())")
        counts["database_bytes"] = cur.fetchone()[0]
    return counts


# --- The operations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    name: str
    run: Callable[[Any], Any]
    prepare: Callable[[], Any] = lambda: None
    check: Callable[[Any], str] = lambda result: ""


def _staff_request(window: Window, path: str, query: dict[str, str]) -> Any:
    """A GET as the window's administrator, as the middleware would hand it to the view."""
    from django.contrib.auth import get_user_model
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.base import SessionBase
    from django.test import RequestFactory

    request = RequestFactory().get(path, query)
    # A fresh user per request: its locations and permissions are looked up as in production.
    request.user = get_user_model().objects.get(pk=window.user_id)
    request.session = SessionBase()
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    return request


def _status(response: Any) -> str:
    return "" if response.status_code == 200 else f"status {response.status_code}"


def operations(window: Window) -> list[Operation]:
    from django.db import transaction

    from booking.access.scoping import patients_search
    from booking.calendar import calendar_json
    from booking.desk.audit import audit_log
    from booking.desk.board import board
    from booking.selectors import availability_problem
    from booking.services import appointment_book
    from notifications.delivery import messages_claim
    from notifications.views import message_log
    from scheduling.availability import available_starts

    def availability(_: object) -> list[int]:
        return available_starts(
            availability_problem(appointment_type=window.iv_mood, days=window.days, now=window.now)
        )

    def booking(_: object) -> str:
        with transaction.atomic():
            made = appointment_book(
                appointment_type=window.consultation,
                patient=window.spare_patient,
                start=window.booking_start,
                now=window.now,
            )
            transaction.set_rollback(True)
        return made.reference

    def calendar(_: object) -> str:
        return calendar_json(
            location=window.location, first_day=window.days[0], last_day=window.days[-1]
        )

    def claim(_: object) -> list[int]:
        from django.conf import settings

        with transaction.atomic():
            claimed = messages_claim(now=window.claim_now, limit=settings.OUTBOX_BATCH_SIZE)
            transaction.set_rollback(True)
        return claimed

    def search(user: Any) -> list[Any]:
        return patients_search(user, SEARCH_TEXT)

    def fresh_user() -> Any:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.get(pk=window.user_id)

    board_query = {"location": WINDOW_SLUG, "date": window.board_day.isoformat()}
    return [
        Operation("availability", availability, check=lambda r: "" if r else "no free starts"),
        Operation("booking", booking),
        Operation("calendar", calendar),
        Operation("claim", claim, check=lambda r: "" if r else "nothing claimed"),
        Operation(
            "day_board",
            board,
            prepare=lambda: _staff_request(window, "/staff/board/", board_query),
            check=_status,
        ),
        Operation(
            "message_log",
            message_log,
            prepare=lambda: _staff_request(window, "/staff/messages/", {}),
            check=_status,
        ),
        Operation(
            "patient_search",
            search,
            prepare=fresh_user,
            check=lambda r: "" if len(r) == 10 else f"{len(r)} patients found",
        ),
        Operation(
            "audit_log",
            audit_log,
            prepare=lambda: _staff_request(window, "/staff/audit/", {}),
            check=_status,
        ),
    ]


def machine_idle_wait(load: float, longest: float) -> float:
    """Wait (at most ``longest`` seconds) for the 1-minute load average to fall to ``load``;
    the load average then."""
    import os

    started = time.perf_counter()
    now = os.getloadavg()[0]
    while now > load and time.perf_counter() - started < longest:
        time.sleep(5)
        now = os.getloadavg()[0]
    log(f"  load average {now:.2f} after {time.perf_counter() - started:.0f} s waiting")
    return round(now, 2)


def measure(operation: Operation, repetitions: int, warmup: int) -> tuple[float, Any]:
    """The median milliseconds of ``repetitions`` calls after ``warmup`` untimed ones."""
    result = None
    for _ in range(warmup):
        result = operation.run(operation.prepare())
    problem = operation.check(result)
    if problem:
        sys.exit(f"{operation.name}: {problem}")
    samples = []
    gc.collect()
    for _ in range(repetitions):
        argument = operation.prepare()
        started = time.perf_counter_ns()
        operation.run(argument)
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return statistics.median(samples), result


def statement_times(operation: Operation, top: int = 6) -> list[str]:
    """Where one call's time goes: its statements' count and total time as the client waits
    for them, writes included, and the slowest of them."""
    from django.db import connection

    timings: list[tuple[float, str]] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append(((time.perf_counter_ns() - started) / 1e6, sql))

    argument = operation.prepare()
    with connection.execute_wrapper(timed):
        started = time.perf_counter_ns()
        operation.run(argument)
        wall = (time.perf_counter_ns() - started) / 1e6
    total = sum(ms for ms, _ in timings)
    lines = [
        f"-- {operation.name}: {len(timings)} statements, {total:.2f} ms of a {wall:.2f} ms call"
    ]
    for ms, sql in sorted(timings, key=lambda t: -t[0])[:top]:
        lines.append(f"--   {ms:.2f} ms: {' '.join(sql.split())[:160]}")
    return lines


def explain(operation: Operation, top: int = 2) -> list[str]:
    """Where one call's time goes, and EXPLAIN ANALYZE of its slowest SELECTs (writes are not
    re-run)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    lines = statement_times(operation)
    with CaptureQueriesContext(connection) as captured:
        operation.run(operation.prepare())
    selects = [
        q for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")
    ]
    for query in sorted(selects, key=lambda q: -float(q["time"]))[:top]:
        with connection.cursor() as cur:
            # With costs: PostgreSQL prints the JIT section only then, and JIT is a cost here.
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
            lines.append(f"-- {query['time']} s: {query['sql'][:300]}")
            lines += [row[0] for row in cur.fetchall()]
    return lines


# --- The run --------------------------------------------------------------------------------


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="1M,10M",
        help="visits in the chain at each measurement, ascending (default 1M,10M)",
    )
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="drop and recreate the database DATABASE_URL names first (it must be this "
        "benchmark's own)",
    )
    parser.add_argument(
        "--idle-load",
        type=float,
        default=0.5,
        help="before each size's timings, wait for the 1-minute load average to fall to this",
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=1200,
        help="longest wait for it, in seconds; the timings then run and say the load",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print (to stderr) the plans of each operation's slowest queries at every size",
    )
    args = parser.parse_args()
    sizes = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
    url = os.environ.get("DATABASE_URL", "")
    if args.fresh and url.startswith(("postgres://", "postgresql://")):
        database_recreate(url)
    setup_django()
    from django.conf import settings
    from django.urls import reverse

    from booking.models import Appointment

    # The pages render without collectstatic's manifest, as in the tests: hashed names are not
    # what is measured.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

    # The whole URLconf, and so every page's module, imported now: an edit of the tree during
    # an hour-long run cannot break its later sizes halfway.
    reverse("staff-board")
    if Appointment.objects.exists():
        sys.exit("the database already holds visits: give --fresh (it is dropped) or another one")
    info = machine_info()
    log("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))

    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    window, window_visits = window_build(now)
    chain = Chain(
        window=window,
        history_end=now.date() - timedelta(days=2),
        window_visits=window_visits,
    )
    window_seconds = time.perf_counter() - started
    log(
        f"window: {WINDOW_SLUG}, {window.days[0]}..{window.days[-1]} ({ZONE_NAME}), "
        f"{window_visits} visits; built in {window_seconds:.1f} s"
    )
    ops = operations(window)
    ms: dict[str, dict[str, float]] = {op.name: {} for op in ops}
    rows: dict[str, dict[str, int]] = {}
    build_seconds: dict[str, float] = {}
    loads: dict[str, float] = {}
    answers: dict[str, Any] = {}
    for size in sizes:
        label = size_label(size)
        log(f"size {label}: growing from {chain.visits():,} visits")
        started = time.perf_counter()
        history_grow(chain, size)
        rows[label] = table_rows()
        vacuum_analyze()
        build_seconds[label] = round(time.perf_counter() - started, 1)
        log(f"size {label}: built in {build_seconds[label]} s; rows {rows[label]}")
        # The timings are this run's own only on an idle machine: anything else running on
        # the two cores (a test run, autovacuum) would show in them.
        loads[label] = machine_idle_wait(args.idle_load, args.idle_wait)
        for op in ops:
            median, result = measure(op, args.repetitions, args.warmup)
            ms[op.name][label] = round(median, 3)
            summary = len(result) if isinstance(result, list) else type(result).__name__
            previous = answers.setdefault(op.name, summary)
            same = "" if previous == summary else f" (answer changed: {previous} -> {summary})"
            log(f"  {op.name}: {median:.2f} ms median of {args.repetitions}{same}")
            if args.explain:
                log("\n".join(explain(op)))
        # A line per size: a run cut short (the next size did not fit in time or on disk)
        # still ends with the figures of every size it measured.
        measured = sizes[: sizes.index(size) + 1]
        print(report(info, measured, window_visits, rows, ms, build_seconds, loads))
        sys.stdout.flush()


def report(
    info: dict[str, Any],
    sizes: list[int],
    window_visits: int,
    rows: dict[str, dict[str, int]],
    ms: dict[str, dict[str, float]],
    build_seconds: dict[str, float],
    loads: dict[str, float],
) -> str:
    """The summary lines and the JSON object of the sizes measured so far."""
    base = size_label(sizes[0])
    ratios = {
        name: {label: round(value / by_size[base], 2) for label, value in by_size.items()}
        for name, by_size in ms.items()
    }
    met = {name: all(r <= TARGET for r in by_size.values()) for name, by_size in ratios.items()}
    lines = []
    for name in ms:
        cells = ", ".join(
            f"{label} {ms[name][label]:.2f} ms ({ratios[name][label]:.2f}x)" for label in ms[name]
        )
        lines.append(f"{name}: {cells}; {'met' if met[name] else 'NOT met'} (target <= {TARGET}x)")
    summary = {
        "benchmark": "growth",
        "machine": info,
        "sizes": [size_label(s) for s in sizes],
        "window_visits": window_visits,
        "rows": rows,
        "ms": ms,
        "ratios": ratios,
        "target": TARGET,
        "met": met,
        "build_seconds": build_seconds,
        "load_average_before_timing": loads,
    }
    return "\n".join([*lines, json.dumps(summary)])


if __name__ == "__main__":
    main()

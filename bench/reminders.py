"""Reminders at scale: re-planning a million visits, claiming due messages, batched enqueue.

Run against PostgreSQL and Redis (the data is built on first run and reused afterwards)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_bench \\
        .venv/bin/python -m bench.reminders

One location in America/New_York (quiet hours 21:00-08:00) with one treatment type and its
default reminder rules; 200,000 patients (98 % with an e-mail address, 70 % agreeing to texts)
holding 1,000,000 future visits between 08:00 and 18:00 local over a year that crosses both DST
changes, a tenth of them confirmed, a twentieth moved once. Every visit has its outbox planned:
the reminders by the re-planner itself, a sent confirmation per channel and, for confirmed visits,
the dropped request to confirm. The benchmark's clock is fixed (``NOW``), as every service takes
``now``; the data therefore stays in the future, and the due messages it claims are its own.

Measured, with the real functions:

* ``generate_s``: one rule's time of day changes, then ``reminder_rules_replan`` re-plans that
  rule's reminders for every visit of the type, as the admin does after editing one rule
  (target <= 10 s).
  Beside it, the floor: the same rows moved by one bare ``UPDATE`` with nothing computed
  (``generate_floor_s``, rolled back).
* ``claim_per_s``: ``messages_claim`` in batches claims every message of a large due set, again
  and again (target >= 50,000/s).
* ``batch_ratio``: for 100,000 due messages, one ``send_messages.apply_async`` per message
  against the publishing ``message_deliver_due`` does as beat runs it (batches of
  ``OUTBOX_BATCH_SIZE`` ids through one producer), both to a real Redis broker that no worker
  consumes; the queue is purged afterwards (target >= 100x). The claim, which either way must
  come first, is timed apart: ``end_to_end_ratio`` is the same comparison with it included.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any

from bench.common import machine_info, setup_django

ZONE_NAME = "America/New_York"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FIRST_DAY = date(2026, 1, 16)
DAYS = 365
VISITS = 1_000_000
PATIENTS = 200_000
LOCATION_SLUG = "bench-reminders"
TYPE_SLUG = "bench-reminders-session"
PATIENT_MARKER = "Benchreminders"
# Written last, in the building transaction: a location carrying it holds complete data.
DATA_VERSION = "bench.reminders data v1"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
QUEUE = "celery"

EVENING_TIMES = (clock(19, 0), clock(18, 30))
CLAIM_SET = 250_000
ENQUEUE_SET = 100_000

GENERATE_TARGET_S = 10.0
CLAIM_TARGET_PER_S = 50_000
RATIO_TARGET = 100.0


# --- Data ------------------------------------------------------------------------------------


def _execute(sql: str, params: Any = None) -> Any:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else cur.rowcount


def _vacuum(*tables: str) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        for table in tables:
            cur.execute(f"VACUUM (ANALYZE) {table}")


def _delete_previous() -> None:
    ids = [
        row[0]
        for row in _execute("SELECT id FROM scheduling_location WHERE slug = %s", [LOCATION_SLUG])
    ]
    if ids:
        visits = "SELECT id FROM booking_appointment WHERE location_id = ANY(%s)"
        messages = (
            f"SELECT id FROM notifications_outboundmessage WHERE appointment_id IN ({visits})"
        )
        _execute(
            f"DELETE FROM notifications_deliveryattempt WHERE message_id IN ({messages})", [ids]
        )
        _execute(
            f"DELETE FROM notifications_outboundmessage WHERE appointment_id IN ({visits})", [ids]
        )
        _execute(
            f"DELETE FROM booking_allocation WHERE appointment_id IN ({visits})",
            [ids],
        )
        _execute("DELETE FROM booking_appointment WHERE location_id = ANY(%s)", [ids])
        _execute(
            "DELETE FROM notifications_reminderrule WHERE appointment_type_id IN "
            "(SELECT id FROM scheduling_appointmenttype WHERE location_id = ANY(%s))",
            [ids],
        )
        _execute("DELETE FROM scheduling_appointmenttype WHERE location_id = ANY(%s)", [ids])
        _execute("DELETE FROM scheduling_location WHERE id = ANY(%s)", [ids])
    _execute("DELETE FROM booking_patient WHERE last_name = %s", [PATIENT_MARKER])


def _columns(table: str) -> list[str]:
    from django.db import connection

    with connection.cursor() as cur:
        return [c.name for c in connection.introspection.get_table_description(cur, table)]


def _templated_select(table: str, values: dict[str, str]) -> tuple[str, str]:
    """Column list and select list for ``table``: ``values`` where given, else the template
    row's (``tmpl``), so columns added later with Python-side defaults keep working."""
    columns = [c for c in _columns(table) if c != "id"]
    missing = set(values) - set(columns)
    if missing:
        raise RuntimeError(f"{table} has no column(s) {sorted(missing)}")
    quoted = ", ".join(f'"{c}"' for c in columns)
    selected = ", ".join(values.get(c, f'tmpl."{c}"') for c in columns)
    return quoted, selected


def _build() -> int:
    """Create the location, type, patients, visits and their planned outbox; the type's id."""
    from django.db import transaction

    from booking.models import Appointment, AppointmentStatus, Patient
    from notifications.defaults import reminder_rules_install_defaults
    from notifications.models import MessageKind, ReminderRule
    from notifications.replan import reminder_rules_replan
    from scheduling.models import AppointmentKind, AppointmentType, Location

    with transaction.atomic():
        location = Location.objects.create(
            slug=LOCATION_SLUG,
            name="Bench Reminders Clinic",
            public_name="Bench Health",
            timezone=ZONE_NAME,
            phone="+12125550199",
        )
        session = AppointmentType.objects.create(
            location=location,
            slug=TYPE_SLUG,
            name="Bench infusion",
            public_name="Bench visit",
            kind=AppointmentKind.INFUSION,
            duration_minutes=90,
            fasting_solids_hours=6,
            fasting_clear_liquids_hours=2,
            escort_required=True,
        )
        reminder_rules_install_defaults(appointment_type=session)
        ReminderRule.objects.filter(
            appointment_type=session, kind=MessageKind.EVENING_BEFORE
        ).update(local_time=EVENING_TIMES[0])

        template_patient = Patient.objects.create(
            first_name="Template",
            last_name=PATIENT_MARKER,
            email="template@bench-reminders.invalid",
            phone="+15550000000",
            date_of_birth=date(1980, 1, 1),
        )
        columns, selected = _templated_select(
            "booking_patient",
            {
                "first_name": "'B' || n",
                "email": "CASE WHEN n %% 50 = 0 THEN '' "
                "ELSE 'r' || n || '@bench-reminders.invalid' END",
                "phone": "'+1555' || lpad(n::text, 7, '0')",
                "sms_consent": "n %% 10 < 7",
                "sms_consent_at": "CASE WHEN n %% 10 < 7 THEN %(now)s END",
                "sms_consent_version": "CASE WHEN n %% 10 < 7 THEN '2026-11' ELSE '' END",
            },
        )
        _execute(
            f"INSERT INTO booking_patient ({columns}) SELECT {selected} "
            "FROM generate_series(1, %(count)s) n "
            "CROSS JOIN (SELECT * FROM booking_patient WHERE id = %(tmpl)s) tmpl",
            {"count": PATIENTS, "now": NOW - timedelta(days=30), "tmpl": template_patient.pk},
        )
        template_visit = Appointment.objects.create(
            reference="remTEMPLATE",
            location=location,
            appointment_type=session,
            patient=template_patient,
            start=NOW - timedelta(days=400),
            end=NOW - timedelta(days=400) + timedelta(minutes=90),
            status=AppointmentStatus.CANCELLED,
        )
        # Visit i belongs to patient i mod PATIENTS; a patient's visits are 73 days apart,
        # on 20 half-hour slots between 08:00 and 18:00 local.
        columns, selected = _templated_select(
            "booking_appointment",
            {
                "reference": "'rem' || lpad(v.i::text, 9, '0')",
                "patient_id": "p.id",
                "start": "v.start",
                "end": "v.start + interval '90 minutes'",
                "status": "CASE WHEN v.i %% 10 = 3 THEN 'confirmed' ELSE 'booked' END",
                "confirmed_at": "CASE WHEN v.i %% 10 = 3 THEN %(now)s END",
                "version": "CASE WHEN v.i %% 20 = 7 THEN 1 ELSE 0 END",
                "created_at": "%(now)s",
                "updated_at": "%(now)s",
            },
        )
        _execute(
            f"""
            INSERT INTO booking_appointment ({columns})
            SELECT {selected}
            FROM (
                SELECT i, i %% %(patients)s AS n,
                       ((%(first_day)s::date
                         + ((i / %(patients)s) * 73 + (i %% %(patients)s) %% 73)::int)
                        + time '08:00'
                        + (((i %% %(patients)s) / 73) %% 20) * interval '30 minutes')
                           AT TIME ZONE %(zone)s AS start
                FROM generate_series(0, %(visits)s - 1) i
            ) v
            JOIN (
                SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
                FROM booking_patient WHERE last_name = %(marker)s AND id <> %(tmpl_patient)s
            ) p ON p.n = v.n
            CROSS JOIN (SELECT * FROM booking_appointment WHERE id = %(tmpl)s) tmpl
            ORDER BY v.i
            """,
            {
                "patients": PATIENTS,
                "first_day": FIRST_DAY,
                "zone": ZONE_NAME,
                "visits": VISITS,
                "now": NOW - timedelta(days=7),
                "marker": PATIENT_MARKER,
                "tmpl_patient": template_patient.pk,
                "tmpl": template_visit.pk,
            },
        )
        template_visit.delete()
        # The confirmation each visit was sent when booked, and the request to confirm that
        # confirming dropped: the rows a live outbox holds besides the reminders.
        columns = (
            "appointment_id, location_id, kind, channel, status, due_at, appointment_version, "
            "late_cutoff_minutes, attempts, claimed_at, sent_at, recipient, provider_id, "
            "detail, created_at, updated_at"
        )
        _execute(
            f"""
            INSERT INTO notifications_outboundmessage ({columns})
            SELECT a.id, a.location_id, m.kind, c.channel, m.status, %(booked_at)s, a.version,
                   1440,
                   CASE WHEN m.status = 'sent' THEN 1 ELSE 0 END, NULL,
                   CASE WHEN m.status = 'sent' THEN %(booked_at)s END,
                   CASE WHEN m.status <> 'sent' THEN ''
                        WHEN c.channel = 'email' THEN p.email ELSE p.phone END,
                   '', m.detail, %(booked_at)s, %(booked_at)s
            FROM booking_appointment a
            JOIN booking_patient p ON p.id = a.patient_id
            CROSS JOIN (VALUES ('email'), ('sms')) c(channel)
            CROSS JOIN (
                VALUES ('confirmation', 'sent', ''),
                       ('confirm_request', 'cancelled', 'the patient confirmed')
            ) m(kind, status, detail)
            WHERE a.appointment_type_id = %(type_id)s
              AND (m.kind = 'confirmation' OR a.status = 'confirmed')
              AND CASE c.channel WHEN 'email' THEN p.email <> ''
                                 ELSE p.sms_consent AND p.phone <> '' END
            ORDER BY a.id
            """,
            {"booked_at": NOW - timedelta(days=7), "type_id": session.pk},
        )
        reminder_rules_replan(appointment_type_id=session.pk, now=NOW)
    # Bookings write a visit's rows together, one visit after another: lay the rows out that
    # way (ids in that order too), as a live table holds them, reusing the space they took.
    outbox = "notifications_outboundmessage"
    columns = ", ".join(f'"{c}"' for c in _columns(outbox) if c != "id")
    mine = "appointment_id IN (SELECT id FROM booking_appointment WHERE location_id = %s)"
    _execute(
        f"CREATE TEMP TABLE bench_outbox AS SELECT {columns} FROM {outbox} WHERE {mine} "
        "ORDER BY appointment_id, kind, channel",
        [location.pk],
    )
    _execute(f"DELETE FROM {outbox} WHERE {mine}", [location.pk])
    _vacuum(outbox)
    with transaction.atomic():
        _execute(
            f"INSERT INTO {outbox} ({columns}) SELECT {columns} FROM bench_outbox "
            "ORDER BY appointment_id, kind, channel"
        )
        Location.objects.filter(pk=location.pk).update(address=DATA_VERSION)
    _execute("DROP TABLE bench_outbox")
    _vacuum("booking_patient", "booking_appointment", outbox)
    return session.pk


def prepare(rebuild: bool) -> int:
    """The benchmark type's id, with complete data: reused when complete, else rebuilt."""
    from booking.models import Appointment
    from notifications.models import MessageStatus, OutboundMessage
    from scheduling.models import AppointmentType, Location

    location = Location.objects.filter(slug=LOCATION_SLUG).first()
    if location is not None and location.address == DATA_VERSION and not rebuild:
        session = AppointmentType.objects.get(location=location, slug=TYPE_SLUG)
        future = Appointment.objects.active().filter(appointment_type=session, start__gt=NOW)
        if future.count() == VISITS:
            # A run stopped half-way may have left claims behind.
            OutboundMessage.objects.filter(
                status=MessageStatus.SENDING, appointment__location=location
            ).update(status=MessageStatus.PENDING, claimed_at=None)
            print(f"data: reusing {VISITS:,} visits at {LOCATION_SLUG}")
            return session.pk
    print(f"data: building {VISITS:,} visits and their outbox (a few minutes, once)")
    started = time.perf_counter()
    _delete_previous()
    _vacuum("notifications_outboundmessage", "booking_appointment", "booking_patient")
    type_id = _build()
    print(f"data: built in {time.perf_counter() - started:.0f} s")
    return type_id


def describe(type_id: int) -> None:
    rows = _execute(
        """
        SELECT o.status, count(*) FROM notifications_outboundmessage o
        JOIN booking_appointment a ON a.id = o.appointment_id
        WHERE a.appointment_type_id = %s GROUP BY 1 ORDER BY 1
        """,
        [type_id],
    )
    total = sum(n for _, n in rows)
    print(f"outbox of the type: {total:,} rows ({', '.join(f'{s} {n:,}' for s, n in rows)})")


# --- (a) Re-plan after a rule change ---------------------------------------------------------


def _toggle_evening(type_id: int) -> clock:
    """Move the evening-before rule's time of day; the new time."""
    from notifications.models import MessageKind, ReminderRule

    evening = ReminderRule.objects.get(appointment_type_id=type_id, kind=MessageKind.EVENING_BEFORE)
    new_time = EVENING_TIMES[1] if evening.local_time == EVENING_TIMES[0] else EVENING_TIMES[0]
    ReminderRule.objects.filter(pk=evening.pk).update(local_time=new_time)
    return new_time


def generate(type_id: int, runs: int) -> dict[str, Any]:
    from notifications.models import MessageKind
    from notifications.replan import reminder_rules_replan

    times: list[float] = []
    for _ in range(runs):
        new_time = _toggle_evening(type_id)
        started = time.perf_counter()
        visits = reminder_rules_replan(
            appointment_type_id=type_id, kinds=[MessageKind.EVENING_BEFORE], now=NOW
        )
        seconds = time.perf_counter() - started
        times.append(seconds)
        (moved,) = _execute(
            """
            SELECT count(*) FROM notifications_outboundmessage o
            JOIN booking_appointment a ON a.id = o.appointment_id
            WHERE a.appointment_type_id = %s AND o.kind = 'evening_before'
              AND (o.due_at AT TIME ZONE %s)::time = %s
            """,
            [type_id, ZONE_NAME, new_time],
        )[0]
        print(
            f"re-plan: evening-before moved to {new_time:%H:%M}, {visits:,} visits re-planned "
            f"in {seconds:.2f} s; evening-before rows now at {new_time:%H:%M}: {moved:,}"
        )
        # Autovacuum's work (it is off on this server), done now so that the next figure
        # starts from a steady table.
        _vacuum("notifications_outboundmessage")
    return {"generate_s": statistics.median(times), "runs": times}


def generate_floor(type_id: int) -> dict[str, Any]:
    """What writing the re-plan's result costs with nothing to compute: the same rows (every
    evening-before message of the type) moved by one minute in one bare UPDATE, rolled back.
    Each row becomes a new row version with its index entries, as in the re-plan."""
    from django.db import transaction

    with transaction.atomic():
        started = time.perf_counter()
        rows = _execute(
            """
            UPDATE notifications_outboundmessage o
            SET due_at = o.due_at + interval '1 minute', updated_at = %s
            FROM booking_appointment a
            WHERE a.id = o.appointment_id AND a.appointment_type_id = %s
              AND o.kind = 'evening_before'
            """,
            [NOW, type_id],
        )
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    _vacuum("notifications_outboundmessage")
    print(
        f"floor: the same {rows:,} rows moved by a bare UPDATE, nothing computed (rolled back), "
        f"in {seconds:.2f} s"
    )
    return {"floor_s": seconds, "rows": rows}


def generate_baseline(type_id: int, sample: int) -> dict[str, Any]:
    """The Python planner (the SQLite path) against the set-based one on the same last
    ``sample`` visits, after the same rule change; both rolled back."""
    from django.db import transaction

    from notifications.models import MessageKind
    from notifications.replan import replan_python, replan_sql

    (after,) = _execute(
        "SELECT start FROM booking_appointment WHERE appointment_type_id = %s "
        "ORDER BY start DESC OFFSET %s LIMIT 1",
        [type_id, sample],
    )[0]
    seconds = {}
    for name, replan in (("python", replan_python), ("sql", replan_sql)):
        with transaction.atomic():
            _toggle_evening(type_id)
            started = time.perf_counter()
            visits = replan(
                appointment_type_id=type_id, kinds=[MessageKind.EVENING_BEFORE], now=after
            )
            seconds[name] = time.perf_counter() - started
            transaction.set_rollback(True)
    _vacuum("notifications_outboundmessage")
    python_1m = seconds["python"] * VISITS / visits
    print(
        f"baseline: on the last {visits:,} visits, the Python planner re-plans in "
        f"{seconds['python']:.2f} s (scaled to {VISITS:,}: {python_1m:.0f} s), the set-based "
        f"re-plan in {seconds['sql']:.2f} s"
    )
    return {"python_1m_s": python_1m}


# --- (b) Claim rate -----------------------------------------------------------------------------


def _due_at_rank(rank: int) -> datetime:
    """The due time of the ``rank``-th pending message, so that ``rank`` messages are due."""
    (due,) = _execute(
        "SELECT due_at FROM notifications_outboundmessage WHERE status = 'pending' "
        "ORDER BY due_at OFFSET %s LIMIT 1",
        [rank - 1],
    )[0]
    return due


def _release(claimed_at: datetime) -> int:
    return _execute(
        "UPDATE notifications_outboundmessage SET status = 'pending', claimed_at = NULL "
        "WHERE status = 'sending' AND claimed_at = %s",
        [claimed_at],
    )


def claim(rounds: int, batch_size: int) -> dict[str, Any]:
    from notifications.delivery import messages_claim

    now = _due_at_rank(CLAIM_SET)
    rates: list[float] = []
    for _ in range(rounds):
        total = 0
        started = time.perf_counter()
        while ids := messages_claim(now=now, limit=batch_size):
            total += len(ids)
        seconds = time.perf_counter() - started
        rates.append(total / seconds)
        released = _release(now)
        if released != total:
            sys.exit(f"claimed {total} but released {released}")
        print(
            f"claim: {total:,} due messages claimed in batches of {batch_size} in "
            f"{seconds:.2f} s = {total / seconds:,.0f}/s"
        )
        _vacuum("notifications_outboundmessage")
    return {"claim_per_s": statistics.median(rates), "due": total}


# --- (c) Batched enqueue against one task per message ----------------------------------------


def _use_broker(url: str) -> Any:
    import kombu.pools

    from config.celery import app as celery_app

    # Any: the pools below are Celery's private caches, which its type stubs leave out.
    app: Any = celery_app
    app.conf.broker_url = url
    app.conf.task_always_eager = False
    # Pools made for another broker would be reused otherwise.
    app._pool = None
    app.amqp._producer_pool = None
    kombu.pools.reset()
    return app


def _queue_length(app: Any) -> int:
    with app.connection_for_write() as conn:
        return int(conn.default_channel.client.llen(QUEUE))


def _purge(app: Any) -> int:
    with app.connection_for_write() as conn:
        return int(conn.default_channel.queue_purge(QUEUE) or 0)


def enqueue(sample: int) -> dict[str, Any]:
    """Both ways of handing ``ENQUEUE_SET`` due messages to the workers, to a real broker.

    Batched: ``message_deliver_due`` as beat runs it, claiming batches and publishing each
    through ``batch_publisher``; the time spent publishing is taken apart from the claims. One
    task per message: ``send_messages.apply_async`` per id on a sample of the same ids, scaled.
    The claim is the same work in both (its rate is the figure above), so ``batch_ratio``
    compares the enqueue alone; ``end_to_end_ratio`` adds the claim to both sides.
    """
    from contextlib import ExitStack

    from django.conf import settings

    from notifications.delivery import batch_publisher, message_deliver_due
    from notifications.tasks import send_messages

    app = _use_broker(REDIS_URL)
    _purge(app)
    now = _due_at_rank(ENQUEUE_SET)
    (due,) = _execute(
        "SELECT count(*) FROM notifications_outboundmessage "
        "WHERE status = 'pending' AND due_at <= %s",
        [now],
    )[0]
    batch_size = settings.OUTBOX_BATCH_SIZE

    publishing = 0.0
    with ExitStack() as stack:
        publish = batch_publisher(stack)

        def timed_publish(ids: list[int]) -> None:
            nonlocal publishing
            started = time.perf_counter()
            publish(ids)
            publishing += time.perf_counter() - started

        started = time.perf_counter()
        claimed = message_deliver_due(now=now, enqueue=timed_publish)
        sweep_s = time.perf_counter() - started
    published = _queue_length(app)
    _purge(app)
    released = _release(now)
    if not claimed == released == due:
        sys.exit(f"message_deliver_due claimed {claimed} of {due} due; released {released}")
    print(
        f"batched: message_deliver_due claimed {claimed:,} due messages and published "
        f"{published:,} tasks of up to {batch_size} ids to {REDIS_URL} in {sweep_s:.2f} s, "
        f"of which publishing {publishing:.3f} s"
    )

    ids = [
        row[0]
        for row in _execute(
            "SELECT id FROM notifications_outboundmessage WHERE status = 'pending' "
            "AND due_at <= %s ORDER BY due_at LIMIT %s",
            [now, sample],
        )
    ]
    started = time.perf_counter()
    for message_id in ids:
        send_messages.apply_async(args=([message_id],))
    single_s = time.perf_counter() - started
    published_single = _queue_length(app)
    _purge(app)
    if published_single != len(ids):
        sys.exit(f"{len(ids)} apply_async calls left {published_single} tasks")
    per_message_s = single_s * claimed / len(ids)
    print(
        f"one task per message: {len(ids):,} apply_async calls published {published_single:,} "
        f"tasks in {single_s:.2f} s; scaled to {claimed:,} (the same due set): "
        f"{per_message_s:.2f} s"
    )
    claiming = sweep_s - publishing
    end_to_end = (claiming + per_message_s) / sweep_s
    print(
        f"enqueue: {per_message_s / publishing:,.0f}x faster batched; with the claim on both "
        f"sides ({claiming:.2f} s): {end_to_end:.1f}x"
    )
    _vacuum("notifications_outboundmessage")
    return {"batch_ratio": per_message_s / publishing, "end_to_end_ratio": end_to_end}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data")
    parser.add_argument("--generate-runs", type=int, default=3)
    parser.add_argument("--baseline-visits", type=int, default=5_000)
    parser.add_argument("--claim-rounds", type=int, default=3)
    parser.add_argument("--claim-batch", type=int, default=None, help="default OUTBOX_BATCH_SIZE")
    parser.add_argument("--context-batch", type=int, default=1000, help="0: skip")
    parser.add_argument("--sample", type=int, default=10_000, help="apply_async calls timed")
    args = parser.parse_args()

    setup_django()
    from django.conf import settings

    print("machine:", json.dumps(machine_info()))
    print(f"load average before: {os.getloadavg()}")
    type_id = prepare(args.rebuild)
    describe(type_id)

    g = generate(type_id, args.generate_runs)
    b = generate_baseline(type_id, args.baseline_visits)
    f = generate_floor(type_id)
    print(
        f"generate_s: median {g['generate_s']:.2f} s of {len(g['runs'])} runs "
        f"(target <= {GENERATE_TARGET_S:.0f} s); {b['python_1m_s'] / g['generate_s']:.0f}x "
        f"the Python planner; {g['generate_s'] / f['floor_s']:.2f}x the bare UPDATE of its rows"
    )
    batch = args.claim_batch or settings.OUTBOX_BATCH_SIZE
    c = claim(args.claim_rounds, batch)
    print(
        f"claim_per_s: median {c['claim_per_s']:,.0f}/s over {c['due']:,} due in batches of "
        f"{batch} (OUTBOX_BATCH_SIZE is {settings.OUTBOX_BATCH_SIZE}; target >= "
        f"{CLAIM_TARGET_PER_S:,})"
    )
    if args.context_batch:
        print(f"  for comparison, batches of {args.context_batch} (one round):")
        claim(1, args.context_batch)
    e = enqueue(args.sample)
    print(
        f"batch_ratio: {e['batch_ratio']:.1f}x, enqueue alone (target >= {RATIO_TARGET:.0f}x); "
        f"end to end {e['end_to_end_ratio']:.1f}x"
    )
    print(f"load average after: {os.getloadavg()}")
    print(
        json.dumps(
            {
                "bench": "reminders",
                "generate_s": round(g["generate_s"], 2),
                "generate_floor_s": round(f["floor_s"], 2),
                "claim_per_s": round(c["claim_per_s"]),
                "batch_ratio": round(e["batch_ratio"], 1),
                "end_to_end_ratio": round(e["end_to_end_ratio"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()

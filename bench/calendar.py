"""The front desk's week: the calendar endpoint against a DRF ModelSerializer baseline.

Run against PostgreSQL (the data is built on first run and reused afterwards)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_bench_cal \\
        .venv/bin/python -m bench.calendar

One location in America/New_York with 50 staff (20 prescribers, 30 nurses watching two chairs
each) and 60 chairs, open 07:00-19:00 every day. Every chair has an hour-long visit every hour
(starts staggered by a quarter hour between chairs), holding the chair, a nurse's lane for the
hour and a prescriber for the first 15 minutes: ~4,900 visits in the measured week
(2026-10-26 to 2026-11-01, which ends on the fall-back change), a few of them held for the
waitlist, no-shows, series sessions or cancelled; eight weeks of history and three weeks ahead
make the tables ~60,000 visits and ~180,000 allocations.

The endpoint draws each visit once per staff column it holds, at that column's own time (the
prescriber's 15 minutes), with turnover and "n of 3 chairs watched" pieces; the baseline lists
each visit once with its allocations, which carry the same times.

Both sides run the endpoint's view function (``CalendarData``, through DRF's request handling,
permission checks, validation and the audit row) on a request built by ``APIRequestFactory``,
without the middleware: ours builds the body with ``booking.calendar.calendar_json``, the
baseline with nested ``ModelSerializer``s over a ``select_related``/``prefetch_related``
queryset — the obvious implementation. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench.availability import timed
from bench.common import machine_info, percentile, setup_django

ZONE_NAME = "America/New_York"
FIRST_DAY = date(2026, 10, 26)
LAST_DAY = date(2026, 11, 1)
SLUG = "bench-calendar"
PATIENT_DOMAIN = "bench-calendar.invalid"
USERNAME = "bench-calendar-desk"
# Written last, once everything is committed: a location carrying it holds complete data.
DATA_VERSION = "bench.calendar data v2"
PRESCRIBERS = 20
NURSES = 30
CHAIRS = 60
OPEN_HOUR = 7
VISITS_PER_CHAIR_PER_DAY = 12
DAY_OFFSETS = range(-56, 28)  # eight weeks before the measured week, three after
SERIES_SHARE = 0.1
SEED = 20261026


def _local(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(ZONE_NAME))


def _delete_previous() -> None:
    from django.db import connection

    from scheduling.models import AppointmentType, Location, Resource

    location = Location.objects.filter(slug=SLUG).first()
    with connection.cursor() as cur:
        if location is not None:
            # Inserted without signals, so nothing else refers to these rows.
            for sql in (
                "DELETE FROM booking_allocation WHERE appointment_id IN "
                "(SELECT id FROM booking_appointment WHERE location_id = %s)",
                "DELETE FROM booking_appointment WHERE location_id = %s",
                "DELETE FROM booking_series WHERE protocol_id IN (SELECT p.id FROM "
                "booking_protocol p JOIN scheduling_appointmenttype t "
                "ON t.id = p.appointment_type_id WHERE t.location_id = %s)",
                "DELETE FROM booking_treatmentplan WHERE protocol_id IN (SELECT p.id FROM "
                "booking_protocol p JOIN scheduling_appointmenttype t "
                "ON t.id = p.appointment_type_id WHERE t.location_id = %s)",
                "DELETE FROM booking_protocol WHERE appointment_type_id IN "
                "(SELECT id FROM scheduling_appointmenttype WHERE location_id = %s)",
            ):
                cur.execute(sql, [location.pk])
        cur.execute(
            "DELETE FROM booking_eligibilitydecision WHERE patient_id IN "
            "(SELECT id FROM booking_patient WHERE email LIKE %s)",
            [f"%@{PATIENT_DOMAIN}"],
        )
        cur.execute("DELETE FROM booking_patient WHERE email LIKE %s", [f"%@{PATIENT_DOMAIN}"])
    if location is not None:
        # The location and the users stay: the audit rows of earlier runs refer to them, and
        # the audit log is append-only.
        AppointmentType.objects.filter(location=location).delete()
        Resource.objects.filter(location=location).delete()
        Location.objects.filter(pk=location.pk).update(address="")


def build() -> None:
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction

    from booking.access.roles import Role, sync_roles
    from booking.models import (
        Allocation,
        Appointment,
        AppointmentStatus,
        DecisionOutcome,
        EligibilityDecision,
        Patient,
        Protocol,
        Series,
        StaffProfile,
        TreatmentPlan,
    )
    from scheduling.defaults import appointment_types_install_defaults
    from scheduling.models import Location, Resource, ResourceKind, StaffRole

    rng = random.Random(SEED)
    with transaction.atomic():
        _delete_previous()
        location, _ = Location.objects.get_or_create(
            slug=SLUG,
            defaults={
                "name": "Bench calendar clinic",
                "public_name": "Bench Health",
                "timezone": ZONE_NAME,
            },
        )
        types = {t.slug: t for t in appointment_types_install_defaults(location=location)}
        infusion, consultation = types["iv-mood"], types["consultation"]
        prescribers = Resource.objects.bulk_create(
            Resource(
                location=location,
                kind=ResourceKind.STAFF,
                role=StaffRole.PRESCRIBER,
                name=f"Dr. {n:02d}",
            )
            for n in range(PRESCRIBERS)
        )
        nurses = Resource.objects.bulk_create(
            Resource(
                location=location,
                kind=ResourceKind.STAFF,
                role=StaffRole.NURSE,
                name=f"Nurse {n:02d}",
                capacity=3,
            )
            for n in range(NURSES)
        )
        chairs = Resource.objects.bulk_create(
            Resource(location=location, kind=ResourceKind.CHAIR, name=f"Chair {n:02d}")
            for n in range(CHAIRS)
        )
        # One patient per (chair, hour): the same time every day, so never two visits at once.
        patients = Patient.objects.bulk_create(
            Patient(
                first_name=f"P{c}-{k}",
                last_name="Bench",
                email=f"p{c}-{k}@{PATIENT_DOMAIN}",
                phone="+12125550000",
                date_of_birth=date(1980, 1, 1),
            )
            for c in range(CHAIRS)
            for k in range(VISITS_PER_CHAIR_PER_DAY)
        )
        # A series for some of them, its sessions the measured week's visits.
        prescriber_user, _ = User.objects.get_or_create(username=f"{USERNAME}-prescriber")
        protocol = Protocol.objects.create(
            appointment_type=infusion,
            slug="bench",
            name="Bench series",
            sessions=7,
            min_gap_days=1,
            max_gap_days=1,
            window_days=7,
        )
        in_series = rng.sample(range(len(patients)), int(len(patients) * SERIES_SHARE))
        decided = datetime(2026, 10, 1, tzinfo=UTC)
        decisions = EligibilityDecision.objects.bulk_create(
            EligibilityDecision(
                patient=patients[n],
                outcome=DecisionOutcome.APPROVED,
                decided_by=prescriber_user,
                decided_at=decided,
            )
            for n in in_series
        )
        plans = TreatmentPlan.objects.bulk_create(
            TreatmentPlan(
                patient=decision.patient,
                decision=decision,
                protocol=protocol,
                sessions_authorised=7,
                valid_until=date(2027, 10, 1),
            )
            for decision in decisions
        )
        series = dict(
            zip(
                in_series,
                Series.objects.bulk_create(Series(plan=plan, protocol=protocol) for plan in plans),
                strict=True,
            )
        )

        appointments: list[Appointment] = []
        holds: list[list[tuple[int, int, datetime, datetime]]] = []
        for offset in DAY_OFFSETS:
            day = FIRST_DAY + timedelta(days=offset)
            measured = 0 <= offset < 7
            for c in range(CHAIRS):
                for k in range(VISITS_PER_CHAIR_PER_DAY):
                    start = _local(day, OPEN_HOUR + k, (c % 4) * 15).astimezone(UTC)
                    end = start + timedelta(minutes=60)
                    roll = rng.random()
                    status = (
                        AppointmentStatus.CANCELLED
                        if roll < 0.03
                        else AppointmentStatus.HELD
                        if roll < 0.05
                        else AppointmentStatus.NO_SHOW
                        if roll < 0.07
                        else AppointmentStatus.CONFIRMED
                        if roll < 0.2
                        else AppointmentStatus.BOOKED
                    )
                    n = c * VISITS_PER_CHAIR_PER_DAY + k
                    session = series.get(n) if measured else None
                    appointments.append(
                        Appointment(
                            reference=f"BC{offset - DAY_OFFSETS.start:02d}{n:04d}",
                            location=location,
                            appointment_type=consultation if k % 5 == 0 else infusion,
                            patient=patients[n],
                            start=start,
                            end=end,
                            status=status,
                            series=session,
                            series_index=offset + 1 if session else None,
                        )
                    )
                    holds.append(
                        [
                            (chairs[c].pk, 0, start, end),
                            (nurses[c // 2].pk, c % 2, start, end),
                            (prescribers[c // 3].pk, 0, start, start + timedelta(minutes=15)),
                        ]
                    )
        appointments = Appointment.objects.bulk_create(appointments, batch_size=2000)
        Allocation.objects.bulk_create(
            (
                Allocation(
                    appointment=appointment,
                    resource_id=rid,
                    lane=lane,
                    start=lo,
                    end=hi,
                    active=appointment.status
                    not in (AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW),
                )
                for appointment, placements in zip(appointments, holds, strict=True)
                for rid, lane, lo, hi in placements
            ),
            batch_size=5000,
        )
        sync_roles()
        desk, _ = User.objects.get_or_create(username=USERNAME)
        desk.groups.add(Group.objects.get(name=Role.FRONT_DESK))
        StaffProfile.objects.get_or_create(user=desk)[0].locations.add(location)
    with connection.cursor() as cur:
        for table in ("booking_allocation", "booking_appointment", "booking_patient"):
            cur.execute(f"ANALYZE {table}")
    Location.objects.filter(pk=location.pk).update(address=DATA_VERSION)


def ensure_data(rebuild: bool) -> float:
    from scheduling.models import Location

    if not rebuild and Location.objects.filter(slug=SLUG, address=DATA_VERSION).exists():
        return 0.0
    started = time.perf_counter()
    build()
    return time.perf_counter() - started


# --- The baseline: the obvious DRF implementation --------------------------------------------


def baseline_view() -> Any:
    from django.db.models import Prefetch
    from rest_framework import serializers
    from rest_framework.renderers import JSONRenderer

    from booking.api.calendar import CalendarData
    from booking.calendar import COLUMN_KINDS
    from booking.models import Allocation, Appointment, AppointmentStatus, Patient
    from scheduling.availability import from_minutes, local_day_bounds
    from scheduling.models import AppointmentType, Resource

    class PatientBrief(serializers.ModelSerializer[Patient]):
        class Meta:
            model = Patient
            fields = ["id", "first_name", "last_name"]

    class TypeBrief(serializers.ModelSerializer[AppointmentType]):
        class Meta:
            model = AppointmentType
            fields = ["slug", "name"]

    class AllocationBrief(serializers.ModelSerializer[Allocation]):
        class Meta:
            model = Allocation
            fields = ["resource", "lane", "start", "end"]

    class AppointmentCalendar(serializers.ModelSerializer[Appointment]):
        patient = PatientBrief()
        appointment_type = TypeBrief()
        allocations = AllocationBrief(many=True)

        class Meta:
            model = Appointment
            fields = [
                "reference",
                "start",
                "end",
                "status",
                "series",
                "series_index",
                "tentative",
                "patient",
                "appointment_type",
                "allocations",
            ]

    class ResourceBrief(serializers.ModelSerializer[Resource]):
        class Meta:
            model = Resource
            fields = ["id", "name"]

    class ModelSerializerCalendar(CalendarData):
        def render_body(
            self, *, location: Any, first_day: date, last_day: date, by: Any, **_: Any
        ) -> str:
            resources = Resource.objects.filter(
                location=location, kind__in=COLUMN_KINDS[by], is_active=True
            ).order_by("role", "name", "id")
            lo = from_minutes(local_day_bounds(location.zone, first_day)[0])
            hi = from_minutes(local_day_bounds(location.zone, last_day)[1])
            appointments = (
                Appointment.objects.filter(location=location, start__lt=hi, end__gt=lo)
                .exclude(status=AppointmentStatus.CANCELLED)
                .select_related("patient", "appointment_type")
                .prefetch_related(
                    Prefetch(
                        "allocations",
                        queryset=Allocation.objects.filter(active=True, resource__in=resources),
                    )
                )
                .order_by("start", "id")
            )
            body = {
                "timezone": location.timezone,
                "resources": ResourceBrief(resources, many=True).data,
                "events": AppointmentCalendar(appointments, many=True).data,
            }
            return JSONRenderer().render(body).decode()

    return ModelSerializerCalendar.as_view()


# --- Measurement --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--baseline-iterations", type=int, default=15)
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data")
    args = parser.parse_args()

    setup_django()
    from django.contrib.auth.models import User
    from django.db import connection
    from rest_framework.test import APIRequestFactory, force_authenticate

    from booking.api.calendar import CalendarData
    from booking.calendar import (
        calendar_json,
        calendar_load,
        calendar_window,
        lanes_sql,
        visits_sql,
    )
    from scheduling.models import Location

    info = machine_info()
    print("machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    built = ensure_data(args.rebuild)
    print(f"data: built in {built:.1f} s" if built else "data: reused")

    location = Location.objects.get(slug=SLUG)
    params = {
        "location": SLUG,
        "start": FIRST_DAY.isoformat(),
        "end": LAST_DAY.isoformat(),
        "by": "staff",
    }
    factory = APIRequestFactory()
    ours, baseline = CalendarData.as_view(), baseline_view()

    def call(view: Any) -> Any:
        # A fresh user each time, as each request has: no permission or location cache carried.
        request = factory.get("/api/v1/calendar/", params)
        force_authenticate(request, user=User.objects.get(username=USERNAME))
        response = view(request)
        if response.status_code != 200:
            sys.exit(f"the calendar answered {response.status_code}: {response.content[:300]!r}")
        return response

    body = json.loads(call(ours).content)
    slow = json.loads(call(baseline).content)
    shown = calendar_load(location=location, first_day=FIRST_DAY, last_day=LAST_DAY, by="staff")
    kinds = {"visit": 0, "turnover": 0, "watch": 0}
    shown_visits: dict[str, dict[str, Any]] = {}
    for event in body["events"]:
        kinds[event["kind"]] += 1
        if event["kind"] == "visit":
            shown_visits.setdefault(event["visit"], event)
    held = sum(1 for e in shown_visits.values() if e["status"] == "held")
    sessions = sum(1 for e in shown_visits.values() if e["series"])
    print(
        f"week: {FIRST_DAY}..{LAST_DAY} ({ZONE_NAME}), {len(body['resources'])} staff columns, "
        f"{len(shown_visits)} visits ({held} held, {sessions} series sessions), "
        f"{kinds['visit']} visit events (one per visit and column), {kinds['turnover']} "
        f"turnover, {kinds['watch']} watch pieces, {len(call(ours).content) / 1024:.0f} KiB; "
        f"baseline {len(slow['events'])} visits"
    )
    baseline_visits = {e["reference"] for e in slow["events"]}
    if set(shown_visits) != baseline_visits or body["events"] != shown["events"]:
        sys.exit("the endpoint and the baseline disagree on the visits shown")

    for _ in range(20):  # warm-up: imports, caches, PostgreSQL's buffers and plans
        call(ours)
    selector, _ = timed(
        lambda _: calendar_json(
            location=location, first_day=FIRST_DAY, last_day=LAST_DAY, by="staff"
        ),
        args.iterations,
    )
    endpoint, _ = timed(lambda _: call(ours), args.iterations)

    def rows_only(_: Any) -> None:
        # The floor under the selector: its reads of the week (the resources, types and needs,
        # the visits with their patients, the lanes of the location's resources) fetched,
        # nothing done with them.
        window = calendar_window(
            location=location, first_day=FIRST_DAY, last_day=LAST_DAY, by="staff"
        )
        with connection.cursor() as cursor:
            for sql, params in (visits_sql(window), lanes_sql(window, sorted(window.known))):
                cursor.execute(sql, params)
                cursor.fetchall()

    fetch, _ = timed(rows_only, args.iterations)
    for _ in range(2):
        call(baseline)
    reference, _ = timed(lambda _: call(baseline), args.baseline_iterations)

    rows = [
        ("the selector's reads alone (resources, types, needs, visits, lanes), fetched", fetch),
        ("selector (calendar_json)", selector),
        ("endpoint view (selector + JSON, DRF request, audit row)", endpoint),
        ("baseline view (nested ModelSerializer)", reference),
    ]
    for label, samples in rows:
        print(
            f"{label}: p50 {percentile(samples, 50):.2f} ms, p95 {percentile(samples, 95):.2f} ms,"
            f" n={len(samples)}"
        )
    p50 = percentile(endpoint, 50)
    ratio = percentile(reference, 50) / p50
    print(f"ratio baseline/endpoint p50: {ratio:.1f}x")
    print(
        json.dumps(
            {
                "bench": "calendar",
                "p50_ms": round(p50, 2),
                "selector_p50_ms": round(percentile(selector, 50), 2),
                "reads_p50_ms": round(percentile(fetch, 50), 2),
                "ratio_vs_modelserializer": round(ratio, 1),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Shared fixtures: a small clinic with known resources, and patients on demand."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.db.backends.base.operations import BaseDatabaseOperations
from django.test import Client, override_settings

from booking.defaults import protocols_install_defaults
from booking.eligibility import (
    MAX_SESSIONS_AUTHORISED,
    contraindications_none,
    eligibility_decide,
)
from booking.models import (
    Appointment,
    AuditEvent,
    DecisionOutcome,
    Patient,
    Protocol,
    TreatmentPlan,
)
from booking.signals import appointment_changed
from scheduling.defaults import appointment_types_install_defaults
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
from tests.staff_helpers import client_for


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL: set DATABASE_URL=postgres://... (CI always does)"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def proof_of_work_off(settings: Any) -> None:
    """The booking tests book many times from one address: the proof of work asked after a
    threshold (booking.pow) is tested on its own (tests/booking/test_pow.py), which lowers it."""
    settings.POW_AFTER_ATTEMPTS = 1_000_000


@pytest.fixture(scope="session", autouse=True)
def static_files_from_the_apps() -> Iterator[None]:
    """collectstatic does not run for the tests: pages link the apps' files by their own names
    and WhiteNoise serves them from the apps' folders. The hashed, compressed files production
    serves are tested in tests/config/test_compression.py."""
    with override_settings(
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        WHITENOISE_USE_FINDERS=True,
    ):
        yield


# booking 0008: the audit log refuses TRUNCATE, even to its owner.
AUDIT_TRUNCATE_GUARD = "booking_audit_no_truncate"


@pytest.fixture(scope="session", autouse=True)
def flush_lifts_the_audit_truncate_guard() -> Iterator[None]:
    """A transactional test ends with Django's flush: one TRUNCATE of every table, which the
    audit log's guard refuses. The test database's owner lifts the guard for that one
    transaction only (DDL is transactional: were the flush to fail, the guard stays)."""
    if connection.vendor != "postgresql":
        yield
        return
    operations = type(connection.ops)
    flush = operations.execute_sql_flush
    table = connection.ops.quote_name(AuditEvent._meta.db_table)

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: Iterable[str]) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s", [AUDIT_TRUNCATE_GUARD])
            guarded = cursor.fetchone() is not None
        sql_list = list(sql_list)
        if guarded and any(table in statement for statement in sql_list):
            sql_list = [
                f"ALTER TABLE {table} DISABLE TRIGGER {AUDIT_TRUNCATE_GUARD}",
                *sql_list,
                f"ALTER TABLE {table} ENABLE TRIGGER {AUDIT_TRUNCATE_GUARD}",
            ]
        flush(self, sql_list)

    operations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    try:
        yield
    finally:
        operations.execute_sql_flush = flush  # type: ignore[method-assign]


def open_every_day(resource: Resource, start: time = time(8), end: time = time(18)) -> None:
    WorkingHours.objects.bulk_create(
        WorkingHours(
            resource=resource, location_id=resource.location_id, weekday=day, start=start, end=end
        )
        for day in range(7)
    )


@pytest.fixture
def location(db: None) -> Location:
    return Location.objects.create(
        slug="midtown",
        name="Midtown Ketamine Clinic",
        public_name="Midtown Health",
        timezone="America/New_York",
        phone="+12125550100",
    )


@pytest.fixture
def clinic(location: Location) -> Location:
    """Open 08:00-18:00 every day: two prescribers, one nurse watching three chairs, two
    chairs and a consult room, with the default appointment types."""
    appointment_types_install_defaults(location=location)
    for name in ("Dr. One", "Dr. Two"):
        open_every_day(
            Resource.objects.create(
                location=location, kind=ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name=name
            )
        )
    open_every_day(
        Resource.objects.create(
            location=location,
            kind=ResourceKind.STAFF,
            role=StaffRole.NURSE,
            name="Nurse",
            capacity=3,
        )
    )
    for name in ("Chair 1", "Chair 2"):
        open_every_day(
            Resource.objects.create(location=location, kind=ResourceKind.CHAIR, name=name)
        )
    open_every_day(
        Resource.objects.create(location=location, kind=ResourceKind.ROOM, name="Room 1")
    )
    return location


@pytest.fixture
def consultation(clinic: Location) -> AppointmentType:
    return AppointmentType.objects.select_related("location").get(
        location=clinic, slug="consultation"
    )


@pytest.fixture
def infusion(clinic: Location) -> AppointmentType:
    return AppointmentType.objects.select_related("location").get(location=clinic, slug="iv-mood")


_serial = itertools.count(1)


def new_patient(**fields: object) -> Patient:
    n = next(_serial)
    values: dict[str, object] = {
        "first_name": f"Pat{n}",
        "last_name": "Example",
        "email": f"pat{n}@example.com",
        "phone": f"+1212555{n:04d}",
        "date_of_birth": date(1980, 1, 1),
    }
    values.update(fields)
    return Patient.objects.create(**values)


@pytest.fixture
def make_patient(db: None) -> Callable[..., Patient]:
    return new_patient


# Test approvals are decided before any date the tests book on, and valid long after.
APPROVED_AT = datetime(2026, 1, 1, tzinfo=UTC)
APPROVED_UNTIL = date(2027, 12, 31)


def a_prescriber() -> User:
    """A signed-up prescriber (the permission is what ``is_prescriber`` asks), to decide with."""
    prescriber = User.objects.create_user(f"prescriber-{next(_serial)}")
    prescriber.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="booking", codename="add_eligibilitydecision"
        )
    )
    return prescriber


def approve(
    patient: Patient, *appointment_types: AppointmentType, by: User | None = None
) -> Patient:
    """Approve ``patient`` for each treatment type given, through the gate rather than around it:
    a prescriber's decision on the type's first active protocol (a one-session protocol is made
    for a type that has none), and REMS enrolment for an observed session. Only a consultation
    may be booked unapproved (the ``appointment_type_treatment_approved`` check), so a test about
    something else that books a treatment approves its patients with this. Types the patient is
    already approved for are skipped."""
    approved = set(
        TreatmentPlan.objects.filter(patient=patient, revoked_at__isnull=True).values_list(
            "protocol__appointment_type_id", flat=True
        )
    )
    treatments = [t for t in appointment_types if t.pk not in approved]
    if not treatments:
        return patient
    if patient.rems_enrolled_at is None and any(
        t.kind == AppointmentKind.SPRAVATO for t in treatments
    ):
        Patient.objects.filter(pk=patient.pk).update(rems_enrolled_at=APPROVED_AT)
        patient.rems_enrolled_at = APPROVED_AT
    by = by or a_prescriber()
    for appointment_type in treatments:
        protocol = (
            Protocol.objects.filter(appointment_type=appointment_type, is_active=True)
            .order_by("pk")
            .first()
        ) or Protocol.objects.create(
            appointment_type=appointment_type,
            slug=f"approved-{appointment_type.pk}",
            name="One session at a time",
            sessions=1,
            window_days=1,
        )
        eligibility_decide(
            patient=patient,
            outcome=DecisionOutcome.APPROVED,
            contraindications=contraindications_none(),
            protocol=protocol,
            sessions_authorised=MAX_SESSIONS_AUTHORISED,
            valid_until=APPROVED_UNTIL,
            decided_by=by,
            now=APPROVED_AT,
        )
    return patient


@pytest.fixture
def make_approved_patient(clinic: Location) -> Callable[..., Patient]:
    """Patients a prescriber has approved for every treatment the clinic offers (and, for the
    observed sessions, enrolled in REMS), so a test about something else can book them.

    A module whose patients all need that overrides ``make_patient`` with this fixture.
    """
    prescriber = a_prescriber()
    protocols_install_defaults(location=clinic)
    treatments = list(
        AppointmentType.objects.filter(location=clinic, protocols__isnull=False).distinct()
    )

    def make(**fields: object) -> Patient:
        fields.setdefault("rems_enrolled_at", APPROVED_AT)
        return approve(new_patient(**fields), *treatments, by=prescriber)

    return make


# --- Small factories, for tests that need a clinic shaped differently from ``clinic`` ----------

Hours = Iterable[tuple[time, time]]


@pytest.fixture
def make_location(db: None) -> Callable[..., Location]:
    def make(**fields: object) -> Location:
        n = next(_serial)
        values: dict[str, object] = {
            "slug": f"site-{n}",
            "name": f"Site {n} Ketamine Clinic",
            "public_name": f"Site {n} Health",
            "timezone": "America/New_York",
        }
        values.update(fields)
        return Location.objects.create(**values)

    return make


@pytest.fixture
def make_resource(db: None) -> Callable[..., Resource]:
    """A resource open every day during ``hours`` (08:00-18:00 unless told)."""

    def make(
        location: Location,
        kind: str,
        *,
        role: str = "",
        capacity: int = 1,
        name: str = "",
        hours: Hours = ((time(8), time(18)),),
    ) -> Resource:
        resource = Resource.objects.create(
            location=location,
            kind=kind,
            role=role,
            capacity=capacity,
            name=name or f"{role or kind} {next(_serial)}",
        )
        for start, end in hours:
            open_every_day(resource, start, end)
        return resource

    return make


@pytest.fixture
def make_type(db: None) -> Callable[..., AppointmentType]:
    """An appointment type with the given requirements, each a dict of ResourceRequirement
    fields (``{"resource_kind": "chair", "buffer_after_minutes": 10}``). No notice by default,
    so tests choose the rule they exercise."""

    def make(
        location: Location,
        *,
        duration: int,
        needs: Iterable[Mapping[str, object]],
        **fields: object,
    ) -> AppointmentType:
        n = next(_serial)
        values: dict[str, object] = {
            "slug": f"type-{n}",
            "name": f"Internal type {n}",
            "public_name": f"Visit {n}",
            # A consultation: no approval gate or age floor unless the test is about them.
            "kind": AppointmentKind.CONSULTATION,
            "duration_minutes": duration,
            "min_notice_minutes": 0,
            "bookable_online": True,
        }
        values.update(fields)
        # Only a consultation may be booked unapproved (the appointment_type_treatment_approved
        # check): a treatment type is gated, and its test approves its patients (``approve``).
        values.setdefault("needs_approval", values["kind"] != AppointmentKind.CONSULTATION)
        appointment_type = AppointmentType.objects.create(location=location, **values)
        ResourceRequirement.objects.bulk_create(
            ResourceRequirement(appointment_type=appointment_type, **need) for need in needs
        )
        return AppointmentType.objects.select_related("location").get(pk=appointment_type.pk)

    return make


CHAIR_ONLY: tuple[Mapping[str, object], ...] = ({"resource_kind": ResourceKind.CHAIR},)


@pytest.fixture
def one_chair(make_location, make_resource, make_type) -> AppointmentType:
    """A 90-minute visit whose only need is the single chair of its location, no turnover."""
    location = make_location()
    make_resource(location, ResourceKind.CHAIR, name="The chair")
    return make_type(location, duration=90, needs=CHAIR_ONLY)


@pytest.fixture
def count_overlaps(db: None) -> Callable[[], int]:
    """Pairs of active allocations on the same lane of a resource whose times overlap."""

    def count() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT count(*)
                FROM booking_allocation a
                JOIN booking_allocation b
                  ON a.id < b.id
                 AND a.resource_id = b.resource_id
                 AND a.lane = b.lane
                 AND a.start < b."end"
                 AND b.start < a."end"
                WHERE a.active AND b.active
                """
            )
            (pairs,) = cursor.fetchone()
        return int(pairs)

    return count


@dataclass(frozen=True)
class Announcement:
    change: str
    appointment_id: int
    version: int
    in_transaction: bool


@pytest.fixture
def announcements() -> Iterator[list[Announcement]]:
    """Every ``appointment_changed`` sent while the test runs, with whether it came inside a
    transaction (receivers must be able to write in the same one)."""
    heard: list[Announcement] = []

    def receiver(
        sender: object, *, appointment: Appointment, change: str, **kwargs: object
    ) -> None:
        heard.append(
            Announcement(
                change=change,
                appointment_id=appointment.pk,
                version=appointment.version,
                in_transaction=connection.in_atomic_block,
            )
        )

    appointment_changed.connect(receiver, dispatch_uid="tests-announcements")
    try:
        yield heard
    finally:
        appointment_changed.disconnect(dispatch_uid="tests-announcements")


@pytest.fixture
def one_nurse_four_chairs(
    make_location: Callable[..., Location], make_resource: Callable[..., Resource]
) -> AppointmentType:
    """The default infusion at a site where one nurse (capacity 3) is the bottleneck. A
    treatment: its tests ``approve`` the patients they book."""
    location = make_location()
    appointment_types_install_defaults(location=location)
    for _ in range(4):
        make_resource(location, ResourceKind.CHAIR)
        make_resource(location, ResourceKind.STAFF, role=StaffRole.PRESCRIBER)
    make_resource(location, ResourceKind.STAFF, role=StaffRole.NURSE, capacity=3)
    return AppointmentType.objects.select_related("location").get(location=location, slug="iv-mood")


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    """pytest-django's, past the second factor a superuser signs in with."""
    return client_for(admin_user)

"""booking.retention: bounded deletes of booking's growing tables, and the audit log's monthly
partitions (created ahead, archived and dropped past the legal period, never row by row)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from time_machine import TimeMachineFixture

import booking.retention
from booking.models import (
    AuditAction,
    AuditEvent,
    IdempotencyRecord,
    OfferStatus,
    Patient,
    PatientLink,
    TentativeHold,
    WaitlistEntry,
    WaitlistOffer,
)
from booking.retention import (
    audit_partitions_archive,
    audit_partitions_create,
    booking_retention_run,
    delete_in_batches,
)
from booking.services import appointment_book
from scheduling.models import AppointmentType

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
_tokens = itertools.count(1)


@pytest.fixture(autouse=True)
def pinned(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(NOW, tick=False)


def token() -> str:
    return f"{next(_tokens):064d}"


def idempotency(created_at: datetime) -> IdempotencyRecord:
    return IdempotencyRecord.objects.create(
        scope="bookings",
        key=token(),
        request_hash="h",
        response_status=201,
        response_body={},
        created_at=created_at,
    )


def test_it_removes_only_idempotency_records_past_their_period(db: None, settings: Any) -> None:
    settings.RETENTION_IDEMPOTENCY_DAYS = 7
    cutoff = NOW - timedelta(days=7)
    past = idempotency(cutoff - SECOND)
    inside = idempotency(cutoff + SECOND)

    counts = booking_retention_run(now=NOW)

    assert counts["idempotency_records"] == 1
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [inside.pk]
    assert not IdempotencyRecord.objects.filter(pk=past.pk).exists()


def test_it_removes_links_holds_and_offers_only_once_expired_for_the_period(
    consultation: AppointmentType, make_patient: Callable[..., Patient], settings: Any
) -> None:
    settings.RETENTION_EXPIRED_DAYS = 30
    cutoff = NOW - timedelta(days=30)
    patient = make_patient()

    def link(expires_at: datetime, revoked_at: datetime | None = None) -> PatientLink:
        return PatientLink.objects.create(
            patient=patient,
            token_hash=token(),
            created_at=expires_at - timedelta(days=60),
            expires_at=expires_at,
            revoked_at=revoked_at,
        )

    old_link = link(cutoff - SECOND)
    revoked_long_ago = link(NOW + timedelta(days=300), revoked_at=cutoff - SECOND)
    young_link = link(cutoff + SECOND)

    # Inside the clinic's opening hours (America/New_York).
    first = datetime.fromisoformat("2026-12-10T10:00:00-05:00")
    starts = iter(first + timedelta(hours=h) for h in range(0, 8, 2))

    def hold(expires_at: datetime) -> TentativeHold:
        visit = appointment_book(
            appointment_type=consultation, patient=make_patient(), start=next(starts), now=NOW
        )
        return TentativeHold.objects.create(
            appointment=visit, token_hash=token(), expires_at=expires_at, created_at=NOW
        )

    old_hold, young_hold = hold(cutoff - SECOND), hold(cutoff + SECOND)

    entry = WaitlistEntry.objects.create(
        patient=patient,
        location=consultation.location,
        appointment_type=consultation,
        earliest_date=date(2026, 10, 1),
        latest_date=date(2026, 12, 31),
        created_at=NOW - timedelta(days=90),
    )

    def offer(expires_at: datetime, status: str) -> WaitlistOffer:
        return WaitlistOffer.objects.create(
            entry=entry,
            start=expires_at,
            end=expires_at + timedelta(hours=1),
            expires_at=expires_at,
            token_hash=token(),
            status=status,
            created_at=expires_at - timedelta(hours=2),
        )

    old_offer = offer(cutoff - SECOND, OfferStatus.EXPIRED)
    young_offer = offer(cutoff + SECOND, OfferStatus.DECLINED)
    # Never answered nor swept: still the waitlist's to close, however old.
    open_offer = offer(cutoff - timedelta(days=5), OfferStatus.OPEN)

    counts = booking_retention_run(now=NOW)

    assert counts == {
        "idempotency_records": 0,
        "patient_links": 2,
        "tentative_holds": 1,
        "waitlist_offers": 1,
    }
    assert set(PatientLink.objects.values_list("pk", flat=True)) == {young_link.pk}
    assert not PatientLink.objects.filter(pk__in=[old_link.pk, revoked_long_ago.pk]).exists()
    assert set(TentativeHold.objects.values_list("pk", flat=True)) == {young_hold.pk}
    assert not TentativeHold.objects.filter(pk=old_hold.pk).exists()
    assert set(WaitlistOffer.objects.values_list("pk", flat=True)) == {
        young_offer.pk,
        open_offer.pk,
    }
    assert not WaitlistOffer.objects.filter(pk=old_offer.pk).exists()


def test_a_dry_run_counts_and_removes_nothing(db: None) -> None:
    idempotency(NOW - timedelta(days=30))

    assert booking_retention_run(now=NOW, dry_run=True)["idempotency_records"] == 1
    assert IdempotencyRecord.objects.count() == 1


def test_it_deletes_in_batches_of_the_configured_size(db: None, settings: Any) -> None:
    settings.RETENTION_BATCH_SIZE = 2
    for _ in range(5):
        idempotency(NOW - timedelta(days=30))
    kept = idempotency(NOW)

    with CaptureQueriesContext(connection) as queries:
        counts = booking_retention_run(now=NOW)

    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert counts["idempotency_records"] == 5
    assert len(deletes) == 3
    assert [len(d.split("IN (")[1].split(",")) for d in deletes] == [2, 2, 1]
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [kept.pk]


@pytest.mark.django_db(transaction=True)
def test_each_batch_is_committed_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(5):
        idempotency(NOW - timedelta(days=30))
    delete = booking.retention._delete_rows
    calls = itertools.count()

    def fail_on_the_second_batch(*args: Any) -> int:
        if next(calls) == 1:
            raise DatabaseError("connection lost")
        return delete(*args)

    monkeypatch.setattr(booking.retention, "_delete_rows", fail_on_the_second_batch)

    with pytest.raises(DatabaseError):
        delete_in_batches(IdempotencyRecord.objects.all(), batch_size=2)

    # The first batch stays removed; the failed one rolled back alone.
    assert IdempotencyRecord.objects.count() == 3


# --- The audit log's partitions (PostgreSQL) --------------------------------------------------


def audit_at(at: datetime) -> AuditEvent:
    return AuditEvent.objects.create(
        at=at,
        username="frontdesk",
        action=AuditAction.VIEW,
        object_type="patient",
        object_id="7",
        method="GET",
        path="/staff/patients/7/",
        detail={"why": "check-in"},
    )


def foreign_keys_checked_now() -> None:
    """The test's inserts' deferred foreign-key checks, run now. TRUNCATE, DETACH and DROP refuse
    to run behind pending checks; the daily task meets only rows committed long ago."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def partition_of(event: AuditEvent) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM booking_auditevent WHERE id = %s", [event.pk]
        )
        return cursor.fetchone()[0]


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cursor.fetchone()[0])


@pytest.mark.postgres
def test_the_audit_log_is_partitioned_by_month(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT partstrat FROM pg_partitioned_table "
            "WHERE partrelid = 'booking_auditevent'::regclass"
        )
        assert cursor.fetchone() == ("r",)
    audit_partitions_create(now=NOW)

    event = audit_at(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))

    assert partition_of(event) == "booking_auditevent_y2026m12"
    assert AuditEvent.objects.get(pk=event.pk).detail == {"why": "check-in"}


@pytest.mark.postgres
def test_it_creates_partitions_three_months_ahead(db: None) -> None:
    later = datetime(2031, 5, 20, tzinfo=UTC)

    assert audit_partitions_create(now=later) == 4
    assert audit_partitions_create(now=later) == 0

    for month in ("2031m05", "2031m06", "2031m07", "2031m08"):
        assert table_exists(f"booking_auditevent_y{month}")
    assert not table_exists("booking_auditevent_y2031m09")
    assert partition_of(audit_at(datetime(2031, 8, 1, tzinfo=UTC))) == "booking_auditevent_y2031m08"


@pytest.mark.postgres
def test_a_row_for_a_month_nobody_created_lands_in_the_default_partition(db: None) -> None:
    event = audit_at(datetime(2041, 3, 1, tzinfo=UTC))

    assert partition_of(event) == "booking_auditevent_default"
    # That month is then left where it is rather than moved row by row.
    assert audit_partitions_create(now=datetime(2041, 3, 2, tzinfo=UTC)) == 3
    assert not table_exists("booking_auditevent_y2041m03")


@pytest.mark.postgres
def test_it_archives_and_drops_only_months_wholly_past_the_legal_period(
    db: None, settings: Any, tmp_path: Path
) -> None:
    settings.VAR_DIR = tmp_path
    settings.AUDIT_RETENTION_YEARS = 6
    # Six years before December 2026's first day is 2020-12-01: November 2020 has wholly
    # passed, December 2020 has not.
    with connection.cursor() as cursor:
        for month in (date(2020, 11, 1), date(2020, 12, 1)):
            cursor.execute("SELECT booking_audit_partition_create(%s)", [month])
    audit_partitions_create(now=NOW)
    old = [
        audit_at(datetime(2020, 11, 1, tzinfo=UTC)),
        audit_at(datetime(2020, 11, 30, 23, 59, 59, tzinfo=UTC)),
    ]
    kept = audit_at(datetime(2020, 12, 1, tzinfo=UTC))
    current = audit_at(NOW)
    foreign_keys_checked_now()

    assert audit_partitions_archive(now=NOW, dry_run=True) == 1
    assert table_exists("booking_auditevent_y2020m11")
    assert audit_partitions_archive(now=NOW) == 1

    assert not table_exists("booking_auditevent_y2020m11")
    assert table_exists("booking_auditevent_y2020m12")
    assert table_exists("booking_auditevent_y2026m12")
    assert set(AuditEvent.objects.values_list("pk", flat=True)) == {kept.pk, current.pk}
    archive = tmp_path / "archive" / "audit" / "2020-11.csv.gz"
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(archive.read_bytes()).decode())))
    assert [int(row["id"]) for row in rows] == [event.pk for event in old]
    assert rows[0]["username"] == "frontdesk"
    assert rows[0]["path"] == "/staff/patients/7/"
    checksum = (tmp_path / "archive" / "audit" / "2020-11.csv.gz.sha256").read_text()
    assert checksum == f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  2020-11.csv.gz\n"


@pytest.mark.postgres
def test_it_never_archives_the_current_month_even_with_a_short_period(
    db: None, settings: Any, tmp_path: Path
) -> None:
    settings.VAR_DIR = tmp_path
    settings.AUDIT_RETENTION_YEARS = 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT booking_audit_partition_create(%s)", [date(2025, 11, 1)])
    audit_partitions_create(now=NOW)
    audit_at(datetime(2025, 11, 15, tzinfo=UTC))
    current = audit_at(NOW)
    foreign_keys_checked_now()

    assert audit_partitions_archive(now=NOW + timedelta(days=24)) == 1

    assert not table_exists("booking_auditevent_y2025m11")
    assert table_exists("booking_auditevent_y2026m12")
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [current.pk]


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM booking_auditevent",
        "DELETE FROM booking_auditevent_y2026m12",
        "UPDATE booking_auditevent_y2026m12 SET username = 'someone else'",
        "TRUNCATE booking_auditevent_y2026m12",
        "TRUNCATE booking_auditevent",
    ],
)
def test_the_append_only_guard_still_refuses_on_live_partitions(db: None, statement: str) -> None:
    audit_partitions_create(now=NOW)
    audit_at(NOW)
    foreign_keys_checked_now()

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)

    assert AuditEvent.objects.count() == 1


@pytest.mark.postgres
def test_a_month_left_detached_by_an_interrupted_run_is_archived_by_the_next(
    db: None, settings: Any, tmp_path: Path
) -> None:
    settings.VAR_DIR = tmp_path
    with connection.cursor() as cursor:
        cursor.execute("SELECT booking_audit_partition_create(%s)", [date(2019, 3, 1)])
    event = audit_at(datetime(2019, 3, 9, tzinfo=UTC))
    foreign_keys_checked_now()
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE booking_auditevent DETACH PARTITION booking_auditevent_y2019m03"
        )

    assert audit_partitions_archive(now=NOW) == 1

    assert not table_exists("booking_auditevent_y2019m03")
    archive = tmp_path / "archive" / "audit" / "2019-03.csv.gz"
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(archive.read_bytes()).decode())))
    assert [int(row["id"]) for row in rows] == [event.pk]
    assert not list((tmp_path / "archive" / "audit").glob("*.partial"))


@pytest.mark.postgres
def test_the_application_role_creates_months_ahead_but_leaves_archiving_to_the_owner(
    db: None, settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings.VAR_DIR = tmp_path
    with connection.cursor() as cursor:
        cursor.execute("SELECT booking_audit_partition_create(%s)", [date(2019, 5, 1)])
    audit_at(datetime(2019, 5, 9, tzinfo=UTC))
    foreign_keys_checked_now()
    # Roles are the server's: the test's rollback drops this one with its grants.
    role = f"chairside_app_test_{secrets.token_hex(4)}"
    call_command("app_role", role=role, password_env="NO_SUCH_VARIABLE", stdout=io.StringIO())
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{role}"')
    try:
        created = audit_partitions_create(now=datetime(2032, 2, 1, tzinfo=UTC))
        archived = audit_partitions_archive(now=NOW)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")

    assert created == 4
    assert table_exists("booking_auditevent_y2032m05")
    assert archived == 0
    assert table_exists("booking_auditevent_y2019m05")
    assert "as the owner of the tables" in caplog.text
    assert not (tmp_path / "archive").exists()

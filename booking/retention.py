"""How long booking's growing tables keep their rows, and the bounded deletes that enforce it.

Every removal goes in batches of ``RETENTION_BATCH_SIZE`` rows, each batch its own short
transaction: a first run over years of history never holds locks for minutes or builds one huge
transaction behind the live traffic, and a run cut short keeps what it already removed.

The audit log is never deleted from: on PostgreSQL it is partitioned by month (migration 0012),
partitions are created three months ahead, and a month wholly older than
``AUDIT_RETENTION_YEARS`` is detached, written to ``VAR_DIR/archive/audit/<yyyy-mm>.csv.gz``
(with a ``.sha256`` beside it) and only then dropped. The current month is never touched.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q

from booking.models import (
    AuditEvent,
    IdempotencyRecord,
    OfferStatus,
    PatientLink,
    TentativeHold,
    WaitlistOffer,
)

logger = logging.getLogger(__name__)

PARTITION_NAME = re.compile(r"^booking_auditevent_y(\d{4})m(\d{2})$")
MONTHS_AHEAD = 3


@dataclass(frozen=True)
class Dependent:
    """Rows of ``model`` that point through ``field`` at the rows being removed: they go first,
    in the same batch (the database's foreign keys do not cascade)."""

    model: type[models.Model]
    field: str

    @property
    def column(self) -> str:
        field = self.model._meta.get_field(self.field)
        if not isinstance(field, models.ForeignKey):
            raise TypeError(f"{self.model.__name__}.{self.field} is not a foreign key")
        return str(field.column)


def delete_in_batches(
    queryset: models.QuerySet,
    *,
    batch_size: int | None = None,
    dependents: Sequence[Dependent] = (),
    dry_run: bool = False,
) -> tuple[int, list[int]]:
    """Delete the rows of ``queryset`` in batches, each its own transaction.

    Returns the rows removed and the rows of each dependent removed with them. Each batch locks
    the ids it picked (``FOR UPDATE``) so a row cannot change between the pick and the delete;
    ``queryset``'s filter must describe rows no live code writes to any more. With ``dry_run``
    it only counts.
    """
    limit = batch_size or settings.RETENTION_BATCH_SIZE
    if dry_run:
        parents = queryset.values("pk")
        return queryset.count(), [
            d.model._default_manager.filter(**{f"{d.field}__in": parents}).count()
            for d in dependents
        ]
    removed, removed_dependents = 0, [0] * len(dependents)
    while True:
        with transaction.atomic():
            ids = list(
                queryset.order_by("pk").select_for_update().values_list("pk", flat=True)[:limit]
            )
            if not ids:
                break
            for index, dependent in enumerate(dependents):
                removed_dependents[index] += _delete_rows(dependent.model, dependent.column, ids)
            removed += _delete_rows(queryset.model, queryset.model._meta.pk.column, ids)
        if len(ids) < limit:
            break
    return removed, removed_dependents


def _delete_rows(model: type[models.Model], column: str, ids: list[int]) -> int:
    quote = connection.ops.quote_name
    placeholders = ", ".join(["%s"] * len(ids))
    sql = f"DELETE FROM {quote(model._meta.db_table)} WHERE {quote(column)} IN ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return cursor.rowcount


def booking_retention_run(*, now: datetime, dry_run: bool = False) -> dict[str, int]:
    """Remove booking's rows past their period at ``now``; the counts per kind."""
    expired = now - timedelta(days=settings.RETENTION_EXPIRED_DAYS)
    kinds: dict[str, models.QuerySet] = {
        "idempotency_records": IdempotencyRecord.objects.filter(
            created_at__lt=now - timedelta(days=settings.RETENTION_IDEMPOTENCY_DAYS)
        ),
        "patient_links": PatientLink.objects.filter(
            Q(expires_at__lt=expired) | Q(revoked_at__lt=expired)
        ),
        "tentative_holds": TentativeHold.objects.filter(expires_at__lt=expired),
        # An open offer is still the waitlist's business, however late its expiry sweep.
        "waitlist_offers": WaitlistOffer.objects.filter(expires_at__lt=expired).exclude(
            status=OfferStatus.OPEN
        ),
    }
    return {
        kind: delete_in_batches(queryset, dry_run=dry_run)[0] for kind, queryset in kinds.items()
    }


# --- The audit log's partitions (PostgreSQL) ---------------------------------------------------


def audit_is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)",
            [AuditEvent._meta.db_table],
        )
        return cursor.fetchone() is not None


def _month(day: date, months: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def audit_partitions_create(*, now: datetime, dry_run: bool = False) -> int:
    """Create the partitions of the current month and the next three that do not exist yet;
    the number created. (Migration 0012's function holds the rule for names and bounds.)"""
    if not audit_is_partitioned():
        return 0
    months = [_month(now.date(), ahead) for ahead in range(MONTHS_AHEAD + 1)]
    created = 0
    with connection.cursor() as cursor:
        for month in months:
            if dry_run:
                cursor.execute("SELECT to_regclass(%s) IS NULL", [_partition_name(month)])
            else:
                cursor.execute("SELECT booking_audit_partition_create(%s)", [month])
            created += bool(cursor.fetchone()[0])
    return created


def _partition_name(month: date) -> str:
    return f"booking_auditevent_y{month.year:04d}m{month.month:02d}"


def audit_archive_dir() -> Path:
    return Path(settings.VAR_DIR) / "archive" / "audit"


def audit_partitions_due(*, now: datetime) -> list[tuple[str, date, bool]]:
    """The monthly partitions wholly older than the legal period, oldest first, as (table,
    month, still attached). A table left detached by an interrupted run is listed again."""
    if not audit_is_partitioned():
        return []
    # Month granularity, rounded towards keeping: a month goes once it ended at least
    # AUDIT_RETENTION_YEARS before the first day of the current month.
    this_month = _month(now.date())
    keep_from = date(this_month.year - settings.AUDIT_RETENTION_YEARS, this_month.month, 1)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, i.inhrelid IS NOT NULL
            FROM pg_class c
            LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = to_regclass(%s)
            WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
              AND c.relname LIKE 'booking\\_auditevent\\_y%%'
            """,
            [AuditEvent._meta.db_table],
        )
        rows = cursor.fetchall()
    due = []
    for name, attached in rows:
        match = PARTITION_NAME.match(name)
        if not match:
            continue
        month = date(int(match[1]), int(match[2]), 1)
        # The second test is the current month's guard, whatever the setting says.
        if _month(month, 1) <= keep_from and _month(month, 1) <= this_month:
            due.append((name, month, attached))
    return sorted(due, key=lambda row: row[1])


def audit_partitions_archive(*, now: datetime, dry_run: bool = False) -> int:
    """Archive and drop every partition :func:`audit_partitions_due` lists; the number done.

    Detach (its own transaction: the live log no longer sees the month), write the rows to a
    gzip file and its checksum, fsync both and the folder, and only then drop the table. A
    failure at any step leaves the table in place, detached, for the next run to finish.
    """
    due = audit_partitions_due(now=now)
    if dry_run or not due:
        return len(due)
    if not _owns_audit_log():
        # The application's role (manage.py app_role) may not detach or drop: that is what keeps
        # the log append-only for it. The owner runs ``manage.py retention_run`` instead.
        logger.warning(
            "%d audit month(s) past the legal period wait for archiving: run "
            "`manage.py retention_run` as the owner of the tables.",
            len(due),
        )
        return 0
    quote = connection.ops.quote_name
    for name, month, attached in due:
        if attached:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"ALTER TABLE {quote(AuditEvent._meta.db_table)} DETACH PARTITION {quote(name)}"
                )
        audit_partition_write(name, audit_archive_dir() / f"{month:%Y-%m}.csv.gz")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {quote(name)}")
    return len(due)


def _owns_audit_log() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
            "WHERE oid = to_regclass(%s)",
            [AuditEvent._meta.db_table],
        )
        return bool(cursor.fetchone()[0])


def audit_partition_write(table: str, target: Path) -> int:
    """Write ``table`` as CSV (with a header) to the gzip file ``target`` and its SHA-256 to
    ``target.sha256`` (``sha256sum -c`` reads it); the rows written. The file is read back and
    its rows counted against the table's before it takes its name; durable on return."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    quoted = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {quoted}")  # noqa: S608
        rows: int = cursor.fetchone()[0]
        with open(partial, "wb") as raw:
            with gzip.GzipFile(filename=target.stem, mode="wb", fileobj=raw) as gz:
                # The driver's own cursor: Django's wrapper has no COPY.
                copy_sql = (
                    f"COPY (SELECT * FROM {quoted} ORDER BY at, id) "  # noqa: S608
                    "TO STDOUT WITH (FORMAT csv, HEADER)"
                )
                with cursor.cursor.copy(copy_sql) as copy:
                    for chunk in copy:
                        gz.write(chunk)
            raw.flush()
            os.fsync(raw.fileno())
    with gzip.open(partial, "rt", encoding="utf-8", newline="") as written:
        # Records, not lines: a detail or path may hold a newline. One is the header.
        records = sum(1 for _ in csv.reader(written)) - 1
    if records != rows:
        raise OSError(f"{partial} holds {records} rows of {table}'s {rows}; table kept")
    with open(partial, "rb") as archive:
        digest = hashlib.file_digest(archive, "sha256").hexdigest()
    os.replace(partial, target)
    checksum = target.with_name(target.name + ".sha256")
    with open(checksum, "w", encoding="ascii") as out:
        out.write(f"{digest}  {target.name}\n")
        out.flush()
        os.fsync(out.fileno())
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return rows

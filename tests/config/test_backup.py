"""Backups restore: the drill dumps the database, restores it into a scratch database and finds
any difference (the tables' rows, the constraints, the audit log's trigger)."""

from __future__ import annotations

import io
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.db import connection

from booking.models import AuditEvent, Patient
from booking.services import appointment_book, appointment_cancel
from config import backup
from scheduling.models import AppointmentType
from tests.notifications.conftest import celery_broker

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
STARTS = ["2026-06-03T10:00:00-04:00", "2026-06-03T13:00:00-04:00", "2026-06-04T10:00:00-04:00"]


def scratch_databases() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            [f"{connection.settings_dict['NAME']}_drill_%"],
        )
        return {name for (name,) in cursor.fetchall()}


@pytest.fixture
def live(transactional_db: None) -> Iterator[backup.Target]:
    """The test database, committed (pg_dump reads it from its own session)."""
    # Bookings queue a sweep after commit: keep it in this process.
    with celery_broker("memory://localhost/"):
        yield backup.Target.from_settings(connection.settings_dict)
    assert scratch_databases() == set(), "the drill left a scratch database behind"


@pytest.fixture
def clinic_day(
    live: backup.Target, consultation: AppointmentType, make_patient: Callable[..., Patient]
) -> None:
    """Visits, one of them cancelled (so the outbox holds every kind of row), and audit events."""
    visits = [
        appointment_book(
            appointment_type=consultation,
            patient=make_patient(),
            start=datetime.fromisoformat(start),
            now=NOW,
        )
        for start in STARTS
    ]
    appointment_cancel(appointment=visits[0], now=NOW)
    for visit in visits:
        AuditEvent.objects.create(
            at=NOW,
            username="desk",
            action="view",
            object_type="appointment",
            object_id=visit.reference,
            patient=visit.patient,
            location=visit.location,
            ip="10.0.0.7",
            detail={"why": "check-in"},
        )


def run_drill(target: backup.Target, damage: str = "") -> tuple[backup.DrillResult, str]:
    def before_compare(copy: backup.Target) -> None:
        with closing(copy.connect()) as conn:
            conn.execute(damage)

    out = io.StringIO()
    result = backup.drill(target=target, before_compare=before_compare if damage else None, out=out)
    return result, out.getvalue()


@pytest.mark.postgres
@pytest.mark.usefixtures("clinic_day")
def test_a_restored_dump_matches_the_live_database(live: backup.Target) -> None:
    result, report = run_drill(live)

    assert result.ok, report
    assert report.rstrip().splitlines()[-1].startswith("PASSED")
    fingerprint = result.live_fingerprint
    assert fingerprint.tables["booking_appointment"][0] == len(STARTS)
    assert fingerprint.tables["booking_auditevent"][0] == len(STARTS)
    assert fingerprint.tables["notifications_outboundmessage"][0] > 0
    constraints = "\n".join(fingerprint.schema["constraints"])
    assert "allocation_lane_no_overlap: exclusion" in constraints
    assert "appointment_patient_no_overlap: exclusion" in constraints
    assert any("booking_audit_append_only" in t for t in fingerprint.schema["triggers"])
    assert any(e.startswith("btree_gist ") for e in fingerprint.schema["extensions"])


# Damage of every kind the drill looks for, done to the restored copy, and what it reports.
DAMAGE = {
    "a row lost": (
        "DELETE FROM booking_allocation WHERE id = (SELECT max(id) FROM booking_allocation)",
        "table booking_allocation: ",
    ),
    "a row changed": (
        "UPDATE notifications_outboundmessage SET recipient = 'someone@else.example'"
        " WHERE id = (SELECT min(id) FROM notifications_outboundmessage)",
        "table notifications_outboundmessage: same ",
    ),
    "the exclusion constraint lost": (
        "ALTER TABLE booking_allocation DROP CONSTRAINT allocation_lane_no_overlap",
        "constraints: missing booking_allocation allocation_lane_no_overlap",
    ),
    "the audit log's trigger lost": (
        "DROP TRIGGER booking_audit_append_only ON booking_auditevent",
        "triggers: missing CREATE TRIGGER booking_audit_append_only",
    ),
    "a sequence behind its table": (
        "SELECT setval('booking_appointment_id_seq', 1, false)",
        "sequence booking_appointment_id_seq would next give 1",
    ),
}


@pytest.mark.postgres
@pytest.mark.usefixtures("clinic_day")
def test_the_drill_finds_every_kind_of_damage_to_the_restored_copy(live: backup.Target) -> None:
    # One restore damaged in every way at once: each drill costs a CREATE and a DROP DATABASE.
    result, report = run_drill(live, ";\n".join(statement for statement, _ in DAMAGE.values()))

    assert not result.ok
    for what, (_statement, found) in DAMAGE.items():
        assert any(line.startswith(found) for line in result.differences), (what, report)
    assert report.rstrip().splitlines()[-1].startswith("FAILED")


@pytest.mark.postgres
def test_the_scratch_database_is_dropped_when_the_drill_fails_midway(
    live: backup.Target,
) -> None:
    def fail(copy: backup.Target) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        backup.drill(target=live, before_compare=fail, out=io.StringIO())
    # The live fixture checks that no scratch database is left.


@pytest.mark.postgres
@pytest.mark.usefixtures("clinic_day")
def test_the_command_line_drill_passes_and_dump_writes_a_private_archive(
    live: backup.Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backup.main(["drill"]) == 0
    assert "PASSED" in capsys.readouterr().out

    archive = tmp_path / "chairside.dump"
    assert backup.main(["dump", str(archive)]) == 0

    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    listing = subprocess.run(  # noqa: S603 - a PostgreSQL tool and our own file
        [backup._tool("pg_restore"), "--list", str(archive)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "TABLE DATA public booking_auditevent" in listing
    assert "TRIGGER public booking_auditevent booking_audit_append_only" in listing
    assert not list(tmp_path.glob("*.partial"))


def test_the_command_line_drill_exits_1_on_a_difference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failed_drill(*, target: backup.Target) -> backup.DrillResult:
        return backup.DrillResult(
            live=target.name,
            scratch="x",
            differences=["table t: 2 rows live, 1 restored"],
            live_fingerprint=backup.Fingerprint(),
            dump_bytes=0,
        )

    monkeypatch.setattr(backup, "drill", failed_drill)
    database = {"ENGINE": "django.db.backends.postgresql", "NAME": "chairside"}

    assert backup.main(["drill"], database=database) == 1


def test_sqlite_is_copied_with_its_online_backup_and_refuses_the_drill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "chairside.sqlite3"
    with closing(sqlite3.connect(source)) as db, db:
        db.execute("CREATE TABLE visit (id INTEGER PRIMARY KEY, start TEXT)")
        db.executemany("INSERT INTO visit (start) VALUES (?)", [("10:00",), ("11:00",)])
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(source)}
    copy = tmp_path / "backup.sqlite3"

    assert backup.main(["dump", str(copy)], database=database) == 0
    assert backup.main(["drill"], database=database) == 2

    with closing(sqlite3.connect(copy)) as db:
        assert db.execute("SELECT start FROM visit ORDER BY id").fetchall() == [
            ("10:00",),
            ("11:00",),
        ]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert "restores into a scratch PostgreSQL database" in capsys.readouterr().err


def test_it_refuses_a_pg_dump_older_than_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    server = SimpleNamespace(info=SimpleNamespace(server_version=170002))
    monkeypatch.setattr(backup, "_tool", lambda name: name)
    monkeypatch.setattr(backup, "_client_major", lambda tool: 15)

    with pytest.raises(backup.BackupError, match="install postgresql-client-17"):
        backup.tools_check(server)  # type: ignore[arg-type]

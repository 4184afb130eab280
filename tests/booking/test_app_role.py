"""The application's database role (``manage.py app_role``): it runs the application, and the
audit log is one it can add to and read but never change or empty (issue #15)."""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from booking.access.audit import audit
from booking.models import AuditAction, AuditEvent, Patient
from booking.services import appointment_book
from scheduling.models import AppointmentType

ROOT = Path(__file__).resolve().parents[2]

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def app_role(db: None) -> str:
    """A role made by the command, in the test's transaction (roles are the server's, not the
    database's: the rollback at the end of the test drops it and its grants)."""
    role = f"chairside_app_test_{secrets.token_hex(4)}"
    out = io.StringIO()
    call_command("app_role", role=role, password_env="NO_SUCH_VARIABLE", stdout=out)
    assert out.getvalue().startswith(f"Created role {role}:")
    return role


@pytest.fixture
def as_role(app_role: str) -> Iterator[Callable[[], None]]:
    """Statements after ``become()`` run as the application's role, until the test ends."""

    def become() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f'SET ROLE "{app_role}"')

    try:
        yield become
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def refused(statement: str) -> str:
    """The error ``statement`` meets, in a savepoint so the test's transaction goes on."""
    with (
        pytest.raises(DatabaseError) as caught,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    return str(caught.value)


@pytest.mark.postgres
def test_the_app_role_may_only_add_to_and_read_the_audit_log(as_role, make_patient) -> None:
    patient = make_patient()
    audit(None, AuditAction.VIEW, patient)
    as_role()

    audit(None, AuditAction.VIEW, patient)
    assert AuditEvent.objects.filter(patient=patient).count() == 2
    for statement in (
        "UPDATE booking_auditevent SET username = 'someone else'",
        "DELETE FROM booking_auditevent",
        "TRUNCATE booking_auditevent",
        "ALTER TABLE booking_auditevent DISABLE TRIGGER booking_audit_no_truncate",
        "DROP TRIGGER booking_audit_append_only ON booking_auditevent",
    ):
        error = refused(statement)
        assert "permission denied" in error or "must be owner" in error, (statement, error)
    assert AuditEvent.objects.filter(patient=patient).count() == 2
    assert not AuditEvent.objects.filter(username="someone else").exists()


@pytest.mark.postgres
def test_each_month_of_the_audit_log_is_append_only_by_its_grants_too(app_role) -> None:
    """Named directly, a month's partition (booking 0012) refuses a change by the role's
    grants, not only by its trigger."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, has_table_privilege(%s, c.oid, 'UPDATE'),"
            " has_table_privilege(%s, c.oid, 'DELETE'), has_table_privilege(%s, c.oid, 'INSERT')"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'booking_auditevent'::regclass",
            [app_role, app_role, app_role],
        )
        partitions = cursor.fetchall()
    assert partitions, "the audit log is partitioned by month"
    assert all(not update and not delete and insert for _, update, delete, insert in partitions)


@pytest.mark.postgres
def test_the_app_role_runs_the_application(as_role, one_chair: AppointmentType) -> None:
    as_role()

    # A booking: rows, locks, the outbox planned by notifications (a temporary table), ids.
    visit = appointment_book(
        appointment_type=one_chair,
        patient=Patient.objects.create(
            first_name="Ada",
            last_name="Lovelace",
            email="ada@example.com",
            phone="+12125550111",
            date_of_birth=date(1980, 1, 1),
        ),
        start=NOW + timedelta(days=2),
        now=NOW,
    )
    Patient.objects.filter(pk=visit.patient_id).update(first_name="Augusta")
    audit(None, AuditAction.UPDATE, visit)

    assert AuditEvent.objects.get(object_id=str(visit.pk)).patient_id == visit.patient_id


@pytest.mark.postgres
def test_the_app_role_owns_nothing_and_cannot_take_the_log_over(app_role, as_role) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = %s",
            [app_role],
        )
        assert cursor.fetchone() == (0,)
    as_role()

    assert "permission denied" in refused("CREATE TABLE booking_scratch (id int)")
    assert "must be owner" in refused("ALTER TABLE booking_auditevent OWNER TO CURRENT_USER")


@pytest.mark.postgres
def test_the_tables_a_later_migration_creates_are_the_app_roles_too(app_role, as_role) -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE booking_later (id int)")
    as_role()

    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO booking_later VALUES (1)")
        cursor.execute("DELETE FROM booking_later")


@pytest.mark.postgres
def test_running_it_again_takes_back_what_an_older_grant_gave(app_role, as_role) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'GRANT ALL ON booking_auditevent TO "{app_role}"')

    call_command("app_role", role=app_role, password_env="NO_SUCH_VARIABLE", stdout=io.StringIO())
    as_role()

    assert "permission denied" in refused("TRUNCATE booking_auditevent")
    assert "permission denied" in refused("DELETE FROM booking_auditevent")


@pytest.mark.postgres
def test_it_refuses_a_role_that_could_empty_the_log(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (owner,) = cursor.fetchone()

    with pytest.raises(CommandError, match="owns the tables"):
        call_command("app_role", role=owner, password_env="NO_SUCH_VARIABLE")


def test_compose_runs_the_application_as_its_role_and_migrations_as_the_owner() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    migrate = services["migrate"]
    assert migrate["environment"]["DATABASE_URL"].startswith("postgres://chairside:")
    assert (
        migrate["command"][-1] == "python manage.py migrate --noinput && python manage.py app_role"
    )
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://chairside_app:"), name
        # .env reaches every container (env_file): the owner's password is blanked out here.
        assert environment["POSTGRES_PASSWORD"] == "", name

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from psycopg import sql

from booking.models import AuditEvent

# What the application does to its tables: read and write rows, nothing else (no TRUNCATE, no
# REFERENCES or TRIGGER, no DDL: migrations run as the owner).
ROW_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def app_role_statements(
    *, role: str, owner: str, database: str, schema: str, audit_partitions: tuple[str, ...] = ()
) -> list[sql.Composed]:
    """The grants that let ``role`` run the application on ``database`` and nothing more: every
    table's rows in ``schema``, except the audit log's, which it may only add to and read (its
    monthly ``audit_partitions`` too, should one be named directly); the id sequences; the same
    on the tables ``owner``'s later migrations create. A month's partition made after this ran
    is still append-only by its trigger until this runs again (after every ``migrate``)."""
    names = {
        "role": sql.Identifier(role),
        "owner": sql.Identifier(owner),
        "database": sql.Identifier(database),
        "schema": sql.Identifier(schema),
        "audit": sql.Identifier(schema, AuditEvent._meta.db_table),
        "rows": sql.SQL(ROW_PRIVILEGES),
    } | {
        f"partition_{n}": sql.Identifier(schema, partition)
        for n, partition in enumerate(audit_partitions)
    }
    return [
        sql.SQL(statement).format(**names)
        for statement in (
            # TEMPORARY: the reminder re-planning builds a temporary table.
            "GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}",
            "GRANT USAGE ON SCHEMA {schema} TO {role}",
            # From a clean slate, so running it again also takes back what an older grant gave.
            "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
            "GRANT {rows} ON ALL TABLES IN SCHEMA {schema} TO {role}",
            # Append-only: with UPDATE and DELETE gone, the triggers are the second guard.
            "REVOKE UPDATE, DELETE ON {audit} FROM {role}",
            *(
                f"REVOKE UPDATE, DELETE ON {{partition_{n}}} FROM {{role}}"
                for n in range(len(audit_partitions))
            ),
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
            "GRANT {rows} ON TABLES TO {role}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
            "GRANT USAGE, SELECT ON SEQUENCES TO {role}",
        )
    ]


class Command(BaseCommand):
    """The PostgreSQL role the application runs as (docs/operations.md, "The application's
    database role"): it owns nothing, reads and writes the rows of every table, and may only
    add to and read the audit log, so no request, task or shell in the application can change
    or empty it. Run it as the owner of the tables, after every ``migrate`` (Compose's
    ``migrate`` service does): it creates the role when missing, sets its password from the
    environment, and grants again what the role may do, which is safe to repeat."""

    help = "Create (or update) the application's PostgreSQL role and grant it what it may do."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", default="chairside_app", help="Default: chairside_app.")
        parser.add_argument(
            "--password-env",
            default="APP_DB_PASSWORD",
            help="The environment variable holding the role's password (default "
            "APP_DB_PASSWORD); when it is unset or empty the password is left as it is.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("app_role is for PostgreSQL: SQLite has no roles.")
        role: str = options["role"]
        password = os.environ.get(options["password_env"], "")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_database(), current_schema(), ("
                " SELECT tableowner FROM pg_tables"
                " WHERE schemaname = current_schema() AND tablename = %s)",
                [AuditEvent._meta.db_table],
            )
            database, schema, owner = cursor.fetchone()
            if owner is None:
                raise CommandError("No audit log table here: run migrate first.")
            if role == owner:
                raise CommandError(f"{role!r} owns the tables: choose another role.")
            cursor.execute(
                "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls,"
                " EXISTS (SELECT 1 FROM pg_class WHERE relowner = pg_roles.oid),"
                " pg_has_role(oid, %s, 'MEMBER')"
                " FROM pg_roles WHERE rolname = %s",
                [owner, role],
            )
            found = cursor.fetchone()
            if found is not None and any(found):
                raise CommandError(
                    f"{role!r} must be an ordinary login that owns nothing here and is no member "
                    f"of {owner!r}: no superuser, CREATEROLE, CREATEDB, REPLICATION or "
                    "BYPASSRLS. An owner may change or drop the audit log."
                )
            # A new role is an ordinary login: no superuser, CREATEDB or CREATEROLE.
            login = sql.SQL("{} ROLE {} LOGIN").format(
                sql.SQL("CREATE" if found is None else "ALTER"), sql.Identifier(role)
            )
            if password:
                login += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
            # The audit log's monthly partitions on PostgreSQL (booking 0012).
            cursor.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass(%s) ORDER BY 1",
                [f"{schema}.{AuditEvent._meta.db_table}"],
            )
            partitions = tuple(name for (name,) in cursor.fetchall())
            statements = [
                login,
                *app_role_statements(
                    role=role,
                    owner=owner,
                    database=database,
                    schema=schema,
                    audit_partitions=partitions,
                ),
            ]
            for statement in statements:
                # Composed with every name quoted: DDL takes no bound parameters.
                cursor.execute(statement.as_string(connection.connection))
        self.stdout.write(
            f"{'Created' if found is None else 'Updated'} role {role}: the rows of every table "
            f"in {database}.{schema}, only INSERT and SELECT on {AuditEvent._meta.db_table}."
        )

"""Backups of the database, and the drill that proves a backup restores.

    python -m config.backup dump FILE    # a consistent pg_dump --format=custom of DATABASE_URL
    python -m config.backup drill        # dump, restore into a scratch database, compare, drop it

The drill dumps the live database, restores the archive into a new database with a unique name,
and compares the two: the same tables with the same row counts and content checksums, the same
columns, constraints (the exclusion constraints too), indexes, triggers (the audit log's
append-only trigger), functions and extensions, and every sequence ahead of the rows its column
holds (or the first insert after a restore would collide). It prints a short report, exits 1 on
any difference, and drops the scratch database whatever happens.

The live side is read in the very snapshot pg_dump dumps (``pg_dump --snapshot``), so a clinic
that keeps booking while the drill runs cannot make the two sides differ.

``pg_dump`` and ``pg_restore`` come from ``PATH`` and must be at least the server's major version.
On SQLite (the embedded default) ``dump`` copies the file with SQLite's online backup, as
``sqlite3 DB ".backup FILE"`` does; the drill is PostgreSQL's.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

# Rows are rendered as text to be checksummed; these settings fix that rendering, so both sides
# of a comparison write a timestamp or a range the same way whatever the role's defaults.
_RENDERING = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)

# What the schema is made of, each a query returning one text per object naming it fully, in
# the schemas the application owns. Objects an extension created (btree_gist's functions) come
# back with CREATE EXTENSION: the extension and its version are compared instead.
SCHEMA_QUERIES: dict[str, str] = {
    "columns": """
        SELECT format('%s.%I %s%s%s', c.oid::regclass, a.attname,
                      format_type(a.atttypid, a.atttypmod),
                      CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                      CASE WHEN a.attidentity <> '' THEN ' IDENTITY' ELSE '' END)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
          AND n.nspname !~ '^pg_|^information_schema$'""",
    # Names, kinds and columns, not the deparsed definitions: PostgreSQL deparses a restored
    # predicate (an exclusion constraint's WHERE status IN (...)) in a different but equal text.
    "constraints": """
        SELECT format('%s %s: %s (%s)%s', co.conrelid::regclass, co.conname,
                      CASE co.contype WHEN 'c' THEN 'check' WHEN 'f' THEN 'foreign key'
                           WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                           WHEN 'x' THEN 'exclusion' WHEN 't' THEN 'trigger'
                           ELSE co.contype::text END,
                      (SELECT string_agg(a.attname, ', ' ORDER BY k.ord)
                       FROM unnest(co.conkey) WITH ORDINALITY AS k(attnum, ord)
                       JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum),
                      CASE WHEN co.contype = 'f' THEN ' -> ' || co.confrelid::regclass::text
                           ELSE '' END)
        FROM pg_constraint co
        JOIN pg_namespace n ON n.oid = co.connamespace
        WHERE n.nspname !~ '^pg_|^information_schema$'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = co.oid AND d.deptype = 'e')""",
    "indexes": """
        SELECT format('%s on %s: %s%s (%s)%s', i.indexrelid::regclass, i.indrelid::regclass,
                      CASE WHEN i.indisunique THEN 'unique ' ELSE '' END, am.amname,
                      (SELECT string_agg(pg_get_indexdef(i.indexrelid, k, true), ', ' ORDER BY k)
                       FROM generate_series(1, i.indnatts) AS k),
                      CASE WHEN i.indpred IS NULL THEN '' ELSE ' partial' END)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am am ON am.oid = c.relam
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname !~ '^pg_|^information_schema$'""",
    "triggers": """
        SELECT pg_get_triggerdef(t.oid)
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND n.nspname !~ '^pg_|^information_schema$'""",
    "functions": """
        SELECT format('%s %s', p.oid::regprocedure, md5(pg_get_functiondef(p.oid)))
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.prokind IN ('f', 'p') AND n.nspname !~ '^pg_|^information_schema$'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
    "sequences": """
        SELECT c.oid::regclass::text
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND n.nspname !~ '^pg_|^information_schema$'""",
    "extensions": "SELECT format('%s %s', extname, extversion) FROM pg_extension",
}

_TABLES = """
    SELECT n.nspname, c.relname
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    -- A partitioned table (the audit log) counts as one, through its parent.
    WHERE (c.relkind = 'p' OR (c.relkind = 'r' AND NOT c.relispartition))
      AND n.nspname !~ '^pg_|^information_schema$'
    ORDER BY 1, 2
"""

# Every sequence that feeds a column, with that column: after a restore each must be past the
# largest value already stored, or the next insert reuses an id.
_OWNED_SEQUENCES = """
    SELECT s.oid::regclass::text, n.nspname, t.relname, a.attname
    FROM pg_class s
    JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
                    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class t ON t.oid = d.refobjid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
    WHERE s.relkind = 'S' AND n.nspname !~ '^pg_|^information_schema$'
    ORDER BY 1
"""


class BackupError(Exception):
    """The backup or the drill could not run; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    """Where a PostgreSQL database is, as Django's settings give it."""

    name: str
    host: str = ""
    port: str = ""
    user: str = ""
    password: str = ""
    sslmode: str = ""

    @classmethod
    def from_settings(cls, database: Mapping[str, Any]) -> Target:
        if database["ENGINE"] != "django.db.backends.postgresql":
            raise BackupError("not a PostgreSQL database")
        return cls(
            name=str(database["NAME"]),
            host=str(database.get("HOST") or ""),
            port=str(database.get("PORT") or ""),
            user=str(database.get("USER") or ""),
            password=str(database.get("PASSWORD") or ""),
            sslmode=str((database.get("OPTIONS") or {}).get("sslmode") or ""),
        )

    def named(self, name: str) -> Target:
        return replace(self, name=name)

    def environ(self) -> dict[str, str]:
        """The environment for pg_dump and pg_restore: the password never shows in ``ps``."""
        variables = {
            "PGHOST": self.host,
            "PGPORT": self.port,
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGSSLMODE": self.sslmode,
            "PGDATABASE": self.name,
        }
        return {**os.environ, **{key: value for key, value in variables.items() if value}}

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        params = {
            "dbname": self.name,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "sslmode": self.sslmode,
        }
        conninfo = make_conninfo(**{key: value for key, value in params.items() if value})
        return psycopg.connect(conninfo, autocommit=autocommit, application_name="chairside-backup")


@dataclass
class Fingerprint:
    """What a database holds: per table (rows, checksum), and the names of its schema objects."""

    tables: dict[str, tuple[int, str]] = field(default_factory=dict)
    schema: dict[str, set[str]] = field(default_factory=dict)
    # Sequences behind the largest value of the column they feed.
    sequences_behind: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(rows for rows, _checksum in self.tables.values())


def database_fingerprint(conn: psycopg.Connection[Any]) -> Fingerprint:
    """Row counts and content checksums of every table, and the schema's objects.

    A table's checksum is the md5 of its rows' md5s (of each row as text) in byte order: the
    order of the rows does not depend on a primary key or on a collation, and a large table
    never becomes one huge string.
    """
    fingerprint = Fingerprint()
    with conn.cursor() as cursor:
        for statement in _RENDERING:
            cursor.execute(statement)
        cursor.execute(_TABLES)
        for schema, table in cursor.fetchall():
            cursor.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h COLLATE \"C\")),"
                    " '') FROM (SELECT md5(t::text) AS h FROM {} AS t) AS rows"
                ).format(sql.Identifier(schema, table))
            )
            count, checksum = cursor.fetchone() or (0, "")
            name = table if schema == "public" else f"{schema}.{table}"
            fingerprint.tables[name] = (int(count), str(checksum))
        for kind, query in SCHEMA_QUERIES.items():
            cursor.execute(query)
            fingerprint.schema[kind] = {str(row[0]) for row in cursor.fetchall()}
        cursor.execute(_OWNED_SEQUENCES)
        for sequence, schema, table, column in cursor.fetchall():
            cursor.execute(
                sql.SQL(
                    "SELECT (SELECT max({column}) FROM {table}), last_value, is_called FROM {seq}"
                ).format(
                    column=sql.Identifier(column),
                    table=sql.Identifier(schema, table),
                    seq=sql.SQL(sequence),  # regclass text: already quoted by the server
                )
            )
            largest, last_value, is_called = cursor.fetchone() or (None, 0, False)
            # nextval() gives last_value + 1 once called, last_value itself before that.
            following = last_value + 1 if is_called else last_value
            if largest is not None and following <= largest:
                fingerprint.sequences_behind.append(
                    f"sequence {sequence} would next give {following}, "
                    f"but {table}.{column} already holds {largest}"
                )
    return fingerprint


def fingerprints_compare(live: Fingerprint, copy: Fingerprint) -> list[str]:
    """Every way ``copy`` differs from ``live``, one line each; empty when they agree."""
    differences: list[str] = []
    for table in sorted(live.tables.keys() | copy.tables.keys()):
        if table not in copy.tables:
            differences.append(f"table {table}: missing from the restored copy")
        elif table not in live.tables:
            differences.append(f"table {table}: only in the restored copy")
        else:
            (live_rows, live_sum), (copy_rows, copy_sum) = live.tables[table], copy.tables[table]
            if live_rows != copy_rows:
                differences.append(f"table {table}: {live_rows} rows live, {copy_rows} restored")
            elif live_sum != copy_sum:
                differences.append(f"table {table}: same {live_rows} rows, different content")
    for kind in SCHEMA_QUERIES:
        live_objects, copy_objects = live.schema.get(kind, set()), copy.schema.get(kind, set())
        differences += [f"{kind}: missing {name}" for name in sorted(live_objects - copy_objects)]
        differences += [f"{kind}: extra {name}" for name in sorted(copy_objects - live_objects)]
    differences += copy.sequences_behind
    return differences


# --- PostgreSQL tools ---------------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not on PATH: install the PostgreSQL client tools "
            "(Debian/Ubuntu: postgresql-client) of the server's major version or newer"
        )
    return path


def _client_major(tool: str) -> int:
    output = subprocess.run(  # noqa: S603 - a PostgreSQL tool found on PATH, fixed arguments
        [tool, "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"\)\s*(\d+)", output) or re.search(r"(\d+)", output)
    if found is None:
        raise BackupError(f"cannot read the version of {tool}: {output.strip()!r}")
    return int(found.group(1))


def _server_major(conn: psycopg.Connection[Any]) -> int:
    return conn.info.server_version // 10000


def tools_check(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    """pg_dump and pg_restore, refused when older than the server (pg_dump would abort)."""
    server = _server_major(conn)
    tools = []
    for name in ("pg_dump", "pg_restore"):
        tool = _tool(name)
        client = _client_major(tool)
        if client < server:
            raise BackupError(
                f"{name} is version {client} but the server runs PostgreSQL {server}: "
                f"install postgresql-client-{server} (or newer) and put it first on PATH"
            )
        tools.append(tool)
    return tools[0], tools[1]


def _run(args: Sequence[str], *, target: Target, what: str, **kwargs: Any) -> None:
    finished = subprocess.run(  # noqa: S603 - PostgreSQL tools from PATH, arguments we build
        list(args), env=target.environ(), stderr=subprocess.PIPE, text=True, check=False, **kwargs
    )
    if finished.returncode != 0:
        raise BackupError(f"{what} failed ({finished.returncode}): {finished.stderr.strip()}")


def database_dump(*, target: Target, path: Path, snapshot: str = "") -> None:
    """A custom-format archive of ``target`` at ``path``, readable by its owner only.

    pg_dump reads everything in one repeatable-read transaction, so the archive is one
    consistent moment even while the clinic keeps booking. ``snapshot`` dumps the moment another
    transaction exported instead. A failed dump leaves no file behind.
    """
    with closing(target.connect()) as conn:
        pg_dump, _pg_restore = tools_check(conn)
    args = [pg_dump, "--format=custom", "--no-password"]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    partial = path.with_name(path.name + ".partial")
    try:
        # Patient data: the file is created private, never readable by others even briefly.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            _run(args, target=target, what="pg_dump", stdout=out)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def database_restore(*, path: Path, target: Target) -> None:
    """Restore the archive at ``path`` into the empty database ``target``, all or nothing.

    Objects end up owned by the restoring role, without the source's grants: a restore onto a
    new server need not recreate the old roles first.
    """
    pg_restore = _tool("pg_restore")
    _run(
        [
            pg_restore,
            "--no-password",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={target.name}",
            str(path),
        ],
        target=target,
        what="pg_restore",
    )


@contextmanager
def scratch_database(live: Target, conn: psycopg.Connection[Any]) -> Iterator[Target]:
    """A new, empty database with a unique name beside ``live``, dropped on the way out."""
    name = f"{live.name[:40]}_drill_{secrets.token_hex(4)}"
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
            "FROM pg_database WHERE datname = current_database()"
        )
        encoding, collate, ctype = cursor.fetchone() or ("UTF8", "C", "C")
        try:
            cursor.execute(
                sql.SQL(
                    "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
                ).format(
                    sql.Identifier(name),
                    sql.Literal(encoding),
                    sql.Literal(collate),
                    sql.Literal(ctype),
                )
            )
        except psycopg.errors.InsufficientPrivilege as exc:
            raise BackupError(
                f"the drill needs a role that may create databases (CREATEDB): {exc}"
            ) from exc
        try:
            yield live.named(name)
        finally:
            # FORCE ends any session still connected to it (PostgreSQL 13 and later).
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def exported_snapshot(target: Target) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """A read-only repeatable-read transaction on ``target`` and its exported snapshot id,
    open for the duration of the block."""
    with closing(target.connect(autocommit=False)) as conn:
        with conn.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cursor.fetchone() or ("",)
        try:
            yield conn, str(snapshot)
        finally:
            conn.rollback()


@dataclass
class DrillResult:
    live: str
    scratch: str
    differences: list[str]
    live_fingerprint: Fingerprint
    dump_bytes: int

    @property
    def ok(self) -> bool:
        return not self.differences


def drill(
    *,
    target: Target,
    before_compare: Callable[[Target], None] | None = None,
    out: TextIO | None = None,
) -> DrillResult:
    """Dump ``target``, restore the dump into a scratch database, compare, drop the scratch
    database, and print a short report to ``out``.

    ``before_compare`` is called with the restored copy before it is read (a test damages it
    there to prove damage is found).
    """
    out = out or sys.stdout
    started = time.monotonic()
    with closing(target.connect()) as admin:
        tools_check(admin)
        server = admin.info.server_version
        out.write(
            f'Backup drill of "{target.name}" (PostgreSQL {server // 10000}.{server % 100})\n'
        )
        with tempfile.TemporaryDirectory(prefix="chairside-drill-") as workdir:
            archive = Path(workdir) / "drill.dump"
            with exported_snapshot(target) as (live_conn, snapshot):
                database_dump(target=target, path=archive, snapshot=snapshot)
                # The live side in the snapshot pg_dump dumped: writes since then do not count.
                live = database_fingerprint(live_conn)
            dump_bytes = archive.stat().st_size
            out.write(f"  dump: {dump_bytes / 1e6:.1f} MB custom-format archive\n")
            with scratch_database(target, admin) as scratch:
                database_restore(path=archive, target=scratch)
                out.write(f'  restored into "{scratch.name}"\n')
                if before_compare is not None:
                    before_compare(scratch)
                with closing(scratch.connect()) as copy_conn:
                    copy = database_fingerprint(copy_conn)
            out.write(f'  scratch database "{scratch.name}" dropped\n')
    differences = fingerprints_compare(live, copy)
    objects = ", ".join(f"{kind} {len(names)}" for kind, names in live.schema.items())
    if differences:
        out.write(f"  {len(differences)} difference(s):\n")
        for line in differences[:50]:
            out.write(f"    {line}\n")
        if len(differences) > 50:
            out.write(f"    … and {len(differences) - 50} more\n")
    else:
        out.write(
            f"  tables: {len(live.tables)} with {live.rows} rows, same counts and checksums\n"
            f"  schema: {objects}, all the same\n"
            "  sequences: every one ahead of the values its column holds\n"
        )
    verdict = "FAILED" if differences else "PASSED"
    out.write(f"{verdict} in {time.monotonic() - started:.1f} s\n")
    return DrillResult(
        live=target.name,
        scratch=scratch.name,
        differences=differences,
        live_fingerprint=live,
        dump_bytes=dump_bytes,
    )


# --- SQLite -------------------------------------------------------------------------------------


def sqlite_dump(*, source: Path, path: Path) -> None:
    """Copy an SQLite database with its online backup API: a consistent copy while the
    application keeps writing (the same as ``sqlite3 SOURCE ".backup PATH"``)."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


# --- Command line -------------------------------------------------------------------------------


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (CI timeouts, docker stop) unwinds like Ctrl-C, so the scratch database is dropped.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None, *, database: Mapping[str, Any] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m config.backup",
        description="Back up the database named by DATABASE_URL, or prove a backup restores.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump", help="write a consistent backup to FILE")
    dump.add_argument("file", type=Path)
    commands.add_parser(
        "drill", help="dump, restore into a scratch database, compare, drop it; 1 on a difference"
    )
    options = parser.parse_args(argv)
    if database is None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        from django.conf import settings

        database = settings.DATABASES["default"]

    try:
        if database["ENGINE"] == "django.db.backends.sqlite3":
            if options.command == "drill":
                raise BackupError(
                    "the drill restores into a scratch PostgreSQL database; this is SQLite. "
                    "Back it up with `python -m config.backup dump FILE` (SQLite's online "
                    "backup) and check the copy with `sqlite3 FILE 'PRAGMA integrity_check'`"
                )
            sqlite_dump(source=Path(database["NAME"]), path=options.file)
            print(f"SQLite database {database['NAME']} copied to {options.file}")
            return 0
        target = Target.from_settings(database)
        if options.command == "dump":
            database_dump(target=target, path=options.file)
            print(f'Database "{target.name}" dumped to {options.file}')
            return 0
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return 0 if drill(target=target).ok else 1
        finally:
            signal.signal(signal.SIGTERM, previous)
    except (BackupError, psycopg.OperationalError) as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

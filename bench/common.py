"""Helpers shared by the benchmarks: Django against PostgreSQL, the machine, percentiles."""

import contextlib
import os
import platform
import sys
from typing import Any
from urllib.parse import urlsplit

_MIGRATE_LOCK = 7_242_017_001  # any constant shared by every benchmark


def _ensure_database(url: str) -> None:
    # A benchmark builds its own data, so a missing database is created rather than reported.
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        sys.exit("DATABASE_URL must name a database, e.g. postgres://postgres@127.0.0.1:5432/bench")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            # Another benchmark started at the same moment may create it first.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def setup_django() -> None:
    """Configure Django for a benchmark: PostgreSQL from DATABASE_URL, migrated, quietly."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            "Benchmarks run against PostgreSQL: set DATABASE_URL to a postgres:// URL, e.g.\n"
            "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_bench "
            ".venv/bin/python -m bench.availability"
        )
    _ensure_database(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    from django.db import connection

    # Benchmarks started together against one database would otherwise race to apply the same
    # migration; the advisory lock makes the later ones wait and then find nothing to do.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_MIGRATE_LOCK])
        try:
            call_command("migrate", verbosity=0, interactive=False)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_MIGRATE_LOCK])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """What the figures were measured on; call after setup_django() to include PostgreSQL."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": None,
    }
    try:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            row = cursor.fetchone()
            info["postgres"] = row[0] if row else None
    except Exception:  # machine info must never stop a benchmark
        info["postgres"] = None
    return info


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

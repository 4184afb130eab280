"""Start-up with a bad environment value fails loudly, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Everything settings reads; cleared so the host's environment cannot mask a case.
SETTINGS_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "CONN_MAX_AGE",
    "DEFAULT_CLINIC_TIMEZONE",
    "HTTPS",
    "EMAIL_PORT",
    "LOG_LEVEL",
    "PROXY_COUNT",
    "TRUSTED_PROXIES",
    "API_TOKEN_TTL_HOURS",
)


def start(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path), **variables)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_it_starts_with_the_defaults(tmp_path):
    started = start(tmp_path)

    assert started.returncode == 0, started.stderr
    assert (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://x"),
        ("SECRET_KEY", "short"),
        ("CONN_MAX_AGE", "forever"),
        ("DEFAULT_CLINIC_TIMEZONE", "Mars/Olympus_Mons"),
        ("HTTPS", "si"),
        ("EMAIL_PORT", "smtp"),
        ("LOG_LEVEL", "LOUD"),
        ("PROXY_COUNT", "0"),
        ("PROXY_COUNT", "one"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal"),
        ("TRUSTED_PROXIES", "10.0.0.1,"),  # a stray comma is a typo, refused like any other
        ("API_TOKEN_TTL_HOURS", "0"),
        ("API_TOKEN_TTL_HOURS", "forever"),
        # A month at most: a token that never expires is what this setting exists to prevent.
        ("API_TOKEN_TTL_HOURS", "100000"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path, name, value):
    started = start(tmp_path, **{name: value})

    assert started.returncode != 0
    last_line = started.stderr.strip().splitlines()[-1]
    assert name in last_line, started.stderr


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_connections_run_without_jit_compilation():
    # A count over the partitioned audit log spent nearly all its time compiling (bench.growth).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)

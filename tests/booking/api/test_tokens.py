"""Staff API tokens (security issue #15): stored only as a digest, expiring after
``API_TOKEN_TTL_HOURS``, revocable, and issued by ``manage.py staff_token``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from knox.models import AuthToken

from booking.access.roles import Role
from scheduling.models import Location
from tests.staff_helpers import staff_user

NOW = datetime(2026, 6, 8, 13, 0, tzinfo=UTC)
LIST = "/api/v1/appointments/?location=midtown&start=2026-06-08&end=2026-06-08"


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def robin(location: Location) -> User:
    return staff_user(Role.FRONT_DESK, location, username="robin")


def issue(*options: str) -> str:
    out = io.StringIO()
    call_command("staff_token", "robin", *options, stdout=out)
    return out.getvalue().strip()


def status_with(token: str) -> int:
    return Client().get(LIST, HTTP_AUTHORIZATION=f"Token {token}").status_code


def test_the_database_never_holds_the_token_itself(robin):
    token = issue()

    assert status_with(token) == 200
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {AuthToken._meta.db_table}")  # noqa: S608 - our own name
        (row,) = cursor.fetchall()
    stored = [str(value) for value in row]
    assert token not in stored
    assert not any(token in value for value in stored)
    # What is kept to find the row again is a short prefix, far too short to act as the token.
    assert AuthToken.objects.get().token_key == token[:15]
    assert status_with(token[:15]) in (401, 403)
    assert status_with(AuthToken.objects.get().digest) in (401, 403)


def test_a_token_lasts_the_configured_hours_and_is_refused_after(robin, clock):
    token = issue()
    lifetime = timedelta(hours=settings.API_TOKEN_TTL_HOURS)

    assert AuthToken.objects.get().expiry == NOW + lifetime
    clock.move_to(NOW + lifetime - timedelta(minutes=1))
    assert status_with(token) == 200
    clock.move_to(NOW + lifetime + timedelta(seconds=1))
    assert status_with(token) in (401, 403)
    # Using it does not stretch its life, and moving the clock back does not revive it.
    clock.move_to(NOW)
    assert status_with(token) in (401, 403)


def test_a_revoked_token_is_refused_at_once(robin):
    first, second = issue(), issue()
    assert (status_with(first), status_with(second)) == (200, 200)

    out = io.StringIO()
    call_command("staff_token", "robin", "--revoke", stdout=out)

    assert "2" in out.getvalue()
    assert (status_with(first), status_with(second)) == (403, 403)
    assert not AuthToken.objects.exists()


def test_a_deactivated_accounts_token_is_refused(robin):
    token = issue()
    robin.is_active = False
    robin.save(update_fields=["is_active"])

    assert status_with(token) in (401, 403)


def test_issuing_a_token_clears_the_accounts_expired_ones(robin, clock):
    issue()
    clock.move_to(NOW + timedelta(hours=settings.API_TOKEN_TTL_HOURS, minutes=1))

    token = issue()

    assert AuthToken.objects.count() == 1
    assert status_with(token) == 200

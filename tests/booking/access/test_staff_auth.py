"""Staff sign-in: the form, lockout after repeated failures, idle sign-out, password rules
(DESIGN §5)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from booking.access.roles import Role
from scheduling.models import Location
from tests.staff_helpers import PASSWORD, staff_user

LOGIN = "/staff/login/"
NOW = datetime(2026, 6, 8, 13, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def robin(location: Location) -> User:
    return staff_user(Role.FRONT_DESK, location, username="robin")


def sign_in(client: Client, password: str, username: str = "robin"):
    return client.post(LOGIN, {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    """Whether the client's session still carries a staff sign-in, asked of a staff endpoint."""
    response = client.get("/api/v1/appointments/?location=midtown&start=2026-06-08&end=2026-06-08")
    assert response.status_code in (200, 403), response.content
    return response.status_code == 200


def test_the_sign_in_page_shows_a_form(db, client):
    response = client.get(LOGIN)

    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content


def test_the_right_password_signs_in_and_goes_to_the_staff_pages(client, robin):
    response = sign_in(client, PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/staff/"
    assert client.session["_auth_user_id"] == str(robin.pk)
    assert signed_in(client)


def test_it_goes_back_to_the_page_asked_for(client, robin):
    response = client.post(
        f"{LOGIN}?next=/staff/board/",
        {"username": "robin", "password": PASSWORD, "next": "/staff/board/"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/staff/board/"


def test_a_wrong_password_is_refused_with_the_form_again(client, robin):
    response = sign_in(client, "not the password")

    assert response.status_code == 200
    assert b"Staff sign-in" in response.content
    assert "_auth_user_id" not in client.session
    assert not signed_in(client)


def test_five_failures_lock_the_account_even_against_the_right_password(client, robin):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "guess").status_code == 200
    locked = sign_in(client, "guess")
    assert b"Too many failed sign-ins" in locked.content

    response = sign_in(client, PASSWORD)

    assert response.status_code in (403, 429)
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session
    # From another browser too: the lock is on the account, not the cookie.
    assert b"Too many failed sign-ins" in sign_in(Client(), PASSWORD).content


def test_the_lock_lifts_after_the_cool_off(client, robin, clock):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "guess")

    clock.shift(settings.AXES_COOLOFF_TIME + timedelta(seconds=1))
    response = sign_in(client, PASSWORD)

    assert response.status_code == 302
    assert signed_in(client)


def test_a_success_before_the_limit_forgets_the_failures(client, robin):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "guess")
    assert sign_in(client, PASSWORD).status_code == 302
    client.post("/staff/logout/")

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "guess")

    assert sign_in(client, PASSWORD).status_code == 302


def test_an_idle_session_is_signed_out(client, robin, clock):
    idle = timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert sign_in(client, PASSWORD).status_code == 302

    # Each request renews the session, so steady work keeps it alive past its first lifetime.
    for _ in range(3):
        clock.shift(idle - timedelta(minutes=1))
        assert signed_in(client)

    clock.shift(idle + timedelta(seconds=1))

    assert not signed_in(client)
    page = client.get("/staff/board/")
    assert page.status_code == 302
    assert page["Location"].startswith(LOGIN)


def test_signing_out_ends_the_session(client, robin):
    sign_in(client, PASSWORD)

    response = client.post("/staff/logout/")

    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert not signed_in(client)


@pytest.mark.parametrize("password", ["short1!", "password123", "12345678901234"])
def test_weak_passwords_are_refused(robin, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=robin)


def test_a_long_unusual_password_is_accepted(robin):
    validate_password("tangerine ladder quietly 47", user=robin)

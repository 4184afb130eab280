"""A front-desk member of the Midtown clinic with a staff API token, on a pinned clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from knox.models import AuthToken

from booking.access.roles import Role
from booking.models import Patient
from scheduling.models import Location
from tests.staff_helpers import staff_user

NEW_YORK = ZoneInfo("America/New_York")
DAY = date(2026, 6, 8)  # a Monday


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


NOW = at(9)


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    # Every patient here may have the clinic's treatments: approval has its own tests.
    return make_approved_patient


@pytest.fixture
def desk_user(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic, username="robin")


def token_client(user: User) -> Client:
    """A client that sends ``user``'s staff API token, and nothing else, with every request."""
    _, token = AuthToken.objects.create(user)
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


@pytest.fixture
def api(desk_user: User) -> Client:
    return token_client(desk_user)

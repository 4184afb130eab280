"""Finding the patient to book: ``GET /api/v1/patients/?q=``
(booking.access.scoping.patients_search).

Staff look a patient up by what the caller says (a name, a date of birth, a phone number, a
record number), see only their own locations' patients, and every search is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from booking.access.roles import Role
from booking.access.scoping import PATIENT_SEARCH_LIMIT, patients_search
from booking.models import AuditEvent, Patient
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location
from tests.conftest import approve
from tests.staff_helpers import client_for, staff_user

SEARCH = "/api/v1/patients/"


@pytest.fixture
def desk_user(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic, username="robin")


@pytest.fixture
def desk(desk_user: User) -> Client:
    return client_for(desk_user)


@pytest.fixture
def register(make_patient: Callable[..., Patient]) -> dict[str, Patient]:
    return {
        "ada": make_patient(
            first_name="Ada",
            last_name="Lovelace",
            email="ada@example.org",
            phone="+12125550123",
            date_of_birth=date(1985, 12, 10),
        ),
        "alan": make_patient(
            first_name="Alan",
            last_name="Turing",
            email="alan@example.net",
            phone="+13035550999",
            date_of_birth=date(1982, 6, 23),
        ),
        "ada2": make_patient(
            first_name="Ada",
            last_name="Byron",
            email="byron@example.com",
            phone="+12125550777",
            date_of_birth=date(1990, 1, 5),
        ),
    }


def search(client: Client, q: Any, **params: Any) -> Any:
    return client.get(SEARCH, {"q": q, **params})


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [f"{row['first_name']} {row['last_name']}" for row in response.json()]


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("ada", ["Ada Byron", "Ada Lovelace"]),  # by last name, then first
        ("LOVE", ["Ada Lovelace"]),  # any part of a name, in any case
        ("ada 1985-12-10", ["Ada Lovelace"]),  # every word must match
        ("1982-06-23", ["Alan Turing"]),
        ("example.net", ["Alan Turing"]),
        ("5550777", ["Ada Byron"]),  # digits of the phone number
        ("ada turing", []),
        ("1985-13-40", []),  # not a date: a word like any other, matching nothing
    ],
)
def test_a_patient_is_found_by_what_the_caller_says(desk, register, q, found):
    assert names(search(desk, q)) == found


def test_a_record_number_finds_its_patient(desk, register):
    alan = register["alan"]

    response = search(desk, str(alan.pk))

    assert response.status_code == 200, response.content
    assert response.json()[0] == {
        "id": alan.pk,
        "first_name": "Alan",
        "last_name": "Turing",
        "date_of_birth": "1982-06-23",
    }


def test_the_answer_holds_what_tells_patients_apart_and_nothing_else(desk, register):
    (row,) = search(desk, "lovelace").json()

    assert set(row) == {"id", "first_name", "last_name", "date_of_birth"}


def test_a_search_lists_a_few_patients_not_the_register(desk, make_patient):
    for n in range(PATIENT_SEARCH_LIMIT + 5):
        make_patient(first_name=f"Sam{n:02d}", last_name="Smith")

    assert len(search(desk, "smith").json()) == PATIENT_SEARCH_LIMIT


def test_another_locations_patients_are_not_found(
    desk, register, one_nurse_four_chairs: AppointmentType
):
    start = datetime.fromisoformat("2026-06-08T10:00:00-04:00")
    with time_machine.travel(start.replace(day=1), tick=False):
        appointment_book(
            appointment_type=one_nurse_four_chairs,
            patient=approve(register["ada"], one_nurse_four_chairs),
            start=start,
        )

    # Ada Lovelace's only visit is elsewhere: she is not this desk's patient.
    assert names(search(desk, "ada")) == ["Ada Byron"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "a"}, "q"),
        ({"q": " "}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"q": "ada\x00"}, "q"),
        ({}, "q"),
        ({"q": "ada", "limit": "500"}, "limit"),
    ],
)
def test_a_bad_search_is_400_naming_the_field(desk, register, params, field):
    response = desk.get(SEARCH, params)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("q", ["9" * 30, "12²4", "²²"])
def test_odd_numbers_are_no_error(desk, register, q):
    assert names(search(desk, q)) == []


def test_every_search_is_audited(desk, desk_user, register):
    search(desk, "ada 1985-12-10")

    event = AuditEvent.objects.get()
    assert (event.user, event.action, event.object_type) == (desk_user, "view", "patient_search")
    assert event.detail == {"query": "ada 1985-12-10", "count": 1}


def test_only_staff_may_search(client: Client, register):
    response = search(client, "ada")

    assert response.status_code == 403
    assert not AuditEvent.objects.exists()


@pytest.mark.postgres
@pytest.mark.parametrize("q", ["lovel", "ada@exam", "5550123", "lovel 5550123"])
def test_a_search_can_be_served_by_the_trigram_index(desk_user, register, q):
    # With a few rows the planner reads the table anyway; with sequential scans priced out, the
    # search's own statement planned through the index shows the index matches the expressions
    # its lookups write (booking 0013), as a register of a million patients needs (bench.growth:
    # 643 ms a search without it).
    with CaptureQueriesContext(connection) as ran:
        patients_search(desk_user, q)
    (sql,) = [query["sql"] for query in ran.captured_queries if "LIKE" in query["sql"]]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "booking_patient_search_trgm" in plan, plan

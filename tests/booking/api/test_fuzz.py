"""Every operation of the OpenAPI schema, fuzzed with schemathesis against the app in-process.

The schema is read from ``/api/schema/`` through the WSGI application, so it is the one clients
get. Each operation receives schema-shaped and deliberately malformed requests, as a staff
member who may do everything at every seeded location (so the staff endpoints answer past their
permission checks), against the demo clinic, whose ids and references the requests sometimes
use. Every answer must be documented (status, content type, body), never a 5xx; an error must be
the house shape and leak nothing: no traceback, no SQL, no seeded patient's contact details.

Runs are derandomised and bounded for CI; ``FUZZ_EXAMPLES`` raises the budget for a deeper run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from booking import throttle
from booking.access.roles import Role
from booking.models import Appointment, Patient, Series, StaffProfile, TreatmentPlan
from booking.selectors import available_slots
from config.wsgi import application
from scheduling.models import AppointmentType, Location

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


def in_test_transaction(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """The WSGI app, minus the per-request connection recycling a real server wants: it would
    close the connection that holds the test's transaction (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        return application(environ, start_response)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


# Generating the schema reads no rows, so it is loaded once, at collection.
schema = schemathesis.openapi.from_wsgi("/api/schema/", in_test_transaction)

LEAKS = (
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r'File "'),
    re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b.*\b(FROM|SET|VALUES|WHERE)\b"),
    re.compile(r"\b(psycopg|sqlite3|IntegrityError|OperationalError|ProgrammingError)\b"),
    re.compile(r"booking_[a-z_]+|scheduling_[a-z_]+"),  # table names
)


class Clinic:
    """What the fuzzer may refer to, and what no error answer may ever show."""

    def __init__(self) -> None:
        self.references = list(Appointment.objects.values_list("reference", flat=True))
        self.plan_ids = list(TreatmentPlan.objects.values_list("id", flat=True))
        self.series_ids = list(Series.objects.values_list("id", flat=True))
        self.patient_ids = list(Patient.objects.values_list("id", flat=True))
        self.locations = list(Location.objects.values_list("slug", flat=True))
        self.types = list(AppointmentType.objects.values_list("slug", flat=True).distinct())
        # Real free times, with their location and type, so some bookings go through (and
        # later ones find the time taken).
        today = timezone.localdate()
        self.slots: list[dict[str, str]] = []
        self.date_ranges = [(today, today + timedelta(days=6)), (today, today)]
        for appointment_type in AppointmentType.objects.select_related("location"):
            free = available_slots(
                appointment_type=appointment_type,
                first_day=today + timedelta(days=2),
                last_day=today + timedelta(days=9),
                now=timezone.now(),
                enforce_notice=False,
            )
            self.slots += [
                {
                    "location": appointment_type.location.slug,
                    "appointment_type": appointment_type.slug,
                    "start": start.isoformat(),
                }
                for start, _end in free[:: max(1, len(free) // 3)][:3]
            ]
        # A new patient and every returning one, as the booking form sends them.
        self.patient_details = [
            {
                "first_name": "Rowan",
                "last_name": "Fuzz",
                "email": "rowan.fuzz@example.com",
                "phone": "+12125550199",
                "date_of_birth": "1990-05-17",
            }
        ]
        self.secrets: list[str] = []
        for patient in Patient.objects.all():
            self.secrets += [patient.email, patient.phone, patient.date_of_birth.isoformat()]
            self.patient_details.append(
                {
                    "first_name": patient.first_name,
                    "last_name": patient.last_name,
                    "email": patient.email,
                    "phone": patient.phone,
                    "date_of_birth": patient.date_of_birth.isoformat(),
                }
            )


CLINIC: list[Clinic] = []  # the one the running test set up, for the generation hooks


def _sometimes(value: Any, choices: list[Any]) -> st.SearchStrategy[Any]:
    if not choices:
        return st.just(value)
    # Real values first: Hypothesis leans towards the first branch, and shrinks towards it.
    return st.one_of(st.sampled_from(choices), st.just(value))


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    clinic = CLINIC[-1]
    path = context.operation.path if context.operation else ""
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    if "reference" in path_parameters:
        return _sometimes(path_parameters["reference"], clinic.references).map(
            lambda ref: {**path_parameters, "reference": ref}
        )
    if "id" in path_parameters:
        ids = clinic.series_ids if "/series/" in path else clinic.plan_ids
        return _sometimes(path_parameters["id"], ids).map(lambda pk: {**path_parameters, "id": pk})
    return st.just(path_parameters)


@schema.hook
def flatmap_query(
    context: schemathesis.HookContext, query: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    clinic = CLINIC[-1]
    if not isinstance(query, dict):
        return st.just(query)
    swaps: dict[str, st.SearchStrategy[Any]] = {}
    if "location" in query:
        swaps["location"] = _sometimes(query["location"], clinic.locations)
    if "appointment_type" in query:
        swaps["appointment_type"] = _sometimes(query["appointment_type"], clinic.types)
    if "start" in query and "end" in query:
        days = [
            {"start": first.isoformat(), "end": last.isoformat()}
            for first, last in clinic.date_ranges
        ]
        swaps["range"] = _sometimes({}, days)
    if not swaps:
        return st.just(query)
    return st.fixed_dictionaries(swaps).map(lambda chosen: _swapped(query, chosen, "range"))


def _swapped(values: dict[str, Any], chosen: dict[str, Any], group: str) -> dict[str, Any]:
    """``values`` with the chosen swaps; ``group`` is a swap of several fields together."""
    together = chosen.pop(group, {})
    return {**values, **chosen, **together}


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    clinic = CLINIC[-1]
    if not isinstance(body, dict):
        return st.just(body)
    swaps: dict[str, st.SearchStrategy[Any]] = {}
    for field, choices in (
        ("location", clinic.locations),
        ("appointment_type", clinic.types),
        ("plan", clinic.plan_ids),
        ("consultation", clinic.references),
    ):
        if field in body:
            swaps[field] = _sometimes(body[field], choices)
    if isinstance(body.get("patient"), int):
        swaps["patient"] = _sometimes(body["patient"], clinic.patient_ids)
    elif isinstance(body.get("patient"), dict):
        swaps["patient"] = _sometimes(body["patient"], clinic.patient_details)
    if {"location", "appointment_type", "start"} <= body.keys():
        swaps["slot"] = _sometimes({}, clinic.slots)
    if not swaps:
        return st.just(body)
    return st.fixed_dictionaries(swaps).map(lambda chosen: _swapped(body, chosen, "slot"))


@pytest.fixture
def fuzz_clinic(db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clinic]:
    call_command("seed_demo", stdout=StringIO())
    # 429 is documented, and the limiter has its own tests (tests/booking/test_rate_limits.py);
    # at ten bookings an hour the fuzzer would spend its budget on nothing else.
    monkeypatch.setattr(throttle, "BOOKINGS_PER_HOUR", 1_000_000)
    CLINIC.append(Clinic())
    yield CLINIC[-1]
    CLINIC.pop()


@pytest.fixture
def staff_token(fuzz_clinic: Clinic) -> str:
    """Every role's permissions, at every seeded location."""
    user = User.objects.create_user("fuzz-staff", email="")
    user.groups.set(Group.objects.filter(name__in=[Role.ADMIN, Role.PRESCRIBER, Role.NURSE]))
    StaffProfile.objects.create(user=user).locations.set(Location.objects.all())
    _, token = AuthToken.objects.create(user=user)
    return token


def _error_body_is_clean(
    case: schemathesis.Case, response: schemathesis.Response, clinic: Clinic
) -> None:
    if response.status_code < 400:
        return
    text = response.text
    # A field name or value the request itself carried may be named back; nothing else may.
    sent = json.dumps([case.path_parameters, case.query, case.headers, case.body], default=str)
    body = json.loads(text)
    error = body["error"]
    assert set(body) == {"error"}, body
    assert isinstance(error["code"], str), body
    assert isinstance(error["message"], str), body
    assert isinstance(error["fields"], dict), body
    for pattern in LEAKS:
        assert not pattern.search(text), f"{pattern.pattern!r} in {text}"
    for secret in clinic.secrets:
        assert secret in sent or secret not in text, f"patient data in an error: {text}"


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case, fuzz_clinic: Clinic, staff_token: str
) -> None:
    # Each request runs in a savepoint that is rolled back: examples start from the same clinic,
    # so a failure found while shrinking replays the same way.
    with transaction.atomic():
        # Plain bodies: the WSGI transport hands the body over as sent, and compression has its
        # own test (tests/config/test_compression.py).
        response = case.call(
            headers={"Authorization": f"Token {staff_token}", "Accept-Encoding": "identity"}
        )
        transaction.set_rollback(True)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    _error_body_is_clean(case, response, fuzz_clinic)

"""POST /api/v1/bookings/: the public booking API (DESIGN §4, §5).

Field errors nest as the request does: ``{"fields": {"patient": {"phone": "..."}}}``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client

from booking import throttle
from booking.api import public
from booking.models import (
    SMS_CONSENT_VERSION,
    Allocation,
    Appointment,
    AppointmentStatus,
    IdempotencyRecord,
    Intake,
    Patient,
)
from booking.online import OnlineBooking
from booking.services import appointment_book, appointment_cancel
from config.celery import app as celery_app
from scheduling.models import AppointmentType, Location
from tests.booking.api.helpers import assert_error

URL = "/api/v1/bookings/"
NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
START = "2026-06-03T10:00:00-04:00"
# Only guards against a thread dying before the barrier; never reached when the test passes.
BARRIER_TIMEOUT = 120

Body = dict[str, Any]


@pytest.fixture
def location(location: Location) -> Location:
    """A clinic that books online bookings at once: these tests are about that booking.
    The default, held until the patient confirms by e-mail, is tested with booking.online."""
    Location.objects.filter(pk=location.pk).update(verify_online_bookings=False)
    location.verify_online_bookings = False
    return location


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def eager_celery() -> Iterator[None]:
    """The after-commit e-mails run in-process, so nothing tries to reach a broker."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    # The counters live in the shared cache and would carry over from test to test.
    cache.clear()
    yield
    cache.clear()


def new_booking(**changes: Any) -> Body:
    body: Body = {
        "location": "midtown",
        "appointment_type": "consultation",
        "start": START,
        "patient": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "phone": "(212) 555-0123",
            "date_of_birth": "1985-12-10",
        },
        "intake": {
            "conditions": ["Depression", "Chronic pain"],
            "medications": "Sertraline 50 mg",
            "prior_treatments": "Talk therapy",
            "screening": [{"question": "Do you have high blood pressure?", "answer": True}],
        },
        "sms_consent": True,
    }
    body.update(changes)
    return body


def with_patient(**fields: Any) -> Body:
    body = new_booking()
    body["patient"].update(fields)
    return body


def post(
    client: Client,
    body: Any,
    *,
    key: str | None = None,
    content_type: str = "application/json",
    address: str = "127.0.0.1",
):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        URL, data=data, content_type=content_type, headers=headers, REMOTE_ADDR=address
    )


def named(error: dict[str, Any], dotted: str) -> Any:
    """The message for ``patient.phone`` in the nested ``fields`` of an error."""
    found: Any = error["fields"]
    for part in dotted.split("."):
        assert isinstance(found, dict), error
        assert part in found, error
        found = found[part]
    assert found, error
    return found


# --- Booking ----------------------------------------------------------------------------------


def test_it_books_a_consultation_and_answers_in_clinic_local_time(consultation, client):
    response = post(client, new_booking())

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"reference", "start", "end", "status"}
    assert body["start"] == "2026-06-03T10:00:00-04:00"
    assert body["end"] == "2026-06-03T11:00:00-04:00"
    assert body["status"] == "booked"
    appointment = Appointment.objects.select_related("patient").get(reference=body["reference"])
    assert appointment.appointment_type == consultation
    assert appointment.source == "online"
    assert appointment.start == datetime.fromisoformat(START)
    assert appointment.patient.phone == "+12125550123"
    assert appointment.patient.sms_consent
    assert appointment.patient.sms_consent_version == SMS_CONSENT_VERSION


def test_it_stores_the_intake_with_the_visit(consultation, client):
    reference = post(client, new_booking()).json()["reference"]

    intake = Intake.objects.get(appointment__reference=reference)
    assert intake.conditions == ["Depression", "Chronic pain"]
    assert intake.medications == "Sertraline 50 mg"
    assert intake.prior_treatments == "Talk therapy"
    assert intake.screening == [{"question": "Do you have high blood pressure?", "answer": True}]


def test_the_answer_never_shows_the_intake_or_the_patient(consultation, client):
    response = post(client, new_booking())

    assert response.status_code == 201
    text = response.content.decode()
    for private in ("Depression", "Sertraline", "Talk therapy", "blood pressure", "Ada", "ada@"):
        assert private not in text


def test_the_intake_may_be_left_out(consultation, client):
    body = new_booking()
    del body["intake"]

    response = post(client, body)

    assert response.status_code == 201, response.content
    intake = Intake.objects.get(appointment__reference=response.json()["reference"])
    assert (intake.conditions, intake.medications, intake.screening) == ([], "", [])


def test_it_accepts_the_same_instant_written_in_utc(consultation, client):
    response = post(client, new_booking(start="2026-06-03T14:00:00Z"))

    assert response.status_code == 201, response.content
    assert response.json()["start"] == "2026-06-03T10:00:00-04:00"


@pytest.mark.parametrize(
    ("first_name", "last_name"),
    [("Zoë", "Ødegård"), ("José María", "Núñez-O'Brien"), ("李", "小龍"), ("Nguyễn", "Thị 👩‍⚕️")],
)
def test_it_books_patients_whose_names_are_not_ascii(consultation, client, first_name, last_name):
    response = post(client, with_patient(first_name=first_name, last_name=last_name))

    assert response.status_code == 201, response.content
    patient = Patient.objects.get()
    assert (patient.first_name, patient.last_name) == (first_name, last_name)


# --- Refusals: taken, busy, policy ------------------------------------------------------------


def test_it_answers_409_when_the_slot_is_taken(consultation, client, make_patient):
    # One consult room: whoever holds it at 10:00 holds the slot.
    appointment_book(
        appointment_type=consultation,
        patient=make_patient(),
        start=datetime.fromisoformat(START),
        now=NOW,
    )
    patients_before = Patient.objects.count()

    error = assert_error(post(client, new_booking()), 409, "slot_taken")

    assert "start" in error["fields"]
    assert Appointment.objects.count() == 1
    # A refused booking leaves no new patient behind.
    assert Patient.objects.count() == patients_before


def test_it_answers_409_when_the_patient_already_has_a_visit_then(clinic, client):
    assert post(client, new_booking()).status_code == 201

    # 10:00 holds the one room until 11:05; 10:30 overlaps the patient's own visit.
    response = post(client, new_booking(start="2026-06-03T10:30:00-04:00"))

    error = assert_error(response, 409, "patient_busy")
    assert "start" in error["fields"]


def test_it_refuses_a_type_not_bookable_online_with_422(clinic, client):
    # By its public slug: the staff's ("iv-mood") names the treatment and is unknown here.
    error = assert_error(post(client, new_booking(appointment_type="treatment-session")), 422)

    assert error["code"] == "policy_violation"
    assert "appointment_type" in error["fields"]
    assert not Appointment.objects.exists()
    unknown = assert_error(post(client, new_booking(appointment_type="iv-mood")), 400)
    assert "appointment_type" in unknown["fields"]


@pytest.mark.parametrize(
    "start",
    [
        "2026-06-01T15:00:00-04:00",  # 7 hours ahead: inside the 12-hour notice
        "2026-06-01T07:00:00-04:00",  # already past
        "2026-09-15T10:00:00-04:00",  # 106 days ahead: beyond the 90-day horizon
        "2026-06-03T10:05:00-04:00",  # off the 15-minute grid
    ],
)
def test_it_refuses_times_the_clinic_does_not_offer_online_with_422(clinic, client, start):
    error = assert_error(post(client, new_booking(start=start)), 422, "policy_violation")

    assert "start" in error["fields"]
    assert not Appointment.objects.exists()


def test_it_caps_a_patients_pending_consultations_with_422(clinic, client):
    for day in ("2026-06-03", "2026-06-04"):
        assert post(client, new_booking(start=f"{day}T10:00:00-04:00")).status_code == 201

    response = post(client, new_booking(start="2026-06-05T10:00:00-04:00"))

    assert assert_error(response, 422, "policy_violation")["message"]
    assert Appointment.objects.count() == 2


def test_a_cancelled_consultation_does_not_count_against_the_cap(clinic, client):
    references = [
        post(client, new_booking(start=f"{day}T10:00:00-04:00")).json()["reference"]
        for day in ("2026-06-03", "2026-06-04")
    ]
    appointment_cancel(appointment=Appointment.objects.get(reference=references[0]), now=NOW)

    response = post(client, new_booking(start="2026-06-05T10:00:00-04:00"))

    assert response.status_code == 201, response.content


# --- Patient matching -------------------------------------------------------------------------


def test_a_returning_patient_is_matched_on_email_and_date_of_birth(clinic, client, make_patient):
    known = make_patient(email="ada@example.com", date_of_birth=date(1985, 12, 10))

    response = post(client, with_patient(email="ADA@example.com"))

    assert response.status_code == 201
    appointment = Appointment.objects.get(reference=response.json()["reference"])
    assert appointment.patient_id == known.pk
    assert Patient.objects.count() == 1


def test_the_same_email_with_another_date_of_birth_is_a_new_patient_to_review(
    clinic, client, make_patient
):
    other = make_patient(email="ada@example.com", date_of_birth=date(1960, 1, 1))
    appointment_book(
        appointment_type=AppointmentType.objects.get(location=clinic, slug="consultation"),
        patient=other,
        start=datetime.fromisoformat("2026-06-04T10:00:00-04:00"),
        now=NOW,
    )

    response = post(client, new_booking())

    assert response.status_code == 201
    appointment = Appointment.objects.select_related("patient").get(
        reference=response.json()["reference"]
    )
    assert appointment.patient_id != other.pk
    assert appointment.patient.needs_review
    assert appointment.patient.date_of_birth == date(1985, 12, 10)
    # The other patient's record and visits are untouched and nowhere in the answer.
    other.refresh_from_db()
    assert other.date_of_birth == date(1960, 1, 1)
    assert other.appointments.count() == 1
    assert other.first_name not in response.content.decode()


# --- Idempotency-Key --------------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_same_booking(consultation, client):
    first = post(client, new_booking(), key="4b9e0c1e-retry")
    again = post(client, new_booking(), key="4b9e0c1e-retry")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Appointment.objects.count() == 1
    assert Allocation.objects.count() == 2  # prescriber and room, once
    assert Patient.objects.count() == 1


def test_a_retry_is_recognised_however_the_same_request_is_spelt(consultation, client):
    first = post(client, new_booking(), key="same-request")
    respelt = deepcopy(new_booking(start="2026-06-03T14:00:00+00:00"))
    respelt["patient"] = dict(reversed(list(respelt["patient"].items())))
    respelt["patient"]["phone"] = "+1 212 555 0123"
    raw = json.dumps(respelt, indent=4)

    again = post(client, raw, key="same-request")

    assert again.status_code == 201, again.content
    assert again.json() == first.json()
    assert Appointment.objects.count() == 1


def test_the_same_key_with_another_request_is_refused_with_422(consultation, client):
    first = post(client, new_booking(), key="one-key")

    response = post(client, new_booking(start="2026-06-03T13:00:00-04:00"), key="one-key")

    error = assert_error(response, 422, "idempotency_key_reused")
    assert "Idempotency-Key" in error["fields"]
    assert Appointment.objects.get().reference == first.json()["reference"]


def test_different_keys_are_different_requests(clinic, client):
    first = post(client, new_booking(), key="key-one")
    second = post(client, new_booking(start="2026-06-04T10:00:00-04:00"), key="key-two")

    assert first.status_code == second.status_code == 201
    assert first.json()["reference"] != second.json()["reference"]


def test_a_refusal_is_not_stored_so_the_same_key_can_try_again(consultation, client, make_patient):
    holder = appointment_book(
        appointment_type=consultation,
        patient=make_patient(),
        start=datetime.fromisoformat(START),
        now=NOW,
    )
    assert_error(post(client, new_booking(), key="try-again"), 409, "slot_taken")
    appointment_cancel(appointment=holder, now=NOW)

    response = post(client, new_booking(), key="try-again")

    assert response.status_code == 201, response.content
    assert IdempotencyRecord.objects.get(key="try-again").response_status == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "clé-unicode", "two words", "tab\there"])
def test_it_refuses_an_unusable_idempotency_key(consultation, client, key):
    error = assert_error(post(client, new_booking(), key=key), 400, "invalid")

    assert "Idempotency-Key" in error["fields"]
    assert not Appointment.objects.exists()


# --- Bad input: 400 naming the field ----------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    [
        "2026-06-03T10:00:00",
        "2026-06-03 10:00",
    ],
)
def test_it_refuses_a_time_without_its_offset(consultation, client, start):
    error = assert_error(post(client, new_booking(start=start)), 400, "invalid")

    assert "offset" in named(error, "start")
    assert not Appointment.objects.exists()


@pytest.mark.parametrize(
    "start",
    [
        "next Wednesday",
        "2026-06-03",
        "2026-06-31T10:00:00-04:00",
        "2026-06-03T25:00:00-04:00",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+14:00",
        "2026-06-03T10:00:00-04:00" + "0" * 100,
        1780495200,
        None,
        [START],
    ],
)
def test_it_refuses_a_start_that_is_not_an_instant(consultation, client, start):
    error = assert_error(post(client, new_booking(start=start)), 400, "invalid")

    assert named(error, "start")


@pytest.mark.parametrize(
    "phone",
    [
        "12345",
        "not a phone",
        "+1 212 555 012",
        "+44 20 7946 0958",  # a London landline: reminders go by text message
        "",
        "+1" + "2" * 40,
    ],
)
def test_it_refuses_a_malformed_phone_naming_it(consultation, client, phone):
    error = assert_error(post(client, with_patient(phone=phone)), 400, "invalid")

    assert named(error, "patient.phone")
    assert not Patient.objects.exists()


@pytest.mark.parametrize(
    "email", ["ada", "ada@", "@example.com", "ada example@example.com", "a@b@c.com", ""]
)
def test_it_refuses_a_malformed_email_naming_it(consultation, client, email):
    error = assert_error(post(client, with_patient(email=email)), 400, "invalid")

    assert named(error, "patient.email")


@pytest.mark.parametrize(
    "date_of_birth",
    [
        "1985-13-01",
        "10/12/1985",
        "1985-12-10T00:00:00",
        "2026-06-01",  # today
        "2030-01-01",
        "1850-01-01",
        "",
        19851210,
    ],
)
def test_it_refuses_a_malformed_date_of_birth_naming_it(consultation, client, date_of_birth):
    error = assert_error(post(client, with_patient(date_of_birth=date_of_birth)), 400, "invalid")

    assert named(error, "patient.date_of_birth")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (new_booking(location="uptown"), "location"),
        (new_booking(location="midtown'; DROP TABLE booking_patient; --"), "location"),
        (new_booking(appointment_type="massage"), "appointment_type"),
    ],
)
def test_it_refuses_unknown_slugs_naming_the_field(clinic, client, body, field):
    error = assert_error(post(client, body), 400, "invalid")

    assert named(error, field)


def test_a_type_of_another_location_is_unknown(clinic, client, make_location):
    make_location(slug="uptown")

    error = assert_error(post(client, new_booking(location="uptown")), 400, "invalid")

    assert named(error, "appointment_type")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (with_patient(first_name="A" * 101), "patient.first_name"),
        (with_patient(last_name="L" * 101), "patient.last_name"),
        (with_patient(email="a" * 250 + "@example.com"), "patient.email"),
        (new_booking(location="m" * 51), "location"),
        (new_booking(appointment_type="c" * 51), "appointment_type"),
    ],
)
def test_it_refuses_strings_over_their_maximum_length(clinic, client, body, field):
    error = assert_error(post(client, body), 400, "invalid")

    assert named(error, field)


def intake_with(**fields: Any) -> Body:
    body = new_booking()
    body["intake"].update(fields)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (intake_with(medications="m" * 2001), "intake.medications"),
        (intake_with(prior_treatments="p" * 2001), "intake.prior_treatments"),
        (intake_with(conditions=["c" * 301]), "intake.conditions"),
        (intake_with(conditions=[f"condition {n}" for n in range(21)]), "intake.conditions"),
        (
            intake_with(screening=[{"question": "q" * 301, "answer": True}]),
            "intake.screening",
        ),
        (
            intake_with(screening=[{"question": f"q{n}", "answer": False} for n in range(41)]),
            "intake.screening",
        ),
    ],
)
def test_it_bounds_every_intake_answer(clinic, client, body, field):
    error = assert_error(post(client, body), 400, "invalid")

    assert named(error, field)


def test_medications_may_span_lines(consultation, client):
    response = post(client, intake_with(medications="Sertraline 50 mg\r\nLithium 300 mg\tdaily"))

    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # Numbers, booleans and structures where strings belong.
        (with_patient(first_name=42), "patient.first_name"),
        (with_patient(last_name=True), "patient.last_name"),
        (with_patient(email=["ada@example.com"]), "patient.email"),
        (with_patient(phone=2125550123), "patient.phone"),
        (new_booking(location=1), "location"),
        (new_booking(appointment_type={"slug": "consultation"}), "appointment_type"),
        (intake_with(medications=["a", "b"]), "intake.medications"),
        (intake_with(conditions="Depression"), "intake.conditions"),
        (intake_with(conditions=[1, 2]), "intake.conditions"),
        (intake_with(conditions={"a": 1}), "intake.conditions"),
        (intake_with(screening={"question": "q", "answer": True}), "intake.screening"),
        (intake_with(screening=["yes"]), "intake.screening"),
        (intake_with(screening=[{"question": "q", "answer": "no"}]), "intake.screening"),
        (intake_with(screening=[{"question": "q", "answer": 0}]), "intake.screening"),
        (intake_with(screening=[{"question": "q"}]), "intake.screening"),
        (new_booking(sms_consent="true"), "sms_consent"),
        (new_booking(sms_consent=1), "sms_consent"),
        (new_booking(patient="Ada Lovelace"), "patient"),
        (new_booking(patient=[]), "patient"),
        (new_booking(intake=["Depression"]), "intake"),
        # Nulls.
        (new_booking(start=None), "start"),
        (new_booking(patient=None), "patient"),
        (new_booking(intake=None), "intake"),
        (new_booking(sms_consent=None), "sms_consent"),
        (with_patient(email=None), "patient.email"),
        (intake_with(medications=None), "intake.medications"),
        # Text no person types.
        (with_patient(first_name="Ada\x00"), "patient.first_name"),
        (with_patient(first_name="Ada\x1b[31m"), "patient.first_name"),
        (with_patient(last_name="Love\nlace"), "patient.last_name"),
        (with_patient(first_name="\ud800"), "patient.first_name"),
        (with_patient(first_name="   "), "patient.first_name"),
        (intake_with(medications="ok\x00"), "intake.medications"),
        # Missing and misspelt fields.
        ({k: v for k, v in new_booking().items() if k != "sms_consent"}, "sms_consent"),
        ({k: v for k, v in new_booking().items() if k != "patient"}, "patient"),
        (new_booking(sms_consnet=True), "sms_consnet"),
        (with_patient(middle_name="Augusta"), "patient.middle_name"),
        (intake_with(allergies="none"), "intake.allergies"),
    ],
)
def test_it_refuses_garbage_fields_naming_them(clinic, client, body, field):
    error = assert_error(post(client, body), 400, "invalid")

    assert named(error, field)
    assert not Patient.objects.exists()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "{",
        '{"location": "midtown",}',
        "[]",
        '["location", "midtown"]',
        '"a booking"',
        "42",
        "null",
        "true",
        '{"start": NaN}',
        '{"start": Infinity}',
        "{" + '"a":' * 10 + "1" + "}" * 10,
        '{"sms_consent": ' + "9" * 5000 + "}",
        nested(30_000),
        "{" * 30_000,
        b"\xff\xfe\x00garbage",
        b'{"location": "mid\xc3town"}',
    ],
)
def test_it_answers_garbage_bodies_with_a_400(clinic, client, raw):
    response = post(client, raw)

    assert_error(response, 400)
    assert not Patient.objects.exists()


def test_a_repeated_key_in_the_body_does_not_sneak_past_validation(clinic, client):
    raw = json.dumps(new_booking())[:-1] + ', "start": "2026-06-03T10:00:00"}'

    error = assert_error(post(client, raw), 400, "invalid")

    assert named(error, "start")


def test_it_refuses_a_body_that_is_not_json(clinic, client):
    response = post(client, "location=midtown", content_type="application/x-www-form-urlencoded")

    assert_error(response, 415, "unsupported_media_type")


def padded(size: int) -> str:
    body = new_booking()
    body["intake"]["medications"] = ""
    raw = json.dumps(body)
    body["intake"]["medications"] = "x" * (size - len(raw))
    raw = json.dumps(body)
    assert len(raw) == size
    return raw


def test_it_refuses_a_body_over_64_kib_with_413(clinic, client):
    response = post(client, padded(64 * 1024 + 1))

    error = assert_error(response, 413, "too_large")
    assert "65536" in error["message"]
    assert not Patient.objects.exists()


def test_a_body_of_exactly_64_kib_is_read_and_judged_on_its_fields(clinic, client):
    error = assert_error(post(client, padded(64 * 1024)), 400, "invalid")

    assert named(error, "intake.medications")


def test_a_body_over_djangos_upload_limit_is_refused_with_413(clinic, client, settings):
    # Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) only guards request.body and forms; DRF
    # streams JSON past it, so the API's own limit must hold here too.
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2_621_440
    size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024

    response = post(client, padded(size))

    assert_error(response, 413, "too_large")


def test_a_lower_django_upload_limit_is_honoured(clinic, client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 512

    response = post(client, padded(600))

    error = assert_error(response, 413, "too_large")
    assert "512" in error["message"]


# --- Rate limit -------------------------------------------------------------------------------


def test_the_rate_limit_answers_429_with_retry_after(clinic, client, monkeypatch):
    monkeypatch.setattr(throttle, "BOOKINGS_PER_HOUR", 2)
    for day in ("2026-06-03", "2026-06-04"):
        assert post(client, new_booking(start=f"{day}T10:00:00-04:00")).status_code == 201

    response = post(client, new_booking(start="2026-06-05T10:00:00-04:00"))

    assert assert_error(response, 429)["code"] == "throttled"
    # 12:00:00 UTC is the start of an hour-long window.
    assert response["Retry-After"] == "3600"
    assert Appointment.objects.count() == 2
    # Another address has its own allowance.
    other = post(client, new_booking(start="2026-06-05T11:00:00-04:00"), address="192.0.2.7")
    assert other.status_code == 422  # the cap on pending consultations, not the rate limit


def test_the_rate_limit_holds_under_parallel_requests(monkeypatch):
    # The limit is counted before the body is read, so empty bodies (400s) count too: the test
    # needs no database, only the shared cache and real threads.
    monkeypatch.setattr(throttle, "BOOKINGS_PER_HOUR", 5)
    workers = 24
    barrier = threading.Barrier(workers, timeout=BARRIER_TIMEOUT)
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def attempt() -> None:
        client = Client()
        barrier.wait()
        response = client.post(URL, data="{}", content_type="application/json")
        with lock:
            answers.append((response.status_code, response.get("Retry-After")))

    threads = [threading.Thread(target=attempt) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(status for status, _ in answers) == {400: 5, 429: workers - 5}
    assert {retry for status, retry in answers if status == 429} == {"3600"}


# --- Schema -----------------------------------------------------------------------------------


def test_the_schema_documents_the_booking_endpoint(db, client):
    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    operation = schema["paths"]["/api/v1/bookings/"]["post"]
    headers = [p for p in operation["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in headers] == ["Idempotency-Key"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request_schema = schema["components"]["schemas"][request.rsplit("/", 1)[1]]
    assert set(request_schema["properties"]) == {
        "location",
        "appointment_type",
        "start",
        "patient",
        "intake",
        "sms_consent",
        "altcha",
    }
    assert {"201", "400", "409", "413", "422", "429"} <= set(operation["responses"])
    created = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    created_schema = schema["components"]["schemas"][created.rsplit("/", 1)[1]]
    assert set(created_schema["properties"]) == {"reference", "start", "end", "status"}


# --- Over HTTP, on PostgreSQL -----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: Body
    replayed: str | None


def race(url: str, bodies: list[Body], headers: dict[str, str] | None = None) -> list[Reply]:
    """POST every body at once, each from its own thread over its own connection."""
    parts = urlsplit(url)
    # Connected one by one before the race: the test server listens with a backlog of 10, and
    # fifty simultaneous handshakes overflow it. Once connected, the requests go out together.
    connections = []
    for _ in bodies:
        connection = http.client.HTTPConnection(
            parts.hostname or "localhost", parts.port, timeout=120
        )
        connection.connect()
        connections.append(connection)
    barrier = threading.Barrier(len(bodies), timeout=BARRIER_TIMEOUT)
    replies: list[Reply] = []
    lock = threading.Lock()

    def attempt(connection: http.client.HTTPConnection, body: Body) -> None:
        try:
            barrier.wait()
            connection.request(
                "POST",
                URL,
                body=json.dumps(body),
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            response = connection.getresponse()
            reply = Reply(
                response.status,
                json.loads(response.read() or b"{}"),
                response.getheader("Idempotent-Replayed"),
            )
        except Exception as exc:  # a dropped connection is a failure to report, not a crash
            reply = Reply(0, {"exception": repr(exc)}, None)
        finally:
            connection.close()
        with lock:
            replies.append(reply)

    threads = [
        threading.Thread(target=attempt, args=pair)
        for pair in zip(connections, bodies, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return replies


def person(n: int) -> Body:
    return with_patient(
        first_name=f"Racer{n}",
        email=f"racer{n}@example.com",
        phone=f"+1 212 555 {n:04d}",
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_people_posting_for_one_slot_get_one_booking_over_http(
    consultation, live_server, monkeypatch, count_overlaps
):
    monkeypatch.setattr(throttle, "BOOKINGS_PER_HOUR", 1000)

    replies = race(live_server.url, [person(n) for n in range(50)])

    statuses = Counter(reply.status for reply in replies)
    assert statuses == {201: 1, 409: 49}, [reply for reply in replies if reply.status != 409]
    assert {reply.body["error"]["code"] for reply in replies if reply.status == 409} == {
        "slot_taken"
    }
    assert Appointment.objects.filter(status=AppointmentStatus.BOOKED).count() == 1
    assert count_overlaps() == 0
    # Nobody who lost the race is left behind as a patient record.
    assert Patient.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_make_one_booking_over_http(
    consultation, live_server, monkeypatch
):
    monkeypatch.setattr(throttle, "BOOKINGS_PER_HOUR", 1000)
    real_book = public.consultation_request_online
    runs: list[int] = []

    def slow_book(**kwargs: Any) -> OnlineBooking:
        # Held open after booking, so the retries arrive while the first request is still in
        # its transaction: they must wait for it and replay its answer, not book again.
        booking = real_book(**kwargs)
        runs.append(booking.appointment.pk)
        time.sleep(0.2)
        return booking

    monkeypatch.setattr(public, "consultation_request_online", slow_book)
    workers = 10

    replies = race(
        live_server.url, [new_booking()] * workers, headers={"Idempotency-Key": "retry-storm"}
    )

    assert {reply.status for reply in replies} == {201}, replies
    assert len({reply.body["reference"] for reply in replies}) == 1
    assert Counter(reply.replayed for reply in replies) == {None: 1, "true": workers - 1}
    assert len(runs) == 1
    assert Appointment.objects.count() == 1
    assert Patient.objects.count() == 1

"""The secure-link services: issue, resolve and request a patient's link."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail

from booking.links import patient_link_issue, patient_link_request, patient_link_resolve
from booking.models import Patient, PatientLink
from booking.services import appointment_book
from config.celery import app as celery_app

NOW = datetime.fromisoformat("2026-10-05T12:00:00+00:00")  # 08:00 in New York
VISIT = datetime.fromisoformat("2026-10-07T10:00:00-04:00")


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


@pytest.fixture
def eager_celery():
    saved = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = saved


@time_machine.travel(NOW, tick=False)
def test_a_token_carries_at_least_128_random_bits_and_only_its_hash_is_stored(make_patient):
    patient = make_patient()

    tokens = {patient_link_issue(patient=patient) for _ in range(20)}

    assert len(tokens) == 20
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128
    stored = list(PatientLink.objects.values_list("token_hash", flat=True))
    assert sorted(stored) == sorted(hashlib.sha256(t.encode()).hexdigest() for t in tokens)
    for row in PatientLink.objects.values():
        assert not tokens & {str(value) for value in row.values()}


@time_machine.travel(NOW, tick=False)
def test_a_fresh_token_resolves_to_its_patient_only(make_patient):
    alice, bob = make_patient(), make_patient()
    token = patient_link_issue(patient=alice)
    patient_link_issue(patient=bob)

    assert patient_link_resolve(token=token) == alice


@time_machine.travel(NOW, tick=False)
def test_it_refuses_an_expired_token(make_patient):
    token = patient_link_issue(patient=make_patient())
    expires = PatientLink.objects.get().expires_at

    assert patient_link_resolve(token=token, now=expires - timedelta(seconds=1)) is not None
    assert patient_link_resolve(token=token, now=expires) is None


@time_machine.travel(NOW, tick=False)
def test_a_link_lasts_until_two_days_after_the_last_booked_visit(infusion, make_patient):
    patient = make_patient()
    late = datetime.fromisoformat("2026-12-14T10:00:00-05:00")  # beyond the 30 days
    appointment = appointment_book(appointment_type=infusion, patient=patient, start=late)

    patient_link_issue(patient=patient)

    assert PatientLink.objects.get().expires_at == appointment.end + timedelta(days=2)


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "forged",
    [
        "",
        "x",
        "A" * 43,
        "A" * 5000,
        "../../etc/passwd",
        "%00",
    ],
)
def test_it_refuses_forged_tokens(make_patient, forged):
    patient_link_issue(patient=make_patient())

    assert patient_link_resolve(token=forged) is None


@time_machine.travel(NOW, tick=False)
def test_the_stored_hash_is_not_a_token(make_patient):
    patient_link_issue(patient=make_patient())

    assert patient_link_resolve(token=PatientLink.objects.get().token_hash) is None


@time_machine.travel(NOW, tick=False)
def test_a_new_link_request_revokes_the_earlier_links(make_patient):
    patient = make_patient(email="Ann@Example.com", date_of_birth=date(1990, 5, 17))
    old = patient_link_issue(patient=patient)

    patient_link_request(email="ann@example.com", date_of_birth=date(1990, 5, 17))

    assert patient_link_resolve(token=old) is None
    assert PatientLink.objects.get().revoked_at == NOW


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("email", "born"),
    [
        ("ann@example.com", date(1990, 5, 18)),  # right email, wrong date of birth
        ("anne@example.com", date(1990, 5, 17)),  # right date of birth, wrong email
    ],
)
def test_a_near_miss_link_request_changes_and_sends_nothing(
    make_patient, eager_celery, django_capture_on_commit_callbacks, email, born
):
    patient = make_patient(email="ann@example.com", date_of_birth=date(1990, 5, 17))
    token = patient_link_issue(patient=patient)

    with django_capture_on_commit_callbacks(execute=True):
        patient_link_request(email=email, date_of_birth=born)

    assert patient_link_resolve(token=token) == patient
    assert mail.outbox == []


@time_machine.travel(NOW, tick=False)
def test_a_link_request_emails_a_working_link_to_the_address_on_record(
    make_patient, eager_celery, django_capture_on_commit_callbacks
):
    patient = make_patient(email="ann@example.com", date_of_birth=date(1990, 5, 17))

    with django_capture_on_commit_callbacks(execute=True):
        patient_link_request(email="ANN@example.com", date_of_birth=date(1990, 5, 17))

    (message,) = mail.outbox
    assert message.to == ["ann@example.com"]
    (url,) = set(re.findall(r"https?://\S+/a/[\w-]+/", str(message.body)))
    token = urlsplit(url).path.split("/")[2]
    assert patient_link_resolve(token=token) == patient

"""A plan that stops stops its sessions: revoking a plan or declining a patient puts what it
had booked still to come on hold in the same transaction — reminders stop, nothing is sent
after, and the desk cannot check the patient in."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User

from booking.access.roles import Role
from booking.eligibility import contraindications_none, eligibility_decide
from booking.models import (
    Appointment,
    AppointmentStatus,
    DecisionOutcome,
    Patient,
    Series,
    SeriesStatus,
    TreatmentPlan,
)
from booking.series.services import series_book
from booking.services import appointment_book
from notifications import sms
from notifications.delivery import message_deliver_due
from notifications.models import MessageStatus, OutboundMessage
from scheduling.models import AppointmentType, Location
from tests.notifications.conftest import send_at
from tests.notifications.test_emails import FORBIDDEN
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
FIRST_DAY = date(2026, 6, 8)


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=NEW_YORK)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def texts(settings) -> Iterator[list[sms.SmsMessage]]:
    settings.SMS_BACKEND = "notifications.sms.LocmemBackend"
    sms.outbox.clear()
    yield sms.outbox
    sms.outbox.clear()


@pytest.fixture
def patient(make_approved_patient: Callable[..., Patient]) -> Patient:
    return make_approved_patient(sms_consent=True, sms_consent_at=NOW)


@pytest.fixture
def booked(patient: Patient, infusion: AppointmentType) -> list[Appointment]:
    """A mood series of six sessions and, after it, a single mood infusion."""
    plan = TreatmentPlan.objects.get(patient=patient, protocol__slug="mood-induction")
    days = [FIRST_DAY + timedelta(days=n) for n in (0, 2, 4, 7, 9, 11)]
    series = series_book(plan=plan, starts=[at(day) for day in days], now=NOW)
    single = appointment_book(
        appointment_type=infusion,
        patient=patient,
        start=at(FIRST_DAY + timedelta(days=20)),
        now=NOW,
    )
    return [*series.sessions.order_by("start"), single]


def statuses(visits: list[Appointment]) -> set[str]:
    return set(
        Appointment.objects.filter(pk__in=[v.pk for v in visits]).values_list("status", flat=True)
    )


def test_a_revoked_plan_holds_its_sessions_stops_their_reminders_and_refuses_check_in(
    clinic: Location, patient, booked, texts, mailoutbox
):
    prescriber = staff_user(Role.PRESCRIBER, clinic)
    plan = TreatmentPlan.objects.get(patient=patient, protocol__slug="mood-induction")
    planned = OutboundMessage.objects.filter(appointment__in=booked, status=MessageStatus.PENDING)
    assert planned.exists()
    # The booking confirmations went out before the plan was withdrawn.
    message_deliver_due(now=NOW, enqueue=send_at(NOW))
    sent_before = len(texts), len(mailoutbox)

    # The next day (seven confirmations used up the day's texts to this number).
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        response = client_for(prescriber).post(f"/api/v1/plans/{plan.pk}/revoke/")

    assert response.status_code == 200, response.content
    assert statuses(booked) == {AppointmentStatus.ON_HOLD}
    assert Series.objects.get(pk=booked[0].series_id).status == SeriesStatus.ON_HOLD
    # Every pending reminder cancelled with the hold; the one neutral notice waits to go.
    assert list(planned.values_list("appointment_id", "kind").distinct()) == [
        (booked[0].pk, "please_call")
    ]
    for day in range(1, 30):  # beat, every day at noon until after the last session
        later = NOW + timedelta(days=day, hours=4)
        message_deliver_due(now=later, enqueue=send_at(later))
    # Nothing about the sessions after the stop: one neutral "please call us" by each channel,
    # for the seven visits held, and no reminder.
    assert (len(texts), len(mailoutbox)) == (sent_before[0] + 1, sent_before[1] + 1)
    text, mail = texts[-1], mailoutbox[-1]
    assert "please call" in text.body.lower()
    assert mail.subject == "Please call us about your upcoming visits"
    for words in (text.body, mail.subject, mail.body):
        assert FORBIDDEN.search(words) is None, words
    assert set(
        OutboundMessage.objects.filter(appointment__in=booked, status=MessageStatus.SENT)
        .exclude(kind="confirmation")
        .values_list("appointment_id", "kind")
    ) == {(booked[0].pk, "please_call")}
    # On the first session's day, the desk cannot check the patient in.
    nurse = staff_user(Role.NURSE, clinic)
    with time_machine.travel(at(FIRST_DAY, 9), tick=False):
        check_in = client_for(nurse).post(
            f"/api/v1/appointments/{booked[0].reference}/check-in/",
            data=json.dumps({}),
            content_type="application/json",
        )
    assert check_in.status_code == 409, check_in.content
    assert check_in.json()["error"]["code"] == "invalid_transition"


def test_declining_a_patient_holds_every_session_still_to_come(clinic, patient, booked):
    prescriber = User.objects.get(username__startswith="prescriber-")

    eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.DECLINED,
        contraindications=contraindications_none(),
        decided_by=prescriber,
        now=NOW,
    )

    assert statuses(booked) == {AppointmentStatus.ON_HOLD}


def test_a_plan_replaced_by_a_new_approval_keeps_its_sessions(clinic, patient, booked):
    prescriber = User.objects.get(username__startswith="prescriber-")
    plan = TreatmentPlan.objects.get(patient=patient, protocol__slug="mood-induction")

    eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.APPROVED,
        contraindications=contraindications_none(),
        protocol=plan.protocol,
        sessions_authorised=12,
        valid_until=date(2027, 6, 30),
        decided_by=prescriber,
        now=NOW,
    )

    assert statuses(booked) == {AppointmentStatus.BOOKED}


def test_a_series_held_by_a_withdrawn_plan_resumes_only_under_a_new_approval(
    clinic: Location, patient, booked
):
    prescriber = staff_user(Role.PRESCRIBER, clinic)
    plan = TreatmentPlan.objects.get(patient=patient, protocol__slug="mood-induction")
    client = client_for(prescriber)
    assert client.post(f"/api/v1/plans/{plan.pk}/revoke/").status_code == 200
    series_id = booked[0].series_id

    refused = client.post(
        f"/api/v1/series/{series_id}/resume/", data="{}", content_type="application/json"
    )

    assert refused.status_code == 422, refused.content
    error = refused.json()["error"]
    assert error["code"] == "not_eligible"
    assert error["message"].startswith("Session 1 (")
    assert "withdrawn" in error["message"]
    assert statuses(booked) == {AppointmentStatus.ON_HOLD}

    eligibility_decide(
        patient=patient,
        outcome=DecisionOutcome.APPROVED,
        contraindications=contraindications_none(),
        protocol=plan.protocol,
        sessions_authorised=12,
        valid_until=date(2027, 6, 30),
        decided_by=prescriber,
        now=NOW,
    )
    resumed = client.post(
        f"/api/v1/series/{series_id}/resume/", data="{}", content_type="application/json"
    )

    assert resumed.status_code == 200, resumed.content
    assert statuses(booked[:-1]) == {AppointmentStatus.BOOKED}

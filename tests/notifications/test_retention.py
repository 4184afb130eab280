"""The daily retention run (notifications.retention): messages, attempts, inbound texts, webhook
events and sessions past their period go, in bounded batches; nothing inside it, nothing pending."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from time_machine import TimeMachineFixture

from booking.models import Appointment, Patient
from booking.services import appointment_book
from notifications.models import (
    Channel,
    DeliveryAttempt,
    InboundMessage,
    InboundStatus,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookStatus,
    WebhookSubscription,
)
from notifications.retention import retention_run
from notifications.webhooks_outbox import webhook_secret_new
from scheduling.models import AppointmentType

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
START = datetime.fromisoformat("2026-12-10T10:00:00-05:00")
SECOND = timedelta(seconds=1)
MESSAGE_CUTOFF = NOW - timedelta(days=400)


@pytest.fixture(autouse=True)
def pinned(time_machine: TimeMachineFixture, settings: Any) -> None:
    time_machine.move_to(NOW, tick=False)
    settings.RETENTION_MESSAGES_DAYS = 400
    settings.RETENTION_INBOUND_DAYS = 400
    settings.RETENTION_WEBHOOK_DAYS = 90


@pytest.fixture
def visit(consultation: AppointmentType, make_patient: Callable[..., Patient]) -> Appointment:
    appointment = appointment_book(
        appointment_type=consultation, patient=make_patient(), start=START, now=NOW
    )
    OutboundMessage.objects.all().delete()
    return appointment


@pytest.fixture
def message(visit: Appointment) -> Callable[..., OutboundMessage]:
    kinds = iter([(kind, channel) for kind in MessageKind for channel in Channel])

    def make(status: str, last_change: datetime, *, attempts: int = 0) -> OutboundMessage:
        kind, channel = next(kinds)
        row = OutboundMessage.objects.create(
            appointment=visit,
            location_id=visit.location_id,
            kind=kind,
            channel=channel,
            status=status,
            due_at=last_change,
            appointment_version=visit.version,
        )
        # auto_now would stamp the test's clock: the row's last change is set afterwards.
        OutboundMessage.objects.filter(pk=row.pk).update(updated_at=last_change)
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(message=row, at=last_change, outcome="sent") for _ in range(attempts)
        )
        return row

    return make


def test_it_removes_finished_messages_and_their_attempts_only_past_the_period(
    message: Callable[..., OutboundMessage],
) -> None:
    gone = [
        message(MessageStatus.SENT, MESSAGE_CUTOFF - SECOND, attempts=2),
        message(MessageStatus.FAILED, MESSAGE_CUTOFF - SECOND, attempts=3),
        message(MessageStatus.SKIPPED, MESSAGE_CUTOFF - SECOND),
        message(MessageStatus.CANCELLED, MESSAGE_CUTOFF - SECOND),
    ]
    inside = message(MessageStatus.SENT, MESSAGE_CUTOFF + SECOND, attempts=1)
    # However old: a message still waiting or being sent belongs to the sweeper.
    pending = message(MessageStatus.PENDING, MESSAGE_CUTOFF - timedelta(days=900))
    sending = message(MessageStatus.SENDING, MESSAGE_CUTOFF - timedelta(days=900))

    counts = retention_run(now=NOW)

    assert counts["messages"] == 4
    assert counts["message_attempts"] == 5
    assert set(OutboundMessage.objects.values_list("pk", flat=True)) == {
        inside.pk,
        pending.pk,
        sending.pk,
    }
    assert not OutboundMessage.objects.filter(pk__in=[m.pk for m in gone]).exists()
    assert list(DeliveryAttempt.objects.values_list("message", flat=True)) == [inside.pk]


def test_messages_go_in_bounded_batches(
    message: Callable[..., OutboundMessage], settings: Any
) -> None:
    settings.RETENTION_BATCH_SIZE = 2
    for _ in range(5):
        message(MessageStatus.SENT, MESSAGE_CUTOFF - SECOND, attempts=1)

    with CaptureQueriesContext(connection) as queries:
        counts = retention_run(now=NOW)

    message_deletes = [
        q["sql"]
        for q in queries
        if q["sql"].startswith('DELETE FROM "notifications_outboundmessage"')
    ]
    assert counts["messages"] == 5
    assert counts["message_attempts"] == 5
    assert [len(sql.split("IN (")[1].split(",")) for sql in message_deletes] == [2, 2, 1]


def test_it_removes_inbound_texts_only_past_the_period(db: None) -> None:
    def inbound(received_at: datetime) -> InboundMessage:
        return InboundMessage.objects.create(
            provider="twilio",
            provider_message_id=f"SM{received_at.timestamp()}",
            from_phone="+12125550100",
            body="C",
            received_at=received_at,
            status=InboundStatus.HANDLED,
        )

    inbound(MESSAGE_CUTOFF - SECOND)
    inside = inbound(MESSAGE_CUTOFF + SECOND)

    assert retention_run(now=NOW)["inbound_messages"] == 1
    assert list(InboundMessage.objects.values_list("pk", flat=True)) == [inside.pk]


def test_it_removes_finished_webhook_events_and_tries_only_past_the_period(
    consultation: AppointmentType,
) -> None:
    subscription = WebhookSubscription.objects.create(
        location=consultation.location,
        url="https://hooks.example.com/",
        events=["visit.booked"],
        secret=webhook_secret_new(),
        created_at=NOW - timedelta(days=400),
    )
    cutoff = NOW - timedelta(days=90)

    def delivery(status: str, last_change: datetime) -> WebhookDelivery:
        row = WebhookDelivery.objects.create(
            subscription=subscription,
            event_id=f"evt_{status}_{last_change.timestamp()}",
            event_type="visit.booked",
            payload={},
            occurred_at=last_change,
            status=status,
            next_attempt_at=last_change,
            created_at=last_change,
        )
        WebhookDelivery.objects.filter(pk=row.pk).update(updated_at=last_change)
        WebhookAttempt.objects.create(delivery=row, at=last_change, outcome="delivered")
        return row

    delivery(WebhookStatus.DELIVERED, cutoff - SECOND)
    delivery(WebhookStatus.FAILED, cutoff - SECOND)
    inside = delivery(WebhookStatus.DELIVERED, cutoff + SECOND)
    waiting = delivery(WebhookStatus.PENDING, cutoff - timedelta(days=300))

    counts = retention_run(now=NOW)

    assert (counts["webhook_deliveries"], counts["webhook_attempts"]) == (2, 2)
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {inside.pk, waiting.pk}
    assert set(WebhookAttempt.objects.values_list("delivery", flat=True)) == {
        inside.pk,
        waiting.pk,
    }


def test_it_removes_expired_sessions(db: None) -> None:
    Session.objects.create(session_key="a" * 32, session_data="", expire_date=NOW - SECOND)
    Session.objects.create(session_key="b" * 32, session_data="", expire_date=NOW + SECOND)

    assert retention_run(now=NOW)["sessions"] == 1
    assert list(Session.objects.values_list("session_key", flat=True)) == ["b" * 32]


def test_the_command_prints_counts_and_a_dry_run_changes_nothing(
    message: Callable[..., OutboundMessage],
) -> None:
    message(MessageStatus.SENT, MESSAGE_CUTOFF - SECOND, attempts=1)
    out = io.StringIO()

    call_command("retention_run", "--dry-run", stdout=out)

    assert "Dry run" in out.getvalue()
    assert "messages: 1\n" in out.getvalue()
    assert "message_attempts: 1\n" in out.getvalue()
    assert OutboundMessage.objects.count() == 1

    out = io.StringIO()
    call_command("retention_run", stdout=out)

    assert "Dry run" not in out.getvalue()
    assert "messages: 1\n" in out.getvalue()
    assert OutboundMessage.objects.count() == 0

"""``manage.py outbox_status``: the probe that says whether reminders are going out on time."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command
from time_machine import TimeMachineFixture

from booking.models import Appointment, Patient
from booking.services import appointment_book
from config.celery import app as celery_app
from notifications.models import Channel, MessageKind, MessageStatus, OutboundMessage
from notifications.tasks import send_messages
from scheduling.models import AppointmentType
from tests.notifications.conftest import celery_broker

NOW = datetime.fromisoformat("2026-10-05T08:00:00-04:00")
START = datetime.fromisoformat("2026-10-08T10:00:00-04:00")
SHARED_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def visit(
    consultation: AppointmentType,
    make_patient: Callable[..., Patient],
    time_machine: TimeMachineFixture,
) -> Appointment:
    """A visit whose outbox the test writes itself, row by row."""
    time_machine.move_to(NOW, tick=False)
    appointment = appointment_book(
        appointment_type=consultation, patient=make_patient(), start=START, now=NOW
    )
    OutboundMessage.objects.all().delete()
    return appointment


@pytest.fixture
def message(visit: Appointment) -> Callable[..., OutboundMessage]:
    kinds = iter([(kind, channel) for kind in MessageKind for channel in Channel])

    def make(status: str, *, due: timedelta, **fields: Any) -> OutboundMessage:
        kind, channel = next(kinds)
        return OutboundMessage.objects.create(
            appointment=visit,
            location_id=visit.location_id,
            kind=kind,
            channel=channel,
            status=status,
            due_at=NOW + due,
            appointment_version=visit.version,
            **fields,
        )

    return make


def outbox_status(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("outbox_status", *args, stdout=out)
    return json.loads(out.getvalue())


def test_it_counts_what_waits_what_is_late_what_is_stuck_and_what_failed(
    message: Callable[..., OutboundMessage], time_machine: TimeMachineFixture
) -> None:
    minutes = timedelta(minutes=1)
    message(MessageStatus.PENDING, due=2 * 24 * 60 * minutes)  # a reminder for later
    message(MessageStatus.PENDING, due=-2 * minutes)
    message(MessageStatus.PENDING, due=-10 * minutes)
    message(MessageStatus.SENDING, due=-1 * minutes, claimed_at=NOW - minutes)
    # Claimed by a worker that died (claims go stale after 300 s): still not delivered.
    message(MessageStatus.SENDING, due=-11 * minutes, claimed_at=NOW - 10 * minutes)
    message(MessageStatus.SENT, due=-60 * minutes, sent_at=NOW - 59 * minutes)
    message(MessageStatus.FAILED, due=-60 * minutes)
    time_machine.move_to(NOW - timedelta(days=2), tick=False)
    message(MessageStatus.FAILED, due=-2 * 24 * 60 * minutes)  # failed the day before yesterday
    time_machine.move_to(NOW, tick=False)

    with celery_broker("filesystem://"):
        status = outbox_status("--max-lateness", "900")

    assert status == {
        "now": NOW.astimezone(UTC).isoformat(),
        "pending": 3,
        "due_unclaimed": 2,
        "sending": 2,
        "stale_claims": 1,
        "oldest_due_at": (NOW - 11 * minutes).astimezone(UTC).isoformat(),
        "oldest_due_lateness_seconds": 11 * 60,
        "failed_last_24h": 1,
        # The filesystem broker of the embedded default is not watched.
        "queue_depth": None,
        "max_lateness_seconds": 900,
        "status": "ok",
    }


def test_it_exits_1_when_a_due_message_waited_longer_than_allowed(
    message: Callable[..., OutboundMessage],
) -> None:
    message(MessageStatus.PENDING, due=-timedelta(seconds=301))
    out = io.StringIO()

    with pytest.raises(CommandError, match="301 s late") as raised:
        call_command("outbox_status", "--max-lateness", "300", stdout=out)

    assert raised.value.returncode == 1
    printed = json.loads(out.getvalue())
    assert printed["status"] == "late"
    assert printed["oldest_due_lateness_seconds"] == 301


def test_a_message_due_within_the_limit_is_on_time(
    message: Callable[..., OutboundMessage],
) -> None:
    message(MessageStatus.PENDING, due=-timedelta(seconds=300))

    assert outbox_status()["status"] == "ok"  # 300 s is the default limit


def test_an_empty_outbox_is_on_time(visit: Appointment) -> None:
    status = outbox_status("--max-lateness", "0")

    assert status["oldest_due_lateness_seconds"] == 0
    assert status["oldest_due_at"] is None
    assert status["status"] == "ok"


def test_it_reads_the_redis_queue_depth(visit: Appointment) -> None:
    client = redis.Redis.from_url(SHARED_REDIS, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("needs Redis at 127.0.0.1:6379 (CI always has it)")
    # A queue of the test's own on the shared Redis: nothing else reads or fills it.
    queue = f"test-outbox-status-{secrets.token_hex(4)}"
    saved = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        with celery_broker(SHARED_REDIS):
            for batch in ([1, 2], [3]):
                send_messages.apply_async((batch,), queue=queue)
            assert outbox_status()["queue_depth"] == 2
    finally:
        celery_app.conf.task_default_queue = saved
        client.delete(queue)
        client.close()


def test_an_unreachable_broker_is_reported_not_fatal(visit: Appointment) -> None:
    with celery_broker("redis://127.0.0.1:1/0"):
        status = outbox_status()

    assert status["queue_depth"] is None
    assert "ConnectionError" in status["broker_error"]
    assert status["status"] == "ok"

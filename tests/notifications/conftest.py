from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import kombu.pools
import pytest
from django.db.models import QuerySet
from time_machine import TimeMachineFixture

from config.celery import app as celery_app
from notifications import sms
from notifications.delivery import message_deliver_due, message_send
from notifications.models import DeliveryAttempt, MessageStatus, OutboundMessage


@pytest.fixture
def eager_celery():
    """Run queued tasks at once, in the test's thread, raising their errors."""
    saved = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = saved


# --- Delivering the outbox in tests -------------------------------------------------------------


@pytest.fixture
def texts(settings) -> Iterator[list[sms.SmsMessage]]:
    """Text messages land in ``notifications.sms.outbox``, empty when the test starts."""
    settings.SMS_BACKEND = "notifications.sms.LocmemBackend"
    sms.outbox.clear()
    yield sms.outbox
    sms.outbox.clear()


def send_at(now: datetime) -> Callable[[list[int]], list[str]]:
    """An ``enqueue`` for :func:`message_deliver_due` that sends each batch at once, in the
    caller's thread, as a worker would on receiving it."""

    def send(ids: list[int]) -> list[str]:
        return [message_send(message_id=message_id, now=now) for message_id in ids]

    return send


Sweep = Callable[..., int]


def assert_sent_once_each(messages: QuerySet[OutboundMessage]) -> None:
    """Each of ``messages`` went out, handed to a provider exactly once."""
    assert Counter(messages.values_list("status", flat=True)) == {
        MessageStatus.SENT: messages.count()
    }
    handed_over = Counter(
        DeliveryAttempt.objects.filter(message__in=messages, outcome="sent").values_list(
            "message_id", flat=True
        )
    )
    assert handed_over == Counter(dict.fromkeys(messages.values_list("id", flat=True), 1))


@pytest.fixture
def sweep(time_machine: TimeMachineFixture) -> Sweep:
    """One beat of the outbox at ``now``: the clock moves there, due messages are claimed and
    sent in-process. Returns how many were claimed."""

    def run(now: datetime, *, batch_size: int | None = None) -> int:
        time_machine.move_to(now, tick=False)
        return message_deliver_due(now=now, batch_size=batch_size, enqueue=send_at(now))

    return run


# --- The broker ---------------------------------------------------------------------------------


def _forget_broker_connections() -> None:
    # The app keeps the connection and producer pools of the first broker it published to;
    # without dropping them a new broker_url would be ignored. Nothing public forgets them.
    app: Any = celery_app
    app._pool = None
    app.amqp._producer_pool = None
    kombu.pools.reset()


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Publish Celery tasks to ``url`` for real (not eagerly) inside the block."""
    conf = celery_app.conf
    saved = {"broker_url": conf.broker_url, "task_always_eager": conf.task_always_eager}
    conf.update(broker_url=url, task_always_eager=False)
    _forget_broker_connections()
    try:
        yield
    finally:
        conf.update(saved)
        _forget_broker_connections()


@pytest.fixture
def memory_broker() -> Iterator[None]:
    """What a transactional test queues after commit stays in this process, unconsumed: the
    test runs the outbox itself, and no shared broker receives test tasks."""
    with celery_broker("memory://localhost/"):
        yield

"""Redis, the broker, stopped and started for real: the database keeps the work (DESIGN §3, §5).

Each test runs its own ``redis-server`` on a free port and points Celery at it, so stopping it
disturbs nobody else. Tasks are really published to that Redis; the test then plays the worker,
taking each task message off the queue and running it, so what is checked is what a worker would
receive.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from django.core.cache import cache
from django.db import connection
from django.test import Client
from kombu.exceptions import OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry
from time_machine import TimeMachineFixture

from booking.models import Appointment, Patient
from booking.services import appointment_book
from config.celery import app as celery_app
from notifications.delivery import message_deliver_due
from notifications.models import Channel, MessageKind, MessageStatus, OutboundMessage
from scheduling.models import Location
from tests.notifications.conftest import assert_sent_once_each, celery_broker

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.fromisoformat("2026-06-01T08:00:00-04:00")  # a Monday morning in New York
START = "2026-06-03T10:00:00-04:00"
# A booking must not wait on a broker that is down. Publishing gives up after one quick retry
# (CELERY_TASK_PUBLISH_RETRY_POLICY); this bound only catches a hang, it is not a benchmark.
BOOKING_WITH_BROKER_DOWN_S = 5.0
WAIT = 30


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


@dataclass
class RedisServer:
    """A redis-server of the test's own, without persistence: a restart loses its queues."""

    port: int
    folder: Path
    server: str
    cli: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        # No retries: "is it down?" must be answered at once.
        return redis.Redis(
            port=self.port, socket_connect_timeout=1, socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )

    def start(self) -> None:
        subprocess.run(  # noqa: S603 - a fixed program and arguments
            [
                self.server,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "yes",
                "--dir", str(self.folder),
                "--pidfile", str(self.folder / "redis.pid"),
                "--logfile", str(self.folder / "redis.log"),
            ],
            check=True,
        )  # fmt: skip
        self._wait(up=True)

    def stop(self) -> None:
        subprocess.run(  # noqa: S603 - a fixed program and arguments
            [self.cli, "-p", str(self.port), "shutdown", "nosave"],
            check=False,
            capture_output=True,
        )
        self._wait(up=False)

    def is_up(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def _wait(self, *, up: bool) -> None:
        deadline = time.monotonic() + WAIT
        while self.is_up() != up:
            assert time.monotonic() < deadline, f"redis-server on {self.port} never came {up=}"
            time.sleep(0.02)

    def queued(self) -> int:
        return int(self.client().llen("celery"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    program, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if program is None or cli is None:
        message = "redis-server and redis-cli are needed to stop and start a real broker"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run this test")
        pytest.skip(f"{message} (CI installs them)")
    server = RedisServer(port=free_port(), folder=tmp_path, server=program, cli=cli)
    server.start()
    try:
        with celery_broker(server.url):
            yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Received:
    task: str
    args: tuple[Any, ...]


def work_off(server: RedisServer) -> list[Received]:
    """Play the worker: take task messages off the Redis queue one by one and run each, until
    none is left (tasks that queue more are worked off too)."""
    done: list[Received] = []
    with celery_app.connection_for_read() as conn:
        queue = conn.SimpleQueue("celery")
        try:
            while True:
                try:
                    message = queue.get_nowait()
                except queue.Empty:
                    break
                name = message.headers["task"]
                args, kwargs, _ = message.decode()
                done.append(Received(task=name, args=tuple(args)))
                celery_app.tasks[name].apply(args=args, kwargs=kwargs, throw=True)
                message.ack()
        finally:
            queue.close()
    assert server.queued() == 0
    return done


def new_booking() -> dict[str, Any]:
    return {
        "location": "midtown",
        "appointment_type": "consultation",
        "start": START,
        "patient": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "phone": "+12125550123",
            "date_of_birth": "1985-12-10",
        },
        "sms_consent": True,
    }


def test_a_booking_made_while_redis_is_stopped_succeeds_and_its_reminders_go_out_once_it_is_back(
    consultation,
    redis_server: RedisServer,
    client: Client,
    time_machine: TimeMachineFixture,
    texts,
    mailoutbox,
    caplog: pytest.LogCaptureFixture,
):
    # The clock ticks: the broker client's own timeouts must run as they do in production.
    time_machine.move_to(NOW, tick=True)
    cache.clear()  # the booking rate limit's counters
    # Booked at once: the location does not verify online bookings (the next test's does).
    Location.objects.filter(pk=consultation.location_id).update(verify_online_bookings=False)
    redis_server.stop()

    began = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="notifications.receivers"):
        response = client.post(
            "/api/v1/bookings/", data=json.dumps(new_booking()), content_type="application/json"
        )
    took = time.perf_counter() - began

    assert response.status_code == 201, response.content
    assert took < BOOKING_WITH_BROKER_DOWN_S
    # The after-commit nudge to the sweeper was tried, failed, and did not fail the booking.
    assert "could not queue notifications.tasks.deliver_due" in caplog.text
    appointment = Appointment.objects.get(reference=response.json()["reference"])
    assert not connection.in_atomic_block  # what follows reads committed rows
    planned = OutboundMessage.objects.filter(appointment=appointment)
    assert set(planned.values_list("status", flat=True)) == {MessageStatus.PENDING}
    assert planned.count() == 6  # confirmation, reply-C request and morning-of; e-mail and text
    assert texts == []
    assert mailoutbox == []

    redis_server.start()
    received: list[Received] = []
    for due in sorted(set(planned.values_list("due_at", flat=True))):
        time_machine.move_to(due, tick=True)
        celery_app.tasks["notifications.tasks.deliver_due"].delay()  # what beat does each minute
        received += work_off(redis_server)

    assert_sent_once_each(planned)
    assert len(texts) == planned.filter(channel=Channel.SMS).count()
    assert len(mailoutbox) == planned.filter(channel=Channel.EMAIL).count()
    batches = [r.args[0] for r in received if r.task == "notifications.tasks.send_messages"]
    ids = Counter(i for batch in batches for i in batch)
    assert ids == Counter(dict.fromkeys(planned.values_list("id", flat=True), 1))


def test_a_booking_held_while_redis_is_stopped_gets_its_confirmation_link_once_it_is_back(
    consultation,
    redis_server: RedisServer,
    client: Client,
    time_machine: TimeMachineFixture,
    texts,
    mailoutbox,
):
    time_machine.move_to(NOW, tick=True)
    cache.clear()
    redis_server.stop()

    response = client.post(
        "/api/v1/bookings/", data=json.dumps(new_booking()), content_type="application/json"
    )

    assert response.status_code == 202, response.content
    (planned,) = OutboundMessage.objects.all()
    assert (planned.kind, planned.channel, planned.status) == (
        MessageKind.VERIFY,
        Channel.EMAIL,
        MessageStatus.PENDING,
    )
    assert mailoutbox == []

    redis_server.start()
    celery_app.tasks["notifications.tasks.deliver_due"].delay()  # what beat does each minute
    work_off(redis_server)

    assert_sent_once_each(OutboundMessage.objects.all())
    (message,) = mailoutbox
    assert "/book/confirm/" in str(message.body)
    assert texts == []  # never a text before the address is proven


@pytest.fixture
def booked(
    consultation, make_patient, redis_server: RedisServer, time_machine: TimeMachineFixture
) -> Appointment:
    """A consultation booked at NOW with Redis up; the sweeps are left to the test."""
    time_machine.move_to(NOW, tick=True)
    appointment = appointment_book(
        appointment_type=consultation,
        patient=make_patient(sms_consent=True),
        start=datetime.fromisoformat(START),
    )
    assert redis_server.queued() == 1  # the booking's nudge to the sweeper, dropped here
    redis_server.client().delete("celery")
    return appointment


def assert_confirmation_sent_once(appointment: Appointment, texts, mailoutbox) -> None:
    assert_sent_once_each(
        OutboundMessage.objects.filter(appointment=appointment, kind=MessageKind.CONFIRMATION)
    )
    assert len(texts) == 1
    assert len(mailoutbox) == 1


def test_a_batch_lost_in_a_redis_restart_is_sent_once_after_its_claim_goes_stale(
    booked: Appointment,
    redis_server: RedisServer,
    settings,
    time_machine: TimeMachineFixture,
    texts,
    mailoutbox,
):
    sweep_at = NOW + timedelta(minutes=1)
    assert message_deliver_due(now=sweep_at) == 2  # the confirmation, by e-mail and text
    assert redis_server.queued() == 1

    redis_server.stop()
    redis_server.start()  # without persistence: the queued batch is gone

    assert redis_server.queued() == 0
    assert message_deliver_due(now=sweep_at + timedelta(minutes=1)) == 0  # claims look live
    stale = sweep_at + timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS + 1)
    time_machine.move_to(stale, tick=True)
    assert message_deliver_due(now=stale) == 2
    work_off(redis_server)

    assert_confirmation_sent_once(booked, texts, mailoutbox)


def test_a_sweep_that_cannot_reach_redis_loses_nothing(
    booked: Appointment,
    redis_server: RedisServer,
    settings,
    time_machine: TimeMachineFixture,
    texts,
    mailoutbox,
):
    redis_server.stop()
    sweep_at = NOW + timedelta(minutes=1)

    with pytest.raises(OperationalError):
        message_deliver_due(now=sweep_at)

    redis_server.start()
    stale = sweep_at + timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS + 1)
    time_machine.move_to(stale, tick=True)
    assert message_deliver_due(now=stale) == 2
    work_off(redis_server)

    assert_confirmation_sent_once(booked, texts, mailoutbox)


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("transport", "survives"),
    [(None, True), ("kombu.transport.redis:Transport", False)],
    ids=["config.broker's transport", "kombu's own transport"],
)
def test_a_worker_waiting_for_work_with_a_task_in_hand_goes_on_after_redis_comes_back(
    redis_server: RedisServer, tmp_path: Path, transport: str | None, survives: bool
):
    # One task naps (acknowledged late, so unacknowledged while Redis goes away) and the worker's
    # other process waits on the queue: kombu 5.7's own transport dies of it (config.broker).
    root = Path(__file__).resolve().parents[2]
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "NAPPING_BROKER_URL": redis_server.url,
        "NAPPING_TRANSPORT": transport or "",
    }
    with log.open("wb") as out:
        worker = subprocess.Popen(  # noqa: S603 - this interpreter's own celery
            [sys.executable, "-m", "celery", "-A", "tests.notifications.napping_app",
             "worker", "--concurrency=2", "--loglevel=WARNING", f"--hostname=nap{os.getpid()}@%h"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    napping = Celery("napping-client", broker=redis_server.url)
    try:
        napping.send_task("napping.nap", args=[3, str(tmp_path / "first")])
        _wait_for(lambda: (tmp_path / "first.started").exists(), "the first task started")
        time.sleep(0.5)  # the other process is back waiting on the queue

        redis_server.stop()
        time.sleep(2)
        redis_server.start()

        if not survives:
            worker.wait(timeout=WAIT)
            assert "Unrecoverable error" in log.read_text()
            return
        napping.send_task("napping.nap", args=[0, str(tmp_path / "second")])
        _wait_for(
            lambda: (tmp_path / "second.done").exists(),
            f"a task sent after Redis came back ran; worker alive: {worker.poll() is None}",
        )
        assert worker.poll() is None
        assert "Unrecoverable error" not in log.read_text()
    finally:
        napping.close()
        worker.terminate()
        worker.wait(timeout=WAIT)

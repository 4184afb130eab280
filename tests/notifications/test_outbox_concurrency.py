"""The outbox under real concurrency: threads with their own PostgreSQL connections, and a real
worker process killed mid-batch.

Sweepers racing each other, a cancel racing a send, and a dead worker's claims are where "at most
once" and "none after a cancel" are won or lost (DESIGN §3 Reminders, §5).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from time_machine import TimeMachineFixture

from booking.models import Appointment, Patient
from booking.services import appointment_book, appointment_cancel
from notifications import sms
from notifications.delivery import UNCONFIRMED_DETAIL, message_deliver_due
from notifications.models import Channel, MessageKind, MessageStatus, OutboundMessage
from notifications.sms import TransientSendError
from scheduling.models import AppointmentType
from tests.notifications.conftest import Sweep, assert_sent_once_each, send_at

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("memory_broker"),
]

NOW = datetime.fromisoformat("2026-10-05T08:00:00-04:00")  # a Monday morning in New York
START = datetime.fromisoformat("2026-10-08T10:00:00-04:00")
PREP_DUE = datetime.fromisoformat("2026-10-06T10:00:00-04:00")  # 48 hours before START
AFTER_THE_VISIT = datetime.fromisoformat("2026-10-10T12:00:00-04:00")
# Only guards against a thread or process that hangs; never reached when the tests pass.
WAIT = 60


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


def in_threads(*targets: Callable[[], object]) -> None:
    """Run each target in its own thread (so on its own connection) and re-raise the first
    error any of them hit."""
    errors: list[BaseException] = []

    def run(target: Callable[[], object]) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    if errors:
        raise errors[0]


def et(value: str) -> datetime:
    return datetime.fromisoformat(f"{value}-04:00")


# --- Sweepers racing ----------------------------------------------------------------------------

SWEEPERS = 4
# Small batches, so each sweep hands out several and the sweepers interleave.
BATCH = 2
# Twelve treatment sessions over four days: 132 messages, 24 of them due at once when booked.
STARTS = [et(f"2026-10-{day:02d}T{hour:02d}:00") for day in (7, 8, 9, 10) for hour in (9, 11, 13)]


@pytest.fixture
def sessions(
    infusion: AppointmentType, make_patient, time_machine: TimeMachineFixture
) -> list[Appointment]:
    time_machine.move_to(NOW, tick=False)
    return [
        appointment_book(
            appointment_type=infusion, patient=make_patient(sms_consent=True), start=start
        )
        for start in STARTS
    ]


def test_concurrent_sweepers_send_each_message_once(sessions, texts, mailoutbox):
    moments = sorted(set(OutboundMessage.objects.values_list("due_at", flat=True)))
    claimed: list[list[int]] = [[] for _ in range(SWEEPERS)]
    together = threading.Barrier(SWEEPERS, timeout=WAIT)
    all_holding_a_batch = threading.Barrier(SWEEPERS, timeout=WAIT)

    def sweeper(n: int) -> Callable[[], None]:
        def run() -> None:
            for moment in moments:
                together.wait()
                message_deliver_due(now=moment, batch_size=BATCH, enqueue=worker(moment))

        def worker(moment: datetime) -> Callable[[list[int]], None]:
            def enqueue(ids: list[int]) -> None:
                if not claimed[n]:
                    # Every sweeper has claimed a batch and none has sent it yet: the sweeps
                    # really overlap, whatever the scheduler does with the threads.
                    all_holding_a_batch.wait()
                claimed[n].extend(ids)
                send_at(moment)(ids)

            return enqueue

        return run

    in_threads(*(sweeper(n) for n in range(SWEEPERS)))

    times_claimed = Counter(i for ids in claimed for i in ids)
    assert set(times_claimed) == set(OutboundMessage.objects.values_list("id", flat=True))
    assert set(times_claimed.values()) == {1}
    assert all(claimed)
    assert_sent_once_each(OutboundMessage.objects.all())
    assert len(texts) == OutboundMessage.objects.filter(channel=Channel.SMS).count()
    assert len(mailoutbox) == OutboundMessage.objects.filter(channel=Channel.EMAIL).count()


def test_two_workers_given_the_same_batch_send_each_message_once(sessions, texts, mailoutbox):
    batches: list[list[int]] = []
    message_deliver_due(now=NOW, enqueue=batches.append)
    ids = [i for batch in batches for i in batch]
    outcomes: list[list[str]] = [[], []]
    together = threading.Barrier(2, timeout=WAIT)

    def worker(n: int) -> Callable[[], None]:
        def run() -> None:
            together.wait()
            # The broker redelivered the batch (a lost acknowledgement) while the first worker
            # still runs it.
            outcomes[n] = send_at(NOW)(ids)

        return run

    in_threads(worker(0), worker(1))

    assert [sorted(pair) for pair in zip(*outcomes, strict=True)] == [
        ["not claimed", "sent"]
    ] * len(ids)
    assert len(texts) + len(mailoutbox) == len(ids) == 2 * len(STARTS)
    assert_sent_once_each(OutboundMessage.objects.filter(id__in=ids))


# --- A cancel racing a send ---------------------------------------------------------------------


class HeldBackend(sms.LocmemBackend):
    """Keeps each text (or only those to ``only_to``) inside the provider call until
    ``release`` is set."""

    entered = threading.Event()
    release = threading.Event()
    only_to: str | None = None

    def send(self, to: str, body: str) -> str:
        if HeldBackend.only_to in (None, to):
            HeldBackend.entered.set()
            if not HeldBackend.release.wait(WAIT):
                raise TransientSendError("the test never released the provider")
        return super().send(to, body)


@pytest.fixture
def held(settings, texts) -> Iterator[type[HeldBackend]]:
    settings.SMS_BACKEND = f"{__name__}.HeldBackend"
    HeldBackend.entered.clear()
    HeldBackend.release.set()
    HeldBackend.only_to = None
    yield HeldBackend
    HeldBackend.release.set()
    HeldBackend.only_to = None


@pytest.fixture
def by_text(
    infusion, make_patient, held, time_machine: TimeMachineFixture, sweep: Sweep
) -> Appointment:
    """A session at START for a patient reached by text only, confirmation already sent."""
    time_machine.move_to(NOW, tick=False)
    patient: Patient = make_patient(email="", sms_consent=True)
    appointment = appointment_book(appointment_type=infusion, patient=patient, start=START)
    sweep(NOW)
    return appointment


def someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        (waiting,) = cursor.fetchone()
    return bool(waiting)


def other_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        (sessions,) = cursor.fetchone()
    return int(sessions)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting until {what}"
        time.sleep(0.01)


def after_the_cancel(sweep: Sweep) -> None:
    """Beat keeps running until the visit is long past."""
    moment = PREP_DUE + timedelta(minutes=15)
    while moment <= AFTER_THE_VISIT:
        sweep(moment)
        moment += timedelta(minutes=15)


def test_a_cancel_waits_for_a_text_in_flight_and_only_the_notice_follows_it(
    by_text, held, texts, sweep: Sweep, time_machine: TimeMachineFixture
):
    time_machine.move_to(PREP_DUE, tick=False)
    held.release.clear()
    held.entered.clear()
    texts_at_cancel: list[int] = []

    def sender() -> None:
        message_deliver_due(now=PREP_DUE, enqueue=send_at(PREP_DUE))

    def canceller() -> None:
        assert held.entered.wait(WAIT)  # the prep text is inside the provider call
        appointment_cancel(appointment=by_text, reason="unwell", now=PREP_DUE)
        texts_at_cancel.append(len(texts))

    def releaser() -> None:
        assert held.entered.wait(WAIT)
        wait_until(someone_waits_for_a_lock, "the cancel waits for the send's lock")
        held.release.set()

    in_threads(sender, canceller, releaser)

    (delivered_before_cancel,) = texts_at_cancel
    assert delivered_before_cancel == 2  # the confirmation, and the prep text it waited for
    prep = OutboundMessage.objects.get(appointment=by_text, kind=MessageKind.PREP)
    assert prep.status == MessageStatus.SENT
    after_the_cancel(sweep)
    (notice,) = texts[delivered_before_cancel:]
    assert "is cancelled" in notice.body
    assert set(
        OutboundMessage.objects.filter(appointment=by_text)
        .exclude(kind__in=[MessageKind.CONFIRMATION, MessageKind.PREP, MessageKind.CANCELLED])
        .values_list("status", flat=True)
    ) == {MessageStatus.CANCELLED}


def test_a_text_claimed_before_a_cancel_commits_is_not_sent(
    by_text, held, texts, sweep: Sweep, time_machine: TimeMachineFixture
):
    time_machine.move_to(PREP_DUE, tick=False)
    claimed, go = threading.Event(), threading.Event()
    outcomes: list[tuple[str, str]] = []

    def sender() -> None:
        def enqueue(ids: list[int]) -> None:
            claimed.set()
            assert go.wait(WAIT)
            kinds = dict(OutboundMessage.objects.filter(id__in=ids).values_list("id", "kind"))
            outcomes.extend(zip([kinds[i] for i in ids], send_at(PREP_DUE)(ids), strict=True))

        message_deliver_due(now=PREP_DUE, enqueue=enqueue)

    def canceller() -> None:
        assert claimed.wait(WAIT)
        appointment_cancel(appointment=by_text, reason="unwell", now=PREP_DUE)
        go.set()

    in_threads(sender, canceller)

    # The same sweep goes on to claim the notice the cancel planned, due at once.
    assert outcomes == [(MessageKind.PREP, "not claimed"), (MessageKind.CANCELLED, "sent")]
    after_the_cancel(sweep)
    (_, notice) = texts
    assert "is cancelled" in notice.body
    assert (
        OutboundMessage.objects.get(appointment=by_text, kind=MessageKind.PREP).status
        == MessageStatus.CANCELLED
    )


def test_a_send_stuck_at_the_provider_does_not_hold_up_later_sweeps(
    by_text, held, infusion, make_patient, texts, settings, sweep: Sweep
):
    other = appointment_book(
        appointment_type=infusion,
        patient=make_patient(email="", sms_consent=True),
        start=START + timedelta(minutes=15),
    )
    sweep(NOW)
    # Long enough after the stuck send was claimed that its claim counts as stale.
    later = PREP_DUE + timedelta(minutes=15)
    assert later - PREP_DUE > timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS)
    held.only_to = by_text.patient.phone
    held.release.clear()
    held.entered.clear()
    later_sweep_done = threading.Event()
    stuck = threading.Event()

    def stuck_sender() -> None:
        message_deliver_due(now=PREP_DUE, enqueue=send_at(PREP_DUE))

    def later_sweeper() -> None:
        assert held.entered.wait(WAIT)
        message_deliver_due(now=later, enqueue=send_at(later))
        later_sweep_done.set()

    def watcher() -> None:
        assert held.entered.wait(WAIT)
        wait_until(
            lambda: later_sweep_done.is_set() or someone_waits_for_a_lock(),
            "the later sweep finishes or waits",
        )
        if not later_sweep_done.is_set():
            stuck.set()
        held.release.set()

    in_threads(stuck_sender, later_sweeper, watcher)

    assert not stuck.is_set(), (
        "the later sweep waited on the row lock of the send still in flight "
        "(messages_recover_stale updates locked rows without SKIP LOCKED)"
    )
    prep = OutboundMessage.objects.filter(kind=MessageKind.PREP)
    assert prep.get(appointment=other).status == MessageStatus.SENT
    assert prep.get(appointment=by_text).status == MessageStatus.SENT
    assert_sent_once_each(prep)


# --- A worker killed mid-batch ------------------------------------------------------------------

# A worker process: claims every due text in one batch and sends them through the file backend,
# but stalls inside the provider call after SENT_BEFORE_KILL texts, where the test kills it: before
# the provider has the next text, or after (argv[3] "after": the text is out, unrecorded).
WORKER = """
import sys
import time

import django

django.setup()

from datetime import datetime

from django.conf import settings

from notifications import sms
from notifications.delivery import message_deliver_due, message_send

now = datetime.fromisoformat(sys.argv[1])
sends_before_stall = int(sys.argv[2])
stall_after_the_provider = sys.argv[3] == "after"


class StallingBackend(sms.FileBackend):
    calls = 0

    def send(self, to, body):
        StallingBackend.calls += 1
        if StallingBackend.calls <= sends_before_stall:
            return super().send(to, body)
        if stall_after_the_provider:
            super().send(to, body)
        time.sleep(3600)


settings.SMS_BACKEND = "__main__.StallingBackend"
message_deliver_due(
    now=now, enqueue=lambda ids: [message_send(message_id=i, now=now) for i in ids]
)
"""
PATIENTS = 8
SENT_BEFORE_KILL = 3


def database_url() -> str:
    """The test database, as the worker process's settings read it."""
    db = connection.settings_dict
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.parametrize("stall", ["before", "after"])
def test_a_worker_killed_mid_batch_leaves_the_rest_to_a_later_sweep_and_sends_nothing_twice(
    stall: str,
    infusion,
    make_patient,
    settings,
    sweep: Sweep,
    time_machine: TimeMachineFixture,
    tmp_path: Path,
):
    var = tmp_path / "var"
    settings.SMS_BACKEND = "notifications.sms.FileBackend"
    settings.SMS_FILE_PATH = str(var / "sms")
    time_machine.move_to(NOW, tick=False)
    for n in range(PATIENTS):
        appointment_book(
            appointment_type=infusion,
            patient=make_patient(email="", sms_consent=True),
            start=STARTS[n],
        )
    due = list(OutboundMessage.objects.filter(due_at__lte=NOW).values_list("id", flat=True))
    assert len(due) == PATIENTS  # one confirmation text each
    claimed_at = NOW + timedelta(minutes=1)
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(var),
        "SMS_BACKEND": "notifications.sms.FileBackend",
        "PYTHONPATH": str(settings.BASE_DIR),
    }
    with log.open("wb") as output:
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", WORKER, claimed_at.isoformat(), str(SENT_BEFORE_KILL), stall],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )

    files = var / "sms"
    out = 1 if stall == "after" else 0  # the text the worker was handing over

    def worker_in_the_provider_call() -> bool:
        # Some texts sent, and the next one handed over: the worker is inside the call.
        assert worker.poll() is None, log.read_text()
        sent = OutboundMessage.objects.filter(status=MessageStatus.SENT).count()
        handed = OutboundMessage.objects.filter(handed_at__isnull=False).exists()
        written = len(list(files.iterdir())) if files.is_dir() else 0
        return sent == SENT_BEFORE_KILL and handed and written == SENT_BEFORE_KILL + out

    try:
        wait_until(worker_in_the_provider_call, "the worker has sent some texts and stalls")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(WAIT)

    assert worker.returncode == -signal.SIGKILL
    # PostgreSQL ends the dead worker's session (and its row locks) on its own time.
    wait_until(lambda: not other_sessions(), "the killed worker's session is gone")
    statuses = Counter(OutboundMessage.objects.filter(id__in=due).values_list("status", flat=True))
    assert statuses == {
        MessageStatus.SENT: SENT_BEFORE_KILL,
        MessageStatus.SENDING: PATIENTS - SENT_BEFORE_KILL,
    }
    assert len(list(files.iterdir())) == SENT_BEFORE_KILL + out

    # The dead worker's claims look live for a while: a sweep leaves them alone.
    assert sweep(claimed_at + timedelta(minutes=1)) == 0
    stale = claimed_at + timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS + 1)
    assert sweep(stale) == PATIENTS - SENT_BEFORE_KILL

    # The text the worker was handing to the provider may have gone out: it is recorded as
    # unconfirmed, and not sent again. The rest went out once each.
    (in_doubt,) = OutboundMessage.objects.filter(id__in=due, tries__outcome="unconfirmed")
    assert (in_doubt.status, in_doubt.handed_at, in_doubt.provider_id) == (
        MessageStatus.SENT,
        None,
        "",
    )
    assert in_doubt.detail == UNCONFIRMED_DETAIL
    assert in_doubt.sent_at == claimed_at  # when it was handed over
    assert in_doubt.recipient == in_doubt.appointment.patient.phone
    sent = OutboundMessage.objects.filter(id__in=due).exclude(pk=in_doubt.pk)
    assert_sent_once_each(sent)
    delivered = sorted(files.iterdir())
    assert len(delivered) == PATIENTS - 1 + out
    assert set(sent.values_list("provider_id", flat=True)) <= {path.stem for path in delivered}
    recipients = Counter(path.read_text().splitlines()[0] for path in delivered)
    phones = Counter(f"To: {phone}" for phone in Patient.objects.values_list("phone", flat=True))
    phones[f"To: {in_doubt.recipient}"] = out
    assert recipients == +phones
    # Another stale-claim time on, nothing is taken back and sent.
    assert sweep(stale + timedelta(seconds=settings.OUTBOX_STALE_CLAIM_SECONDS + 1)) == 0
    assert len(list(files.iterdir())) == PATIENTS - 1 + out
    assert in_doubt.tries.count() == 1
    assert set(OutboundMessage.objects.filter(id__in=due).values_list("attempts", flat=True)) == {1}

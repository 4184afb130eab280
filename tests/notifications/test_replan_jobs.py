"""The background re-plan a save of reminder rules starts: batch by batch, each in its own
transaction, counting its progress, and never in the way of a booking."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction

from booking.models import Appointment, Patient
from booking.services import appointment_book
from notifications import rules as rules_module
from notifications.models import (
    MessageKind,
    OutboundMessage,
    ReminderRule,
    ReplanJob,
    ReplanStatus,
)
from notifications.replan import reminder_rules_replan
from notifications.rules import replan_job_run
from notifications.tasks import replan_job_queue
from scheduling.models import AppointmentType

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)  # Monday 07:00 in New York (EST)
# Only guards against a thread that hangs; never reached when the tests pass.
WAIT = 30
# How long the control's batch holds its lock before giving up on the booking.
CONTROL_WAIT = 3


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


def visit_at(days: int, hour: int = 15) -> datetime:
    """``hour`` UTC (10:00 EST at 15) ``days`` after NOW's date."""
    return (NOW + timedelta(days=days)).replace(hour=hour)


def book_many(
    appointment_type: AppointmentType, make_patient: Callable[..., Patient], count: int
) -> list[Appointment]:
    # One visit a day at 10:00 and 13:00: the clinic has two chairs and two prescribers.
    return [
        appointment_book(
            appointment_type=appointment_type,
            patient=make_patient(sms_consent=True),
            start=visit_at(3 + n // 2, 15 if n % 2 == 0 else 18),
            now=NOW,
        )
        for n in range(count)
    ]


def prep_offset(appointment_type: AppointmentType, hours: int) -> None:
    ReminderRule.objects.filter(appointment_type=appointment_type, kind=MessageKind.PREP).update(
        offset_minutes=hours * 60
    )


def prep_dues(appointment: Appointment) -> set[datetime]:
    return set(
        OutboundMessage.objects.filter(appointment=appointment, kind=MessageKind.PREP).values_list(
            "due_at", flat=True
        )
    )


def new_job(appointment_type: AppointmentType, kinds: list[str] | None = None) -> ReplanJob:
    return ReplanJob.objects.create(
        appointment_type=appointment_type, kinds=kinds or [MessageKind.PREP], created_at=NOW
    )


def test_a_job_re_plans_every_future_visit_in_batches_and_counts_them(
    infusion, make_patient, monkeypatch
) -> None:
    visits = book_many(infusion, make_patient, 5)
    prep_offset(infusion, 72)
    job = new_job(infusion)
    progress: list[int] = []
    real = reminder_rules_replan

    def watched(**kwargs: Any) -> int:
        progress.append(ReplanJob.objects.get(pk=job.pk).done)
        return real(**kwargs)

    monkeypatch.setattr(rules_module, "reminder_rules_replan", watched)
    finished = replan_job_run(job_id=job.pk, batch_size=2, now=NOW)

    assert finished is not None
    assert (finished.status, finished.total, finished.done) == (ReplanStatus.DONE, 5, 5)
    assert finished.finished_at is not None
    # Three batches (2 + 2 + 1), each counted as it committed.
    assert progress == [0, 2, 4]
    for visit in visits:
        assert prep_dues(visit) == {visit.start - timedelta(hours=72)}


def test_a_job_leaves_past_visits_and_other_kinds_alone(infusion, make_patient) -> None:
    (visit,) = book_many(infusion, make_patient, 1)
    evening = set(
        OutboundMessage.objects.filter(
            appointment=visit, kind=MessageKind.EVENING_BEFORE
        ).values_list("due_at", flat=True)
    )
    prep_offset(infusion, 72)
    ReminderRule.objects.filter(appointment_type=infusion, kind=MessageKind.EVENING_BEFORE).update(
        days_before=2
    )

    job = replan_job_run(job_id=new_job(infusion).pk, now=NOW)
    assert job is not None
    assert job.total == 1
    later = replan_job_run(job_id=new_job(infusion).pk, now=visit.start + timedelta(hours=1))

    assert later is not None
    assert (later.status, later.total, later.done) == (ReplanStatus.DONE, 0, 0)
    assert prep_dues(visit) == {visit.start - timedelta(hours=72)}
    assert (
        set(
            OutboundMessage.objects.filter(
                appointment=visit, kind=MessageKind.EVENING_BEFORE
            ).values_list("due_at", flat=True)
        )
        == evening
    )


def test_a_finished_job_is_not_run_again(infusion, make_patient) -> None:
    (visit,) = book_many(infusion, make_patient, 1)
    job = new_job(infusion)
    replan_job_run(job_id=job.pk, now=NOW)
    prep_offset(infusion, 72)

    again = replan_job_run(job_id=job.pk, now=NOW)

    assert again is not None
    assert again.status == ReplanStatus.DONE
    assert prep_dues(visit) == {visit.start - timedelta(hours=48)}


def test_a_job_that_fails_says_so_and_keeps_the_batches_it_finished(
    infusion, make_patient, monkeypatch
) -> None:
    visits = book_many(infusion, make_patient, 3)
    prep_offset(infusion, 72)
    job = new_job(infusion)
    real = reminder_rules_replan
    calls = 0

    def second_batch_fails(**kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the database went away")
        return real(**kwargs)

    monkeypatch.setattr(rules_module, "reminder_rules_replan", second_batch_fails)
    failed = replan_job_run(job_id=job.pk, batch_size=2, now=NOW)

    assert failed is not None
    assert (failed.status, failed.total, failed.done) == (ReplanStatus.FAILED, 3, 2)
    assert failed.error == "RuntimeError: the database went away"
    assert [prep_dues(v) == {v.start - timedelta(hours=72)} for v in visits] == [
        True,
        True,
        False,
    ]


def test_without_a_broker_the_job_runs_in_the_request(
    infusion, make_patient, django_capture_on_commit_callbacks, monkeypatch, time_machine
) -> None:
    # The job plans from the clock: pinned, or the reminder's time has passed once the real
    # day reaches the visit's.
    time_machine.move_to(NOW, tick=False)
    (visit,) = book_many(infusion, make_patient, 1)
    prep_offset(infusion, 72)
    job = new_job(infusion)

    def no_broker(*args: object) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr("notifications.tasks.replan_reminders.delay", no_broker)
    with django_capture_on_commit_callbacks(execute=True):
        replan_job_queue(job.pk)

    job.refresh_from_db()
    assert job.status == ReplanStatus.DONE
    assert prep_dues(visit) == {visit.start - timedelta(hours=72)}


# --- Bookings go on while a job runs (PostgreSQL, real threads) -----------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "table_lock",
    [
        pytest.param(False, id="as-built"),
        # The control: a batch that locked the outbox table would hold the booking up.
        pytest.param(True, id="control-with-a-table-lock"),
    ],
)
def test_a_booking_goes_through_while_a_re_plan_batch_is_open(
    infusion, make_patient, time_machine, monkeypatch, table_lock: bool
) -> None:
    time_machine.move_to(NOW, tick=False)
    visits = book_many(infusion, make_patient, 6)
    prep_offset(infusion, 72)
    job = new_job(infusion)
    patient = make_patient(sms_consent=True)
    batch_open = threading.Event()
    booked = threading.Event()
    errors: list[BaseException] = []
    real = reminder_rules_replan
    seen_open: list[bool] = []

    def slow_batch(**kwargs: Any) -> int:
        # The first batch holds its transaction open until the booking finished (or WAIT
        # passed): a re-plan that locked what a booking needs would make the booking wait.
        with transaction.atomic():
            count = real(**kwargs)
            if not batch_open.is_set():
                if table_lock:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "LOCK TABLE notifications_outboundmessage IN SHARE ROW EXCLUSIVE MODE"
                        )
                batch_open.set()
                seen_open.append(booked.wait(CONTROL_WAIT if table_lock else WAIT))
        return count

    def run_job() -> None:
        try:
            replan_job_run(job_id=job.pk, batch_size=2, now=NOW)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    new_visit: list[Appointment] = []

    def book() -> None:
        try:
            assert batch_open.wait(WAIT)
            new_visit.append(
                appointment_book(
                    appointment_type=infusion, patient=patient, start=visit_at(8, 16), now=NOW
                )
            )
            booked.set()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    monkeypatch.setattr(rules_module, "reminder_rules_replan", slow_batch)
    threads = [threading.Thread(target=run_job), threading.Thread(target=book)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)

    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    assert errors == []
    # The booking finished while the first batch's transaction was still open (and, with the
    # control's lock, only after it committed).
    assert seen_open == [not table_lock]
    job.refresh_from_db()
    assert (job.status, job.total, job.done) == (ReplanStatus.DONE, 6, 6)
    (appointment,) = new_visit
    for visit in [*visits, appointment]:
        assert prep_dues(visit) == {visit.start - timedelta(hours=72)}, visit.pk

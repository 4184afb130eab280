"""Reminder rules: the defaults a type starts with, and re-planning after an admin edits them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from booking.models import Appointment, Patient
from booking.services import appointment_book, appointment_cancel, appointment_confirm
from notifications import sms
from notifications.defaults import reminder_rules_install_defaults
from notifications.delivery import message_deliver_due, message_send
from notifications.models import Channel, MessageKind, MessageStatus, OutboundMessage, ReminderRule
from notifications.replan import reminder_rules_replan
from scheduling.models import AppointmentKind, AppointmentType, Location, ResourceKind
from tests.conftest import approve

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)  # 08:00 EDT
CHAIR = ({"resource_kind": ResourceKind.CHAIR},)


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


def day_at(days: int, hour: int) -> datetime:
    """``hour`` o'clock in New York, ``days`` after NOW's local date, in UTC."""
    local = datetime.combine(
        NOW.astimezone(NEW_YORK).date() + timedelta(days=days), time(hour), tzinfo=NEW_YORK
    )
    return local.astimezone(UTC)


@pytest.fixture(autouse=True)
def channels(settings, time_machine) -> Iterator[None]:
    settings.SMS_BACKEND = "notifications.sms.LocmemBackend"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PUBLIC_BASE_URL = "https://clinic.example"
    time_machine.move_to(NOW, tick=False)
    sms.outbox.clear()
    yield
    sms.outbox.clear()


@pytest.fixture
def site(make_location, make_resource) -> Location:
    location = make_location(timezone="America/New_York")
    for n in range(3):
        make_resource(location, ResourceKind.CHAIR, name=f"Chair {n}")
    return location


@pytest.fixture
def session_type(site, make_type) -> AppointmentType:
    return make_type(
        site,
        duration=90,
        needs=CHAIR,
        kind=AppointmentKind.INFUSION,
        fasting_solids_hours=6,
        fasting_clear_liquids_hours=2,
        escort_required=True,
    )


@pytest.fixture
def book(make_patient) -> Callable[..., Appointment]:
    def run(appointment_type: AppointmentType, start: datetime) -> Appointment:
        patient: Patient = make_patient(sms_consent=True)
        return appointment_book(
            appointment_type=appointment_type,
            patient=approve(patient, appointment_type),
            start=start,
            now=NOW,
        )

    return run


def sweep(now: datetime, time_machine) -> None:
    time_machine.move_to(now, tick=False)

    def send(ids: list[int]) -> None:
        for message_id in ids:
            message_send(message_id=message_id, now=now)

    message_deliver_due(now=now, enqueue=send)


def row(appointment: Appointment, kind: str, channel: str = Channel.EMAIL) -> OutboundMessage:
    return OutboundMessage.objects.get(appointment=appointment, kind=kind, channel=channel)


def rule(appointment_type: AppointmentType, kind: str) -> ReminderRule:
    return ReminderRule.objects.get(appointment_type=appointment_type, kind=kind)


def local_clock(moment: datetime) -> tuple[int, int]:
    seen = moment.astimezone(NEW_YORK)
    return seen.hour, seen.minute


# --- Defaults ------------------------------------------------------------------------------


def test_a_new_treatment_type_starts_with_the_default_reminder_rules(session_type) -> None:
    rules = {r.kind: r for r in ReminderRule.objects.filter(appointment_type=session_type)}

    assert set(rules) == {
        MessageKind.PREP,
        MessageKind.EVENING_BEFORE,
        MessageKind.CONFIRM_REQUEST,
        MessageKind.MORNING_OF,
        MessageKind.FOLLOW_UP,
    }
    assert rules[MessageKind.PREP].offset_minutes == 48 * 60
    assert rules[MessageKind.CONFIRM_REQUEST].offset_minutes == 24 * 60
    evening = rules[MessageKind.EVENING_BEFORE]
    assert (evening.local_time, evening.days_before) == (time(19), 1)
    morning = rules[MessageKind.MORNING_OF]
    assert morning.days_before == 0
    assert morning.local_time is not None
    assert morning.local_time < time(12)
    follow_up = rules[MessageKind.FOLLOW_UP]
    assert follow_up.offset_minutes is not None
    assert follow_up.offset_minutes < 0
    assert follow_up.channels == [Channel.EMAIL]
    assert all(r.is_active for r in rules.values())


def test_a_new_consultation_type_gets_no_fasting_or_escort_reminders(site, make_type) -> None:
    consultation = make_type(site, duration=60, needs=CHAIR, kind=AppointmentKind.CONSULTATION)

    kinds = set(
        ReminderRule.objects.filter(appointment_type=consultation).values_list("kind", flat=True)
    )

    assert kinds == {MessageKind.CONFIRM_REQUEST, MessageKind.MORNING_OF}


def test_every_default_type_of_a_new_location_has_reminder_rules(clinic) -> None:
    for appointment_type in AppointmentType.objects.filter(location=clinic):
        assert ReminderRule.objects.filter(appointment_type=appointment_type).exists(), (
            appointment_type.slug
        )


def test_installing_the_defaults_again_keeps_what_an_admin_changed(session_type) -> None:
    ReminderRule.objects.filter(
        appointment_type=session_type, kind=MessageKind.EVENING_BEFORE
    ).update(local_time=time(18), sms=False)

    reminder_rules_install_defaults(appointment_type=session_type)

    evening = rule(session_type, MessageKind.EVENING_BEFORE)
    assert (evening.local_time, evening.sms) == (time(18), False)
    assert ReminderRule.objects.filter(appointment_type=session_type).count() == 5


# --- Re-planning after a rule change -------------------------------------------------------


def test_a_rule_change_replans_every_future_visit_of_that_type(
    site, session_type, make_type, book, time_machine
) -> None:
    other_type = make_type(
        site, duration=90, needs=CHAIR, kind=AppointmentKind.INFUSION, fasting_solids_hours=6
    )
    future = [book(session_type, day_at(days, 10)) for days in (3, 6, 9)]
    elsewhere = book(other_type, day_at(3, 12))
    cancelled = appointment_cancel(appointment=book(session_type, day_at(4, 10)), now=NOW)
    started = book(session_type, day_at(1, 10))
    later = day_at(1, 11)  # the first visit is under way when the admin edits
    time_machine.move_to(later, tick=False)
    started_rows = dict(
        OutboundMessage.objects.filter(appointment=started).values_list("id", "due_at")
    )

    ReminderRule.objects.filter(
        appointment_type=session_type, kind=MessageKind.EVENING_BEFORE
    ).update(local_time=time(18))
    ReminderRule.objects.filter(appointment_type=session_type, kind=MessageKind.PREP).update(
        offset_minutes=72 * 60
    )
    replanned = reminder_rules_replan(appointment_type_id=session_type.pk, now=later)

    assert replanned == len(future)
    for appointment in future:
        for channel in (Channel.EMAIL, Channel.SMS):
            evening = row(appointment, MessageKind.EVENING_BEFORE, channel)
            assert local_clock(evening.due_at) == (18, 0)
            assert evening.status == MessageStatus.PENDING
            prep = row(appointment, MessageKind.PREP, channel)
            assert prep.due_at == max(appointment.start - timedelta(hours=72), later)
    assert local_clock(row(elsewhere, MessageKind.EVENING_BEFORE).due_at) == (19, 0)
    assert (
        not OutboundMessage.objects.filter(appointment=cancelled, status=MessageStatus.PENDING)
        .exclude(kind=MessageKind.CANCELLED)
        .exists()
    )
    assert (
        dict(OutboundMessage.objects.filter(appointment=started).values_list("id", "due_at"))
        == started_rows
    )


def test_a_replan_of_one_kind_moves_that_kinds_messages_and_no_others(session_type, book) -> None:
    appointment = book(session_type, day_at(5, 10))
    ReminderRule.objects.filter(
        appointment_type=session_type, kind=MessageKind.EVENING_BEFORE
    ).update(local_time=time(18))
    ReminderRule.objects.filter(appointment_type=session_type, kind=MessageKind.PREP).update(
        offset_minutes=72 * 60
    )
    prep_due = row(appointment, MessageKind.PREP).due_at

    reminder_rules_replan(
        appointment_type_id=session_type.pk, kinds=[MessageKind.EVENING_BEFORE], now=NOW
    )

    for channel in (Channel.EMAIL, Channel.SMS):
        assert local_clock(row(appointment, MessageKind.EVENING_BEFORE, channel).due_at) == (18, 0)
        assert row(appointment, MessageKind.PREP, channel).due_at == prep_due


def test_editing_a_rule_in_the_admin_replans_that_kind_for_booked_visits(
    session_type, book, admin_client, django_capture_on_commit_callbacks
) -> None:
    appointment = book(session_type, day_at(5, 10))
    rule = ReminderRule.objects.get(appointment_type=session_type, kind=MessageKind.EVENING_BEFORE)
    prep_due = row(appointment, MessageKind.PREP).due_at
    form = {
        "appointment_type": session_type.pk,
        "kind": rule.kind,
        "email": "on",
        "sms": "on",
        "offset_minutes": "",
        "local_time": "18:00",
        "days_before": rule.days_before,
        "late_cutoff_minutes": rule.late_cutoff_minutes,
        "is_active": "on",
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/notifications/reminderrule/{rule.pk}/change/", form)

    assert response.status_code == 302, response.content
    for channel in (Channel.EMAIL, Channel.SMS):
        assert local_clock(row(appointment, MessageKind.EVENING_BEFORE, channel).due_at) == (18, 0)
        assert row(appointment, MessageKind.PREP, channel).due_at == prep_due


def test_a_replan_of_a_removed_rules_kind_cancels_its_unsent_messages(session_type, book) -> None:
    appointment = book(session_type, day_at(5, 10))
    ReminderRule.objects.filter(appointment_type=session_type, kind=MessageKind.MORNING_OF).delete()

    reminder_rules_replan(
        appointment_type_id=session_type.pk, kinds=[MessageKind.MORNING_OF], now=NOW
    )

    for channel in (Channel.EMAIL, Channel.SMS):
        morning = row(appointment, MessageKind.MORNING_OF, channel)
        assert (morning.status, morning.detail) == (
            MessageStatus.CANCELLED,
            "its rule was removed",
        )
        assert row(appointment, MessageKind.PREP, channel).status == MessageStatus.PENDING


def test_a_rule_change_leaves_messages_already_sent_alone(session_type, book, time_machine) -> None:
    appointment = book(session_type, day_at(4, 10))
    prep_due = row(appointment, MessageKind.PREP).due_at
    sweep(prep_due, time_machine)
    sent = {
        m.channel: (m.sent_at, m.attempts, m.provider_id)
        for m in OutboundMessage.objects.filter(appointment=appointment, kind=MessageKind.PREP)
    }
    assert set(sent) == {Channel.EMAIL, Channel.SMS}

    ReminderRule.objects.filter(appointment_type=session_type, kind=MessageKind.PREP).update(
        offset_minutes=36 * 60
    )
    reminder_rules_replan(appointment_type_id=session_type.pk, now=prep_due)
    sweep(appointment.start - timedelta(hours=36), time_machine)

    for message in OutboundMessage.objects.filter(appointment=appointment, kind=MessageKind.PREP):
        assert message.status == MessageStatus.SENT
        assert (message.sent_at, message.attempts, message.provider_id) == sent[message.channel]
        assert list(message.tries.values_list("outcome", flat=True)) == ["sent"]


def test_a_rule_switched_off_cancels_its_unsent_messages(session_type, book) -> None:
    appointment = book(session_type, day_at(5, 10))
    ReminderRule.objects.filter(appointment_type=session_type, kind=MessageKind.MORNING_OF).update(
        is_active=False
    )

    reminder_rules_replan(appointment_type_id=session_type.pk, now=NOW)

    for channel in (Channel.EMAIL, Channel.SMS):
        morning = row(appointment, MessageKind.MORNING_OF, channel)
        assert morning.status == MessageStatus.CANCELLED
        assert "rule" in morning.detail
        assert row(appointment, MessageKind.PREP, channel).status == MessageStatus.PENDING


def test_a_channel_switched_off_on_a_rule_stops_its_unsent_messages(session_type, book) -> None:
    appointment = book(session_type, day_at(5, 10))
    ReminderRule.objects.filter(
        appointment_type=session_type, kind=MessageKind.EVENING_BEFORE
    ).update(sms=False)

    reminder_rules_replan(appointment_type_id=session_type.pk, now=NOW)

    assert row(appointment, MessageKind.EVENING_BEFORE, Channel.EMAIL).status == (
        MessageStatus.PENDING
    )
    text = row(appointment, MessageKind.EVENING_BEFORE, Channel.SMS)
    assert text.status == MessageStatus.CANCELLED


def test_a_rule_change_does_not_ask_a_patient_who_confirmed_to_confirm_again(
    session_type, book
) -> None:
    appointment = book(session_type, day_at(5, 10))
    appointment_confirm(appointment=appointment, now=NOW)
    assert row(appointment, MessageKind.CONFIRM_REQUEST).status == MessageStatus.CANCELLED

    ReminderRule.objects.filter(
        appointment_type=session_type, kind=MessageKind.EVENING_BEFORE
    ).update(local_time=time(18))
    reminder_rules_replan(appointment_type_id=session_type.pk, now=NOW)

    for channel in (Channel.EMAIL, Channel.SMS):
        request = row(appointment, MessageKind.CONFIRM_REQUEST, channel)
        assert request.status == MessageStatus.CANCELLED, channel


def test_a_rule_change_replans_in_bulk_not_visit_by_visit(session_type, book) -> None:
    def queries_to_replan() -> int:
        with CaptureQueriesContext(connection) as queries:
            reminder_rules_replan(appointment_type_id=session_type.pk, now=NOW)
        return len(queries)

    book(session_type, day_at(3, 10))
    book(session_type, day_at(3, 12))
    few = queries_to_replan()
    for days in (4, 5, 6, 7):
        book(session_type, day_at(days, 10))
        book(session_type, day_at(days, 12))

    # Five times the visits, not five times the statements: at most one more INSERT, where
    # SQLite's limit on parameters per statement splits the bulk upsert.
    assert queries_to_replan() <= few + 1

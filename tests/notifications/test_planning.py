"""When reminders are due: wall-clock rules across DST, fasting, quiet hours and late sweeps.

The pure functions of ``notifications.planning`` first, then the same rules through a real
booking (``appointment_book`` plans the outbox inside its transaction) and real sweeps
(``message_deliver_due`` with each batch sent at once, in the test's thread).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from booking.models import Appointment, Patient
from booking.preparation import appointment_preparation
from booking.services import appointment_book
from notifications import sms
from notifications.delivery import message_deliver_due, message_send
from notifications.models import (
    Channel,
    DeliveryAttempt,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    ReminderRule,
)
from notifications.planning import (
    FASTING_NOTICE,
    QUIET_MARGIN,
    Timing,
    before_quiet_hours,
    reminder_due,
)
from scheduling.clock import in_quiet_hours, quiet_hours_end, wall_clock
from scheduling.models import AppointmentKind, AppointmentType, ResourceKind
from tests.conftest import approve

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
EVENING = Timing(offset_minutes=None, local_time=time(19), days_before=1, follows_fasting=True)
PREP = Timing(offset_minutes=48 * 60, local_time=None, days_before=0)
NIGHT = (time(21), time(8))


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def local(zone: ZoneInfo, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


# --- The pure rules ---------------------------------------------------------------------------

# (zone, visit in local time, the evening-before reminder in UTC)
EVENINGS_AROUND_DST = [
    pytest.param(NEW_YORK, "2026-11-02T10:00", "2026-11-02T00:00Z", id="ny-day-after-fall-back"),
    pytest.param(NEW_YORK, "2026-11-01T10:00", "2026-10-31T23:00Z", id="ny-fall-back-day"),
    pytest.param(NEW_YORK, "2026-03-08T10:00", "2026-03-08T00:00Z", id="ny-spring-forward-day"),
    pytest.param(NEW_YORK, "2026-03-09T10:00", "2026-03-08T23:00Z", id="ny-day-after-spring"),
    pytest.param(BERLIN, "2026-03-29T10:00", "2026-03-28T18:00Z", id="berlin-spring-day"),
    pytest.param(BERLIN, "2026-03-30T10:00", "2026-03-29T17:00Z", id="berlin-day-after"),
]


def assert_seven_pm_the_day_before(due: datetime, start: datetime, zone: ZoneInfo) -> None:
    seen = due.astimezone(zone)
    assert (seen.hour, seen.minute) == (19, 0)
    assert seen.date() == start.astimezone(zone).date() - timedelta(days=1)


@pytest.mark.parametrize(("zone", "visit", "expected"), EVENINGS_AROUND_DST)
def test_the_evening_before_is_seven_pm_on_the_local_day_before_whatever_the_clocks_do(
    zone: ZoneInfo, visit: str, expected: str
) -> None:
    start = local(zone, visit)

    due = reminder_due(start=start, zone=zone, timing=EVENING, fasting_solids_hours=6)

    assert due == utc(expected)
    assert_seven_pm_the_day_before(due, start, zone)


def test_the_evening_before_moves_earlier_when_the_fast_starts_earlier() -> None:
    # Solids stop 12 h before: 20:00 the day before.
    start = local(NEW_YORK, "2026-10-20T08:00").astimezone(UTC)

    due = reminder_due(start=start, zone=NEW_YORK, timing=EVENING, fasting_solids_hours=12)

    assert due == start - timedelta(hours=12) - FASTING_NOTICE
    assert due.astimezone(NEW_YORK) == local(NEW_YORK, "2026-10-19T18:00")


def test_an_earlier_fast_counts_elapsed_hours_across_the_fall_back_night() -> None:
    # 14 elapsed hours before 08:00 EST is 19:00 EDT; counting on the wall clock would say
    # 18:00 and warn the patient an hour too early.
    start = utc("2026-11-01T13:00Z")  # 08:00 EST

    due = reminder_due(start=start, zone=NEW_YORK, timing=EVENING, fasting_solids_hours=14)

    assert due == utc("2026-10-31T21:00Z")
    assert due.astimezone(NEW_YORK).tzname() == "EDT"


def test_the_evening_before_stays_at_seven_when_the_fast_starts_later() -> None:
    start = local(NEW_YORK, "2026-10-20T10:00")  # solids stop at 04:00: notice at 02:00

    due = reminder_due(start=start, zone=NEW_YORK, timing=EVENING, fasting_solids_hours=6)

    assert due.astimezone(NEW_YORK) == local(NEW_YORK, "2026-10-19T19:00")


def test_an_offset_is_elapsed_time_across_a_clock_change() -> None:
    start = utc("2026-11-02T15:00Z")  # 10:00 EST

    due = reminder_due(start=start, zone=NEW_YORK, timing=PREP, fasting_solids_hours=None)

    assert due == utc("2026-10-31T15:00Z")
    assert due.astimezone(NEW_YORK) == local(NEW_YORK, "2026-10-31T11:00")  # EDT then


def test_a_start_given_in_the_clinics_own_zone_is_planned_in_elapsed_time_too() -> None:
    # Python subtracts a timedelta from a zoneinfo-aware datetime on the wall clock; the
    # reminder must not be an hour off because the caller passed local time.
    start = local(NEW_YORK, "2026-11-02T10:00")

    due = reminder_due(start=start, zone=NEW_YORK, timing=PREP, fasting_solids_hours=None)

    assert due == utc("2026-10-31T15:00Z")


def test_a_wall_clock_time_skipped_by_spring_forward_reads_as_the_hour_after_the_gap() -> None:
    assert wall_clock(NEW_YORK, date(2026, 3, 8), time(2, 30)) == utc("2026-03-08T07:30Z")


def test_a_wall_clock_time_repeated_by_fall_back_is_its_first_occurrence() -> None:
    moment = wall_clock(NEW_YORK, date(2026, 11, 1), time(1, 30))

    assert moment == utc("2026-11-01T05:30Z")
    assert moment.astimezone(NEW_YORK).tzname() == "EDT"


@pytest.mark.parametrize(
    ("clock", "quiet"),
    [
        ("2026-10-19T20:59", False),
        ("2026-10-19T21:00", True),
        ("2026-10-20T02:00", True),
        ("2026-10-20T07:59", True),
        ("2026-10-20T08:00", False),
        ("2026-10-20T12:00", False),
    ],
)
def test_quiet_hours_across_midnight(clock: str, quiet: bool) -> None:
    assert in_quiet_hours(local(NEW_YORK, clock), NEW_YORK, *NIGHT) is quiet


@pytest.mark.parametrize(
    ("clock", "quiet"),
    [
        ("2026-10-20T11:59", False),
        ("2026-10-20T12:00", True),
        ("2026-10-20T13:59", True),
        ("2026-10-20T14:00", False),
        ("2026-10-20T23:00", False),
    ],
)
def test_quiet_hours_within_one_day(clock: str, quiet: bool) -> None:
    assert in_quiet_hours(local(NEW_YORK, clock), NEW_YORK, time(12), time(14)) is quiet


def test_equal_start_and_end_mean_no_quiet_hours() -> None:
    moment = local(NEW_YORK, "2026-10-20T03:00")

    assert not in_quiet_hours(moment, NEW_YORK, time(8), time(8))
    assert before_quiet_hours(moment, NEW_YORK, time(8), time(8)) == moment


@pytest.mark.parametrize(
    ("due", "moved"),
    [
        pytest.param("2026-10-20T06:00", "2026-10-19T20:45", id="early-morning-to-evening-before"),
        pytest.param("2026-10-19T22:30", "2026-10-19T20:45", id="late-evening-to-same-evening"),
        pytest.param("2026-10-20T12:00", "2026-10-20T12:00", id="daytime-unchanged"),
    ],
)
def test_a_text_due_in_quiet_hours_moves_to_just_before_they_begin(due: str, moved: str) -> None:
    result = before_quiet_hours(local(NEW_YORK, due), NEW_YORK, *NIGHT)

    assert result == local(NEW_YORK, moved)
    assert not in_quiet_hours(result, NEW_YORK, *NIGHT)


def test_the_margin_before_quiet_hours_is_the_documented_one() -> None:
    result = before_quiet_hours(local(NEW_YORK, "2026-10-20T06:00"), NEW_YORK, *NIGHT)

    assert result == local(NEW_YORK, "2026-10-19T21:00") - QUIET_MARGIN


def test_a_same_day_quiet_window_moves_a_text_to_just_before_it() -> None:
    result = before_quiet_hours(local(NEW_YORK, "2026-10-20T13:00"), NEW_YORK, time(12), time(14))

    assert result == local(NEW_YORK, "2026-10-20T11:45")


def test_a_text_moved_out_of_quiet_hours_keeps_wall_clock_across_spring_forward() -> None:
    # 06:00 EDT on the morning clocks sprang forward: the evening before was still EST.
    result = before_quiet_hours(local(NEW_YORK, "2026-03-08T06:00"), NEW_YORK, *NIGHT)

    assert result == utc("2026-03-08T01:45Z")
    assert result.astimezone(NEW_YORK).tzname() == "EST"


@pytest.mark.parametrize(
    ("moment", "end"),
    [
        pytest.param(local(NEW_YORK, "2026-10-19T23:00"), "2026-10-20T12:00Z", id="before-mid"),
        pytest.param(local(NEW_YORK, "2026-10-20T03:00"), "2026-10-20T12:00Z", id="after-mid"),
        pytest.param(local(NEW_YORK, "2026-10-20T15:00"), "2026-10-20T19:00Z", id="not-quiet"),
        # 08:00 EDT on the spring-forward morning, though the night began in EST.
        pytest.param(utc("2026-03-08T06:00Z"), "2026-03-08T12:00Z", id="spring-forward"),
        # 08:00 EST after falling back, though the night began in EDT.
        pytest.param(local(NEW_YORK, "2026-10-31T23:00"), "2026-11-01T13:00Z", id="fall-back"),
    ],
)
def test_quiet_hours_end_at_the_next_local_morning(moment: datetime, end: str) -> None:
    assert quiet_hours_end(moment, NEW_YORK, *NIGHT) == utc(end)


def test_a_same_day_quiet_window_ends_the_same_day() -> None:
    moment = local(NEW_YORK, "2026-10-20T13:00")

    assert quiet_hours_end(moment, NEW_YORK, time(12), time(14)) == local(
        NEW_YORK, "2026-10-20T14:00"
    )


# --- Through a booking, and the sweeps that deliver ------------------------------------------


@pytest.fixture(autouse=True)
def channels(settings) -> Iterator[None]:
    settings.SMS_BACKEND = "notifications.sms.LocmemBackend"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PUBLIC_BASE_URL = "https://clinic.example"
    sms.outbox.clear()
    yield
    sms.outbox.clear()


VisitType = Callable[..., AppointmentType]


@pytest.fixture
def visit_type(make_location, make_resource, make_type) -> VisitType:
    """A chair-only treatment type at a clinic in ``zone``, fasting 6 h / clear liquids 2 h unless
    told, with an escort; open 06:00-18:00 so early visits on DST mornings can be booked."""

    def make(zone: str = "America/New_York", **fields: object) -> AppointmentType:
        location = make_location(timezone=zone, phone="+12125550100")
        make_resource(location, ResourceKind.CHAIR, hours=((time(6), time(18)),))
        values: dict[str, object] = {
            "kind": AppointmentKind.INFUSION,
            "fasting_solids_hours": 6,
            "fasting_clear_liquids_hours": 2,
            "escort_required": True,
            "no_driving_hours": 24,
        }
        values.update(fields)
        return make_type(
            location, duration=90, needs=({"resource_kind": ResourceKind.CHAIR},), **values
        )

    return make


@pytest.fixture
def texting_patient(make_patient) -> Patient:
    return make_patient(first_name="Robin", sms_consent=True)


@pytest.fixture
def book(time_machine) -> Callable[..., Appointment]:
    """Book at ``now``, with the clock pinned there: the outbox is planned from the clock."""

    def run(
        appointment_type: AppointmentType, patient: Patient, start: datetime, now: datetime
    ) -> Appointment:
        time_machine.move_to(now, tick=False)
        # In UTC, as the API hands it over; a zone-aware local start has its own test.
        return appointment_book(
            appointment_type=appointment_type,
            patient=approve(patient, appointment_type),
            start=start.astimezone(UTC),
            now=now,
        )

    return run


@pytest.fixture
def sweep(time_machine) -> Callable[[datetime], int]:
    """One beat at ``now``: claim what is due and send each batch at once."""

    def run(now: datetime) -> int:
        time_machine.move_to(now, tick=False)

        def send(ids: list[int]) -> None:
            for message_id in ids:
                message_send(message_id=message_id, now=now)

        return message_deliver_due(now=now, enqueue=send)

    return run


def readable(body: str) -> str:
    """What the patient reads: markup gone, lines joined."""
    return " ".join(re.sub(r"<[^>]+>", "", body).split())


def row(appointment: Appointment, kind: str, channel: str) -> OutboundMessage:
    return OutboundMessage.objects.get(appointment=appointment, kind=kind, channel=channel)


def outcomes(message: OutboundMessage) -> list[str]:
    return list(DeliveryAttempt.objects.filter(message=message).values_list("outcome", flat=True))


@pytest.mark.parametrize(("zone", "visit", "expected"), EVENINGS_AROUND_DST)
def test_a_booking_plans_the_evening_before_at_seven_pm_local_around_dst(
    visit_type, texting_patient, book, zone: ZoneInfo, visit: str, expected: str
) -> None:
    start = local(zone, visit)
    appointment = book(visit_type(zone.key), texting_patient, start, start - timedelta(days=4))

    for channel in (Channel.EMAIL, Channel.SMS):
        due = row(appointment, MessageKind.EVENING_BEFORE, channel).due_at
        assert due == utc(expected), channel
        assert_seven_pm_the_day_before(due, start, zone)


def test_a_booking_plans_the_evening_before_earlier_when_the_fast_starts_earlier(
    visit_type, texting_patient, book
) -> None:
    start = local(NEW_YORK, "2026-11-01T08:00")
    appointment = book(
        visit_type(fasting_solids_hours=14), texting_patient, start, start - timedelta(days=4)
    )

    for channel in (Channel.EMAIL, Channel.SMS):
        due = row(appointment, MessageKind.EVENING_BEFORE, channel).due_at
        assert due == start.astimezone(UTC) - timedelta(hours=14) - FASTING_NOTICE, channel
        assert due.astimezone(NEW_YORK) < local(NEW_YORK, "2026-10-31T19:00")


def test_a_visit_booked_with_a_local_zone_aware_start_gets_reminders_in_elapsed_hours(
    visit_type, texting_patient, time_machine
) -> None:
    # The demo seeder and Python callers pass datetime.combine(day, t, tzinfo=zone); the
    # 48-hour notice before a Monday after the clocks fell back is 11:00 EDT on Saturday.
    start = local(NEW_YORK, "2026-11-02T10:00")
    now = utc("2026-10-25T12:00Z")
    time_machine.move_to(now, tick=False)

    appointment_type = visit_type()
    appointment = appointment_book(
        appointment_type=appointment_type,
        patient=approve(texting_patient, appointment_type),
        start=start,
        now=now,
    )

    assert row(appointment, MessageKind.PREP, Channel.EMAIL).due_at == utc("2026-10-31T15:00Z")


# (visit, solids until, clear liquids until, as the patient reads them)
FASTS_ACROSS_DST = [
    pytest.param(
        local(NEW_YORK, "2026-03-08T08:30"),
        "Sunday 8 March 2026 at 1:30 AM EST",
        "6:30 AM EDT",
        id="spring-forward",
    ),
    pytest.param(
        # 07:30 EST: six hours earlier is the *second* 01:30 of the night.
        local(NEW_YORK, "2026-11-01T07:30"),
        "Sunday 1 November 2026 at 1:30 AM EST",
        "5:30 AM EST",
        id="fall-back",
    ),
]


@pytest.mark.parametrize(("start", "solids", "liquids"), FASTS_ACROSS_DST)
def test_fasting_cutoffs_are_elapsed_hours_before_the_start_across_dst(
    visit_type, texting_patient, book, start: datetime, solids: str, liquids: str
) -> None:
    appointment = book(visit_type(), texting_patient, start, start - timedelta(days=4))

    prep = appointment_preparation(appointment)

    assert prep.solids_until is not None
    assert prep.clear_liquids_until is not None
    # Compared in UTC: Python never calls a time in the repeated hour equal to another zone's.
    assert prep.solids_until.astimezone(UTC) == start.astimezone(UTC) - timedelta(hours=6)
    assert prep.clear_liquids_until.astimezone(UTC) == start.astimezone(UTC) - timedelta(hours=2)
    # The instants are right; the abbreviation tells the patient which 01:30 is meant.
    assert prep.solids_until.tzname() == solids.rsplit(" ", 1)[1]
    assert prep.clear_liquids_until.tzname() == liquids.rsplit(" ", 1)[1]


@pytest.mark.parametrize(("start", "solids", "liquids"), FASTS_ACROSS_DST)
def test_the_evening_before_e_mail_shows_the_cutoffs_with_the_right_zone_abbreviation(
    visit_type, texting_patient, book, sweep, start: datetime, solids: str, liquids: str
) -> None:
    appointment = book(visit_type(), texting_patient, start, start - timedelta(days=4))
    due = row(appointment, MessageKind.EVENING_BEFORE, Channel.EMAIL).due_at

    sweep(due)

    (email,) = [m for m in mail.outbox if m.subject.startswith("Reminder")]
    assert isinstance(email, EmailMultiAlternatives)
    (html, _), *_ = email.alternatives
    for body in (str(email.body), str(html)):
        assert f"Nothing to eat after {solids}" in readable(body)
        assert f"until {liquids}" in readable(body)


@pytest.mark.parametrize(
    ("visit", "email_due", "sms_due"),
    [
        pytest.param("2026-10-20T10:00", "2026-10-20T10:00Z", "2026-10-20T00:45Z", id="plain"),
        # The morning clocks spring forward: 06:00 EDT, and the evening before was EST.
        pytest.param(
            "2026-03-08T10:00", "2026-03-08T10:00Z", "2026-03-08T01:45Z", id="spring-forward"
        ),
    ],
)
def test_a_text_due_at_six_moves_to_the_evening_before_while_the_e_mail_keeps_six(
    visit_type, texting_patient, book, visit: str, email_due: str, sms_due: str
) -> None:
    appointment_type = visit_type()
    ReminderRule.objects.filter(
        appointment_type=appointment_type, kind=MessageKind.MORNING_OF
    ).update(local_time=time(6), days_before=0)
    start = local(NEW_YORK, visit)

    appointment = book(appointment_type, texting_patient, start, start - timedelta(days=4))

    email = row(appointment, MessageKind.MORNING_OF, Channel.EMAIL)
    text = row(appointment, MessageKind.MORNING_OF, Channel.SMS)
    assert email.due_at == utc(email_due)
    assert email.due_at.astimezone(NEW_YORK).time() == time(6)
    assert text.due_at == utc(sms_due)
    assert text.due_at.astimezone(NEW_YORK).time() == time(20, 45)
    assert text.due_at.astimezone(NEW_YORK).date() == start.date() - timedelta(days=1)
    assert text.status == MessageStatus.PENDING


def test_a_reminder_whose_time_passed_before_booking_is_skipped_and_recorded(
    visit_type, texting_patient, book, sweep
) -> None:
    start = local(NEW_YORK, "2026-10-20T10:00")
    now = start - timedelta(hours=20)  # the 48 h and 24 h reminders' times are gone

    appointment = book(visit_type(), texting_patient, start, now)
    sweep(now)
    sweep(now + timedelta(hours=1))

    for channel in (Channel.EMAIL, Channel.SMS):
        for kind in (MessageKind.PREP, MessageKind.CONFIRM_REQUEST):
            late = row(appointment, kind, channel)
            assert late.status == MessageStatus.SKIPPED, (kind, channel)
            assert late.detail == "its time had passed when the visit was booked"
            assert late.sent_at is None
        evening = row(appointment, MessageKind.EVENING_BEFORE, channel)
        assert evening.status == MessageStatus.PENDING
    assert not any(m.subject.startswith(("Getting ready", "Please confirm")) for m in mail.outbox)


def test_preparation_whose_time_passed_shortly_before_booking_goes_at_once(
    visit_type, texting_patient, book, sweep
) -> None:
    start = local(NEW_YORK, "2026-10-20T10:00")
    now = start - timedelta(hours=40)  # 8 h after the 48 h notice was due, within its cutoff

    appointment = book(visit_type(), texting_patient, start, now)
    sweep(now)

    for channel in (Channel.EMAIL, Channel.SMS):
        prep = row(appointment, MessageKind.PREP, channel)
        assert prep.status == MessageStatus.SENT, channel
        assert prep.sent_at == now
    assert [m.subject for m in mail.outbox if m.subject.startswith("Getting ready")]


def test_a_text_found_due_in_quiet_hours_waits_for_them_to_end(
    visit_type, texting_patient, book, sweep
) -> None:
    start = local(NEW_YORK, "2026-10-20T10:00")
    appointment = book(visit_type(), texting_patient, start, start - timedelta(days=4))
    late_beat = local(NEW_YORK, "2026-10-19T21:30")  # a sweep 2.5 h late, inside quiet hours

    sweep(late_beat)

    text = row(appointment, MessageKind.EVENING_BEFORE, Channel.SMS)
    wake = local(NEW_YORK, "2026-10-20T08:00")
    assert text.status == MessageStatus.PENDING
    assert text.due_at == wake
    assert outcomes(text) == ["postponed"]
    assert row(appointment, MessageKind.EVENING_BEFORE, Channel.EMAIL).status == MessageStatus.SENT
    assert sms.outbox == []

    sweep(wake)

    text.refresh_from_db()
    assert text.status == MessageStatus.SENT
    assert text.sent_at == wake
    assert outcomes(text) == ["postponed", "sent"]
    assert (
        len(sms.outbox)
        == OutboundMessage.objects.filter(channel=Channel.SMS, status=MessageStatus.SENT).count()
    )


def test_a_text_found_in_quiet_hours_is_skipped_when_they_last_until_the_visit(
    visit_type, texting_patient, book, sweep
) -> None:
    start = local(NEW_YORK, "2026-10-20T08:00")  # quiet hours end as the visit starts
    appointment = book(visit_type(), texting_patient, start, start - timedelta(days=4))

    sweep(local(NEW_YORK, "2026-10-19T21:30"))

    text = row(appointment, MessageKind.EVENING_BEFORE, Channel.SMS)
    assert text.status == MessageStatus.SKIPPED
    assert "quiet hours" in text.detail
    assert outcomes(text) == ["skipped"]
    assert sms.outbox == []


@pytest.mark.parametrize(
    ("lateness", "status"),
    [
        (timedelta(hours=3), MessageStatus.SENT),
        (timedelta(hours=3, minutes=1), MessageStatus.SKIPPED),
    ],
)
def test_a_reminder_past_its_late_cutoff_is_skipped_and_recorded(
    visit_type, texting_patient, book, sweep, lateness: timedelta, status: str
) -> None:
    start = local(NEW_YORK, "2026-10-20T10:00")
    appointment = book(visit_type(), texting_patient, start, start - timedelta(days=4))
    email = row(appointment, MessageKind.EVENING_BEFORE, Channel.EMAIL)
    assert email.late_cutoff_minutes == 3 * 60

    sweep(email.due_at + lateness)

    email.refresh_from_db()
    assert email.status == status
    reminders = [m for m in mail.outbox if m.subject.startswith("Reminder")]
    if status == MessageStatus.SKIPPED:
        assert email.detail == "too late to be useful"
        assert outcomes(email) == ["skipped"]
        assert reminders == []
    else:
        assert outcomes(email) == ["sent"]
        assert len(reminders) == 1


def test_a_morning_text_for_a_visit_booked_after_quiet_hours_began_is_not_dropped(
    visit_type, texting_patient, book, sweep
) -> None:
    # Booked at 22:00 for 10:00: the morning-of e-mail still goes at 07:30. Its text was moved
    # to 20:45 for quiet hours, already past at booking; the text is not late (07:30 is still
    # to come) and must not be dropped for quiet hours: they end at 08:00, before the visit.
    start = local(NEW_YORK, "2026-10-20T10:00")
    booked = local(NEW_YORK, "2026-10-19T22:00")
    appointment = book(visit_type(), texting_patient, start, booked)

    sweep(booked)
    sweep(local(NEW_YORK, "2026-10-20T08:00"))

    assert row(appointment, MessageKind.MORNING_OF, Channel.EMAIL).status == MessageStatus.SENT
    text = row(appointment, MessageKind.MORNING_OF, Channel.SMS)
    assert text.status == MessageStatus.SENT, text.detail
    assert text.sent_at is not None
    assert text.sent_at < start

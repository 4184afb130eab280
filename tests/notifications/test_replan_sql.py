"""The set-based re-plan on PostgreSQL leaves exactly the rows the Python planner leaves.

Visits are booked through the booking services in zones whose clocks change by an hour, by half
an hour, or at midnight, on and around their change days; patients with and without e-mail or
consent to texts; visits confirmed, moved, cancelled, some messages already sent or being sent.
Then the rules, the quiet hours, the fasting time and the clock are drawn at random, and both
paths re-plan the same state: every outbox row must come out the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from time_machine import TimeMachineFixture

from booking.models import Appointment, Patient
from booking.services import (
    appointment_book,
    appointment_cancel,
    appointment_confirm,
    appointment_reschedule,
)
from notifications.models import (
    CHANGE_KINDS,
    Channel,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    ReminderRule,
)
from notifications.replan import reminder_rules_replan, replan_python, replan_sql
from scheduling.models import AppointmentKind, AppointmentType, Location, ResourceKind
from tests.conftest import approve

pytestmark = pytest.mark.postgres

BOOK_NOW = datetime(2026, 2, 25, 12, tzinfo=UTC)
CHAIR = ({"resource_kind": ResourceKind.CHAIR},)
# Each zone with the days its clocks change in 2026 (and none for a zone without DST).
CHANGE_DAYS = {
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],
    "Europe/Berlin": [date(2026, 3, 29), date(2026, 10, 25)],
    "Australia/Lord_Howe": [date(2026, 4, 5), date(2026, 10, 4)],  # by half an hour
    "America/Santiago": [date(2026, 4, 4), date(2026, 9, 6)],  # at local midnight
    "Asia/Kolkata": [date(2026, 6, 15)],
}
VISIT_TIMES = [time(5, 0), time(8, 0), time(10, 30), time(13, 45), time(18, 0), time(21, 15)]
# Wall-clock times that fall into a spring-forward gap or a fall-back repeat in some zone.
LOCAL_TIMES = [
    time(0, 0),
    time(0, 30),
    time(1, 30),
    time(2, 0),
    time(2, 15),
    time(2, 30),
    time(3, 0),
    time(7, 30),
    time(19, 0),
    time(23, 45),
]
OFFSETS = [-24 * 60, 0, 30, 90, 10 * 60, 24 * 60, 48 * 60, 72 * 60]
QUIET_HOURS = [
    (time(21), time(8)),
    (time(22), time(7)),
    (time(23, 30), time(0, 30)),
    (time(1, 30), time(5)),
    (time(12), time(14)),
    (time(2, 30), time(2, 30)),  # none
]
CLOCKS = [
    BOOK_NOW,
    datetime(2026, 3, 7, 23, 30, tzinfo=UTC),
    datetime(2026, 3, 28, 17, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 13, 0, tzinfo=UTC),
    datetime(2026, 10, 24, 20, 0, tzinfo=UTC),
    datetime(2026, 10, 31, 22, 0, tzinfo=UTC),
]

Rows = dict[tuple[int, str, str], list[Any]]


def outbox() -> Rows:
    """Every outbox row, keyed by (visit, kind, channel)."""
    return {
        (appointment_id, kind, channel): rest
        for appointment_id, kind, channel, *rest in OutboundMessage.objects.values_list(
            "appointment_id",
            "kind",
            "channel",
            "status",
            "due_at",
            "appointment_version",
            "late_cutoff_minutes",
            "detail",
            "attempts",
            "claimed_at",
            "sent_at",
            "provider_id",
        )
    }


@contextmanager
def undone() -> Iterator[None]:
    """Whatever the block writes is rolled back when it ends."""
    savepoint = transaction.savepoint()
    try:
        yield
    finally:
        transaction.savepoint_rollback(savepoint)


def both_paths(
    type_ids: list[int], now: datetime, kinds: list[str] | None = None
) -> tuple[Rows, Rows, list[int], list[int]]:
    """The outbox after each path re-plans ``type_ids`` (``kinds`` of them) at ``now`` from the
    same state."""
    with undone():
        python_counts = [
            replan_python(appointment_type_id=t, now=now, kinds=kinds) for t in type_ids
        ]
        python_rows = outbox()
    with undone():
        sql_counts = [replan_sql(appointment_type_id=t, now=now, kinds=kinds) for t in type_ids]
        sql_rows = outbox()
    return python_rows, sql_rows, python_counts, sql_counts


def assert_same(python_rows: Rows, sql_rows: Rows, now: datetime = BOOK_NOW) -> None:
    assert sql_rows.keys() == python_rows.keys()
    different = {
        key: (python_rows[key], sql_rows[key])
        for key in python_rows
        if python_rows[key] != sql_rows[key]
    }
    assert not different, describe(different, now)


def describe(different: dict[tuple[int, str, str], Any], now: datetime) -> str:
    """The visits and rules behind differing rows, to reproduce a failure by hand."""
    lines = []
    for (appointment_id, kind, channel), (python_row, sql_row) in different.items():
        visit = Appointment.objects.select_related("location", "appointment_type").get(
            pk=appointment_id
        )
        rule = ReminderRule.objects.filter(
            appointment_type=visit.appointment_type, kind=kind
        ).values()
        lines.append(
            f"{kind}/{channel} of a {visit.status} visit v{visit.version} at "
            f"{visit.start.astimezone(visit.location.zone)} ({visit.location.timezone}, quiet "
            f"{visit.location.quiet_hours_start}-{visit.location.quiet_hours_end}, fasting "
            f"{visit.appointment_type.fasting_solids_hours}); rule {list(rule)}, now {now}\n"
            f"  python {python_row}\n  sql    {sql_row}"
        )
    return "\n".join(lines)


# --- The clinics ---------------------------------------------------------------------------


@dataclass
class Clinics:
    types: list[AppointmentType]
    locations: list[Location]


@pytest.fixture
def clinics(
    clinic: Location, infusion: AppointmentType, make_location, make_resource, make_type
) -> Clinics:
    """The shared New York clinic's infusion type, and one clinic per zone open 05:00-23:00
    with a chair of many lanes, all bookable for a year."""
    # Treatments, whose reminders tell the fast: each visit's patient is approved (``approve``).
    AppointmentType.objects.filter(pk=infusion.pk).update(horizon_days=400)
    types = [AppointmentType.objects.select_related("location").get(pk=infusion.pk)]
    for zone in CHANGE_DAYS:
        location = make_location(timezone=zone)
        make_resource(location, ResourceKind.CHAIR, capacity=20, hours=((time(5), time(23)),))
        types.append(
            make_type(
                location,
                duration=60,
                needs=CHAIR,
                kind=AppointmentKind.INFUSION,
                horizon_days=400,
                fasting_solids_hours=6,
            )
        )
    return Clinics(types=types, locations=[t.location for t in types])


def local(zone: str, day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.fixture
def visits(
    clinics: Clinics, make_patient: Callable[..., Patient], time_machine: TimeMachineFixture
) -> list[Appointment]:
    """Visits on and around each zone's change days, in every state a re-plan meets."""
    # Booking plans the outbox by the clock: the clock, not just the services' ``now``.
    time_machine.move_to(BOOK_NOW, tick=False)
    # (has e-mail, wants e-mail, agreed to texts, wants texts, has a phone)
    reachability = [
        (True, True, True, True, True),
        (True, True, False, True, True),
        (False, True, True, True, True),
        (True, True, True, True, False),
        (True, False, True, True, True),
        (True, True, True, False, True),
    ]
    booked: list[Appointment] = []
    places: list[tuple[str, date, time]] = []
    n = 0
    for appointment_type in clinics.types:
        zone = appointment_type.location.timezone
        if appointment_type.location.slug == clinics.locations[0].slug:
            days, times = CHANGE_DAYS["America/New_York"], [time(8), time(10, 30), time(16)]
        else:
            days, times = CHANGE_DAYS[zone], VISIT_TIMES
        for change_day in days:
            for day in (change_day, change_day + timedelta(days=1)):
                for moment in times:
                    email, by_email, consent, by_text, phone = reachability[n % len(reachability)]
                    patient = make_patient(
                        email="" if not email else f"visit{n}@example.com",
                        email_reminders=by_email,
                        phone="" if not phone else f"+1212556{n:04d}",
                        sms_consent=consent,
                        sms_reminders=by_text,
                    )
                    booked.append(
                        appointment_book(
                            appointment_type=appointment_type,
                            patient=approve(patient, appointment_type),
                            start=local(zone, day, moment),
                            now=BOOK_NOW,
                        )
                    )
                    places.append((zone, day, moment))
                    n += 1
    # Confirmed, moved (a new version) and cancelled visits.
    for appointment in booked[1::7]:
        appointment_confirm(appointment=appointment, now=BOOK_NOW)
    for appointment, (zone, day, moment) in list(zip(booked, places, strict=True))[2::9]:
        later = local(zone, day + timedelta(days=2), moment)
        appointment_reschedule(appointment=appointment, start=later, now=BOOK_NOW)
    for appointment in booked[4::11]:
        appointment_cancel(appointment=appointment, now=BOOK_NOW)
    # Messages already out, or being sent, for the current version or an earlier one.
    rows = list(OutboundMessage.objects.exclude(kind=MessageKind.CONFIRMATION).order_by("id"))
    for message in rows[::5]:
        message.status, message.sent_at, message.attempts = MessageStatus.SENT, BOOK_NOW, 1
    for message in rows[1::13]:
        message.status, message.claimed_at = MessageStatus.SENDING, BOOK_NOW
    for message in rows[2::17]:
        message.status, message.sent_at = MessageStatus.SENT, BOOK_NOW
        message.appointment_version = max(message.appointment_version - 1, 0)
        message.due_at -= timedelta(hours=1)
    OutboundMessage.objects.bulk_update(
        rows, ["status", "sent_at", "attempts", "claimed_at", "appointment_version", "due_at"]
    )
    return list(Appointment.objects.filter(pk__in=[a.pk for a in booked]))


# --- Random edits --------------------------------------------------------------------------

rule_edits = st.fixed_dictionaries(
    {
        "is_active": st.booleans() | st.just(True),
        "email": st.booleans(),
        "sms": st.booleans() | st.just(True),
        "timing": st.one_of(
            st.tuples(st.just("offset"), st.sampled_from(OFFSETS)),
            st.tuples(
                st.just("wall"),
                st.tuples(st.sampled_from(LOCAL_TIMES), st.integers(min_value=0, max_value=3)),
            ),
            st.just(("keep", None)),
        ),
        "late_cutoff_minutes": st.sampled_from([0, 30, 3 * 60, 24 * 60]),
    }
)


def apply_rule_edits(appointment_type: AppointmentType, edits: list[dict[str, Any]]) -> None:
    for rule, edit in zip(
        ReminderRule.objects.filter(appointment_type=appointment_type).order_by("kind"),
        edits,
        strict=False,
    ):
        timing, value = edit["timing"]
        if timing == "offset":
            rule.offset_minutes, rule.local_time = value, None
        elif timing == "wall":
            rule.offset_minutes, (rule.local_time, rule.days_before) = None, value
        rule.is_active = edit["is_active"]
        rule.email = edit["email"]
        rule.sms = edit["sms"]
        rule.late_cutoff_minutes = edit["late_cutoff_minutes"]
        rule.save()


# Rule edits for each clinic's five rules.
clinic_rule_edits = st.lists(st.lists(rule_edits, min_size=5, max_size=5), min_size=6, max_size=6)


def examples(count: int) -> settings:
    # The clinics are booked once per test, not once per example: the examples undo their edits.
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@examples(40)
@given(
    edits=clinic_rule_edits,
    quiet=st.lists(st.sampled_from(QUIET_HOURS), min_size=6, max_size=6),
    fasting=st.lists(st.sampled_from([None, 0, 4, 6, 12, 20]), min_size=6, max_size=6),
    now=st.sampled_from(CLOCKS)
    | st.integers(0, 300 * 24).map(lambda h: BOOK_NOW + timedelta(hours=h)),
)
def test_the_set_based_replan_writes_exactly_what_the_python_planner_writes(
    clinics: Clinics,
    visits: list[Appointment],
    edits: list[list[dict[str, Any]]],
    quiet: list[tuple[time, time]],
    fasting: list[int | None],
    now: datetime,
) -> None:
    with undone():
        for n, appointment_type in enumerate(clinics.types):
            apply_rule_edits(appointment_type, edits[n])
            AppointmentType.objects.filter(pk=appointment_type.pk).update(
                fasting_solids_hours=fasting[n]
            )
            Location.objects.filter(pk=appointment_type.location_id).update(
                quiet_hours_start=quiet[n][0], quiet_hours_end=quiet[n][1]
            )
        python_rows, sql_rows, python_counts, sql_counts = both_paths(
            [t.pk for t in clinics.types], now
        )

        assert sql_counts == python_counts
        assert_same(python_rows, sql_rows, now)


@examples(15)
@given(
    edits=clinic_rule_edits,
    fasting=st.lists(st.sampled_from([None, 0, 6, 20]), min_size=6, max_size=6),
    kinds=st.lists(
        st.sampled_from(sorted(set(MessageKind.values) - CHANGE_KINDS)), min_size=1, max_size=3
    ),
    now=st.sampled_from(CLOCKS),
)
def test_a_replan_of_some_kinds_writes_exactly_what_the_python_planner_writes_for_them(
    clinics: Clinics,
    visits: list[Appointment],
    edits: list[list[dict[str, Any]]],
    fasting: list[int | None],
    kinds: list[str],
    now: datetime,
) -> None:
    before = outbox()
    with undone():
        for n, appointment_type in enumerate(clinics.types):
            apply_rule_edits(appointment_type, edits[n])
            AppointmentType.objects.filter(pk=appointment_type.pk).update(
                fasting_solids_hours=fasting[n]
            )
        python_rows, sql_rows, python_counts, sql_counts = both_paths(
            [t.pk for t in clinics.types], now, kinds
        )

        assert sql_counts == python_counts
        assert_same(python_rows, sql_rows, now)
        others = {key: row for key, row in sql_rows.items() if key[1] not in kinds}
        assert others == {key: row for key, row in before.items() if key[1] not in kinds}


# --- Cases worth naming ----------------------------------------------------------------------


def edit_rule(appointment_type: AppointmentType, kind: str, **fields: object) -> None:
    ReminderRule.objects.filter(appointment_type=appointment_type, kind=kind).update(**fields)


def type_in(clinics: Clinics, zone: str) -> AppointmentType:
    return next(t for t in clinics.types[1:] if t.location.timezone == zone)


@pytest.mark.parametrize(
    ("zone", "visit_day", "local_time", "expected"),
    [
        # 01:30 happens twice in New York on 2026-11-01: the first time, in daylight time.
        ("America/New_York", date(2026, 11, 1), time(1, 30), "2026-11-01T05:30Z"),
        # 02:30 never happens there on 2026-03-08: read with the offset before the change.
        ("America/New_York", date(2026, 3, 8), time(2, 30), "2026-03-08T07:30Z"),
        ("Europe/Berlin", date(2026, 10, 25), time(2, 30), "2026-10-25T00:30Z"),
        ("Europe/Berlin", date(2026, 3, 29), time(2, 30), "2026-03-29T01:30Z"),
        ("Australia/Lord_Howe", date(2026, 4, 5), time(1, 45), "2026-04-04T14:45Z"),
    ],
)
def test_a_wall_clock_time_the_clocks_repeat_or_skip_is_read_as_python_reads_it(
    clinics: Clinics,
    visits: list[Appointment],
    zone: str,
    visit_day: date,
    local_time: time,
    expected: str,
) -> None:
    appointment_type = type_in(clinics, zone)
    edit_rule(
        appointment_type, MessageKind.MORNING_OF, local_time=local_time, days_before=0, sms=False
    )
    pending = set(
        OutboundMessage.objects.filter(
            kind=MessageKind.MORNING_OF, channel=Channel.EMAIL, status=MessageStatus.PENDING
        ).values_list("appointment_id", flat=True)
    )
    visit = next(
        v
        for v in visits
        if v.pk in pending
        and v.appointment_type_id == appointment_type.pk
        and v.start.astimezone(ZoneInfo(zone)).date() == visit_day
    )

    python_rows, sql_rows, _, _ = both_paths([appointment_type.pk], BOOK_NOW)

    key = (visit.pk, MessageKind.MORNING_OF.value, Channel.EMAIL.value)
    assert sql_rows[key][:2] == [MessageStatus.PENDING, datetime.fromisoformat(expected)]
    assert_same(python_rows, sql_rows)


def test_a_rule_change_rewrites_only_the_rows_it_changes(clinics: Clinics, visits) -> None:
    appointment_type = type_in(clinics, "Europe/Berlin")
    reminder_rules_replan(appointment_type_id=appointment_type.pk, now=BOOK_NOW)
    edit_rule(appointment_type, MessageKind.EVENING_BEFORE, local_time=time(18))

    def versions() -> dict[int, tuple[str, str]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, kind, xmin::text FROM notifications_outboundmessage")
            return {pk: (kind, xmin) for pk, kind, xmin in cursor.fetchall()}

    before = versions()
    reminder_rules_replan(appointment_type_id=appointment_type.pk, now=BOOK_NOW)
    after = versions()

    rewritten = {before[pk][0] for pk in before if before[pk] != after[pk]}
    assert rewritten == {MessageKind.EVENING_BEFORE}


def test_a_second_replan_with_nothing_changed_writes_nothing(clinics: Clinics, visits) -> None:
    ids = [t.pk for t in clinics.types]
    for type_id in ids:
        reminder_rules_replan(appointment_type_id=type_id, now=BOOK_NOW)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, xmin::text FROM notifications_outboundmessage ORDER BY id")
        before = cursor.fetchall()
        for type_id in ids:
            reminder_rules_replan(appointment_type_id=type_id, now=BOOK_NOW)
        cursor.execute("SELECT id, xmin::text FROM notifications_outboundmessage ORDER BY id")
        assert cursor.fetchall() == before


def test_the_service_takes_the_set_based_path_on_postgresql(clinics: Clinics, visits) -> None:
    appointment_type = clinics.types[0]
    edit_rule(appointment_type, MessageKind.PREP, offset_minutes=36 * 60)
    with undone():
        expected = replan_python(appointment_type_id=appointment_type.pk, now=BOOK_NOW)
        expected_rows = outbox()

    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        count = reminder_rules_replan(appointment_type_id=appointment_type.pk, now=BOOK_NOW)

    assert count == expected
    assert_same(expected_rows, outbox())
    assert len(queries) <= 15  # a fixed handful of statements, however many visits

"""Changing a booked series: moving a session within (or, by override, outside) its cadence,
shifting the later sessions, cancelling, holding and resuming, the review gate; and the
patient's series booking through their secure link (issue 5; DESIGN §1 steps 3 and 7)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from booking.defaults import protocols_install_defaults
from booking.eligibility import contraindications_none, eligibility_decide
from booking.errors import InvalidTransition, NotEligible, PolicyViolation, SlotTaken
from booking.links import patient_link_issue
from booking.models import (
    Allocation,
    Appointment,
    AppointmentStatus,
    DecisionOutcome,
    Patient,
    Protocol,
    ScheduleOverride,
    Series,
    SeriesStatus,
    TreatmentPlan,
)
from booking.series.changes import (
    CadenceViolation,
    ResumeBlocked,
    series_cancel_rest,
    series_hold,
    series_resume,
    series_review_confirm,
    series_session_reschedule,
)
from booking.series.selectors import series_offers
from booking.series.services import series_book
from booking.services import appointment_cancel
from notifications.delivery import message_deliver_due, message_send
from notifications.models import CHANGE_KINDS, MessageStatus, OutboundMessage
from scheduling.models import AppointmentType, Location, Resource, StaffRole, TimeOff

NEW_YORK = ZoneInfo("America/New_York")
# Tuesday 1 December 2026, 09:00 in New York (EST).
NOW = datetime.fromisoformat("2026-12-01T14:00:00+00:00")
# Mon-Wed-Fri over two weeks: gaps of 2, 2, 3, 2, 2 days, 12 days in all.
DAYS = [date(2026, 12, d) for d in (7, 9, 11, 14, 16, 18)]


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


def local(moment: datetime) -> datetime:
    return moment.astimezone(NEW_YORK)


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def mood(clinic: Location) -> Protocol:
    """Six sessions, starts 2 to 7 days apart within 21 days, Monday to Saturday, reviewed
    after session 2."""
    return next(
        p for p in protocols_install_defaults(location=clinic) if p.slug == "mood-induction"
    )


def _user(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="unused-in-tests")
    for codename in codenames:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="booking", codename=codename)
        )
    return User.objects.get(pk=user.pk)  # a fresh instance: no stale permission cache


@pytest.fixture
def prescriber(db: None) -> User:
    return _user("dr.cadence", "add_eligibilitydecision")


@pytest.fixture
def front_desk(db: None) -> User:
    return _user("desk", "change_appointment")


@pytest.fixture
def approve(prescriber: User) -> Callable[..., TreatmentPlan]:
    def make(patient: Patient, protocol: Protocol) -> TreatmentPlan:
        decision = eligibility_decide(
            patient=patient,
            outcome=DecisionOutcome.APPROVED,
            contraindications=contraindications_none(),
            protocol=protocol,
            sessions_authorised=protocol.sessions,
            valid_until=date(2027, 1, 31),
            decided_by=prescriber,
            now=NOW - timedelta(days=1),
        )
        return TreatmentPlan.objects.select_related(
            "patient", "protocol__appointment_type__location"
        ).get(decision=decision)

    return make


@pytest.fixture
def plan(approve, make_patient, mood: Protocol) -> TreatmentPlan:
    return approve(make_patient(first_name="Ada"), mood)


@pytest.fixture
def series(plan: TreatmentPlan) -> Series:
    return series_book(plan=plan, starts=[at(day) for day in DAYS], source="staff", now=NOW)


def sessions(series: Series) -> list[Appointment]:
    return list(
        Appointment.objects.select_related("location", "appointment_type")
        .filter(series=series)
        .order_by("series_index")
    )


def session(series: Series, index: int) -> Appointment:
    return Appointment.objects.select_related("location", "appointment_type").get(
        series=series, series_index=index
    )


def local_starts(series: Series) -> list[datetime]:
    return [local(s.start) for s in sessions(series)]


def nurse_away(clinic: Location, start: datetime, hours: int = 2) -> None:
    """The only nurse is away: no infusion can start while she is."""
    nurse = Resource.objects.get(location=clinic, role=StaffRole.NURSE)
    TimeOff.objects.create(resource=nurse, start=start, end=start + timedelta(hours=hours))


# --- Moving one session -------------------------------------------------------------------------


def test_it_refuses_moving_session_3_to_the_day_after_session_2(series: Series):
    third = session(series, 3)
    with pytest.raises(CadenceViolation) as refused:
        series_session_reschedule(appointment=third, start=at(date(2026, 12, 10)), now=NOW)

    assert refused.value.status == 422
    assert refused.value.neighbour == 2
    assert "Session 3 would be 1 day after session 2" in refused.value.message
    # Moving the later sessions would not widen the gap to session 2: no such offer.
    assert refused.value.shift_days is None
    assert local_starts(series) == [at(day) for day in DAYS]
    assert not ScheduleOverride.objects.exists()


def test_a_prescriber_override_allows_it_and_is_recorded(series: Series, prescriber: User):
    third = session(series, 3)
    moved = series_session_reschedule(
        appointment=third,
        start=at(date(2026, 12, 10)),
        by=prescriber,
        override_reason="Patient travels on the 11th; clinically fine.",
        now=NOW,
    )

    assert [s.series_index for s in moved] == [3]
    third.refresh_from_db()
    assert local(third.start) == at(date(2026, 12, 10))
    assert third.status == AppointmentStatus.BOOKED
    override = ScheduleOverride.objects.get()
    assert (override.appointment, override.by, override.at) == (third, prescriber, NOW)
    assert override.reason == "Patient travels on the 11th; clinically fine."
    # Its lanes moved with it.
    held = Allocation.objects.filter(appointment=third, active=True)
    assert {local(a.start).date() for a in held} == {date(2026, 12, 10)}


def test_it_refuses_an_override_from_staff_without_the_prescriber_permission(
    series: Series, front_desk: User
):
    third = session(series, 3)
    with pytest.raises(PolicyViolation) as refused:
        series_session_reschedule(
            appointment=third,
            start=at(date(2026, 12, 10)),
            by=front_desk,
            override_reason="Patient asked.",
            now=NOW,
        )

    assert refused.value.field == "override_reason"
    third.refresh_from_db()
    assert local(third.start) == at(DAYS[2])
    assert not ScheduleOverride.objects.exists()


def test_a_move_within_the_cadence_needs_no_override(series: Series):
    third = session(series, 3)
    series_session_reschedule(appointment=third, start=at(DAYS[2], 14, 30), now=NOW)

    third.refresh_from_db()
    assert local(third.start) == at(DAYS[2], 14, 30)
    assert third.version == 1
    assert not ScheduleOverride.objects.exists()


def test_a_clash_with_the_next_session_offers_to_shift_the_later_ones(series: Series):
    fourth = session(series, 4)
    with pytest.raises(CadenceViolation) as refused:
        # Monday 14 -> Tuesday 15: one day before session 5 on Wednesday 16.
        series_session_reschedule(appointment=fourth, start=at(date(2026, 12, 15)), now=NOW)

    assert refused.value.neighbour == 5
    assert refused.value.shift_days == 1
    assert re.search(r"Moving sessions 5 to 6 1 day later as well", refused.value.message)


def test_shifting_moves_this_and_the_later_sessions_by_the_same_days(series: Series):
    fourth = session(series, 4)
    moved = series_session_reschedule(
        appointment=fourth, start=at(date(2026, 12, 15)), shift_later=True, now=NOW
    )

    assert [s.series_index for s in moved] == [4, 5, 6]
    assert local_starts(series) == [
        *(at(day) for day in DAYS[:3]),
        at(date(2026, 12, 15)),
        at(date(2026, 12, 17)),
        at(date(2026, 12, 19)),
    ]
    for s in sessions(series):
        active = Allocation.objects.filter(appointment=s, active=True)
        assert active.exists()
        assert {local(a.start).date() for a in active} == {local(s.start).date()}


def test_a_shift_that_cannot_place_every_later_session_changes_nothing(
    series: Series, clinic: Location
):
    nurse_away(clinic, at(date(2026, 12, 19)))
    allocations_before = set(
        Allocation.objects.filter(active=True).values_list("appointment", "resource", "start")
    )
    fourth = session(series, 4)
    with pytest.raises(SlotTaken) as refused:
        series_session_reschedule(
            appointment=fourth, start=at(date(2026, 12, 15)), shift_later=True, now=NOW
        )

    assert refused.value.message.startswith("Session 6 cannot move to Saturday 19 December")
    assert local_starts(series) == [at(day) for day in DAYS]
    assert [s.version for s in sessions(series)] == [0] * 6
    assert (
        set(Allocation.objects.filter(active=True).values_list("appointment", "resource", "start"))
        == allocations_before
    )


def test_a_shift_keeps_local_times_across_the_end_of_daylight_saving(
    approve, make_patient, mood: Protocol, time_machine
):
    # Clocks go back on Sunday 1 November 2026: 10:00 is 14:00 UTC before, 15:00 UTC after.
    before = datetime.fromisoformat("2026-10-20T14:00:00+00:00")
    time_machine.move_to(before, tick=False)
    days = [date(2026, m, d) for m, d in ((10, 26), (10, 28), (10, 30), (11, 2), (11, 4), (11, 6))]
    plan = approve(make_patient(), mood)
    booked = series_book(plan=plan, starts=[at(day) for day in days], now=before)

    series_session_reschedule(
        appointment=session(booked, 2), start=at(date(2026, 10, 29)), shift_later=True, now=before
    )

    starts = local_starts(booked)
    assert [s.date() for s in starts] == [
        date(2026, 10, 26),
        *(date(2026, m, d) for m, d in ((10, 29), (10, 31), (11, 3), (11, 5), (11, 7))),
    ]
    assert {s.time() for s in starts} == {time(10)}
    assert [s.tzname() for s in starts] == ["EDT", "EDT", "EDT", "EST", "EST", "EST"]


def test_a_session_cannot_move_past_the_end_of_its_approval(series: Series, prescriber: User):
    last = session(series, 6)
    with pytest.raises(NotEligible):
        series_session_reschedule(
            appointment=last,
            start=at(date(2027, 2, 1)),
            by=prescriber,
            override_reason="Later suits the patient.",
            now=NOW,
        )


# --- Cancelling -------------------------------------------------------------------------------


def test_cancelling_one_session_leaves_the_others_booked(series: Series):
    appointment_cancel(appointment=session(series, 2), reason="Unwell", now=NOW)

    statuses = [s.status for s in sessions(series)]
    assert (
        statuses
        == [AppointmentStatus.BOOKED, AppointmentStatus.CANCELLED] + [AppointmentStatus.BOOKED] * 4
    )
    assert not Allocation.objects.filter(appointment=session(series, 2), active=True).exists()
    series.refresh_from_db()
    assert series.status == SeriesStatus.BOOKED


def test_cancelling_the_rest_cancels_from_that_session_on(series: Series):
    cancelled = series_cancel_rest(series=series, from_index=4, reason="Stopping", now=NOW)

    assert [s.series_index for s in cancelled] == [4, 5, 6]
    assert [s.status for s in sessions(series)] == [AppointmentStatus.BOOKED] * 3 + [
        AppointmentStatus.CANCELLED
    ] * 3
    assert not Allocation.objects.filter(appointment__in=cancelled, active=True).exists()
    series.refresh_from_db()
    assert series.status == SeriesStatus.BOOKED

    series_cancel_rest(series=series, from_index=1, reason="Stopping", now=NOW)
    series.refresh_from_db()
    assert series.status == SeriesStatus.CANCELLED
    # Twice is harmless.
    assert series_cancel_rest(series=series, from_index=1, reason="Stopping", now=NOW) == []


def test_cancelling_the_rest_of_a_held_series_tells_the_patient(series: Series):
    series_hold(series=series, reason="Blood pressure", now=NOW)
    series_cancel_rest(series=series, from_index=1, reason="Not resuming", now=NOW)

    assert {s.status for s in sessions(series)} == {AppointmentStatus.CANCELLED}
    series.refresh_from_db()
    assert series.status == SeriesStatus.CANCELLED
    notices = OutboundMessage.objects.filter(
        appointment__series=series, kind="cancelled", status=MessageStatus.PENDING
    )
    assert notices.count() == 6


# --- Holding and resuming ---------------------------------------------------------------------


def _reminders(series: Series) -> dict[tuple[int, str, str], datetime]:
    return {
        (m.appointment_id, m.kind, m.channel): m.due_at
        for m in OutboundMessage.objects.filter(
            appointment__series=series, status=MessageStatus.PENDING
        ).exclude(kind__in=CHANGE_KINDS)
    }


def _send_at(now: datetime) -> Callable[[list[int]], list[str]]:
    def send(ids: list[int]) -> list[str]:
        return [message_send(message_id=i, now=now) for i in ids]

    return send


def test_a_hold_keeps_the_sessions_and_stops_their_reminders(
    series: Series, time_machine, announcements
):
    planned = _reminders(series)
    assert planned  # the booking planned reminders for every session

    held = series_hold(series=series, reason="Blood pressure to recheck", now=NOW)

    assert [s.series_index for s in held] == [1, 2, 3, 4, 5, 6]
    assert [(s.status, s.version) for s in sessions(series)] == [(AppointmentStatus.ON_HOLD, 1)] * 6
    assert [a.change for a in announcements] == ["on_hold"] * 6
    series.refresh_from_db()
    assert (series.status, series.hold_reason, series.held_at) == (
        SeriesStatus.ON_HOLD,
        "Blood pressure to recheck",
        NOW,
    )
    assert not OutboundMessage.objects.filter(
        appointment__series=series, status=MessageStatus.PENDING
    ).exists()

    # A sweep after every reminder would have been due sends nothing for them.
    later = at(date(2026, 12, 19), 12)
    time_machine.move_to(later, tick=False)
    message_deliver_due(now=later, enqueue=_send_at(later))
    assert not OutboundMessage.objects.filter(
        appointment__series=series, status=MessageStatus.SENT
    ).exists()


def test_a_resume_plans_the_reminders_again_at_their_times(series: Series, announcements):
    planned = _reminders(series)
    series_hold(series=series, reason="Blood pressure", now=NOW)
    resumed = series_resume(series=series, now=NOW + timedelta(hours=1))

    assert [s.series_index for s in resumed] == [1, 2, 3, 4, 5, 6]
    assert [(s.status, s.version) for s in sessions(series)] == [(AppointmentStatus.BOOKED, 2)] * 6
    assert [a.change for a in announcements][-6:] == ["resumed"] * 6
    assert _reminders(series) == planned
    assert set(
        OutboundMessage.objects.filter(
            appointment__series=series, status=MessageStatus.PENDING
        ).values_list("appointment_version", flat=True)
    ) == {2}
    series.refresh_from_db()
    assert (series.status, series.hold_reason, series.held_at) == (SeriesStatus.BOOKED, "", None)


def test_a_hold_releases_chairs_and_staff_by_default(series: Series):
    series_hold(series=series, reason="Blood pressure", now=NOW)

    assert not Allocation.objects.filter(appointment__series=series, active=True).exists()
    series_resume(series=series, now=NOW)
    for s in sessions(series):
        assert Allocation.objects.filter(appointment=s, active=True).count() == 3


def test_a_hold_keeps_chairs_when_the_clinic_says_so(series: Series, clinic: Location):
    Location.objects.filter(pk=clinic.pk).update(hold_keeps_chairs=True)
    kept = set(Allocation.objects.filter(appointment__series=series).values_list("pk", "active"))

    series_hold(series=series, reason="Blood pressure", now=NOW)

    assert (
        set(Allocation.objects.filter(appointment__series=series).values_list("pk", "active"))
        == kept
    )


def test_a_hold_leaves_sessions_already_given(series: Series, time_machine):
    after_two = at(DAYS[1], 13)
    time_machine.move_to(after_two, tick=False)
    held = series_hold(series=series, reason="Blood pressure", now=after_two)

    assert [s.series_index for s in held] == [3, 4, 5, 6]
    assert [s.status for s in sessions(series)][:2] == [AppointmentStatus.BOOKED] * 2


def test_a_resume_fails_whole_when_a_sessions_time_was_taken_meanwhile(
    series: Series, clinic: Location
):
    series_hold(series=series, reason="Blood pressure", now=NOW)
    nurse_away(clinic, at(DAYS[3]))

    with pytest.raises(ResumeBlocked) as refused:
        series_resume(series=series, now=NOW)

    assert refused.value.status == 409
    assert refused.value.sessions == [4]
    assert "session 4 (Monday 14 December 2026 at 10:00 AM EST) is no longer free" in (
        refused.value.message
    )
    assert {s.status for s in sessions(series)} == {AppointmentStatus.ON_HOLD}
    assert not Allocation.objects.filter(appointment__series=series, active=True).exists()
    series.refresh_from_db()
    assert series.status == SeriesStatus.ON_HOLD


def test_a_held_session_given_a_new_time_lets_the_series_resume(series: Series, clinic: Location):
    series_hold(series=series, reason="Blood pressure", now=NOW)
    nurse_away(clinic, at(DAYS[3]))
    fourth = session(series, 4)

    series_session_reschedule(appointment=fourth, start=at(DAYS[3], 14), now=NOW)
    fourth.refresh_from_db()
    assert fourth.status == AppointmentStatus.ON_HOLD  # still held: the resume places it
    series_resume(series=series, now=NOW)

    fourth.refresh_from_db()
    assert (fourth.status, local(fourth.start)) == (AppointmentStatus.BOOKED, at(DAYS[3], 14))
    assert {local(a.start).hour for a in fourth.allocations.filter(active=True)} == {14}


def test_a_resume_fails_for_a_session_whose_time_passed_on_hold(series: Series, time_machine):
    series_hold(series=series, reason="Blood pressure", now=NOW)
    later = at(DAYS[0], 12)
    time_machine.move_to(later, tick=False)

    with pytest.raises(ResumeBlocked) as refused:
        series_resume(series=series, now=later)

    assert refused.value.sessions == [1]
    assert "has passed" in refused.value.message


def test_only_a_held_series_resumes(series: Series):
    with pytest.raises(InvalidTransition):
        series_resume(series=series, now=NOW)


# --- The review gate ----------------------------------------------------------------------------


def test_the_sessions_after_the_review_stay_tentative_until_a_prescriber_confirms(
    series: Series, prescriber: User, front_desk: User, time_machine
):
    assert [s.tentative for s in sessions(series)] == [False, False] + [True] * 4
    with pytest.raises(PolicyViolation, match="follows session 2"):
        series_review_confirm(series=series, by=prescriber, now=NOW)

    after_two = at(DAYS[1], 12)
    time_machine.move_to(after_two, tick=False)
    with pytest.raises(PolicyViolation, match="Only a prescriber"):
        series_review_confirm(series=series, by=front_desk, now=after_two)
    assert series_review_confirm(series=series, by=prescriber, now=after_two) == 4

    assert not any(s.tentative for s in sessions(series))


# --- The patient's secure link ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def _series_url(token: str) -> str:
    return reverse("patient-link-series", args=[token])


def _proposal_query(**changes: str | list[str]) -> dict[str, str | list[str]]:
    query: dict[str, str | list[str]] = {
        "first_day": "2026-12-07",
        "weekdays": ["0", "2", "4"],
        "time_of_day": "morning",
    }
    query.update(changes)
    return query


def test_a_patient_without_a_plan_in_force_is_offered_no_series(
    client: Client, make_patient, consultation: AppointmentType
):
    patient = make_patient()
    token = patient_link_issue(patient=patient, now=NOW)

    assert series_offers(patient=patient, now=NOW) == []
    page = client.get(reverse("patient-link", args=[token]))
    assert page.status_code == 200
    assert _series_url(token).encode() not in page.content

    assert client.get(_series_url(token), _proposal_query()).status_code == 404
    refused = client.post(
        reverse("patient-link-series-book", args=[token]), {"session_1": at(DAYS[0]).isoformat()}
    )
    assert refused.status_code == 404
    assert not Series.objects.exists()


def test_a_plan_used_up_by_its_series_is_offered_no_more(plan: TreatmentPlan, series: Series):
    assert series_offers(patient=plan.patient, now=NOW) == []


def test_an_approved_patient_sees_a_proposal_with_clinic_times_and_nothing_is_booked(
    client: Client, plan: TreatmentPlan
):
    token = patient_link_issue(patient=plan.patient, now=NOW)
    assert series_offers(patient=plan.patient, now=NOW) == [plan]

    form = client.get(_series_url(token))
    assert form.status_code == 200
    assert b'name="first_day"' in form.content
    assert b'name="weekdays"' in form.content
    # Sunday is not one of this protocol's days: there is no box for it.
    assert b'value="6"' not in form.content

    page = client.get(_series_url(token), _proposal_query())
    assert page.status_code == 200
    text = page.content.decode()
    for day in DAYS:
        assert f"{at(day):%A} {day.day} December 2026 at 9:00 AM EST" in text
    assert page["Cache-Control"].count("no-store") == 1
    assert not Series.objects.exists()


def test_the_patient_books_the_proposed_series_with_one_post(client: Client, plan: TreatmentPlan):
    token = patient_link_issue(patient=plan.patient, now=NOW)
    starts = [at(day, 9) for day in DAYS]
    fields = {f"session_{n}": s.isoformat() for n, s in enumerate(starts, start=1)}

    answer = client.post(
        reverse("patient-link-series-book", args=[token]),
        {"plan": plan.pk, **_proposal_query(), **fields},
    )

    assert answer.status_code == 303
    assert answer["Location"] == reverse("patient-link", args=[token])
    booked = Series.objects.get(plan=plan)
    assert [s.start for s in sessions(booked)] == starts
    assert {s.source for s in sessions(booked)} == {"link"}


def test_a_refused_series_booking_shows_why_and_books_nothing(client: Client, plan: TreatmentPlan):
    token = patient_link_issue(patient=plan.patient, now=NOW)
    # Session 3 on the day after session 2 breaks the spacing.
    days = [DAYS[0], DAYS[1], date(2026, 12, 10), *DAYS[3:]]
    fields = {f"session_{n}": at(day, 9).isoformat() for n, day in enumerate(days, start=1)}

    page = client.post(
        reverse("patient-link-series-book", args=[token]),
        {"plan": plan.pk, **_proposal_query(), **fields},
    )

    assert page.status_code == 422
    assert b"at least 2 days after session 2" in page.content
    assert not Series.objects.exists()


@pytest.mark.parametrize("far", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_session_time_beyond_the_calendar_is_refused_not_a_server_error(
    client: Client, plan: TreatmentPlan, far: str
):
    token = patient_link_issue(patient=plan.patient, now=NOW)
    fields = {f"session_{n}": at(day, 9).isoformat() for n, day in enumerate(DAYS, start=1)}
    fields["session_2"] = far
    client.raise_request_exception = False

    page = client.post(
        reverse("patient-link-series-book", args=[token]),
        {"plan": plan.pk, **_proposal_query(), **fields},
    )

    assert page.status_code == 400
    assert b"Choose a time for every session." in page.content
    assert not Series.objects.exists()


def test_booking_a_series_needs_the_pages_csrf_token(plan: TreatmentPlan):
    token = patient_link_issue(patient=plan.patient, now=NOW)
    client = Client(enforce_csrf_checks=True)
    fields = {f"session_{n}": at(day, 9).isoformat() for n, day in enumerate(DAYS, start=1)}

    answer = client.post(
        reverse("patient-link-series-book", args=[token]), {"plan": plan.pk, **fields}
    )

    assert answer.status_code == 403
    assert not Series.objects.exists()


def test_another_patients_plan_or_a_bad_token_is_not_found(
    client: Client, plan: TreatmentPlan, approve, make_patient, mood: Protocol
):
    other = approve(make_patient(first_name="Eve"), mood)
    token = patient_link_issue(patient=plan.patient, now=NOW)
    fields = {f"session_{n}": at(day, 9).isoformat() for n, day in enumerate(DAYS, start=1)}

    assert client.get(_series_url(token), _proposal_query(plan=str(other.pk))).status_code == 404
    refused = client.post(
        reverse("patient-link-series-book", args=[token]), {"plan": other.pk, **fields}
    )
    assert refused.status_code == 404
    assert client.get(_series_url("not-a-real-token-" + "x" * 26)).status_code == 404
    assert not Series.objects.exists()


def test_a_session_that_cannot_be_placed_is_offered_alternatives_to_choose(
    client: Client, approve, make_patient, clinic: Location
):
    pain = next(p for p in protocols_install_defaults(location=clinic) if p.slug == "pain-series")
    plan = approve(make_patient(), pain)
    token = patient_link_issue(patient=plan.patient, now=NOW)
    # Five consecutive days from Monday 7; on Wednesday 9 the nurse is away all day.
    nurse_away(clinic, at(date(2026, 12, 9), 0), hours=24)

    page = client.get(
        _series_url(token),
        {"first_day": "2026-12-07", "weekdays": [str(d) for d in range(7)], "time_of_day": ""},
    )

    assert page.status_code == 200
    text = page.content.decode()
    assert "Session 3: choose a time" in text
    assert re.search(r'<input type="radio" name="session_3"', text)
    # Starting on Thursday 10 instead, every session fits: the page says so.
    assert re.search(r"if you start on\s*<a [^>]+>Thursday 10 December</a>", text)
    for n in (1, 2, 4, 5):
        assert f'<input type="hidden" name="session_{n}"' in text

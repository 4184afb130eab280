"""The staff calendar: its read (columns, what each holds of each visit and when, turnover, lanes
watched, wall-clock times across a clock change) and its data endpoint (who may read it, bad
input, the audit trail, a fixed number of queries)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from booking.access.roles import Role
from booking.calendar import (
    HELD_TITLE,
    TENTATIVE_TITLE,
    Elsewhere,
    calendar_json,
    calendar_load,
    elsewhere_spans,
    watch_intervals,
    watch_mark,
    zone_offsets,
)
from booking.models import (
    Allocation,
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Patient,
    Series,
    TreatmentPlan,
)
from booking.services import appointment_book
from scheduling.availability import local_day_bounds
from scheduling.models import AppointmentType, Location, Resource, ResourceKind
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
MONDAY = date(2026, 10, 26)
SUNDAY = date(2026, 11, 1)  # clocks go back at 02:00 EDT in New York
URL = "/api/v1/calendar/"


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients approved for every treatment: these tests are about the calendar."""
    return make_approved_patient


def local(day: date, hour: int, minute: int = 0, fold: int = 0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(
        day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo("America/New_York"), fold=fold
    )


def resource(location: Location, name: str) -> Resource:
    return Resource.objects.get(location=location, name=name)


def visit(
    appointment_type: AppointmentType,
    patient: Patient,
    start: datetime,
    holds: list[Resource],
    *,
    status: str = AppointmentStatus.BOOKED,
    minutes: int | None = None,
    **fields: Any,
) -> Appointment:
    """An appointment with its lanes written directly: the read side does not care how."""
    start = start.astimezone(UTC)  # real minutes from here on, not wall-clock arithmetic
    end = start + timedelta(minutes=minutes or appointment_type.duration_minutes)
    appointment = Appointment.objects.create(
        location=appointment_type.location,
        appointment_type=appointment_type,
        patient=patient,
        start=start,
        end=end,
        status=status,
        **fields,
    )
    released = status in (AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW)
    Allocation.objects.bulk_create(
        Allocation(appointment=appointment, resource=r, start=start, end=end, active=not released)
        for r in holds
    )
    return appointment


def week(
    location: Location,
    by: str = "staff",
    first: date = MONDAY,
    last: date = SUNDAY,
    **filters: Any,
) -> dict[str, Any]:
    return calendar_load(location=location, first_day=first, last_day=last, by=by, **filters)


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {event["id"]: event for event in body["events"]}


def visits(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each visit shown, by reference: its first event (the fields every event of it shares)."""
    shown: dict[str, dict[str, Any]] = {}
    for event in body["events"]:
        if event["kind"] == "visit":
            shown.setdefault(event["visit"], event)
    return shown


def columns(body: dict[str, Any], reference: str) -> list[int]:
    """The columns a visit is drawn in."""
    return [
        e["resourceIds"][0]
        for e in body["events"]
        if e["kind"] == "visit" and e["visit"] == reference
    ]


# --- The read -------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_by_staff_it_shows_a_column_per_active_staff_member_and_each_visit_on_its_staff(
    clinic, infusion, make_patient
):
    Resource.objects.create(location=clinic, kind=ResourceKind.STAFF, name="Gone", is_active=False)
    booked = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=local(date(2026, 10, 28), 10)
    )

    body = week(clinic)

    # By group (prescribers, nurses), then by name; full names, with their lanes.
    assert [r["title"] for r in body["resources"]] == ["Dr. One", "Dr. Two", "Nurse"]
    nurse = resource(clinic, "Nurse")
    assert body["resources"][2] == {
        "id": nurse.pk,
        "title": "Nurse",
        "kind": "staff",
        "role": "nurse",
        "group": "nurse",
        "groupTitle": "Nurses",
        "lanes": 3,
    }
    assert body["groups"] == [
        {"key": "prescriber", "title": "Prescribers"},
        {"key": "nurse", "title": "Nurses"},
    ]
    staff_ids = {r["id"] for r in body["resources"]}
    held = set(
        Allocation.objects.filter(appointment=booked, active=True).values_list(
            "resource_id", flat=True
        )
    )
    events = [e for e in body["events"] if e["kind"] == "visit"]
    # The nurse and a prescriber, one event each; the chair is not a column.
    assert {e["resourceIds"][0] for e in events} == held & staff_ids
    assert len(events) == 2
    event = next(e for e in events if e["resourceIds"] == [nurse.pk])
    assert event["id"] == f"{booked.reference}/{nurse.pk}"
    assert event["visit"] == booked.reference
    assert (event["start"], event["end"]) == ("2026-10-28T10:00:00", "2026-10-28T11:30:00")
    assert (event["visitStart"], event["visitEnd"]) == (
        "2026-10-28T10:00:00",
        "2026-10-28T11:30:00",
    )
    assert (event["status"], event["state"], event["editable"]) == ("booked", "booked", True)
    assert event["type"] == "iv-mood"
    assert event["title"] == f"{booked.patient} · {infusion.name}"
    assert event["color"] == next(t["color"] for t in body["types"] if t["slug"] == "iv-mood")
    chair = Allocation.objects.get(appointment=booked, resource__kind=ResourceKind.CHAIR).resource
    prescriber = next(e for e in events if e is not event)["resourceIds"][0]
    assert sorted(event["others"], key=lambda o: o["id"]) == sorted(
        [
            {"id": prescriber, "title": Resource.objects.get(pk=prescriber).name},
            {"id": chair.pk, "title": chair.name},
        ],
        key=lambda o: o["id"],
    )
    assert body["timezone"] == "America/New_York"


@time_machine.travel(NOW, tick=False)
def test_each_resource_is_drawn_for_its_own_time_and_the_chairs_turnover_apart(
    clinic, infusion, make_patient
):
    # The issue: a mood infusion holds its prescriber for the first 15 minutes only, but the
    # calendar drew the whole 90 in the prescriber's column, and the chair's turnover nowhere.
    booked = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=local(date(2026, 10, 28), 10)
    )
    held = {
        a.resource.kind + a.resource.role: a.resource_id
        for a in Allocation.objects.filter(appointment=booked).select_related("resource")
    }
    prescriber, nurse, chair = held["staffprescriber"], held["staffnurse"], held["chair"]

    events = by_id(week(clinic, by="all"))

    ref = booked.reference
    times = {
        key: (e["start"][11:16], e["end"][11:16], e["kind"])
        for key, e in events.items()
        if e.get("visit") == ref
    }
    assert times == {
        f"{ref}/{prescriber}": ("10:00", "10:15", "visit"),
        f"{ref}/{nurse}": ("10:00", "11:30", "visit"),
        f"{ref}/{chair}": ("10:00", "11:30", "visit"),
        f"{ref}/{chair}/after": ("11:30", "11:40", "turnover"),
    }
    assert events[f"{ref}/{chair}/after"]["resourceIds"] == [chair]
    assert events[f"{ref}/{chair}/after"]["title"] == "Turnover"
    for key in (f"{ref}/{prescriber}", f"{ref}/{chair}"):
        assert (events[key]["visitStart"], events[key]["visitEnd"]) == (
            "2026-10-28T10:00:00",
            "2026-10-28T11:30:00",
        )


@time_machine.travel(NOW, tick=False)
def test_a_buffer_before_is_turnover_before_and_a_need_changed_since_booking_falls_back(
    clinic, infusion, make_patient
):
    chair = resource(clinic, "Chair 1")
    need = infusion.requirements.get(resource_kind=ResourceKind.CHAIR)
    need.buffer_before_minutes = 5
    need.save()
    start = local(MONDAY, 9).astimezone(UTC)
    # As booked under the new need: 5 minutes before, 90 needed, 10 after.
    fresh = visit(infusion, make_patient(), start, [])
    Allocation.objects.create(
        appointment=fresh,
        resource=chair,
        start=start - timedelta(minutes=5),
        end=start + timedelta(minutes=100),
    )
    # Booked before the need had any buffer: the allocation is the visit, no turnover.
    later = local(MONDAY, 13).astimezone(UTC)
    old = visit(infusion, make_patient(), later, [chair])

    events = by_id(week(clinic, by="chair"))

    ref = fresh.reference
    assert events[f"{ref}/{chair.pk}/before"]["start"] == "2026-10-26T08:55:00"
    assert events[f"{ref}/{chair.pk}/before"]["end"] == "2026-10-26T09:00:00"
    assert events[f"{ref}/{chair.pk}"]["start"] == "2026-10-26T09:00:00"
    assert events[f"{ref}/{chair.pk}"]["end"] == "2026-10-26T10:30:00"
    assert events[f"{ref}/{chair.pk}/after"]["end"] == "2026-10-26T10:40:00"
    assert events[f"{old.reference}/{chair.pk}"]["end"] == "2026-10-26T14:30:00"
    assert not [k for k in events if k.startswith(f"{old.reference}/{chair.pk}/")]


@time_machine.travel(NOW, tick=False)
def test_a_nurse_watching_chairs_shows_how_many_are_watched_over_time(
    clinic, infusion, make_patient
):
    nurse, chairs = resource(clinic, "Nurse"), [resource(clinic, "Chair 1")]
    chairs.append(resource(clinic, "Chair 2"))
    first = visit(infusion, make_patient(), local(MONDAY, 9), [nurse, chairs[0]])
    Allocation.objects.create(
        appointment=visit(infusion, make_patient(), local(MONDAY, 9, 30), [chairs[1]]),
        resource=nurse,
        lane=1,
        start=local(MONDAY, 9, 30),
        end=local(MONDAY, 11),
    )
    third = visit(infusion, make_patient(), local(MONDAY, 10), [], status=AppointmentStatus.HELD)
    Allocation.objects.create(
        appointment=third,
        resource=nurse,
        lane=2,
        start=local(MONDAY, 10),
        end=local(MONDAY, 11, 30),
    )
    # A no-show released its lane: it is shown where it was, but watches nothing.
    visit(infusion, make_patient(), local(MONDAY, 9), [nurse], status=AppointmentStatus.NO_SHOW)

    body = week(clinic)

    watch = [e for e in body["events"] if e["kind"] == "watch"]
    assert [(e["start"][11:16], e["end"][11:16], e["title"]) for e in watch] == [
        ("09:00", "09:30", "1 of 3 chairs watched"),
        ("09:30", "10:00", "2 of 3 chairs watched"),
        ("10:00", "10:30", "3 of 3 chairs watched"),
        ("10:30", "11:00", "2 of 3 chairs watched"),
        ("11:00", "11:30", "1 of 3 chairs watched"),
    ]
    assert {e["resourceIds"][0] for e in watch} == {nurse.pk}
    assert [(e["used"], e["lanes"]) for e in watch][2] == (3, 3)
    assert len({e["id"] for e in watch}) == 5
    assert body["events"][0]["lanes"] == 3
    nurse_event = by_id(body)[f"{third.reference}/{nurse.pk}"]
    assert (nurse_event["lane"], nurse_event["lanes"]) == (2, 3)
    # Prescribers serve one visit at a time: nothing to count.
    assert all(e["resourceIds"] == [nurse.pk] for e in watch)
    assert first.reference in visits(body)


def test_watch_intervals_merge_changes_at_the_same_minute_and_skip_idle_time():
    changes = [(0, 1), (30, -1), (30, 1), (60, 2), (90, -1), (90, -2), (120, 1), (150, -1)]
    marks = [watch_mark(minute, change) for minute, change in reversed(changes)]

    assert watch_intervals(marks) == [(0, 60, 1), (60, 90, 3), (120, 150, 1)]


def test_time_elsewhere_is_one_piece_per_visit_and_person_whatever_its_lanes():
    # (allocation, visit, resource, start, end, site): visit 7 holds two lanes of resource 3,
    # the second one longer; visit 8 holds resource 3 and resource 4.
    rows = [
        (52, 7, 3, 600, 660, "Downtown Health"),
        (51, 7, 3, 600, 670, "Downtown Health"),
        (60, 8, 4, 700, 760, "Midtown Health"),
        (61, 8, 3, 700, 760, "Midtown Health"),
    ]

    assert elsewhere_spans(rows) == [
        Elsewhere(51, 3, 600, 670, "Downtown Health"),
        Elsewhere(61, 3, 700, 760, "Midtown Health"),
        Elsewhere(60, 4, 700, 760, "Midtown Health"),
    ]


@time_machine.travel(NOW, tick=False)
def test_by_chair_it_shows_chairs_only_and_visits_without_a_chair_stay_off_it(
    clinic, infusion, consultation, make_patient
):
    infusion_visit = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=local(date(2026, 10, 27), 9)
    )
    appointment_book(
        appointment_type=consultation, patient=make_patient(), start=local(date(2026, 10, 27), 9)
    )

    body = week(clinic, by="chair")

    assert [r["title"] for r in body["resources"]] == ["Chair 1", "Chair 2"]
    chair = Allocation.objects.get(appointment=infusion_visit, resource__kind=ResourceKind.CHAIR)
    assert [(e["kind"], e["resourceIds"]) for e in body["events"]] == [
        ("visit", [chair.resource_id]),
        ("turnover", [chair.resource_id]),
    ]


@time_machine.travel(NOW, tick=False)
def test_it_keeps_to_the_location_and_the_dates_asked_for(
    clinic, infusion, make_location, make_patient
):
    nurse, chair = resource(clinic, "Nurse"), resource(clinic, "Chair 1")
    inside = visit(infusion, make_patient(), local(MONDAY, 8), [nurse, chair])
    visit(infusion, make_patient(), local(MONDAY - timedelta(days=1), 22), [nurse])
    visit(infusion, make_patient(), local(SUNDAY + timedelta(days=1), 0), [nurse])
    elsewhere = make_location()
    other_nurse = Resource.objects.create(location=elsewhere, kind=ResourceKind.STAFF, name="N")
    other_type = AppointmentType.objects.create(
        location=elsewhere,
        slug="x",
        name="X",
        public_name="X",
        kind="infusion",
        duration_minutes=30,
    )
    visit(other_type, make_patient(), local(date(2026, 10, 28), 9), [other_nurse])

    assert list(visits(week(clinic))) == [inside.reference]
    assert [e["id"] for e in week(clinic, first=SUNDAY, last=SUNDAY)["events"]] == []


@time_machine.travel(NOW, tick=False)
def test_a_series_session_says_which_of_the_booked_sessions_it_is(clinic, infusion, make_patient):
    patient = make_patient()
    plan = TreatmentPlan.objects.filter(patient=patient, protocol__appointment_type=infusion).get()
    series = Series.objects.create(plan=plan, protocol=plan.protocol)
    nurse = resource(clinic, "Nurse")
    sessions = [
        visit(
            infusion,
            patient,
            local(MONDAY + timedelta(days=2 * n), 9),
            [nurse],
            series=series,
            series_index=n + 1,
        )
        for n in range(4)
    ]
    # The last one cancelled: the series now has three sessions.
    Appointment.objects.filter(pk=sessions[3].pk).update(status=AppointmentStatus.CANCELLED)
    Allocation.objects.filter(appointment=sessions[3]).update(active=False)

    events = visits(week(clinic))

    assert events[sessions[1].reference]["series"] == "Session 2 of 3"
    assert events[sessions[1].reference]["title"].endswith(f"{infusion.name} · Session 2 of 3")
    assert sessions[3].reference not in events
    assert events[sessions[0].reference]["tentative"] is False


@time_machine.travel(NOW, tick=False)
def test_held_slots_are_shown_as_held_and_cancelled_visits_are_not_shown(
    clinic, infusion, make_patient
):
    nurse, chair = resource(clinic, "Nurse"), resource(clinic, "Chair 1")
    held = visit(
        infusion, make_patient(), local(MONDAY, 9), [nurse, chair], status=AppointmentStatus.HELD
    )
    cancelled = visit(
        infusion,
        make_patient(),
        local(MONDAY, 11),
        [nurse, chair],
        status=AppointmentStatus.CANCELLED,
    )
    no_show = visit(
        infusion,
        make_patient(),
        local(MONDAY, 13),
        [nurse, chair],
        status=AppointmentStatus.NO_SHOW,
    )

    body = week(clinic)
    events = visits(body)

    assert events[held.reference]["status"] == "held"
    assert events[held.reference]["state"] == "held"
    assert events[held.reference]["editable"] is False
    assert events[held.reference]["title"] == f"{HELD_TITLE} · {infusion.name}"
    assert body["statuses"]["held"] == HELD_TITLE
    assert cancelled.reference not in events
    assert not [e for e in body["events"] if e.get("visit") == cancelled.reference]
    # A no-show released its lanes but stays where it was, for the record.
    assert columns(body, no_show.reference) == [nurse.pk]
    assert events[no_show.reference]["status"] == "no_show"
    assert events[no_show.reference]["state"] == "no_show"
    assert events[no_show.reference]["editable"] is False


@time_machine.travel(NOW, tick=False)
def test_a_visit_a_setup_change_left_without_a_resource_needs_a_new_time(
    clinic, infusion, make_patient
):
    nurse = resource(clinic, "Nurse")
    flagged = visit(
        infusion,
        make_patient(),
        local(MONDAY, 9),
        [nurse],
        needs_new_time_since=NOW,
        needs_new_time_reason="Nurse has time off.",
    )
    arrived = visit(
        infusion, make_patient(), local(MONDAY, 11), [nurse], status=AppointmentStatus.CHECKED_IN
    )
    fine = visit(infusion, make_patient(), local(MONDAY, 14), [nurse])

    events = visits(week(clinic))

    assert (events[flagged.reference]["state"], events[flagged.reference]["status"]) == (
        "needs_new_time",
        "booked",
    )
    # The desk moves it: it stays editable.
    assert events[flagged.reference]["editable"] is True
    assert (events[arrived.reference]["state"], events[arrived.reference]["editable"]) == (
        "arrived",
        False,
    )
    assert events[fine.reference]["state"] == "booked"


def test_an_online_booking_awaiting_its_email_shows_as_tentative_without_the_typed_name(
    clinic, consultation, make_patient
):
    # Security issue #15: what a caller typed is not proven until the e-mail link is followed.
    provisional = make_patient(first_name="Typed", last_name="Byanyone", provisional=True)
    prescriber, room = resource(clinic, "Dr. One"), resource(clinic, "Room 1")
    tentative = visit(
        consultation,
        provisional,
        local(MONDAY, 9),
        [prescriber, room],
        status=AppointmentStatus.TENTATIVE,
    )

    body = week(clinic)
    event = visits(body)[tentative.reference]

    assert event["status"] == "tentative"
    assert event["state"] == "tentative"
    assert event["editable"] is False
    assert event["title"] == f"{TENTATIVE_TITLE} · {consultation.name}"
    assert "Byanyone" not in json.dumps(body)
    assert "not confirmed their e-mail" in body["statuses"]["tentative"]
    # Nor does any staff page or API show it as a visit: it is nobody's record yet.
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))
    listed = desk.get(f"/api/v1/appointments/?location={clinic.slug}&start={MONDAY}&end={MONDAY}")
    assert listed.status_code == 200, listed.content
    assert tentative.reference not in listed.content.decode()
    assert "Byanyone" not in listed.content.decode()
    assert desk.get(f"/staff/appointments/{tentative.reference}/").status_code == 404
    assert desk.get(f"/api/v1/appointments/{tentative.reference}/").status_code == 404


@time_machine.travel(NOW, tick=False)
def test_a_moved_no_show_is_shown_on_its_last_lanes_only(clinic, infusion, make_patient):
    nurse, dr_one = resource(clinic, "Nurse"), resource(clinic, "Dr. One")
    moved = visit(
        infusion, make_patient(), local(MONDAY, 13), [nurse], status=AppointmentStatus.NO_SHOW
    )
    # Before the move it held Dr. One, two hours earlier.
    Allocation.objects.create(
        appointment=moved,
        resource=dr_one,
        start=local(MONDAY, 11),
        end=local(MONDAY, 11, 15),
        active=False,
    )

    assert columns(week(clinic), moved.reference) == [nurse.pk]


@time_machine.travel(NOW, tick=False)
def test_a_visit_holding_two_lanes_of_one_column_is_on_it_once(clinic, infusion, make_patient):
    nurse, dr_one = resource(clinic, "Nurse"), resource(clinic, "Dr. One")
    booked = visit(infusion, make_patient(), local(MONDAY, 9), [nurse, dr_one])
    Allocation.objects.create(
        appointment=booked, resource=nurse, lane=1, start=booked.start, end=booked.end
    )

    body = week(clinic)

    assert sorted(columns(body, booked.reference)) == sorted([nurse.pk, dr_one.pk])
    assert by_id(body)[f"{booked.reference}/{nurse.pk}"]["lane"] == 0
    # Both lanes are in use while it lasts.
    assert [e["used"] for e in body["events"] if e["kind"] == "watch"] == [2]


@time_machine.travel(NOW, tick=False)
def test_events_come_in_start_order_and_visits_starting_together_in_booking_order(
    clinic, infusion, make_patient
):
    chair_1, chair_2 = resource(clinic, "Chair 1"), resource(clinic, "Chair 2")
    wednesday = visit(infusion, make_patient(), local(date(2026, 10, 28), 9), [chair_1])
    first = visit(infusion, make_patient(), local(MONDAY, 9), [chair_1])
    second = visit(infusion, make_patient(), local(MONDAY, 9), [chair_2])
    early = visit(infusion, make_patient(), local(MONDAY, 6), [chair_2])

    events = week(clinic, by="chair")["events"]

    assert [e["visit"] for e in events if e["kind"] == "visit"] == [
        early.reference,
        first.reference,
        second.reference,
        wednesday.reference,
    ]


@time_machine.travel(NOW, tick=False)
def test_across_the_fall_back_week_times_are_the_clinics_wall_clock(clinic, infusion, make_patient):
    nurse = resource(clinic, "Nurse")
    saturday = visit(infusion, make_patient(), local(date(2026, 10, 31), 9), [nurse])
    sunday = visit(infusion, make_patient(), local(SUNDAY, 9), [nurse])
    # 01:30 EDT for an hour ends at 01:30 EST: drawn for its length, not backwards.
    night = visit(infusion, make_patient(), local(SUNDAY, 1, 30), [nurse], minutes=60)
    # The second 01:30 (EST) of the same night.
    repeated = visit(infusion, make_patient(), local(SUNDAY, 1, 30, fold=1), [nurse], minutes=15)

    body = week(clinic)
    events = visits(body)

    assert saturday.start == datetime(2026, 10, 31, 13, 0, tzinfo=UTC)  # EDT
    assert sunday.start == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # EST
    assert events[saturday.reference]["start"] == "2026-10-31T09:00:00"
    assert events[sunday.reference]["start"] == "2026-11-01T09:00:00"
    assert events[sunday.reference]["end"] == "2026-11-01T10:30:00"
    assert (events[night.reference]["start"], events[night.reference]["end"]) == (
        "2026-11-01T01:30:00",
        "2026-11-01T02:30:00",
    )
    assert (events[repeated.reference]["start"], events[repeated.reference]["end"]) == (
        "2026-11-01T01:30:00",
        "2026-11-01T01:45:00",
    )
    assert body["offsets"] == [
        {"from": None, "minutes": -240},
        {"from": "2026-11-01T06:00:00Z", "minutes": -300},
    ]


@time_machine.travel(NOW, tick=False)
def test_on_the_fall_back_night_each_resource_keeps_its_own_wall_clock_time(
    clinic, infusion, make_patient
):
    # 01:00 EDT: the prescriber's 15 minutes end at 01:15 EDT, the chair's 90 at 01:30 EST
    # (the clocks went back at 02:00 EDT), its turnover until 01:40 EST.
    start = local(SUNDAY, 1)
    booked = visit(infusion, make_patient(), start, [resource(clinic, "Dr. One")])
    chair = resource(clinic, "Chair 1")
    Allocation.objects.create(
        appointment=booked,
        resource=chair,
        start=booked.start,
        end=booked.start + timedelta(minutes=100),
    )
    Allocation.objects.filter(appointment=booked, resource__name="Dr. One").update(
        end=booked.start + timedelta(minutes=15)
    )

    events = by_id(week(clinic, by="all", first=SUNDAY, last=SUNDAY))

    ref, doctor = booked.reference, resource(clinic, "Dr. One").pk
    assert (events[f"{ref}/{doctor}"]["start"], events[f"{ref}/{doctor}"]["end"]) == (
        "2026-11-01T01:00:00",
        "2026-11-01T01:15:00",
    )
    assert events[f"{ref}/{chair.pk}"]["end"] == "2026-11-01T01:30:00"
    assert events[f"{ref}/{chair.pk}"]["visitEnd"] == "2026-11-01T01:30:00"
    assert (
        events[f"{ref}/{chair.pk}/after"]["start"],
        events[f"{ref}/{chair.pk}/after"]["end"],
    ) == ("2026-11-01T01:30:00", "2026-11-01T01:40:00")


def test_offsets_list_the_spring_forward_change_to_the_minute():
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    lo = local_day_bounds(zone, date(2026, 3, 2))[0]
    hi = local_day_bounds(zone, date(2026, 3, 15))[1]
    start = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 02:00 EST → 03:00 EDT

    assert zone_offsets(zone, lo, hi) == [(lo, -300), (int(start.timestamp()) // 60, -240)]
    assert zone_offsets(zone, lo, lo + 24 * 60) == [(lo, -300)]


@time_machine.travel(NOW, tick=False)
def test_names_are_escaped_in_the_json(clinic, infusion, make_patient):
    patient = make_patient(first_name='Zoë "Z"', last_name="O\\Brien </script>")
    nurse = resource(clinic, "Nurse")
    booked = visit(infusion, patient, local(MONDAY, 9), [nurse])

    text = calendar_json(location=clinic, first_day=MONDAY, last_day=SUNDAY, by="staff")

    event = visits(json.loads(text))[booked.reference]
    assert event["title"] == f'Zoë "Z" O\\Brien </script> · {infusion.name}'


@time_machine.travel(NOW, tick=False)
def test_a_location_without_columns_has_no_events(make_location):
    body = week(make_location(), by="chair")

    assert body["resources"] == []
    assert body["events"] == []


# --- The endpoint ---------------------------------------------------------------------------


@pytest.fixture
def desk(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic, username="desk.dana")


def get(client: Client, **params: str):
    query = {"location": "midtown", "start": "2026-10-26", "end": "2026-11-01", **params}
    return client.get(URL, query)


@time_machine.travel(NOW, tick=False)
def test_the_endpoint_answers_the_week_and_records_who_read_it(clinic, infusion, desk):
    visit(
        infusion,
        Patient.objects.create(
            first_name="Ada",
            last_name="L",
            email="a@example.com",
            phone="+12125550100",
            date_of_birth=date(1980, 1, 1),
        ),
        local(MONDAY, 9),
        [resource(clinic, "Chair 1")],
    )

    response = get(client_for(desk), by="chair")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert [r["title"] for r in body["resources"]] == ["Chair 1", "Chair 2"]
    assert [e["title"] for e in body["events"] if e["kind"] == "visit"] == [
        f"Ada L · {infusion.name}"
    ]
    event = AuditEvent.objects.get()
    assert (event.user, event.action, event.object_type, event.object_id) == (
        desk,
        "view",
        "calendar",
        "midtown",
    )
    assert event.location == clinic
    assert event.detail == {"start": "2026-10-26", "end": "2026-11-01", "by": "chair"}


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.NURSE, Role.PRESCRIBER, Role.ADMIN])
def test_every_role_may_read_the_calendar_of_its_location(clinic, role):
    assert get(client_for(staff_user(role, clinic))).status_code == 200


def test_strangers_and_accounts_without_a_role_may_not(clinic):
    assert get(Client()).status_code in (401, 403)
    no_role = User.objects.create_user("visitor", password="x")
    assert get(client_for(no_role)).status_code == 403
    assert not AuditEvent.objects.exists()


def test_another_locations_calendar_is_not_found(clinic, make_location):
    elsewhere = make_location(slug="uptown")
    other_desk = staff_user(Role.FRONT_DESK, elsewhere)

    response = get(client_for(other_desk))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert get(client_for(other_desk), location="nowhere").status_code == 404
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": ""}, "start"),
        ({"start": "26/10/2026"}, "start"),
        ({"end": "2026-10-25"}, "end"),
        ({"end": "2026-11-09"}, "end"),  # 15 days
        ({"by": "room"}, "by"),
        ({"location": ""}, "location"),
        ({"start": "1999-12-31", "end": "2000-01-01"}, "start"),
    ],
)
def test_bad_queries_are_400s_naming_the_field(clinic, desk, params, field):
    response = get(client_for(desk), **params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]


def test_fourteen_days_are_allowed(clinic, desk):
    assert get(client_for(desk), end="2026-11-08").status_code == 200


@time_machine.travel(NOW, tick=False)
def test_the_endpoint_runs_the_same_queries_for_ten_visits_or_two_hundred(clinic, infusion, desk):
    chairs = [resource(clinic, "Chair 1"), resource(clinic, "Chair 2")]
    nurse, doctor = resource(clinic, "Nurse"), resource(clinic, "Dr. One")
    patient = Patient.objects.create(
        first_name="Bo",
        last_name="C",
        email="b@example.com",
        phone="+12125550101",
        date_of_birth=date(1980, 1, 1),
    )

    def add(count: int) -> None:
        already = Appointment.objects.count()
        for n in range(already, already + count):
            # Back to back, 10 minutes each, from Monday 06:00: never two at once.
            visit(
                infusion,
                patient,
                local(MONDAY, 6) + timedelta(minutes=10 * n),
                [chairs[n % 2], nurse, doctor],
                minutes=10,
            )

    def queries() -> tuple[int, int]:
        client = client_for(desk)
        with CaptureQueriesContext(connection) as captured:
            response = get(client, by="all")
        assert response.status_code == 200
        return len(captured.captured_queries), len(response.json()["events"])

    add(10)
    few = queries()
    add(190)
    many = queries()

    # Per visit: its chair, nurse and prescriber; and the nurse's watch pieces on top.
    assert few[1] > 30
    assert many[1] > 600
    assert few[0] == many[0]


# --- The page -------------------------------------------------------------------------------


def test_the_page_offers_only_the_users_locations(clinic, make_location, desk):
    make_location(slug="uptown", name="Uptown clinic")

    response = client_for(desk).get("/staff/calendar/", {"by": "chair", "view": "day"})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="midtown"' in html
    assert 'value="uptown"' not in html
    config = json.loads(
        html.split('id="calendar-config" type="application/json">')[1].split("<")[0]
    )
    assert config["location"] == "midtown"
    assert (config["by"], config["view"]) == ("chair", "day")
    assert config["dataUrl"] == URL
    assert config["appointmentsUrl"] == "/api/v1/appointments/"
    assert config["detailUrl"] == "/staff/appointments/REFERENCE/"
    assert "vendor/event-calendar/event-calendar.min.js" in html
    assert "<script>" not in html  # no inline script: data goes through json_script


def test_the_page_sends_strangers_to_sign_in(clinic):
    response = Client().get("/staff/calendar/")

    assert response.status_code == 302
    assert response["Location"].startswith("/staff/login/")

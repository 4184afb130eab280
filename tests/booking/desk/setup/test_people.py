"""/staff/setup/<location>/people/: the staff, chairs and rooms serving a location, and one
person's or place's details, weekly hours here, hours from a date, date overrides and time off.
A change that takes time away from a booked visit is refused, then saved when confirmed with the
visit on the "needs a new time" list, nobody messaged, and the time no longer offered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from booking.access.roles import Role
from booking.models import Appointment, AuditAction, StaffProfile
from scheduling.models import (
    AppointmentType,
    DateOverride,
    Location,
    Resource,
    ResourceKind,
    StaffRole,
    TimeOff,
    WorkingHours,
)
from tests.booking.desk.setup.booked import (
    DAY,
    NOW,
    at,
    board_needs_new_time,
    book,
    held,
    messages_state,
    offered_starts,
    setup_audits,
)
from tests.staff_helpers import client_for, staff_user

TODAY = date(2026, 12, 9)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin(clinic: Location) -> Client:
    return client_for(staff_user(Role.ADMIN, clinic, username="admin"))


@pytest.fixture
def room(clinic: Location) -> Resource:
    return Resource.objects.get(location=clinic, kind=ResourceKind.ROOM)


def people(location: Location) -> str:
    return f"/staff/setup/{location.pk}/people/"


def person(location: Location, resource: Resource, rest: str = "") -> str:
    return f"{people(location)}{resource.pk}/{rest}"


def week(prefix: str, hours: dict[int, list[tuple[str, str]]], **extra: str) -> dict[str, str]:
    """The weekly grid's fields: ``hours`` maps a weekday (0 = Monday) to its shifts."""
    data = {f"{prefix}-{k}": v for k, v in extra.items()}
    for day in range(7):
        for n, (start, end) in enumerate(hours.get(day, []), start=1):
            data[f"{prefix}-d{day}_{n}_start"] = start
            data[f"{prefix}-d{day}_{n}_end"] = end
    return data


def every_day(start: str, end: str) -> dict[int, list[tuple[str, str]]]:
    return {day: [(start, end)] for day in range(7)}


def shifts(resource: Resource, location: Location, **filters: Any) -> set[tuple]:
    return set(
        WorkingHours.objects.filter(resource=resource, location=location, **filters).values_list(
            "weekday", "start", "end", "valid_from", "valid_until"
        )
    )


# --- The list and adding -----------------------------------------------------------------------


def test_the_list_shows_this_locations_resources_and_visitors_by_kind(
    admin: Client, clinic: Location, make_location
) -> None:
    elsewhere = make_location(name="Uptown")
    visitor = Resource.objects.create(
        location=elsewhere, kind=ResourceKind.STAFF, role=StaffRole.NURSE, name="Nurse Visiting"
    )
    visitor.sites.add(clinic)
    Resource.objects.create(location=elsewhere, kind=ResourceKind.CHAIR, name="Their Chair")

    response = admin.get(people(clinic))

    assert response.status_code == 200
    page = response.content.decode()
    for name in ("Dr. One", "Dr. Two", "Nurse", "Chair 1", "Chair 2", "Room 1", "Nurse Visiting"):
        assert name in page
    assert "Visiting from Uptown" in page
    assert "Their Chair" not in page
    assert page.index('<h2 id="kind-1">Staff') < page.index("Chair 1") < page.index("Room 1")


def test_adding_a_nurse_who_also_works_at_another_of_the_admins_sites(
    clinic: Location, make_location
) -> None:
    uptown = make_location(name="Uptown")
    admin = client_for(staff_user(Role.ADMIN, clinic, uptown))

    response = admin.post(
        people(clinic),
        {
            "name": "Nurse Joy",
            "kind": "staff",
            "role": "nurse",
            "capacity": "3",
            "sites": [str(uptown.pk)],
            "is_active": "on",
        },
    )

    nurse = Resource.objects.get(name="Nurse Joy")
    assert response.status_code == 302
    assert response["Location"] == person(clinic, nurse)
    assert (nurse.location, nurse.kind, nurse.role, nurse.capacity) == (
        clinic,
        "staff",
        "nurse",
        3,
    )
    assert list(nurse.sites.all()) == [uptown]
    assert nurse.is_active
    [event] = setup_audits(AuditAction.CREATE, "resource")
    assert event.location_id == clinic.pk
    assert "capacity" in event.detail["changed"]


def test_a_chair_is_added_without_a_role(admin: Client, clinic: Location) -> None:
    response = admin.post(people(clinic), {"name": "Chair 3", "kind": "chair", "capacity": "1"})

    assert response.status_code == 302
    chair = Resource.objects.get(name="Chair 3")
    assert (chair.kind, chair.role, chair.is_active) == ("chair", "", False)


def test_a_chair_with_a_role_is_refused_naming_the_field(admin: Client, clinic: Location) -> None:
    response = admin.post(
        people(clinic), {"name": "Chair 3", "kind": "chair", "role": "nurse", "capacity": "1"}
    )

    assert response.status_code == 400
    assert "Role: Only a staff member has a role." in response.content.decode()
    assert not Resource.objects.filter(name="Chair 3").exists()


def test_other_sites_are_limited_to_the_admins_own_locations(
    admin: Client, clinic: Location, make_location
) -> None:
    not_mine = make_location()

    response = admin.post(
        people(clinic),
        {
            "name": "Dr. Three",
            "kind": "staff",
            "role": "prescriber",
            "capacity": "1",
            "sites": [str(not_mine.pk)],
        },
    )

    assert response.status_code == 400
    assert "Also works at" in response.content.decode()
    assert not Resource.objects.filter(name="Dr. Three").exists()


# --- One person's page -----------------------------------------------------------------------


def test_the_person_page_shows_hours_overrides_time_off_and_the_linked_account(
    admin: Client, clinic: Location
) -> None:
    doctor = Resource.objects.get(location=clinic, name="Dr. One")
    account = staff_user(Role.PRESCRIBER, clinic, username="dr.one")
    StaffProfile.objects.filter(user=account).update(resource=doctor)
    DateOverride.objects.create(
        resource=doctor, location=clinic, date=DAY, start=time(9), end=time(12), reason="Dentist"
    )
    later = DAY + timedelta(days=7)
    TimeOff.objects.create(resource=doctor, start=at(8, day=later), end=at(18, day=later))

    response = admin.get(person(clinic, doctor))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Signs in as <strong>dr.one</strong>" in page
    assert 'name="hours-d0_1_start" value="08:00"' in page
    assert "09:00\N{EN DASH}12:00" in page
    assert "Dentist" in page
    assert "Tuesday 22 December 2026 at 8:00 AM EST" in page
    # Every grid input has its own label.
    assert (
        '<label class="visually-hidden" for="id_hours-d0_1_start">Monday, first shift starts'
        in page
    )


def test_a_resource_of_another_location_is_not_found(
    admin: Client, clinic: Location, make_location
) -> None:
    theirs = Resource.objects.create(
        location=make_location(), kind=ResourceKind.CHAIR, name="Their Chair"
    )

    assert admin.get(person(clinic, theirs)).status_code == 404
    assert admin.post(person(clinic, theirs, "hours/"), week("hours", {})).status_code == 404
    assert (
        admin.post(
            person(clinic, theirs, "time-off/"),
            {"time-off-start": "2026-12-15T08:00", "time-off-end": "2026-12-15T09:00"},
        ).status_code
        == 404
    )
    assert not TimeOff.objects.exists()


def test_a_visitors_hours_here_are_set_but_their_details_stay_their_homes(
    admin: Client, clinic: Location, make_location
) -> None:
    visitor = Resource.objects.create(
        location=make_location(name="Uptown"), kind=ResourceKind.STAFF, role="nurse", name="Vi"
    )
    visitor.sites.add(clinic)

    page = admin.get(person(clinic, visitor)).content.decode()
    assert "details are managed at Uptown" in page
    assert (
        admin.post(person(clinic, visitor), {"name": "Renamed", "capacity": "1"}).status_code == 404
    )

    response = admin.post(
        person(clinic, visitor, "hours/"), week("hours", {0: [("09:00", "13:00")]})
    )

    assert response.status_code == 302
    assert shifts(visitor, clinic) == {(0, time(9), time(13), None, None)}


def test_an_admin_of_another_location_gets_a_404(clinic: Location, make_location) -> None:
    other = client_for(staff_user(Role.ADMIN, make_location()))
    doctor = Resource.objects.get(location=clinic, name="Dr. One")

    assert other.get(people(clinic)).status_code == 404
    assert other.get(person(clinic, doctor)).status_code == 404
    assert other.post(person(clinic, doctor, "hours/"), week("hours", {})).status_code == 404
    assert len(shifts(doctor, clinic)) == 7


def test_the_front_desk_may_not_set_up_people(clinic: Location) -> None:
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))
    doctor = Resource.objects.get(location=clinic, name="Dr. One")

    assert desk.get(people(clinic)).status_code == 403
    assert (
        desk.post(people(clinic), {"name": "X", "kind": "chair", "capacity": "1"}).status_code
        == 403
    )
    assert desk.get(person(clinic, doctor)).status_code == 403
    assert desk.post(person(clinic, doctor, "hours/"), week("hours", {})).status_code == 403


# --- Details -----------------------------------------------------------------------------------


def test_renaming_a_person_is_audited_with_the_changed_field(
    admin: Client, clinic: Location
) -> None:
    doctor = Resource.objects.get(location=clinic, name="Dr. One")

    response = admin.post(
        person(clinic, doctor),
        {"name": "Dr. Uno", "role": "prescriber", "capacity": "1", "is_active": "on"},
    )

    assert response.status_code == 302
    doctor.refresh_from_db()
    assert doctor.name == "Dr. Uno"
    [event] = setup_audits(AuditAction.UPDATE, "resource")
    assert event.detail["changed"] == ["name"]


def test_deactivating_a_room_with_booked_visits_is_refused_then_confirmed(
    admin: Client, clinic: Location, room: Resource, consultation: AppointmentType, make_patient
) -> None:
    visit = book(consultation, make_patient(), 10)
    data = {"name": "Room 1", "capacity": "1"}  # "Active" unticked

    refused = admin.post(person(clinic, room), data)

    assert refused.status_code == 409
    assert visit.reference in refused.content.decode()
    room.refresh_from_db()
    assert room.is_active

    confirmed = admin.post(person(clinic, room), {**data, "confirm_orphans": "1"})

    assert confirmed.status_code == 302
    room.refresh_from_db()
    assert not room.is_active
    assert Appointment.objects.get(pk=visit.pk).needs_new_time_since == NOW
    assert offered_starts(admin) == []


# --- Weekly hours ------------------------------------------------------------------------------


def test_weekly_hours_replace_the_current_ones_at_this_location(
    admin: Client, clinic: Location
) -> None:
    doctor = Resource.objects.get(location=clinic, name="Dr. One")

    response = admin.post(
        person(clinic, doctor, "hours/"),
        week("hours", {0: [("08:00", "12:00"), ("13:00", "19:00")], 2: [("10:00", "18:00")]}),
    )

    assert response.status_code == 302
    assert shifts(doctor, clinic) == {
        (0, time(8), time(12), None, None),
        (0, time(13), time(19), None, None),
        (2, time(10), time(18), None, None),
    }
    [event] = setup_audits(AuditAction.UPDATE, "resource")
    assert event.detail["changed"] == ["working_hours"]


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({0: [("12:00", "09:00")]}, "Monday, first shift ends: The end must come after the start."),
        (
            {2: [("08:00", "12:00"), ("11:00", "14:00")]},
            "Wednesday, second shift starts: The second shift must start after the first ends.",
        ),
    ],
)
def test_bad_weekly_hours_are_refused_naming_the_field(
    admin: Client, clinic: Location, hours: dict, message: str
) -> None:
    doctor = Resource.objects.get(location=clinic, name="Dr. One")

    response = admin.post(person(clinic, doctor, "hours/"), week("hours", hours))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert len(shifts(doctor, clinic)) == 7


def test_half_a_shift_is_refused(admin: Client, clinic: Location) -> None:
    doctor = Resource.objects.get(location=clinic, name="Dr. One")

    response = admin.post(person(clinic, doctor, "hours/"), {"hours-d4_1_start": "09:00"})

    assert response.status_code == 400
    assert "Friday, first shift ends: Enter the end" in response.content.decode()


def test_reduced_hours_over_a_booked_visit_are_refused_then_saved_when_confirmed(
    admin: Client, clinic: Location, room: Resource, consultation: AppointmentType, make_patient
) -> None:
    visit = book(consultation, make_patient(), 10)
    before = messages_state()
    assert "2026-12-15T08:00:00-05:00" in offered_starts(admin)
    data = week("hours", every_day("12:00", "18:00"))

    refused = admin.post(person(clinic, room, "hours/"), data)

    assert refused.status_code == 409
    page = refused.content.decode()
    assert visit.reference in page
    assert 'name="hours-d1_1_start" value="12:00"' in page  # the grid keeps what was typed
    assert len(shifts(room, clinic, start=time(8))) == 7

    confirmed = admin.post(person(clinic, room, "hours/"), {**data, "confirm_orphans": "1"})

    assert confirmed.status_code == 302
    assert shifts(room, clinic) == {(d, time(12), time(18), None, None) for d in range(7)}
    assert visit.reference in board_needs_new_time(admin)
    assert messages_state() == before
    starts = offered_starts(admin)
    assert starts
    assert all(s >= "2026-12-15T12:00:00-05:00" for s in starts)


def test_hours_from_a_date_end_the_current_ones_the_day_before(
    admin: Client, clinic: Location
) -> None:
    doctor = Resource.objects.get(location=clinic, name="Dr. One")
    start = date(2027, 1, 4)

    response = admin.post(
        person(clinic, doctor, "hours-from/"),
        week("from", {0: [("09:00", "15:00")]}, valid_from=start.isoformat()),
    )

    assert response.status_code == 302
    assert shifts(doctor, clinic, valid_from=start) == {(0, time(9), time(15), start, None)}
    assert shifts(doctor, clinic, valid_from=None) == {
        (d, time(8), time(18), None, start) for d in range(7)
    }
    page = admin.get(person(clinic, doctor)).content.decode()
    assert "From Monday 4 January 2027:" in page
    assert "Monday 09:00-15:00" in page

    # The weekly hours edited now run until the planned change, which stays.
    admin.post(person(clinic, doctor, "hours/"), week("hours", every_day("07:00", "19:00")))
    assert shifts(doctor, clinic, valid_from=None) == {
        (d, time(7), time(19), None, start) for d in range(7)
    }

    # Cancelling the planned change lets the weekly hours run on.
    dropped = admin.post(person(clinic, doctor, f"hours-from/{start.isoformat()}/remove/"))
    assert dropped.status_code == 302
    assert shifts(doctor, clinic) == {(d, time(7), time(19), None, None) for d in range(7)}
    assert len(setup_audits(AuditAction.DELETE, "resource")) == 1


def test_hours_from_today_or_earlier_are_refused(admin: Client, clinic: Location) -> None:
    doctor = Resource.objects.get(location=clinic, name="Dr. One")

    response = admin.post(
        person(clinic, doctor, "hours-from/"),
        week("from", every_day("09:00", "10:00"), valid_from=TODAY.isoformat()),
    )

    assert response.status_code == 400
    assert "From: Choose a day after today" in response.content.decode()


def test_hours_from_a_date_over_a_booked_visit_are_refused_then_confirmed(
    admin: Client, clinic: Location, room: Resource, consultation: AppointmentType, make_patient
) -> None:
    visit = book(consultation, make_patient(), 10)
    data = week("from", {}, valid_from="2026-12-14")  # no hours at all from Monday

    refused = admin.post(person(clinic, room, "hours-from/"), data)

    assert refused.status_code == 409
    assert visit.reference in refused.content.decode()
    assert shifts(room, clinic) == {(d, time(8), time(18), None, None) for d in range(7)}

    admin.post(person(clinic, room, "hours-from/"), {**data, "confirm_orphans": "1"})

    assert shifts(room, clinic) == {
        (d, time(8), time(18), None, date(2026, 12, 14)) for d in range(7)
    }
    assert Appointment.objects.get(pk=visit.pk).needs_new_time_since == NOW
    assert offered_starts(admin) == []
    assert offered_starts(admin, date(2026, 12, 11))  # before the change: still open


# --- Date overrides ----------------------------------------------------------------------------


def test_a_date_override_gives_that_day_its_own_hours(
    admin: Client, clinic: Location, room: Resource
) -> None:
    response = admin.post(
        person(clinic, room, "overrides/"),
        {
            "override-date": DAY.isoformat(),
            "override-start": "12:00",
            "override-end": "18:00",
            "override-reason": "Short day",
        },
    )

    assert response.status_code == 302
    assert list(
        DateOverride.objects.filter(resource=room, location=clinic).values_list(
            "date", "start", "end", "reason"
        )
    ) == [(DAY, time(12), time(18), "Short day")]
    assert offered_starts(admin)[0] == "2026-12-15T12:00:00-05:00"
    assert len(setup_audits(AuditAction.UPDATE, "resource")) == 1

    removed = admin.post(person(clinic, room, f"overrides/{DAY.isoformat()}/remove/"))

    assert removed.status_code == 302
    assert not DateOverride.objects.exists()
    assert offered_starts(admin)[0] == "2026-12-15T08:00:00-05:00"
    assert len(setup_audits(AuditAction.DELETE, "resource")) == 1


def test_not_working_on_a_booked_day_is_refused_then_confirmed(
    admin: Client, clinic: Location, room: Resource, consultation: AppointmentType, make_patient
) -> None:
    visit = book(consultation, make_patient(), 10)
    before = messages_state()
    data = {"override-date": DAY.isoformat(), "override-off": "on", "override-reason": "Repairs"}

    refused = admin.post(person(clinic, room, "overrides/"), data)

    assert refused.status_code == 409
    assert visit.reference in refused.content.decode()
    assert not DateOverride.objects.exists()

    admin.post(person(clinic, room, "overrides/"), {**data, "confirm_orphans": "1"})

    [override] = DateOverride.objects.all()
    assert (override.date, override.start, override.end) == (DAY, None, None)
    assert visit.reference in board_needs_new_time(admin)
    assert messages_state() == before
    assert offered_starts(admin) == []


def test_an_override_needs_hours_or_not_working(
    admin: Client, clinic: Location, room: Resource
) -> None:
    response = admin.post(person(clinic, room, "overrides/"), {"override-date": DAY.isoformat()})

    assert response.status_code == 400
    assert "Starts: Give that day&#x27;s hours" in response.content.decode()


def test_an_override_in_the_past_is_refused(
    admin: Client, clinic: Location, room: Resource
) -> None:
    response = admin.post(
        person(clinic, room, "overrides/"), {"override-date": "2026-12-01", "override-off": "on"}
    )

    assert response.status_code == 400
    assert "Date: Choose today or a day to come." in response.content.decode()


def test_removing_extra_hours_a_visit_uses_is_refused_then_confirmed(
    admin: Client, clinic: Location, room: Resource, consultation: AppointmentType, make_patient
) -> None:
    # The room's turnover runs past 18:00: a 17:00 visit needs the evening the override adds.
    DateOverride.objects.create(
        resource=room, location=clinic, date=DAY, start=time(8), end=time(20)
    )
    visit = book(consultation, make_patient(), 17)
    remove = person(clinic, room, f"overrides/{DAY.isoformat()}/remove/")

    refused = admin.post(remove)

    assert refused.status_code == 409
    page = refused.content.decode()
    assert visit.reference in page
    assert f'action="{remove}"' in page
    assert DateOverride.objects.exists()

    admin.post(remove, {"confirm_orphans": "1"})

    assert not DateOverride.objects.exists()
    assert Appointment.objects.get(pk=visit.pk).needs_new_time_since == NOW


# --- Time off ----------------------------------------------------------------------------------


def test_time_off_is_saved_in_the_locations_time_and_removed(
    admin: Client, clinic: Location
) -> None:
    doctor = Resource.objects.get(location=clinic, name="Dr. One")

    response = admin.post(
        person(clinic, doctor, "time-off/"),
        {
            "time-off-start": "2026-12-21T08:00",
            "time-off-end": "2026-12-23T18:00",
            "time-off-reason": "Conference",
        },
    )

    assert response.status_code == 302
    off = TimeOff.objects.get(resource=doctor)
    assert (off.start, off.end) == (
        datetime(2026, 12, 21, 13, 0, tzinfo=UTC),
        datetime(2026, 12, 23, 23, 0, tzinfo=UTC),
    )
    assert len(setup_audits(AuditAction.CREATE, "timeoff")) == 1

    removed = admin.post(person(clinic, doctor, f"time-off/{off.pk}/remove/"))

    assert removed.status_code == 302
    assert not TimeOff.objects.exists()
    assert len(setup_audits(AuditAction.DELETE, "timeoff")) == 1


def test_time_off_at_a_skipped_local_time_is_refused_naming_the_field(
    admin: Client, clinic: Location
) -> None:
    doctor = Resource.objects.get(location=clinic, name="Dr. One")

    response = admin.post(
        person(clinic, doctor, "time-off/"),
        {"time-off-start": "2027-03-13T09:00", "time-off-end": "2027-03-14T02:15"},
    )

    assert response.status_code == 400
    assert "Ends: 02:15 does not exist on 2027-03-14" in response.content.decode()
    assert not TimeOff.objects.exists()


def test_time_off_over_a_booked_visit_is_refused_then_saved_when_confirmed(
    admin: Client, clinic: Location, room: Resource, consultation: AppointmentType, make_patient
) -> None:
    visit = book(consultation, make_patient(), 10)
    before = messages_state()
    data = {
        "time-off-start": "2026-12-15T00:00",
        "time-off-end": "2026-12-15T13:00",
        "time-off-reason": "Repainting",
    }

    refused = admin.post(person(clinic, room, "time-off/"), data)

    assert refused.status_code == 409
    page = refused.content.decode()
    assert visit.reference in page
    assert 'value="Repainting"' in page
    assert not TimeOff.objects.exists()

    confirmed = admin.post(person(clinic, room, "time-off/"), {**data, "confirm_orphans": "1"})

    assert confirmed.status_code == 302
    assert TimeOff.objects.filter(resource=room).count() == 1
    assert visit.reference in board_needs_new_time(admin)
    assert messages_state() == before
    starts = offered_starts(admin)
    assert starts
    assert all(s >= "2026-12-15T13:00:00-05:00" for s in starts)


def test_time_off_of_the_other_prescriber_orphans_nothing(
    admin: Client, clinic: Location, consultation: AppointmentType, make_patient
) -> None:
    visit = book(consultation, make_patient(), 10)
    doctor = held(visit, ResourceKind.STAFF)
    other = Resource.objects.filter(location=clinic, role="prescriber").exclude(pk=doctor.pk).get()

    response = admin.post(
        person(clinic, other, "time-off/"),
        {"time-off-start": "2026-12-15T00:00", "time-off-end": "2026-12-16T00:00"},
    )

    assert response.status_code == 302
    assert Appointment.objects.get(pk=visit.pk).needs_new_time_since is None

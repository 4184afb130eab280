"""The day board's "Needs a new time" list: this location's visits to come that a confirmed setup
change left without a resource, until the desk moves or cancels them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from booking.access.roles import Role
from booking.models import Appointment
from booking.services import appointment_cancel, appointment_reschedule
from scheduling.defaults import appointment_types_install_defaults
from scheduling.models import AppointmentType, Location, ResourceKind, StaffRole
from tests.booking.desk.setup.booked import DAY, NOW, at, board_needs_new_time, book
from tests.staff_helpers import client_for, staff_user


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def desk(clinic: Location) -> Client:
    return client_for(staff_user(Role.FRONT_DESK, clinic))


def flag(visit: Appointment, reason: str = "Closed for training.") -> Appointment:
    Appointment.objects.filter(pk=visit.pk).update(
        needs_new_time_since=NOW, needs_new_time_reason=reason
    )
    visit.refresh_from_db()
    return visit


def test_the_board_lists_the_visits_needing_a_new_time_with_a_link_to_each(
    desk: Client, consultation: AppointmentType, make_patient
) -> None:
    visit = flag(book(consultation, make_patient(), 10), "Room 1 has time off.")
    fine = book(consultation, make_patient(), 14)

    listed = board_needs_new_time(desk)

    assert f'href="/staff/appointments/{visit.reference}/"' in listed
    assert "Tuesday 15 December 2026 at 10:00 AM EST" in listed
    assert consultation.name in listed
    assert "Room 1 has time off." in listed
    assert fine.reference not in listed


def test_the_list_is_absent_when_no_visit_needs_a_new_time(
    desk: Client, consultation: AppointmentType, make_patient
) -> None:
    book(consultation, make_patient(), 10)

    assert board_needs_new_time(desk) == ""


def test_the_list_leaves_out_other_locations_and_visits_that_are_over(
    clinic: Location,
    desk: Client,
    consultation: AppointmentType,
    make_patient,
    make_location,
    make_resource,
) -> None:
    visit = flag(book(consultation, make_patient(), 10))
    theirs = make_location()
    appointment_types_install_defaults(location=theirs)
    make_resource(theirs, ResourceKind.STAFF, role=StaffRole.PRESCRIBER)
    make_resource(theirs, ResourceKind.ROOM)
    their_consultation = AppointmentType.objects.get(location=theirs, slug="consultation")
    foreign = flag(book(their_consultation, make_patient(), 10))

    listed = board_needs_new_time(desk)
    assert visit.reference in listed
    assert foreign.reference not in listed

    with time_machine.travel(at(12), tick=False):
        # Signed in afresh: a week later the idle session has ended.
        later = client_for(staff_user(Role.FRONT_DESK, clinic))
        assert board_needs_new_time(later) == ""


def test_moving_a_visit_takes_it_off_the_list(
    desk: Client, consultation: AppointmentType, make_patient
) -> None:
    visit = flag(book(consultation, make_patient(), 10))

    moved = appointment_reschedule(appointment=visit, start=at(10, day=DAY + timedelta(days=1)))

    assert moved.needs_new_time_since is None
    assert moved.needs_new_time_reason == ""
    assert Appointment.objects.get(pk=visit.pk).needs_new_time_since is None
    assert board_needs_new_time(desk) == ""


def test_cancelling_a_visit_takes_it_off_the_list(
    desk: Client, consultation: AppointmentType, make_patient
) -> None:
    visit = flag(book(consultation, make_patient(), 10))

    appointment_cancel(appointment=visit, reason="Patient will call back")

    assert Appointment.objects.get(pk=visit.pk).needs_new_time_since is None
    assert board_needs_new_time(desk) == ""

from collections.abc import Callable
from datetime import datetime

import pytest
import time_machine

from booking.errors import InvalidTransition
from booking.models import Allocation, Appointment, AppointmentStatus, Patient
from booking.services import appointment_book, appointment_cancel

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # 08:00 in New York
TEN = datetime.fromisoformat("2026-06-03T10:00-04:00")


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


@time_machine.travel(NOW, tick=False)
def test_it_cancels_and_frees_every_lane(infusion, make_patient):
    appointment = appointment_book(appointment_type=infusion, patient=make_patient(), start=TEN)

    cancelled = appointment_cancel(appointment=appointment, reason="patient request")

    assert cancelled.status == AppointmentStatus.CANCELLED
    assert cancelled.cancel_reason == "patient request"
    assert cancelled.version == 1
    assert Allocation.objects.filter(appointment=appointment).count() == 3
    assert not Allocation.objects.filter(appointment=appointment, active=True).exists()


@time_machine.travel(NOW, tick=False)
def test_a_cancelled_chair_can_be_booked_again(one_chair, make_patient):
    appointment = appointment_book(appointment_type=one_chair, patient=make_patient(), start=TEN)

    appointment_cancel(appointment=appointment)

    appointment_book(appointment_type=one_chair, patient=make_patient(), start=TEN)


@time_machine.travel(NOW, tick=False)
def test_cancelling_twice_changes_nothing_the_second_time(one_chair, make_patient, announcements):
    appointment = appointment_book(appointment_type=one_chair, patient=make_patient(), start=TEN)
    appointment_cancel(appointment=appointment, reason="first")
    # Someone else takes the freed chair; a repeated cancel must not touch their lane.
    other = appointment_book(appointment_type=one_chair, patient=make_patient(), start=TEN)

    again = appointment_cancel(appointment=appointment, reason="second")

    assert (again.status, again.version, again.cancel_reason) == (
        AppointmentStatus.CANCELLED,
        1,
        "first",
    )
    assert Allocation.objects.filter(appointment=other, active=True).count() == 1
    assert [a.change for a in announcements] == ["booked", "cancelled", "booked"]


@time_machine.travel(NOW, tick=False)
def test_a_cancel_is_announced_once_inside_its_transaction(one_chair, make_patient, announcements):
    appointment = appointment_book(appointment_type=one_chair, patient=make_patient(), start=TEN)
    announcements.clear()

    appointment_cancel(appointment=appointment)
    appointment_cancel(appointment=appointment)

    assert [(a.change, a.appointment_id, a.version, a.in_transaction) for a in announcements] == [
        ("cancelled", appointment.pk, 1, True)
    ]


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "status", [AppointmentStatus.DISCHARGED, AppointmentStatus.IN_CHAIR, AppointmentStatus.NO_SHOW]
)
def test_it_refuses_to_cancel_a_visit_that_has_happened(one_chair, make_patient, status):
    appointment = appointment_book(appointment_type=one_chair, patient=make_patient(), start=TEN)
    Appointment.objects.filter(pk=appointment.pk).update(status=status)

    with pytest.raises(InvalidTransition) as refused:
        appointment_cancel(appointment=appointment)

    assert refused.value.field == "status"
    appointment.refresh_from_db()
    assert (appointment.status, appointment.version) == (status, 0)


@time_machine.travel(NOW, tick=False)
def test_a_long_reason_is_cut_to_fit(one_chair, make_patient):
    appointment = appointment_book(appointment_type=one_chair, patient=make_patient(), start=TEN)

    cancelled = appointment_cancel(appointment=appointment, reason="x" * 2000)

    cancelled.refresh_from_db()
    assert cancelled.cancel_reason == "x" * 500

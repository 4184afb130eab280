from collections.abc import Callable
from datetime import datetime

import pytest
import time_machine

from booking.errors import InvalidTransition, PatientBusy, PolicyViolation, SlotTaken
from booking.models import Allocation, Appointment, AppointmentStatus, Patient
from booking.services import appointment_book, appointment_cancel, appointment_reschedule

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # 08:00 in New York


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def held(
    appointment: Appointment, *, active: bool = True
) -> list[tuple[int, int, datetime, datetime]]:
    return sorted(
        Allocation.objects.filter(appointment=appointment, active=active).values_list(
            "resource_id", "lane", "start", "end"
        )
    )


@time_machine.travel(NOW, tick=False)
def test_it_moves_every_allocation_to_the_new_time(infusion, make_patient):
    appointment = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )
    before = held(appointment)

    moved = appointment_reschedule(appointment=appointment, start=at("2026-06-04T14:00-04:00"))

    shift = at("2026-06-04T14:00-04:00") - at("2026-06-03T10:00-04:00")
    assert held(moved) == [(rid, lane, s + shift, e + shift) for rid, lane, s, e in before]
    assert held(moved, active=False) == before
    moved.refresh_from_db()
    assert (moved.start, moved.end) == (at("2026-06-04T14:00-04:00"), at("2026-06-04T15:30-04:00"))
    assert moved.version == 1


@time_machine.travel(NOW, tick=False)
def test_it_releases_the_old_time_for_someone_else(one_chair, make_patient):
    appointment = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )

    appointment_reschedule(appointment=appointment, start=at("2026-06-03T13:00-04:00"))

    appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )


@time_machine.travel(NOW, tick=False)
def test_a_visit_can_move_by_less_than_its_length_on_its_own_chair(one_chair, make_patient):
    appointment = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )

    moved = appointment_reschedule(appointment=appointment, start=at("2026-06-03T10:30-04:00"))

    assert held(moved)[0][2:] == (at("2026-06-03T10:30-04:00"), at("2026-06-03T12:00-04:00"))


@time_machine.travel(NOW, tick=False)
def test_each_move_raises_the_version(one_chair, make_patient):
    appointment = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )

    appointment_reschedule(appointment=appointment, start=at("2026-06-03T12:00-04:00"))
    appointment_reschedule(appointment=appointment, start=at("2026-06-03T14:00-04:00"))

    appointment.refresh_from_db()
    assert appointment.version == 2
    assert len(held(appointment)) == 1
    assert len(held(appointment, active=False)) == 2


@time_machine.travel(NOW, tick=False)
def test_it_refuses_a_taken_time_and_leaves_the_visit_as_it_was(one_chair, make_patient):
    appointment = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )
    appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T13:00-04:00")
    )
    before = list(
        Allocation.objects.filter(appointment=appointment).values_list(
            "id", "lane", "start", "end", "active"
        )
    )

    with pytest.raises(SlotTaken) as refused:
        appointment_reschedule(appointment=appointment, start=at("2026-06-03T12:00-04:00"))

    assert refused.value.field == "start"
    appointment.refresh_from_db()
    assert (appointment.start, appointment.version, appointment.status) == (
        at("2026-06-03T10:00-04:00"),
        0,
        AppointmentStatus.BOOKED,
    )
    after = list(
        Allocation.objects.filter(appointment=appointment).values_list(
            "id", "lane", "start", "end", "active"
        )
    )
    assert after == before


@time_machine.travel(NOW, tick=False)
def test_it_refuses_a_move_onto_the_patients_other_visit(one_chair, consultation, make_patient):
    patient = make_patient()
    appointment = appointment_book(
        appointment_type=one_chair, patient=patient, start=at("2026-06-03T10:00-04:00")
    )
    appointment_book(
        appointment_type=consultation, patient=patient, start=at("2026-06-03T14:00-04:00")
    )

    with pytest.raises(PatientBusy):
        appointment_reschedule(appointment=appointment, start=at("2026-06-03T13:00-04:00"))

    appointment.refresh_from_db()
    assert appointment.start == at("2026-06-03T10:00-04:00")


@time_machine.travel(NOW, tick=False)
def test_it_refuses_to_move_a_cancelled_visit(one_chair, make_patient):
    appointment = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )
    appointment_cancel(appointment=appointment)

    with pytest.raises(InvalidTransition):
        appointment_reschedule(appointment=appointment, start=at("2026-06-03T13:00-04:00"))

    assert not held(appointment)


@time_machine.travel(at("2026-06-01T02:00+00:00"), tick=False)  # 22:00 the evening before
def test_an_online_move_needs_the_minimum_notice(consultation, make_patient):
    appointment = appointment_book(
        appointment_type=consultation,
        patient=make_patient(),
        start=at("2026-06-03T10:00-04:00"),
        source="online",
    )

    with pytest.raises(PolicyViolation) as refused:
        appointment_reschedule(
            appointment=appointment, start=at("2026-06-01T09:45-04:00"), online=True
        )

    assert refused.value.field == "start"
    appointment.refresh_from_db()
    assert appointment.start == at("2026-06-03T10:00-04:00")


@time_machine.travel(NOW, tick=False)
def test_a_move_is_announced_once_inside_its_transaction(one_chair, make_patient, announcements):
    appointment = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )
    announcements.clear()

    appointment_reschedule(appointment=appointment, start=at("2026-06-03T13:00-04:00"))

    assert [(a.change, a.appointment_id, a.version, a.in_transaction) for a in announcements] == [
        ("rescheduled", appointment.pk, 1, True)
    ]


@time_machine.travel(NOW, tick=False)
def test_a_refused_move_is_not_announced(one_chair, make_patient, announcements):
    appointment = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )
    appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T13:00-04:00")
    )
    announcements.clear()

    with pytest.raises(SlotTaken):
        appointment_reschedule(appointment=appointment, start=at("2026-06-03T12:00-04:00"))

    assert announcements == []

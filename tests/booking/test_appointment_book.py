from collections.abc import Callable
from datetime import datetime

import pytest
import time_machine

from booking.errors import BookingError, PatientBusy, PolicyViolation, SlotTaken
from booking.models import Allocation, Appointment, Patient
from booking.services import appointment_book, appointment_cancel
from booking.signals import appointment_changed
from scheduling.defaults import appointment_types_install_defaults
from scheduling.models import AppointmentType, ResourceKind, StaffRole
from tests.conftest import approve

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # 08:00 in New York


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def chair_spans(appointment: Appointment) -> list[tuple[datetime, datetime]]:
    return list(
        Allocation.objects.filter(appointment=appointment, active=True)
        .order_by("start")
        .values_list("start", "end")
    )


@pytest.mark.django_db
@time_machine.travel(datetime.fromisoformat("2026-06-01T12:00:00+00:00"), tick=False)
def test_it_books_a_chair_nurse_and_prescriber_for_an_infusion(infusion, make_patient):
    start = datetime.fromisoformat("2026-06-03T10:00:00-04:00")

    appointment = appointment_book(appointment_type=infusion, patient=make_patient(), start=start)

    spans = sorted(
        (a.resource.kind, a.resource.role, int((a.end - a.start).total_seconds() // 60))
        for a in Allocation.objects.filter(appointment=appointment).select_related("resource")
    )
    assert spans == [("chair", "", 100), ("staff", "nurse", 90), ("staff", "prescriber", 15)]


@pytest.mark.django_db
@time_machine.travel(datetime.fromisoformat("2026-06-01T12:00:00+00:00"), tick=False)
def test_a_cancelled_visit_frees_its_time(consultation, make_patient):
    start = datetime.fromisoformat("2026-06-03T10:00:00-04:00")
    booked = [
        appointment_book(appointment_type=consultation, patient=make_patient(), start=start)
    ]  # one room: the second consultation at 10:00 must wait
    with pytest.raises(SlotTaken):
        appointment_book(appointment_type=consultation, patient=make_patient(), start=start)

    appointment_cancel(appointment=booked[0], reason="patient request")

    appointment_book(appointment_type=consultation, patient=make_patient(), start=start)


# --- Overlap on one chair ----------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_it_refuses_a_visit_that_partly_overlaps_another_on_the_same_chair(one_chair, make_patient):
    first = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )

    with pytest.raises(SlotTaken) as refused:
        appointment_book(
            appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T11:00-04:00")
        )

    assert refused.value.field == "start"
    assert Appointment.objects.count() == 1
    assert chair_spans(first) == [(at("2026-06-03T10:00-04:00"), at("2026-06-03T11:30-04:00"))]


@time_machine.travel(NOW, tick=False)
def test_it_refuses_a_visit_that_starts_before_another_and_runs_into_it(one_chair, make_patient):
    appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T11:00-04:00")
    )

    with pytest.raises(SlotTaken):
        appointment_book(
            appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T09:45-04:00")
        )


@time_machine.travel(NOW, tick=False)
def test_it_accepts_back_to_back_visits_on_a_chair_without_turnover(one_chair, make_patient):
    appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )
    second = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T11:30-04:00")
    )
    before = appointment_book(
        appointment_type=one_chair, patient=make_patient(), start=at("2026-06-03T08:30-04:00")
    )

    assert chair_spans(second) == [(at("2026-06-03T11:30-04:00"), at("2026-06-03T13:00-04:00"))]
    assert chair_spans(before) == [(at("2026-06-03T08:30-04:00"), at("2026-06-03T10:00-04:00"))]


@time_machine.travel(NOW, tick=False)
def test_the_next_visit_on_a_chair_waits_for_its_turnover(
    make_location, make_resource, make_type, make_patient
):
    location = make_location()
    make_resource(location, ResourceKind.CHAIR)
    turnover = make_type(
        location,
        duration=90,
        grid_minutes=10,
        needs=[{"resource_kind": ResourceKind.CHAIR, "buffer_after_minutes": 10}],
    )
    first = appointment_book(
        appointment_type=turnover, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )

    with pytest.raises(SlotTaken):
        appointment_book(
            appointment_type=turnover, patient=make_patient(), start=at("2026-06-03T11:30-04:00")
        )
    second = appointment_book(
        appointment_type=turnover, patient=make_patient(), start=at("2026-06-03T11:40-04:00")
    )

    assert chair_spans(first) == [(at("2026-06-03T10:00-04:00"), at("2026-06-03T11:40-04:00"))]
    assert (second.start, second.end) == (
        at("2026-06-03T11:40-04:00"),
        at("2026-06-03T13:10-04:00"),
    )


@time_machine.travel(NOW, tick=False)
def test_a_default_infusion_keeps_its_chair_ten_minutes_after_the_visit(
    make_location, make_resource, make_patient
):
    location = make_location()
    appointment_types_install_defaults(location=location)
    make_resource(location, ResourceKind.CHAIR)
    make_resource(location, ResourceKind.STAFF, role=StaffRole.NURSE, capacity=3)
    make_resource(location, ResourceKind.STAFF, role=StaffRole.PRESCRIBER)
    infusion = AppointmentType.objects.get(location=location, slug="iv-mood")

    def book(start: str) -> None:
        # The approval gate has its own tests (test_eligibility.py); this is about lanes.
        patient = approve(make_patient(), infusion)
        appointment_book(appointment_type=infusion, patient=patient, start=at(start))

    book("2026-06-03T10:00-04:00")
    with pytest.raises(SlotTaken):
        book("2026-06-03T11:30-04:00")
    # The turnover ends at 11:40, between two marks of the 15-minute grid.
    book("2026-06-03T11:45-04:00")


# --- Capacity ----------------------------------------------------------------------------------


def nurse_lanes(appointment_type: AppointmentType) -> list[int]:
    return sorted(
        Allocation.objects.filter(
            appointment__appointment_type=appointment_type,
            resource__role=StaffRole.NURSE,
            active=True,
        ).values_list("lane", flat=True)
    )


@time_machine.travel(NOW, tick=False)
def test_a_nurse_watches_three_infusions_at_once_and_refuses_a_fourth(
    one_nurse_four_chairs, make_patient
):
    start = at("2026-06-03T10:00-04:00")

    def book() -> Appointment:
        patient = approve(make_patient(), one_nurse_four_chairs)
        return appointment_book(
            appointment_type=one_nurse_four_chairs, patient=patient, start=start
        )

    booked = [book() for _ in range(3)]

    with pytest.raises(SlotTaken):
        book()

    assert nurse_lanes(one_nurse_four_chairs) == [0, 1, 2]
    appointment_cancel(appointment=booked[1])
    book()
    assert nurse_lanes(one_nurse_four_chairs) == [0, 1, 2]


# --- The patient's own time --------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_it_refuses_a_patient_two_overlapping_visits_on_different_resources(
    consultation, infusion, make_patient
):
    patient = make_patient()
    appointment_book(
        appointment_type=consultation, patient=patient, start=at("2026-06-03T10:00-04:00")
    )

    with pytest.raises(PatientBusy) as refused:
        appointment_book(
            appointment_type=infusion, patient=patient, start=at("2026-06-03T10:30-04:00")
        )

    assert refused.value.field == "start"
    assert Appointment.objects.filter(patient=patient).count() == 1


@time_machine.travel(NOW, tick=False)
def test_a_patient_may_book_again_once_the_visit_is_over_or_cancelled(
    consultation, infusion, make_patient
):
    patient = make_patient()
    consult = appointment_book(
        appointment_type=consultation, patient=patient, start=at("2026-06-03T10:00-04:00")
    )
    appointment_book(appointment_type=infusion, patient=patient, start=at("2026-06-03T11:00-04:00"))

    appointment_cancel(appointment=consult)
    # Over the cancelled consultation (one treatment a day is the infusion at 11:00).
    appointment_book(
        appointment_type=consultation, patient=patient, start=at("2026-06-03T09:30-04:00")
    )


# --- Rules about the start itself ---------------------------------------------------------------


@time_machine.travel(at("2026-06-01T02:00+00:00"), tick=False)  # 22:00 the evening before
def test_an_online_booking_needs_the_minimum_notice(consultation, make_patient):
    # Twelve hours of notice from 22:00 means 10:00 the next morning.
    with pytest.raises(PolicyViolation) as refused:
        appointment_book(
            appointment_type=consultation,
            patient=make_patient(),
            start=at("2026-06-01T09:45-04:00"),
            source="online",
        )
    assert refused.value.field == "start"

    appointment_book(
        appointment_type=consultation,
        patient=make_patient(),
        start=at("2026-06-01T10:00-04:00"),
        source="online",
    )


@time_machine.travel(at("2026-06-01T02:00+00:00"), tick=False)
def test_the_front_desk_may_book_inside_the_online_notice(consultation, make_patient):
    appointment = appointment_book(
        appointment_type=consultation, patient=make_patient(), start=at("2026-06-01T08:00-04:00")
    )

    assert appointment.source == "staff"


@time_machine.travel(NOW, tick=False)
def test_it_refuses_a_start_beyond_the_horizon(consultation, make_patient):
    # Ninety days from 08:00 on 1 June is 08:00 on 30 August: that slot is the last one.
    appointment_book(
        appointment_type=consultation, patient=make_patient(), start=at("2026-08-30T08:00-04:00")
    )

    with pytest.raises(PolicyViolation) as refused:
        appointment_book(
            appointment_type=consultation,
            patient=make_patient(),
            start=at("2026-08-30T08:15-04:00"),
        )
    assert refused.value.field == "start"


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "start",
    [
        "2026-06-03T10:05:00-04:00",
        "2026-06-03T10:00:30-04:00",
        "2026-06-03T10:00:00.250000-04:00",
    ],
)
def test_it_refuses_a_start_off_the_local_grid(consultation, make_patient, start):
    with pytest.raises(PolicyViolation) as refused:
        appointment_book(appointment_type=consultation, patient=make_patient(), start=at(start))

    assert refused.value.field == "start"
    assert not Appointment.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_it_refuses_a_start_in_the_past(consultation, make_patient):
    with pytest.raises(PolicyViolation) as refused:
        appointment_book(
            appointment_type=consultation,
            patient=make_patient(),
            start=at("2026-06-01T07:45-04:00"),
        )

    assert refused.value.field == "start"


@time_machine.travel(NOW, tick=False)
def test_it_refuses_a_naive_start(consultation, make_patient):
    naive = datetime(2026, 6, 3, 10, 0)  # noqa: DTZ001 - the input under test

    with pytest.raises(BookingError) as refused:
        appointment_book(appointment_type=consultation, patient=make_patient(), start=naive)

    assert refused.value.field == "start"
    assert refused.value.status == 400
    assert not Appointment.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_it_refuses_a_start_outside_working_hours(consultation, make_patient):
    with pytest.raises(SlotTaken):
        appointment_book(
            appointment_type=consultation,
            patient=make_patient(),
            start=at("2026-06-03T17:15-04:00"),  # would end at 18:15, after closing
        )


@time_machine.travel(NOW, tick=False)
def test_it_uses_the_clock_it_is_given(consultation, make_patient):
    later = at("2026-06-10T12:00+00:00")

    with pytest.raises(PolicyViolation):
        appointment_book(
            appointment_type=consultation,
            patient=make_patient(),
            start=at("2026-06-03T10:00-04:00"),
            now=later,
        )


# --- The announcement -----------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_a_booking_is_announced_once(consultation, make_patient, announcements):
    appointment = appointment_book(
        appointment_type=consultation, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )

    assert [(a.change, a.appointment_id, a.version) for a in announcements] == [
        ("booked", appointment.pk, 0)
    ]


@time_machine.travel(NOW, tick=False)
def test_a_refused_booking_is_not_announced(consultation, make_patient, announcements):
    start = at("2026-06-03T10:00-04:00")
    appointment_book(appointment_type=consultation, patient=make_patient(), start=start)
    announcements.clear()

    with pytest.raises(SlotTaken):
        appointment_book(appointment_type=consultation, patient=make_patient(), start=start)

    assert announcements == []


class ListenerFailed(Exception):
    pass


@time_machine.travel(NOW, tick=False)
def test_a_failing_listener_undoes_the_booking(consultation, make_patient):
    def fail(**kwargs: object) -> None:
        raise ListenerFailed

    appointment_changed.connect(fail, dispatch_uid="tests-fail")
    try:
        with pytest.raises(ListenerFailed):
            appointment_book(
                appointment_type=consultation,
                patient=make_patient(),
                start=at("2026-06-03T10:00-04:00"),
            )
    finally:
        appointment_changed.disconnect(dispatch_uid="tests-fail")

    assert not Appointment.objects.exists()
    assert not Allocation.objects.exists()


@pytest.mark.django_db(transaction=True)
@time_machine.travel(NOW, tick=False)
def test_a_booking_is_announced_inside_its_transaction(consultation, make_patient, announcements):
    appointment_book(
        appointment_type=consultation, patient=make_patient(), start=at("2026-06-03T10:00-04:00")
    )

    assert [a.in_transaction for a in announcements] == [True]

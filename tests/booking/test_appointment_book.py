from datetime import datetime

import pytest
import time_machine

from booking.errors import SlotTaken
from booking.models import Allocation
from booking.services import appointment_book, appointment_cancel


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

"""A patient's own choice of channels decides which reminders are planned for them."""

from collections.abc import Callable
from datetime import datetime

import pytest
import time_machine

from booking.models import Patient
from booking.services import appointment_book
from notifications.models import OutboundMessage
from scheduling.models import AppointmentType

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
START = datetime.fromisoformat("2026-06-05T10:00:00-04:00")


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about channels."""
    return make_approved_patient


def planned_channels(patient: Patient) -> set[str]:
    return set(
        OutboundMessage.objects.filter(appointment__patient=patient).values_list(
            "channel", flat=True
        )
    )


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("email_reminders", "sms_reminders", "expected"),
    [
        (True, True, {"email", "sms"}),
        (True, False, {"email"}),
        (False, True, {"sms"}),
        (False, False, set()),
    ],
)
def test_reminders_go_only_by_the_channels_the_patient_chose(
    infusion: AppointmentType,
    make_patient: Callable[..., Patient],
    email_reminders: bool,
    sms_reminders: bool,
    expected: set[str],
) -> None:
    patient = make_patient(
        sms_consent=True, email_reminders=email_reminders, sms_reminders=sms_reminders
    )

    appointment_book(appointment_type=infusion, patient=patient, start=START)

    assert planned_channels(patient) == expected


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_patient_who_wants_texts_gets_none_without_consent(
    infusion: AppointmentType, make_patient: Callable[..., Patient]
) -> None:
    patient = make_patient(sms_consent=False, sms_reminders=True)

    appointment_book(appointment_type=infusion, patient=patient, start=START)

    assert planned_channels(patient) == {"email"}

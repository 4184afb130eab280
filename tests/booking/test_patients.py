"""The patient's record outside a visit (``booking.patients``): registering at the desk after the
likely duplicates, the allergies, the contraindications flagged since a decision; and the escort's
details taken by phone (``booking.services.appointment_escort_update``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied

from booking import checkin
from booking.access.roles import Role
from booking.eligibility import contraindication_flag
from booking.errors import BookingError, InvalidTransition
from booking.models import Appointment, AppointmentEvent, Contraindication, Patient
from booking.patients import (
    ALLERGIES_MAX_LENGTH,
    PossibleDuplicate,
    contraindications_flagged,
    patient_allergies_record,
    patient_duplicates,
    patient_register,
)
from booking.services import PatientDetails, appointment_book, appointment_escort_update
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import staff_user

NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)  # Wednesday 09:00 EST
BOOKED_AT = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
TEN_AM = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def desk(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic, username="desk.dan")


@pytest.fixture
def nurse(clinic: Location) -> User:
    return staff_user(Role.NURSE, clinic, username="nurse.joy")


@pytest.fixture
def ada(make_approved_patient: Callable[..., Patient], infusion: AppointmentType) -> Patient:
    """A patient with a visit at the desk's location."""
    patient = make_approved_patient(
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=date(1985, 12, 10),
        email="ada@example.com",
        phone="+12125550123",
    )
    appointment_book(appointment_type=infusion, patient=patient, start=TEN_AM, now=BOOKED_AT)
    return patient


@pytest.fixture
def visit(ada: Patient) -> Appointment:
    return ada.appointments.get()


def details(**fields: object) -> PatientDetails:
    values: dict[str, object] = {
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": "grace@example.com",
        "phone": "+12125550199",
        "date_of_birth": date(1970, 5, 1),
    }
    values.update(fields)
    return PatientDetails(**values)  # type: ignore[arg-type]


# --- Likely duplicates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "matches"),
    [
        (
            {"first_name": "ADA", "last_name": "lovelace", "date_of_birth": date(1985, 12, 10)},
            ("name and date of birth",),
        ),
        ({"email": "Ada@Example.COM"}, ("e-mail",)),
        ({"phone": "+12125550123"}, ("phone",)),
        (
            {"email": "ada@example.com", "phone": "+12125550123"},
            ("e-mail", "phone"),
        ),
    ],
)
def test_a_likely_duplicate_is_found_by_name_and_birth_by_email_or_by_phone(
    ada: Patient, desk: User, fields: dict[str, object], matches: tuple[str, ...]
) -> None:
    found = patient_duplicates(user=desk, details=details(**fields))

    assert [(d.patient, d.matches) for d in found] == [(ada, matches)]


def test_the_same_name_born_another_day_is_not_a_duplicate(ada: Patient, desk: User) -> None:
    lookalike = details(first_name="Ada", last_name="Lovelace", date_of_birth=date(1985, 12, 11))

    assert patient_duplicates(user=desk, details=lookalike) == []


def test_a_patient_of_another_location_is_never_shown_as_a_duplicate(
    ada: Patient, make_location: Callable[..., Location]
) -> None:
    elsewhere = staff_user(Role.FRONT_DESK, make_location())

    assert patient_duplicates(user=elsewhere, details=details(email="ada@example.com")) == []


def test_a_patient_with_no_visit_yet_is_shown_to_every_desk(
    make_patient: Callable[..., Patient], make_location: Callable[..., Location]
) -> None:
    waiting = make_patient(phone="+12125550199")
    anywhere = staff_user(Role.FRONT_DESK, make_location())

    found = patient_duplicates(user=anywhere, details=details())

    assert [d.patient for d in found] == [waiting]


# --- Registering -------------------------------------------------------------------------------


def test_registering_a_likely_duplicate_is_refused_until_confirmed(
    ada: Patient, desk: User
) -> None:
    again = details(first_name="Ada", last_name="Lovelace", date_of_birth=date(1985, 12, 10))

    with pytest.raises(PossibleDuplicate) as refused:
        patient_register(details=again, by=desk, now=NOW)

    assert [d.patient for d in refused.value.duplicates] == [ada]
    assert Patient.objects.count() == 1

    twin = patient_register(details=again, by=desk, different_person=True, now=NOW)

    assert Patient.objects.count() == 2
    assert (twin.first_name, twin.last_name, twin.needs_review) == ("Ada", "Lovelace", False)


def test_a_new_patient_is_registered_with_the_allergies_as_asked(desk: User) -> None:
    asked = patient_register(details=details(), by=desk, allergies="Penicillin: rash", now=NOW)
    none = patient_register(
        details=details(email="b@example.com", phone="+12125550198", first_name="B"),
        by=desk,
        allergies="",
        now=NOW,
    )
    unasked = patient_register(
        details=details(email="c@example.com", phone="+12125550197", first_name="C"),
        by=desk,
        now=NOW,
    )

    assert (asked.allergies, asked.allergies_recorded_at, asked.allergies_recorded_by) == (
        "Penicillin: rash",
        NOW,
        desk,
    )
    assert (none.allergies, none.allergies_recorded_at, none.allergies_recorded_by) == (
        "",
        NOW,
        desk,
    )
    assert (unasked.allergies_recorded_at, unasked.allergies_recorded_by) == (None, None)
    assert not asked.needs_review


def test_a_resemblance_the_desk_cannot_see_is_saved_for_review_without_being_shown(
    ada: Patient, make_location: Callable[..., Location]
) -> None:
    elsewhere = staff_user(Role.FRONT_DESK, make_location())

    created = patient_register(details=details(email="ada@example.com"), by=elsewhere, now=NOW)

    assert created.needs_review


def test_only_a_role_that_books_may_register(nurse: User) -> None:
    with pytest.raises(PermissionDenied):
        patient_register(details=details(), by=nurse, now=NOW)

    assert not Patient.objects.exists()


# --- Allergies ---------------------------------------------------------------------------------


def test_allergies_are_recorded_with_who_and_when(ada: Patient, nurse: User) -> None:
    assert ada.allergies_recorded_at is None  # not asked yet

    patient_allergies_record(patient=ada, allergies="  Latex  ", by=nurse, now=NOW)

    ada.refresh_from_db()
    assert (ada.allergies, ada.allergies_recorded_at, ada.allergies_recorded_by) == (
        "Latex",
        NOW,
        nurse,
    )


def test_none_known_is_an_answer(ada: Patient, desk: User) -> None:
    patient_allergies_record(patient=ada, allergies="", by=desk, now=NOW)

    ada.refresh_from_db()
    assert (ada.allergies, ada.allergies_recorded_at) == ("", NOW)


def test_allergies_need_a_role_that_reviews_medications_or_changes_visits(ada: Patient) -> None:
    nobody = User.objects.create_user("nobody")

    with pytest.raises(PermissionDenied):
        patient_allergies_record(patient=ada, allergies="Latex", by=nobody, now=NOW)


def test_allergies_too_long_are_refused(ada: Patient, nurse: User) -> None:
    with pytest.raises(BookingError) as refused:
        patient_allergies_record(
            patient=ada, allergies="x" * (ALLERGIES_MAX_LENGTH + 1), by=nurse, now=NOW
        )

    assert refused.value.field == "allergies"


# --- Contraindications flagged -----------------------------------------------------------------


def test_only_flags_outside_a_decision_are_listed_as_flagged(ada: Patient, nurse: User) -> None:
    psychosis = Contraindication.objects.get(slug="psychosis_history")
    assert ada.contraindication_answers.exists()  # the approval's answers, all "absent"

    flag = contraindication_flag(
        patient=ada, contraindication=psychosis, by=nurse, note="Told us today", now=NOW
    )

    assert contraindications_flagged(ada) == [flag]
    assert (flag.recorded_by, flag.recorded_at, flag.note) == (nurse, NOW, "Told us today")


# --- The escort taken by phone -----------------------------------------------------------------


def test_the_desk_takes_the_escort_by_phone_and_the_checklist_item_is_done(
    visit: Appointment, desk: User
) -> None:
    escort = {i.key: i.done for i in checkin.appointment_checklist(visit)}["escort"]
    assert escort is False

    appointment_escort_update(
        appointment=visit, name="Sam Escort", phone="+12125550177", by=desk, now=NOW
    )

    visit.refresh_from_db()
    assert (visit.escort_name, visit.escort_phone) == ("Sam Escort", "+12125550177")
    assert (visit.escort_recorded_by, visit.escort_updated_at) == (desk, NOW)
    assert {i.key: i.done for i in checkin.appointment_checklist(visit)}["escort"] is True
    event = AppointmentEvent.objects.get(appointment=visit, kind="escort_recorded")
    assert (event.by, event.at) == (desk, NOW)


def test_details_the_patient_gives_through_their_link_have_no_recorder(
    visit: Appointment, desk: User
) -> None:
    appointment_escort_update(
        appointment=visit, name="Sam Escort", phone="+12125550177", by=desk, now=BOOKED_AT
    )

    appointment_escort_update(appointment=visit, name="Kim Escort", phone="+12125550166", now=NOW)

    visit.refresh_from_db()
    assert (visit.escort_name, visit.escort_recorded_by, visit.escort_updated_at) == (
        "Kim Escort",
        None,
        NOW,
    )
    assert [e.by for e in visit.events.filter(kind="escort_recorded")] == [desk, None]


def test_a_role_that_cannot_change_visits_cannot_take_the_escort(
    visit: Appointment, nurse: User
) -> None:
    with pytest.raises(PermissionDenied):
        appointment_escort_update(
            appointment=visit, name="Sam Escort", phone="+12125550177", by=nurse, now=NOW
        )

    visit.refresh_from_db()
    assert visit.escort_name == ""


def test_the_escort_of_a_visit_already_begun_is_not_changed(visit: Appointment, desk: User) -> None:
    with pytest.raises(InvalidTransition):
        appointment_escort_update(
            appointment=visit, name="Sam Escort", phone="+12125550177", by=desk, now=TEN_AM
        )

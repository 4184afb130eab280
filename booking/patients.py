"""The patient's record outside any one visit: registering a new patient at the desk, the
allergies kept beside the medications, and the contraindications flagged since a decision.

Registering shows the desk the likely duplicates first (:func:`patient_duplicates`): a second
record for one person splits their history, their plan and their reminders. Only patients the
staff member may see are shown; a resembling record elsewhere is never revealed, and the new
record is flagged (``needs_review``) for someone who can see both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from booking.access.roles import BOOK, may_record_allergies
from booking.access.scoping import patients_for
from booking.errors import BookingError
from booking.models import ContraindicationAnswer, Patient
from booking.services import PatientDetails

# What the desk may type about allergies; the form and the service share the bound.
ALLERGIES_MAX_LENGTH = 2000
# A registration shows this many likely duplicates at most: enough to recognise the person,
# too few to browse the register with.
DUPLICATES_SHOWN = 10


class PossibleDuplicate(BookingError):
    """Patients the desk may see look like the one being registered: the desk picks one of them
    or confirms this is a different person."""

    status = 409
    code = "possible_duplicate"

    def __init__(self, message: str, *, duplicates: list[LikelyDuplicate]) -> None:
        super().__init__(message)
        self.duplicates = duplicates


@dataclass(frozen=True)
class LikelyDuplicate:
    patient: Patient
    # What matched, in words: "name and date of birth", "e-mail", "phone".
    matches: tuple[str, ...]


def _resembling(details: PatientDetails) -> Q:
    # Names and e-mail addresses are compared without case (people type them either way);
    # phones are stored in E.164, so the same number is the same text.
    return (
        Q(
            first_name__iexact=details.first_name,
            last_name__iexact=details.last_name,
            date_of_birth=details.date_of_birth,
        )
        | Q(email__iexact=details.email)
        | Q(phone=details.phone)
    )


def _matches(patient: Patient, details: PatientDetails) -> tuple[str, ...]:
    found = []
    if (
        patient.first_name.casefold() == details.first_name.casefold()
        and patient.last_name.casefold() == details.last_name.casefold()
        and patient.date_of_birth == details.date_of_birth
    ):
        found.append("name and date of birth")
    if patient.email.casefold() == details.email.casefold():
        found.append("e-mail")
    if patient.phone == details.phone:
        found.append("phone")
    return tuple(found)


def patient_duplicates(*, user: Any, details: PatientDetails) -> list[LikelyDuplicate]:
    """The patients ``user`` may see who are likely the person ``details`` describes: the same
    first and last name and date of birth, the same e-mail address, or the same phone number
    (``details`` already normalised, the phone in E.164). At most :data:`DUPLICATES_SHOWN`."""
    found = (
        patients_for(user)
        .filter(_resembling(details))
        .order_by("last_name", "first_name", "pk")[:DUPLICATES_SHOWN]
    )
    return [LikelyDuplicate(patient, _matches(patient, details)) for patient in found]


def _allergies_clean(allergies: str) -> str:
    allergies = allergies.strip()
    if len(allergies) > ALLERGIES_MAX_LENGTH:
        raise BookingError(
            f"Keep the allergies under {ALLERGIES_MAX_LENGTH} characters.", field="allergies"
        )
    return allergies


def patient_register(
    *,
    details: PatientDetails,
    by: Any,
    allergies: str | None = None,
    different_person: bool = False,
    now: datetime | None = None,
) -> Patient:
    """Register a new patient at the desk (``by`` needs ``BOOK``: registering is the first step
    of booking them).

    Refused with :class:`PossibleDuplicate` while patients ``by`` may see look like the same
    person (:func:`patient_duplicates`), unless the desk has confirmed this is a
    ``different_person``. ``allergies`` is what the patient said when asked ("" for none known),
    ``None`` when nobody asked yet.
    """
    if not by.has_perm(BOOK):
        raise PermissionDenied("Your role cannot do this.")
    now = now or timezone.now()
    if allergies is not None:
        allergies = _allergies_clean(allergies)
    with transaction.atomic():
        if not different_person:
            duplicates = patient_duplicates(user=by, details=details)
            if duplicates:
                raise PossibleDuplicate(
                    "This may be a patient already on file: choose their record, or confirm "
                    "this is a different person.",
                    duplicates=duplicates,
                )
        # A resembling record this desk cannot see is kept from it, but not forgotten: the new
        # record waits for someone who can see both to check.
        unseen = (
            Patient.objects.on_file()
            .filter(_resembling(details))
            .exclude(pk__in=patients_for(by).values("pk"))
            .exists()
        )
        return Patient.objects.create(
            first_name=details.first_name,
            last_name=details.last_name,
            email=details.email,
            phone=details.phone,
            date_of_birth=details.date_of_birth,
            needs_review=unseen,
            allergies=allergies or "",
            allergies_recorded_at=now if allergies is not None else None,
            allergies_recorded_by=by if allergies is not None else None,
        )


def patient_allergies_record(
    *, patient: Patient, allergies: str, by: Any, now: datetime | None = None
) -> Patient:
    """Record ``patient``'s known allergies as ``by`` took them ("" for none known), with who
    and when: "none known" is an answer, unlike a record nobody has asked about. ``by`` reviews
    medications or changes visits (:func:`booking.access.roles.may_record_allergies`)."""
    if not may_record_allergies(by):
        raise PermissionDenied("Your role cannot do this.")
    now = now or timezone.now()
    allergies = _allergies_clean(allergies)
    with transaction.atomic():
        current = Patient.objects.select_for_update().get(pk=patient.pk)
        current.allergies = allergies
        current.allergies_recorded_at = now
        current.allergies_recorded_by = by
        current.save(update_fields=["allergies", "allergies_recorded_at", "allergies_recorded_by"])
    return current


def contraindications_flagged(patient: Patient) -> list[ContraindicationAnswer]:
    """The contraindications clinical staff flagged present for ``patient`` outside a decision
    (``booking.eligibility.contraindication_flag``), oldest first, with who flagged them."""
    return list(
        ContraindicationAnswer.objects.filter(patient=patient, decision__isnull=True, present=True)
        .select_related("contraindication", "recorded_by")
        .order_by("recorded_at", "pk")
    )

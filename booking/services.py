"""Booking services: every change of an appointment goes through one of these functions.

Booking, moving and cancelling a visit, the patient's online consultation booking (with patient
matching), the patient's own confirmation, and the escort's details (given through the patient's
link or taken by the desk on the phone). Each runs lock -> check -> write in one transaction
through the shared placement steps (``booking.placement``), and announces the change with
``appointment_changed`` inside that transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from booking.access.roles import CHANGE
from booking.eligibility import rules_override_record, treatment_check
from booking.errors import BookingError, InvalidTransition, PolicyViolation
from booking.models import (
    CHANGEABLE_STATUSES,
    SMS_CONSENT_VERSION,
    Allocation,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    Intake,
    Patient,
)
from booking.placement import (
    check_policy,
    lock_patient_and_check,
    visit_occupy,
    visit_place,
    with_retries,
)
from booking.signals import appointment_changed
from scheduling.models import AppointmentType


def _require_aware(start: datetime) -> None:
    if timezone.is_naive(start):
        raise BookingError("Give the time with its UTC offset.", field="start")


def appointment_book(
    *,
    appointment_type: AppointmentType,
    patient: Patient,
    start: datetime,
    source: str = "staff",
    now: datetime | None = None,
    by: Any = None,
    override_reason: str = "",
) -> Appointment:
    """Book ``patient`` into a visit of ``appointment_type`` starting at ``start``.

    ``source="online"`` applies the type's minimum notice; the front desk may book any future
    slot. ``by`` is the staff member acting, for the history; a prescriber may set the age and
    spacing rules aside with ``override_reason`` (:func:`booking.eligibility.treatment_check`).
    Raises ``SlotTaken`` (409), ``PatientBusy`` (409), ``PolicyViolation`` or ``NotEligible``
    (422).
    """
    now = now or timezone.now()
    _require_aware(start)
    online = source == "online"
    check_policy(appointment_type, start, now, online=online)
    end = start + timedelta(minutes=appointment_type.duration_minutes)

    def book() -> Appointment:
        lock_patient_and_check(patient, start, end, exclude=None)
        # Under the patient's row lock, so two bookings cannot both take the last session a
        # plan authorises (or one day's only treatment); before the row exists, so it does
        # not count against itself.
        overridden = treatment_check(
            patient=patient,
            appointment_type=appointment_type,
            start=start,
            now=now,
            by=by,
            override_reason=override_reason,
        )
        appointment = visit_occupy(
            appointment_type, patient, start, end, source=source, online=online, now=now
        )
        rules_override_record(
            appointment=appointment, overridden=overridden, by=by, reason=override_reason, now=now
        )
        appointment_changed.send(
            sender=Appointment, appointment=appointment, change="booked", now=now, by=by
        )
        return appointment

    return with_retries(book)


def appointment_reschedule(
    *,
    appointment: Appointment,
    start: datetime,
    online: bool = False,
    now: datetime | None = None,
    by: Any = None,
    override_reason: str = "",
) -> Appointment:
    """Move ``appointment`` to ``start``: its old lanes are released and new ones taken at once,
    or nothing changes. A prescriber may set the age and spacing rules aside with
    ``override_reason``, as when booking."""
    now = now or timezone.now()
    _require_aware(start)
    appointment_type = appointment.appointment_type
    check_policy(appointment_type, start, now, online=online)
    end = start + timedelta(minutes=appointment_type.duration_minutes)

    def reschedule() -> Appointment:
        current = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if current.status not in CHANGEABLE_STATUSES:
            raise InvalidTransition(
                f"A {current.get_status_display().lower()} visit cannot be moved.", field="status"
            )
        if online:
            _check_online_cutoff(current, now)
        lock_patient_and_check(current.patient, start, end, exclude=current.pk)
        overridden = treatment_check(
            patient=current.patient,
            appointment_type=appointment_type,
            start=start,
            now=now,
            moving=current,
            by=by,
            override_reason="" if online else override_reason,
        )
        rules_override_record(
            appointment=current, overridden=overridden, by=by, reason=override_reason, now=now
        )
        Allocation.objects.filter(appointment=current, active=True).update(active=False)
        previous_start = current.start
        current.start, current.end = start, end
        current.version += 1
        # A visit on the "needs a new time" list has one now.
        current.needs_new_time_since, current.needs_new_time_reason = None, ""
        current.save(
            update_fields=[
                "start",
                "end",
                "version",
                "needs_new_time_since",
                "needs_new_time_reason",
                "updated_at",
            ]
        )
        visit_place(current, online=online, now=now)
        appointment_changed.send(
            sender=Appointment,
            appointment=current,
            change="rescheduled",
            now=now,
            by=by,
            previous_start=previous_start,
        )
        return current

    return with_retries(reschedule)


def appointment_cancel(
    *,
    appointment: Appointment,
    reason: str = "",
    online: bool = False,
    now: datetime | None = None,
    by: Any = None,
) -> Appointment:
    """Cancel ``appointment`` and release its lanes. Cancelling twice is harmless.

    ``online=True`` (the patient's own link) closes at the location's late-change cutoff.
    """
    now = now or timezone.now()
    with transaction.atomic():
        current = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if current.status == AppointmentStatus.CANCELLED:
            return current
        if current.status not in CHANGEABLE_STATUSES:
            raise InvalidTransition(
                f"A {current.get_status_display().lower()} visit cannot be cancelled.",
                field="status",
            )
        if online:
            _check_online_cutoff(current, now)
        Allocation.objects.filter(appointment=current, active=True).update(active=False)
        current.status = AppointmentStatus.CANCELLED
        current.cancel_reason = reason[:500]
        current.version += 1
        current.needs_new_time_since, current.needs_new_time_reason = None, ""
        current.save(
            update_fields=[
                "status",
                "cancel_reason",
                "version",
                "needs_new_time_since",
                "needs_new_time_reason",
                "updated_at",
            ]
        )
        appointment_changed.send(
            sender=Appointment, appointment=current, change="cancelled", now=now, by=by
        )
    return current


# --- Online booking --------------------------------------------------------------------------


# A patient may hold this many future consultations booked online at once: enough to move one,
# too few to squat on a prescriber's week.
MAX_PENDING_CONSULTATIONS = 2


@dataclass(frozen=True)
class PatientDetails:
    first_name: str
    last_name: str
    email: str
    phone: str
    date_of_birth: date


@dataclass(frozen=True)
class IntakeAnswers:
    conditions: list[str] = field(default_factory=list)
    medications: str = ""
    prior_treatments: str = ""
    # [{"question": text as shown, "answer": bool}]
    screening: list[dict[str, object]] = field(default_factory=list)


def patient_on_file(*, email: str, date_of_birth: date) -> Patient | None:
    """The clinic's patient with this e-mail *and* date of birth (the oldest record, should the
    desk have made two): anything less might be someone else."""
    return (
        Patient.objects.on_file()
        .filter(email__iexact=email, date_of_birth=date_of_birth)
        .order_by("id")
        .first()
    )


def patient_resembles_another(*, email: str, phone: str) -> bool:
    """Whether a patient on file has this e-mail or this phone: a new record that does is
    flagged for the front desk to check for a duplicate."""
    return Patient.objects.on_file().filter(Q(email__iexact=email) | Q(phone=phone)).exists()


def pending_visits_check(
    *, patient: Patient, appointment_type: AppointmentType, now: datetime
) -> None:
    """Refuse a patient who already holds ``MAX_PENDING_CONSULTATIONS`` future visits of this
    kind. Call it with the patient's row locked: one patient's parallel requests then each count
    the visits the others booked."""
    pending = (
        Appointment.objects.active()
        .filter(patient=patient, appointment_type__kind=appointment_type.kind, start__gt=now)
        .count()
    )
    if pending >= MAX_PENDING_CONSULTATIONS:
        raise PolicyViolation(
            "You already have upcoming appointments of this kind. Use the link in your "
            "confirmation email to change them.",
            field="start",
        )


def patient_match_or_create(
    *, details: PatientDetails, sms_consent: bool, now: datetime
) -> Patient:
    """The patient an online booking belongs to.

    Only the same email *and* date of birth is the same patient: anything less might attach the
    booking to someone else's record. A new record that resembles an existing one (same email,
    or same phone) is flagged for the front desk to check for a duplicate.
    """
    match = patient_on_file(email=details.email, date_of_birth=details.date_of_birth)
    if match is not None:
        if sms_consent and not match.sms_consent:
            match.sms_consent = True
            match.sms_consent_at = now
            match.sms_consent_version = SMS_CONSENT_VERSION
            match.save(update_fields=["sms_consent", "sms_consent_at", "sms_consent_version"])
        return match
    return Patient.objects.create(
        first_name=details.first_name,
        last_name=details.last_name,
        email=details.email,
        phone=details.phone,
        date_of_birth=details.date_of_birth,
        needs_review=patient_resembles_another(email=details.email, phone=details.phone),
        sms_consent=sms_consent,
        sms_consent_at=now if sms_consent else None,
        sms_consent_version=SMS_CONSENT_VERSION if sms_consent else "",
    )


def online_type_check(appointment_type: AppointmentType) -> None:
    if not (appointment_type.bookable_online and appointment_type.is_active):
        raise PolicyViolation(
            "This appointment type cannot be booked online.", field="appointment_type"
        )


def consultation_book_online(
    *,
    appointment_type: AppointmentType,
    start: datetime,
    details: PatientDetails,
    intake: IntakeAnswers,
    sms_consent: bool,
    now: datetime | None = None,
) -> Appointment:
    """A new or returning patient's online booking, booked at once: how a location that does
    not verify online bookings takes them (``booking.online.consultation_request_online``).

    One transaction: the patient is matched or created, the visit booked through
    :func:`appointment_book` (online notice applies) and the intake stored. A refused booking
    leaves no new patient behind.
    """
    now = now or timezone.now()
    online_type_check(appointment_type)
    with transaction.atomic():
        patient = patient_match_or_create(details=details, sms_consent=sms_consent, now=now)
        # One patient's parallel requests queue on this row lock, so each one counts the visits
        # the others booked; without it they all count the same few and pass the cap together.
        # NO KEY UPDATE leaves foreign-key checks (a secure link being issued) unblocked.
        Patient.objects.select_for_update(no_key=True).filter(pk=patient.pk).exists()
        pending_visits_check(patient=patient, appointment_type=appointment_type, now=now)
        appointment = appointment_book(
            appointment_type=appointment_type,
            patient=patient,
            start=start,
            source="online",
            now=now,
        )
        Intake.objects.create(
            appointment=appointment,
            conditions=intake.conditions,
            medications=intake.medications,
            prior_treatments=intake.prior_treatments,
            screening=intake.screening,
        )
    return appointment


def _check_online_cutoff(appointment: Appointment, now: datetime) -> None:
    if now > appointment.online_changes_close_at:
        hours = appointment.location.late_cancel_hours
        phone = appointment.location.phone
        raise PolicyViolation(
            f"Online changes close {hours} hours before the visit. Please call us"
            + (f" on {phone}." if phone else "."),
            field="start",
        )


def appointment_confirm(*, appointment: Appointment, now: datetime | None = None) -> Appointment:
    """The patient confirms they will attend. Confirming twice is harmless."""
    now = now or timezone.now()
    with transaction.atomic():
        current = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if current.status == AppointmentStatus.CONFIRMED:
            return current
        if current.status != AppointmentStatus.BOOKED or current.start <= now:
            raise InvalidTransition("This visit can no longer be confirmed.", field="status")
        current.status = AppointmentStatus.CONFIRMED
        current.confirmed_at = now
        current.save(update_fields=["status", "confirmed_at", "updated_at"])
        appointment_changed.send(
            sender=Appointment, appointment=current, change="confirmed", now=now
        )
    return current


def appointment_escort_update(
    *,
    appointment: Appointment,
    name: str,
    phone: str,
    by: Any = None,
    now: datetime | None = None,
) -> Appointment:
    """Record who takes the patient home (``name``, ``phone`` already validated, see
    ``booking.validators.normalize_escort_phone``). Only for a visit still to come.

    ``by`` is the staff member who took the details by phone (they need ``CHANGE``); ``None``
    when the patient gave them through their link. Who and when are kept on the visit and in
    its history; either way the checklist's escort item is then done.
    """
    if by is not None and not by.has_perm(CHANGE):
        raise PermissionDenied("Your role cannot do this.")
    now = now or timezone.now()
    with transaction.atomic():
        current = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if current.status not in CHANGEABLE_STATUSES or current.start <= now:
            raise InvalidTransition("This visit can no longer be changed.", field="status")
        current.escort_name = name
        current.escort_phone = phone
        current.escort_updated_at = now
        current.escort_recorded_by = by
        current.save(
            update_fields=[
                "escort_name",
                "escort_phone",
                "escort_updated_at",
                "escort_recorded_by",
                "updated_at",
            ]
        )
        AppointmentEvent.objects.create(
            appointment=current,
            at=now,
            kind="escort_recorded",
            detail=f"{name}, {phone}"[:500],
            by=by,
        )
    return current

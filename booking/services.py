"""Booking services: every change of an appointment goes through one of these functions.

Each runs lock -> check -> write in one transaction. The check is the availability engine itself
(``scheduling.availability.allocate``), so an offered slot and an accepted booking can never
disagree. On PostgreSQL the exclusion constraints on allocations and appointments are the last
guard: two transactions that both passed the check cannot both commit overlapping lanes. Writers
of a lane queue on an advisory lock (see ``write_allocations``), so the loser meets the winner's
committed row at once and gets an exclusion violation (a deadlock, should other code insert
without the lock); we retry it from a fresh read, where the winner's rows are visible, and only
then answer ``SlotTaken``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from booking.errors import BookingError, InvalidTransition, PatientBusy, PolicyViolation, SlotTaken
from booking.models import (
    ACTIVE_STATUSES,
    CHANGEABLE_STATUSES,
    SMS_CONSENT_VERSION,
    Allocation,
    Appointment,
    AppointmentStatus,
    Intake,
    Patient,
    PatientLink,
)
from booking.plans import plan_in_force
from booking.selectors import allocation_rows
from booking.signals import appointment_changed, patient_link_requested
from scheduling.availability import (
    MINUTES_PER_DAY,
    Placement,
    Problem,
    allocate,
    from_minutes,
    grid_starts,
    to_minutes,
)
from scheduling.models import AppointmentType
from scheduling.selectors import placeholders, schedule_load

# Losing a race on one lane of a multi-lane resource (a nurse watching three chairs) is not
# losing the slot: the next read may find another lane free. Past this many tries it is taken.
PLACEMENT_ATTEMPTS = 3

# PostgreSQL's SQLSTATEs for "exclusion constraint violated" and "deadlock detected".
_EXCLUSION_VIOLATION = "23P01"
_DEADLOCK = "40P01"

T = TypeVar("T")


def _sqlstate(exc: Exception) -> tuple[str, str]:
    cause = exc.__cause__
    state = getattr(cause, "sqlstate", "") or ""
    diag = getattr(cause, "diag", None)
    return state, (getattr(diag, "constraint_name", "") or "")


def with_retries(
    operation: Callable[[], T],
    *,
    field: str = "start",
    taken: str = "That time was just taken. Please choose another.",
    busy: str = "The patient already has a visit at that time.",
) -> T:
    """Run ``operation`` in a transaction until it stops losing races: a lost race is retried
    from a fresh read, where the winner's rows are visible to the check. Past the attempts, the
    last loss is answered as ``SlotTaken`` (or ``PatientBusy``) naming ``field``."""
    lost_on = ""
    for _ in range(PLACEMENT_ATTEMPTS):
        try:
            with transaction.atomic():
                return operation()
        except IntegrityError as exc:
            state, constraint = _sqlstate(exc)
            if state != _EXCLUSION_VIOLATION:
                raise
            lost_on = constraint
        except OperationalError as exc:
            if _sqlstate(exc)[0] != _DEADLOCK:
                raise
            lost_on = "deadlock"
    if lost_on == "appointment_patient_no_overlap":
        raise PatientBusy(busy, field=field)
    raise SlotTaken(taken, field=field)


def _require_aware(start: datetime) -> None:
    if timezone.is_naive(start):
        raise BookingError("Give the time with its UTC offset.", field="start")


def check_policy(
    appointment_type: AppointmentType, start: datetime, now: datetime, *, online: bool
) -> None:
    """Refuse starts that no amount of free time would make bookable, with a reason."""
    zone = appointment_type.location.zone
    minutes = to_minutes(start)
    local_day = start.astimezone(zone).date()
    on_minute = start.second == 0 and start.microsecond == 0
    if not on_minute or minutes not in grid_starts(
        zone, [local_day], appointment_type.grid_minutes
    ):
        raise PolicyViolation(
            f"Visits start on the {appointment_type.grid_minutes}-minute grid of the clinic's "
            "local time.",
            field="start",
        )
    if start <= now:
        raise PolicyViolation("That time has passed.", field="start")
    if online and start < now + timedelta(minutes=appointment_type.min_notice_minutes):
        raise PolicyViolation(
            f"Online bookings need {appointment_type.min_notice_minutes // 60} hours' notice.",
            field="start",
        )
    if start > now + timedelta(days=appointment_type.horizon_days):
        raise PolicyViolation(
            f"Bookings open {appointment_type.horizon_days} days ahead.", field="start"
        )


# The hot path of every booking runs a few hand-written statements: building the equivalent ORM
# queries cost more CPU than everything PostgreSQL does for them. The overlap test is
# ``Appointment.objects.active().overlapping(start, end)`` spelled out.
_ACTIVE = sorted(ACTIVE_STATUSES)
_PATIENT_LOCK_SQL = 'SELECT 1 FROM "booking_patient" WHERE "id" = %s FOR NO KEY UPDATE'
_PATIENT_CLASH_SQL = f"""
    SELECT 1 FROM "booking_appointment"
    WHERE "patient_id" = %s AND "status" IN ({placeholders(_ACTIVE)})
      AND "start" < %s AND "end" > %s AND "id" <> %s
    LIMIT 1
"""  # noqa: S608 - only placeholders are formatted in


def lock_patient_and_check(
    patient: Patient, start: datetime, end: datetime, *, exclude: int | None
) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The row lock serialises one patient's concurrent requests, so the overlap check
            # below cannot be raced by the same patient booking twice at once. NO KEY UPDATE
            # still lets other transactions insert rows that point at the patient. (SQLite has
            # no row locks: its IMMEDIATE transactions serialise every writer.)
            cursor.execute(_PATIENT_LOCK_SQL, [patient.pk])
        cursor.execute(
            _PATIENT_CLASH_SQL, [patient.pk, *_ACTIVE, adapt(end), adapt(start), exclude or 0]
        )
        if cursor.fetchone() is not None:
            raise PatientBusy("The patient already has a visit at that time.", field="start")


def _visit_problem(
    appointment_type: AppointmentType, start: int, *, online: bool, now: datetime
) -> Problem:
    """The engine's input for a visit at ``start``: the day's schedule, and every allocation that
    could stand in the way of this one visit.

    The slot list loads a whole window of allocations; a booking only needs those overlapping
    the span its own holds can touch. The engine's answer for ``start`` is the same (lanes are
    judged on that span alone), and on a busy day the read is a short index probe per resource
    instead of the day's rows.
    """
    zone = appointment_type.location.zone
    problem = schedule_load(
        appointment_type=appointment_type,
        days=[from_minutes(start).astimezone(zone).date()],
        now=now,
        enforce_notice=online,
    )
    calendars = problem.calendars
    if not calendars:
        return problem
    lo = start + min(need.lead for need in problem.needs)
    hi = start + max(need.tail for need in problem.needs)
    for rid, lane, held_from, held_to in allocation_rows(list(calendars), lo, hi):
        calendar = calendars[rid]
        if lane < calendar.capacity:  # lanes above a lowered capacity stay booked but unused
            calendar.busy[lane].append((held_from, held_to))
    return problem


def visit_placements(
    appointment_type: AppointmentType, start: datetime, *, online: bool, now: datetime
) -> list[Placement]:
    """The lanes a visit at ``start`` takes, by the engine's own check; ``SlotTaken`` if none."""
    minutes = to_minutes(start)
    placements = allocate(
        _visit_problem(appointment_type, minutes, online=online, now=now), minutes
    )
    if placements is None:
        raise SlotTaken("That time is not available. Please choose another.", field="start")
    # A stable order (by resource, then lane) keeps two competing transactions from waiting on
    # each other in opposite orders.
    placements.sort(key=lambda p: (p.resource_id, p.lane))
    return placements


def _lane_lock_keys(placements: Iterable[Placement]) -> list[int]:
    # One advisory lock per (resource, lane, UTC day) a placement touches: two placements that
    # overlap on a lane share at least one day, hence one key. 20 bits of day number, 5 of lane
    # (capacity is at most 20), the resource id above them.
    return sorted(
        {
            (p.resource_id << 25) | (p.lane << 20) | (day & 0xFFFFF)
            for p in placements
            for day in range(p.start // MINUTES_PER_DAY, (p.end - 1) // MINUTES_PER_DAY + 1)
        }
    )


_ALLOCATION_INSERT_SQL = (
    'INSERT INTO "booking_allocation" ("appointment_id", "resource_id", "lane", "start", "end", '
    '"active") VALUES '
)


def write_allocations(batches: Sequence[tuple[Appointment, list[Placement]]]) -> None:
    """Take the checked lanes of one or more appointments (a visit, or a whole series).

    Two transactions that both passed the check for the same lane would otherwise meet inside
    the exclusion constraint, where concurrent inserts can wait on each other in a cycle that
    PostgreSQL breaks only after ``deadlock_timeout`` (1 s by default). Queuing the writers of a
    lane on an advisory lock first makes the later one find the earlier one's committed row at
    once: an immediate exclusion violation, retried from a fresh read. The lock only orders
    writers; the constraint still decides. SQLite's IMMEDIATE transactions already run one
    writer at a time.
    """
    rows = [(appointment.pk, p) for appointment, placements in batches for p in placements]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # unnest yields the sorted keys in order, so every transaction locks in one order.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k",
                [_lane_lock_keys([p for _, p in rows])],
            )
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            _ALLOCATION_INSERT_SQL + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows)),
            [
                value
                for appointment_id, p in rows
                for value in (
                    appointment_id,
                    p.resource_id,
                    p.lane,
                    adapt(from_minutes(p.start)),
                    adapt(from_minutes(p.end)),
                    True,
                )
            ],
        )


def visit_place(appointment: Appointment, *, online: bool, now: datetime) -> None:
    """Check the appointment's time with the engine and write its allocations."""
    placements = visit_placements(
        appointment.appointment_type, appointment.start, online=online, now=now
    )
    write_allocations([(appointment, placements)])


def visit_occupy(
    appointment_type: AppointmentType,
    patient: Patient,
    start: datetime,
    end: datetime,
    *,
    source: str,
    online: bool,
    now: datetime,
    status: str = AppointmentStatus.BOOKED,
) -> Appointment:
    """Write an appointment holding the lanes the engine finds for ``start`` (``SlotTaken`` if
    none). Inside ``with_retries``, after the patient's lock; announcing it is the caller's."""
    # Checked before the appointment row is written, so a refusal writes nothing.
    placements = visit_placements(appointment_type, start, online=online, now=now)
    appointment = Appointment.objects.create(
        # The instances, not their ids: the signal's receivers read them, from the cache.
        location=appointment_type.location,
        appointment_type=appointment_type,
        patient=patient,
        start=start,
        end=end,
        status=status,
        source=source,
    )
    write_allocations([(appointment, placements)])
    return appointment


def appointment_book(
    *,
    appointment_type: AppointmentType,
    patient: Patient,
    start: datetime,
    source: str = "staff",
    now: datetime | None = None,
    by: Any = None,
) -> Appointment:
    """Book ``patient`` into a visit of ``appointment_type`` starting at ``start``.

    ``source="online"`` applies the type's minimum notice; the front desk may book any future
    slot. ``by`` is the staff member acting, for the history. Raises ``SlotTaken`` (409),
    ``PatientBusy`` (409) or ``PolicyViolation`` (422).
    """
    now = now or timezone.now()
    _require_aware(start)
    online = source == "online"
    check_policy(appointment_type, start, now, online=online)
    end = start + timedelta(minutes=appointment_type.duration_minutes)

    def book() -> Appointment:
        lock_patient_and_check(patient, start, end, exclude=None)
        if appointment_type.needs_approval:
            # Under the patient's row lock, so two bookings cannot both take the last session
            # a plan authorises; before the row exists, so it does not count against itself.
            plan_in_force(patient=patient, appointment_type=appointment_type, now=now, start=start)
        appointment = visit_occupy(
            appointment_type, patient, start, end, source=source, online=online, now=now
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
) -> Appointment:
    """Move ``appointment`` to ``start``: its old lanes are released and new ones taken at once,
    or nothing changes."""
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
        Allocation.objects.filter(appointment=current, active=True).update(active=False)
        previous_start = current.start
        current.start, current.end = start, end
        current.version += 1
        current.save(update_fields=["start", "end", "version", "updated_at"])
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
        current.save(update_fields=["status", "cancel_reason", "version", "updated_at"])
        appointment_changed.send(
            sender=Appointment, appointment=current, change="cancelled", now=now, by=by
        )
    return current


# --- Online booking and the patient's secure link -------------------------------------------

# A patient may hold this many future consultations booked online at once: enough to move one,
# too few to squat on a prescriber's week.
MAX_PENDING_CONSULTATIONS = 2
LINK_LIFETIME = timedelta(days=30)


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


def patient_match_or_create(
    *, details: PatientDetails, sms_consent: bool, now: datetime
) -> Patient:
    """The patient an online booking belongs to.

    Only the same email *and* date of birth is the same patient: anything less might attach the
    booking to someone else's record. A new record that resembles an existing one (same email,
    or same phone) is flagged for the front desk to check for a duplicate.
    """
    match = (
        Patient.objects.filter(email__iexact=details.email, date_of_birth=details.date_of_birth)
        .order_by("id")
        .first()
    )
    if match is not None:
        if sms_consent and not match.sms_consent:
            match.sms_consent = True
            match.sms_consent_at = now
            match.sms_consent_version = SMS_CONSENT_VERSION
            match.save(update_fields=["sms_consent", "sms_consent_at", "sms_consent_version"])
        return match
    resembles = Patient.objects.filter(
        Q(email__iexact=details.email) | Q(phone=details.phone)
    ).exists()
    return Patient.objects.create(
        first_name=details.first_name,
        last_name=details.last_name,
        email=details.email,
        phone=details.phone,
        date_of_birth=details.date_of_birth,
        needs_review=resembles,
        sms_consent=sms_consent,
        sms_consent_at=now if sms_consent else None,
        sms_consent_version=SMS_CONSENT_VERSION if sms_consent else "",
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
    """A new or returning patient books a visit on the public page or API.

    One transaction: the patient is matched or created, the visit booked through
    :func:`appointment_book` (online notice applies) and the intake stored. A refused booking
    leaves no new patient behind.
    """
    now = now or timezone.now()
    if not (appointment_type.bookable_online and appointment_type.is_active):
        raise PolicyViolation(
            "This appointment type cannot be booked online.", field="appointment_type"
        )
    with transaction.atomic():
        patient = patient_match_or_create(details=details, sms_consent=sms_consent, now=now)
        # One patient's parallel requests queue on this row lock, so each one counts the visits
        # the others booked; without it they all count the same few and pass the cap together.
        # NO KEY UPDATE leaves foreign-key checks (a secure link being issued) unblocked.
        Patient.objects.select_for_update(no_key=True).filter(pk=patient.pk).exists()
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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def patient_link_issue(
    *, patient: Patient, now: datetime | None = None, token: str | None = None
) -> str:
    """A new secure link token for ``patient``; only its hash is stored.

    It lasts 30 days, or until two days after the patient's last booked visit if that is later,
    so the link in a confirmation stays good until the visit it confirms. ``token`` stores a
    token already sent whose row was lost (a transaction that did not commit).
    """
    now = now or timezone.now()
    token = token or secrets.token_urlsafe(32)  # 256 bits
    last_visit = (
        Appointment.objects.active()
        .filter(patient=patient, start__gt=now)
        .aggregate(last=Max("end"))["last"]
    )
    expires = now + LINK_LIFETIME
    if last_visit is not None:
        expires = max(expires, last_visit + timedelta(days=2))
    PatientLink.objects.create(
        patient=patient, token_hash=hash_token(token), created_at=now, expires_at=expires
    )
    return token


def patient_link_resolve(*, token: str, now: datetime | None = None) -> Patient | None:
    """The patient a token belongs to, or None for unknown, expired or revoked tokens."""
    now = now or timezone.now()
    if not token or len(token) > 128:
        return None
    link = (
        PatientLink.objects.usable(now)
        .select_related("patient")
        .filter(token_hash=hash_token(token))
        .first()
    )
    return link.patient if link else None


def patient_link_request(*, email: str, date_of_birth: date, now: datetime | None = None) -> None:
    """Someone asks for a new link. If a patient matches exactly, earlier links are revoked and
    a new one is sent to the address on record. Nothing tells the caller whether one matched."""
    now = now or timezone.now()
    patient = (
        Patient.objects.filter(email__iexact=email, date_of_birth=date_of_birth)
        .order_by("id")
        .first()
    )
    if patient is None:
        return
    with transaction.atomic():
        PatientLink.objects.filter(patient=patient, revoked_at__isnull=True).update(revoked_at=now)
        patient_link_requested.send(sender=Patient, patient=patient)


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
    *, appointment: Appointment, name: str, phone: str, now: datetime | None = None
) -> Appointment:
    """Record who takes the patient home. Only for a visit still to come."""
    now = now or timezone.now()
    with transaction.atomic():
        current = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if current.status not in CHANGEABLE_STATUSES or current.start <= now:
            raise InvalidTransition("This visit can no longer be changed.", field="status")
        current.escort_name = name
        current.escort_phone = phone
        current.escort_updated_at = now
        current.save(
            update_fields=["escort_name", "escort_phone", "escort_updated_at", "updated_at"]
        )
    return current

"""The public booking, held until the patient proves their e-mail address (security issue #15).

At a location that verifies online bookings (``Location.verify_online_bookings``, on by default)
a booking from the public page or API is **tentative**: an appointment in status TENTATIVE that
holds its lanes like any visit (the exclusion constraint guards them) for
``Location.tentative_hold_minutes``, on a *provisional* patient made from what was typed. Nothing
is looked up in the register, so the answer is the same for a returning patient and a stranger
(no oracle), and nothing in anybody's record changes. The one message it gets is an e-mail with a
link (``notifications``' ``verify`` kind, announced as the ``tentative`` change); only the SHA-256
of the link's token is kept (:func:`tentative_token_issue`, called when the e-mail is sent).

Following the link and pressing Confirm (:func:`tentative_confirm`) proves the address. Only then
is the patient matched (same e-mail and date of birth, as ``booking.services`` always has), and
what depends on their record checked: their pending visits, a visit of their own at that time,
the clinic's rules. The booking becomes BOOKED on their record (or the provisional one becomes a
patient), the intake and text-message consent typed with it apply, and ``booked`` is announced:
the confirmation and the reminders are planned from here, never before. A hold that cannot be kept
is released, and the page tells the owner of the address why.

An unconfirmed hold lapses: :func:`tentative_holds_expire` (Celery beat, every minute) deletes it
with its provisional patient and intake, which frees its lanes. Unconfirmed bookings are nobody's
data yet, so none is kept. The patient may also release it from the link ("this wasn't me").

Ceilings, so that no script empties a calendar: one client (an IPv6 /64, an IPv4 address; kept
only as a digest) holds at most ``HOLDS_PER_CLIENT`` unconfirmed bookings at once (429), and one
location's local day at most ``Location.tentative_day_percent`` per cent of the visits it can take
(always at least one; 409). Both are checked under advisory locks, so parallel requests cannot
pass them together. The hourly rate limit per client (``booking.throttle``) comes first, then,
past a threshold of attempts, a solved proof-of-work challenge (``booking.pow``).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from booking.eligibility import treatment_check
from booking.errors import BookingError, NotEligible, PatientBusy, PolicyViolation
from booking.links import hash_token
from booking.models import (
    SMS_CONSENT_VERSION,
    Allocation,
    Appointment,
    AppointmentStatus,
    Intake,
    Patient,
    TentativeHold,
)
from booking.placement import check_policy, lock_patient_and_check, visit_occupy, with_retries
from booking.services import (
    IntakeAnswers,
    PatientDetails,
    consultation_book_online,
    online_type_check,
    patient_on_file,
    patient_resembles_another,
    pending_visits_check,
)
from booking.signals import appointment_changed
from booking.validators import validate_text_region
from scheduling.availability import allocate, available_starts, from_minutes, local_day_bounds
from scheduling.models import AppointmentType
from scheduling.selectors import schedule_load

# Unconfirmed bookings one client network may hold at once: a family booking together, not a
# script holding a week.
HOLDS_PER_CLIENT = 3
# Holds deleted per sweep at most; the next sweep, a minute later, takes the rest.
EXPIRY_BATCH = 500

# Keys of pg_advisory_xact_lock(int, int): the two-key space, apart from the lane locks'
# one-key space (booking.placement).
_CLIENT_LOCK = 0x7E470001
_DAY_LOCK = 0x7E470002

OWN_VISIT = "You already have an appointment at that time."
NOT_HELD = "This time is no longer held for you. Please choose a time and book again."


class TooManyHolds(BookingError):
    """This client already holds as many unconfirmed bookings as it may."""

    status = 429
    code = "too_many_holds"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DayHeld(BookingError):
    """Unconfirmed bookings hold as much of that day as they may."""

    status = 409
    code = "day_held"


class HoldNotFound(BookingError):
    status = 404
    code = "not_found"


class HoldNotKept(BookingError):
    """The tentative booking was not confirmed: it lapsed, was released, or the patient's own
    record rules it out (said only to the owner of the address)."""

    status = 409
    code = "hold_released"


@dataclass(frozen=True)
class OnlineBooking:
    """What an online booking request gave: a visit booked at once (``expires_at`` None), or a
    tentative one held until ``expires_at``."""

    appointment: Appointment
    expires_at: datetime | None = None

    @property
    def tentative(self) -> bool:
        return self.expires_at is not None


def client_digest(client: str) -> str:
    """What a tentative hold keeps of the client that made it: a digest of its key (see
    :func:`booking.throttle.client_key`: an IPv6 client counts by its /64), never the address.
    ``""`` for no client."""
    if not client:
        return ""
    return hashlib.sha256(f"booking-client:{client}".encode()).hexdigest()


def _lock(namespace: int, key: str) -> None:
    # Serialises the check-then-insert of one ceiling across transactions; SQLite's IMMEDIATE
    # transactions already run one writer at a time.
    if connection.vendor != "postgresql":
        return
    key_int = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [namespace, key_int])


# --- Ceilings -----------------------------------------------------------------------------------


def _client_check(client: str, now: datetime) -> None:
    open_until = sorted(
        TentativeHold.objects.filter(
            client=client, confirmed_at__isnull=True, expires_at__gt=now
        ).values_list("expires_at", flat=True)
    )
    if len(open_until) >= HOLDS_PER_CLIENT:
        wait = math.ceil((open_until[0] - now).total_seconds())
        raise TooManyHolds(
            "Several bookings from your network are waiting to be confirmed. Please confirm "
            "them from your e-mail, or try again in a few minutes.",
            retry_after=max(wait, 1),
        )


def day_capacity(*, appointment_type: AppointmentType, day: date, now: datetime, upto: int) -> int:
    """How many visits of ``appointment_type`` its location's day ``day`` takes with nothing
    booked, filled from its first time, counted up to ``upto``: the measure of "a day's visits"
    the tentative ceiling is a share of. The engine's own allocation, so parallel staff and
    rooms count as they would be booked."""
    problem = schedule_load(appointment_type=appointment_type, days=[day], now=now)
    # The whole day, including what is already past or within notice: the ceiling must not
    # tighten as the day comes nearer.
    problem.earliest = local_day_bounds(problem.zone, day)[0]
    count = 0
    while count < upto:
        starts = available_starts(problem)
        placements = allocate(problem, starts[0]) if starts else None
        if not placements:
            break
        for placement in placements:
            lane = problem.calendars[placement.resource_id].busy[placement.lane]
            lane.append((placement.start, placement.end))
        count += 1
    return count


def _day_check(appointment_type: AppointmentType, start: datetime, now: datetime) -> None:
    location = appointment_type.location
    day = start.astimezone(location.zone).date()
    lo, hi = local_day_bounds(location.zone, day)
    held = Appointment.objects.filter(
        location=location,
        status=AppointmentStatus.TENTATIVE,
        start__gte=from_minutes(lo),
        start__lt=from_minutes(hi),
    ).count()
    if held == 0:
        return  # one hold a day is always allowed: a small clinic must stay bookable online
    # held + 1 <= capacity * percent / 100, without computing more capacity than that needs.
    needed = -(-(held + 1) * 100 // location.tentative_day_percent)
    if day_capacity(appointment_type=appointment_type, day=day, now=now, upto=needed) < needed:
        raise DayHeld(
            "Many times on this day are waiting for their patients to confirm. Please choose "
            "another day, or try again in a few minutes.",
            field="start",
        )


def tentative_holds_on(
    *, appointment_type: AppointmentType, day: date
) -> list[tuple[datetime, datetime]]:
    """(start, held until) of the tentative bookings of ``appointment_type`` on its location's
    local ``day``, by start: the slot list shows them as held, and soon perhaps free again."""
    lo, hi = local_day_bounds(appointment_type.location.zone, day)
    return list(
        Appointment.objects.filter(
            appointment_type=appointment_type,
            status=AppointmentStatus.TENTATIVE,
            start__gte=from_minutes(lo),
            start__lt=from_minutes(hi),
        )
        .order_by("start")
        .values_list("start", "tentative_hold__expires_at")
    )


# --- Requesting -----------------------------------------------------------------------------


def consultation_request_online(
    *,
    appointment_type: AppointmentType,
    start: datetime,
    details: PatientDetails,
    intake: IntakeAnswers,
    sms_consent: bool,
    client: str = "",
    now: datetime | None = None,
) -> OnlineBooking:
    """A patient books on the public page or API: held until they confirm their e-mail address
    (tentative), or booked at once where the location does not verify online bookings
    (``booking.services.consultation_book_online``).

    ``client`` is the request's client key (``booking.throttle.client_key``). A tentative
    booking's answer depends on nothing in the register: the same for a returning patient and a
    stranger.
    Raises ``SlotTaken`` (409), ``DayHeld`` (409), ``TooManyHolds`` (429), ``PolicyViolation``
    (422), or ``BookingError`` naming ``phone`` for a number outside ``Location.text_regions``.
    """
    now = now or timezone.now()
    location = appointment_type.location
    try:
        validate_text_region(details.phone, location.text_regions)
    except ValidationError as exc:
        raise BookingError(exc.messages[0], field="phone") from exc
    if not location.verify_online_bookings:
        appointment = consultation_book_online(
            appointment_type=appointment_type,
            start=start,
            details=details,
            intake=intake,
            sms_consent=sms_consent,
            now=now,
        )
        return OnlineBooking(appointment)
    online_type_check(appointment_type)
    check_policy(appointment_type, start, now, online=True)
    end = start + timedelta(minutes=appointment_type.duration_minutes)
    expires_at = min(now + timedelta(minutes=location.tentative_hold_minutes), start)
    digest = client_digest(client)

    def hold() -> Appointment:
        if digest:
            _lock(_CLIENT_LOCK, digest)
            _client_check(digest, now)
        _lock(_DAY_LOCK, f"{location.pk}:{start.astimezone(location.zone).date()}")
        _day_check(appointment_type, start, now)
        patient = Patient.objects.create(
            first_name=details.first_name,
            last_name=details.last_name,
            email=details.email,
            phone=details.phone,
            date_of_birth=details.date_of_birth,
            provisional=True,
            # When they ticked it and what they read; it applies once the address is proven.
            sms_consent=sms_consent,
            sms_consent_at=now if sms_consent else None,
            sms_consent_version=SMS_CONSENT_VERSION if sms_consent else "",
        )
        appointment = visit_occupy(
            appointment_type,
            patient,
            start,
            end,
            source="online",
            online=True,
            now=now,
            status=AppointmentStatus.TENTATIVE,
        )
        Intake.objects.create(
            appointment=appointment,
            conditions=intake.conditions,
            medications=intake.medications,
            prior_treatments=intake.prior_treatments,
            screening=intake.screening,
        )
        TentativeHold.objects.create(
            appointment=appointment,
            # A token nobody knows until the e-mail is sent (tentative_token_issue).
            token_hash=hash_token(secrets.token_urlsafe(32)),
            expires_at=expires_at,
            client=digest,
            created_at=now,
        )
        appointment_changed.send(
            sender=Appointment, appointment=appointment, change="tentative", now=now
        )
        return appointment

    return OnlineBooking(with_retries(hold), expires_at=expires_at)


def tentative_token_issue(
    *, appointment: Appointment, now: datetime | None = None, token: str | None = None
) -> str:
    """A new token for the link that confirms ``appointment`` (tentative); only its hash is
    stored, and an earlier token stops working. ``token`` stores one already sent whose row was
    lost (a transaction that did not commit). Called when the e-mail is sent."""
    token = token or secrets.token_urlsafe(32)  # 256 bits
    TentativeHold.objects.filter(appointment=appointment).update(token_hash=hash_token(token))
    return token


def tentative_resolve(*, token: str) -> TentativeHold | None:
    """The tentative booking a link's token belongs to, whatever its state; None for an
    unknown token."""
    if not token or len(token) > 128:
        return None
    return (
        TentativeHold.objects.select_related(
            "appointment__location", "appointment__appointment_type", "appointment__patient"
        )
        .filter(token_hash=hash_token(token))
        .first()
    )


# --- Confirming, releasing, expiring -----------------------------------------------------------


def _patient_for(provisional: Patient) -> Patient:
    """The patient on file the proven address and date of birth belong to; else the provisional
    record itself, now a patient (flagged for review when it resembles another)."""
    match = patient_on_file(email=provisional.email, date_of_birth=provisional.date_of_birth)
    if match is not None:
        return match
    provisional.provisional = False
    provisional.needs_review = patient_resembles_another(
        email=provisional.email, phone=provisional.phone
    )
    provisional.save(update_fields=["provisional", "needs_review"])
    return provisional


def _consent_carry(provisional: Patient, patient: Patient) -> None:
    # As a booking made at once always has: consent given now turns texts on; it never turns
    # off a consent on file.
    if provisional.sms_consent and not patient.sms_consent:
        patient.sms_consent = True
        patient.sms_consent_at = provisional.sms_consent_at
        patient.sms_consent_version = provisional.sms_consent_version
        patient.save(update_fields=["sms_consent", "sms_consent_at", "sms_consent_version"])


def _confirm(hold_id: int, appointment_id: int, now: datetime) -> Appointment:
    # The appointment first, then its hold, as the e-mail's sender locks them. Either may be
    # gone: the expiry sweep or a release got there first.
    appointment = (
        Appointment.objects.select_for_update(of=("self",))
        .select_related("location", "appointment_type__location", "patient")
        .filter(pk=appointment_id)
        .first()
    )
    hold = TentativeHold.objects.select_for_update().filter(pk=hold_id).first()
    if appointment is None or hold is None:
        raise HoldNotKept(NOT_HELD)
    if hold.confirmed_at is not None:
        return appointment  # confirmed twice: harmless
    if appointment.status != AppointmentStatus.TENTATIVE or hold.expires_at <= now:
        raise HoldNotKept(NOT_HELD)
    provisional = appointment.patient
    patient = _patient_for(provisional)
    Patient.objects.select_for_update(no_key=True).filter(pk=patient.pk).exists()
    appointment_type = appointment.appointment_type
    # What depends on the patient's record, asked now that it is theirs to see.
    pending_visits_check(patient=patient, appointment_type=appointment_type, now=now)
    lock_patient_and_check(patient, appointment.start, appointment.end, exclude=appointment.pk)
    treatment_check(
        patient=patient, appointment_type=appointment_type, start=appointment.start, now=now
    )
    if patient.pk != provisional.pk:
        _consent_carry(provisional, patient)
    appointment.patient = patient
    appointment.status = AppointmentStatus.BOOKED
    appointment.version += 1
    appointment.save(update_fields=["patient", "status", "version", "updated_at"])
    hold.confirmed_at = now
    hold.save(update_fields=["confirmed_at"])
    if patient.pk != provisional.pk:
        _provisional_delete(provisional.pk)
    appointment_changed.send(sender=Appointment, appointment=appointment, change="booked", now=now)
    return appointment


def tentative_confirm(*, token: str, now: datetime | None = None) -> Appointment:
    """The patient followed the e-mailed link and confirms: the tentative booking becomes
    BOOKED on their record (see the module's docstring). Confirming twice is harmless.

    Raises ``HoldNotFound`` (404) for an unknown token, and ``HoldNotKept`` (409) when the hold
    lapsed or was released, or when the patient's own record rules it out (pending visits, a
    visit of their own at that time, the clinic's rules): then the hold is released, and the
    message says why, to the owner of the address only.
    """
    now = now or timezone.now()
    hold = tentative_resolve(token=token)
    if hold is None:
        raise HoldNotFound("This link is not valid.", field="token")
    try:
        return with_retries(lambda: _confirm(hold.pk, hold.appointment_id, now), busy=OWN_VISIT)
    except (PatientBusy, PolicyViolation, NotEligible) as refused:
        message = OWN_VISIT if isinstance(refused, PatientBusy) else refused.message
        with transaction.atomic():
            _discard(hold.appointment_id)
        raise HoldNotKept(f"{message} The time you chose has been released.") from refused


def tentative_release(*, token: str) -> None:
    """Whoever holds the link lets the time go ("this wasn't me"); nothing else happens.
    Releasing twice, or a confirmed booking, is harmless (a booked visit is cancelled through
    the patient's own link)."""
    hold = tentative_resolve(token=token)
    if hold is None:
        raise HoldNotFound("This link is not valid.", field="token")
    with transaction.atomic():
        _discard(hold.appointment_id)


def _provisional_delete(patient_id: int) -> None:
    try:
        with transaction.atomic():
            Patient.objects.filter(pk=patient_id, provisional=True).delete()
    except ProtectedError:
        pass  # a staff read of it was audited: the row stays, still invisible to every page


def _discard(appointment_id: int, *, skip_locked: bool = False) -> bool:
    """Delete a tentative booking (locked here, in the caller's transaction) with its lanes,
    intake and provisional patient; False when it is no longer tentative (or, ``skip_locked``,
    when somebody else holds it: a confirmation under way)."""
    appointment = (
        Appointment.objects.select_for_update(skip_locked=skip_locked)
        .filter(pk=appointment_id, status=AppointmentStatus.TENTATIVE)
        .first()
    )
    if appointment is None:
        return False
    Allocation.objects.filter(appointment_id=appointment_id, active=True).update(active=False)
    patient_id = appointment.patient_id
    appointment.delete()
    _provisional_delete(patient_id)
    return True


def tentative_holds_expire(now: datetime | None = None) -> int:
    """Delete every tentative booking whose hold ran out, freeing its lanes; how many. Safe to
    run from several workers at once, and beside a confirmation: each row is taken by one."""
    now = now or timezone.now()
    due = list(
        TentativeHold.objects.filter(confirmed_at__isnull=True, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("appointment_id", flat=True)[:EXPIRY_BATCH]
    )
    expired = 0
    for appointment_id in due:
        with transaction.atomic():
            expired += _discard(appointment_id, skip_locked=True)
    return expired

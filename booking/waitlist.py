"""The waitlist: patients waiting for a visit of one type at one location, offered freed slots
first come, first offered.

When a future visit is cancelled or moved away (or a series put on hold releases its chairs) and
that change commits, the freed start is offered to the first waiting entry whose window contains
it and whose patient is free then (:func:`offer_freed_slot`). The slot's lanes are kept for them
by an appointment in status HELD, which blocks the time for everyone else without being a visit (no
reminders, not the patient's time, not counted against a plan), and booking announces the offer
through ``waitlist_offer_made`` with the link's raw token (only its SHA-256 is stored).

Accepting (:func:`offer_accept`) releases the hold and books through ``appointment_book`` in one
transaction, so every rule of a normal booking applies (approval gate, patient overlap, lanes).
Declining, expiry (:func:`offers_expire`) and removing an entry with an open offer release the
hold and offer the slot to the next in line.

An entry is offered a given start once: after declining or letting an offer of it expire it goes
back to waiting for other times, and that start goes to the entries behind it.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from booking.eligibility import local_today, plan_in_force, treatment_check
from booking.errors import BookingError, InvalidTransition, PatientBusy, PolicyViolation, SlotTaken
from booking.links import hash_token
from booking.models import (
    ACTIVE_STATUSES,
    Allocation,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    OfferStatus,
    Patient,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from booking.placement import check_policy, lock_patient_and_check, visit_occupy, with_retries
from booking.services import appointment_book
from booking.signals import waitlist_offer_made
from scheduling.clock import quiet_hours_end
from scheduling.models import AppointmentType, Location

# How long an offered slot is kept for its patient: long enough to see a text and answer during a
# working day, short enough that a slot can still pass down a few places in line. The same for
# every location; an offer is always shortened to close at the type's minimum notice before the
# visit, when the clinic needs to know who is coming.
HOLD_LENGTH = timedelta(hours=2)
# A hold shorter than this is no real chance to answer: such a slot is not offered at all.
MIN_HOLD = timedelta(minutes=15)

# Statuses in which a patient cannot be offered an overlapping slot: their own visits, and
# slots already held for them by another offer.
_BUSY_STATUSES = sorted(ACTIVE_STATUSES | {AppointmentStatus.HELD})
_OPEN_ENTRY_STATUSES = (WaitlistStatus.WAITING, WaitlistStatus.OFFERED)


class OfferClosed(BookingError):
    """The offer was already answered, withdrawn, or its hold has expired."""

    status = 409
    code = "offer_closed"


class OfferNotFound(BookingError):
    status = 404
    code = "not_found"


# --- Entries --------------------------------------------------------------------------------


def waitlist_add(
    *,
    patient: Patient,
    location: Location,
    appointment_type: AppointmentType,
    earliest_date: date,
    latest_date: date,
    earliest_time: time | None = None,
    latest_time: time | None = None,
    note: str = "",
    by: Any = None,
    now: datetime | None = None,
) -> WaitlistEntry:
    """Put ``patient`` on the waitlist for ``appointment_type`` at ``location``.

    The window is a range of the clinic's calendar days, and optionally of local start times
    (a visit starting from ``earliest_time`` up to and including ``latest_time``). Refuses a
    type not bookable there, a window in the past, out of order or beyond the booking horizon,
    a patient already waiting for this type, and (``NotEligible``) a patient without an
    approval in force for a type that needs one.
    """
    now = now or timezone.now()
    if (
        appointment_type.location_id != location.pk
        or not appointment_type.is_active
        or not location.is_active
    ):
        raise PolicyViolation(
            "This appointment type is not offered at that location.", field="appointment_type"
        )
    today = local_today(location, now)
    if earliest_date > latest_date:
        raise BookingError("The first day must not be after the last day.", field="latest_date")
    if earliest_date < today:
        raise BookingError("The first day must not be in the past.", field="earliest_date")
    if earliest_date > today + timedelta(days=appointment_type.horizon_days):
        raise PolicyViolation(
            f"Bookings open {appointment_type.horizon_days} days ahead.", field="earliest_date"
        )
    if earliest_time is not None and latest_time is not None and earliest_time > latest_time:
        raise BookingError(
            "The earliest time must not be after the latest time.", field="latest_time"
        )
    with transaction.atomic():
        # The patient's row lock makes two adds of the same wish queue: the second sees the first.
        Patient.objects.select_for_update(no_key=True).filter(pk=patient.pk).exists()
        if appointment_type.needs_approval:
            plan_in_force(patient=patient, appointment_type=appointment_type, now=now)
        if WaitlistEntry.objects.filter(
            patient=patient, appointment_type=appointment_type, status__in=_OPEN_ENTRY_STATUSES
        ).exists():
            raise PolicyViolation(
                "The patient is already on the waitlist for this appointment type.",
                field="appointment_type",
            )
        return WaitlistEntry.objects.create(
            patient=patient,
            location=location,
            appointment_type=appointment_type,
            earliest_date=earliest_date,
            latest_date=latest_date,
            earliest_time=earliest_time,
            latest_time=latest_time,
            note=note[:500],
            created_at=now,
            created_by=by,
        )


def waitlist_remove(
    *, entry: WaitlistEntry, by: Any = None, now: datetime | None = None
) -> WaitlistEntry:
    """Take ``entry`` off the waitlist. An open offer is withdrawn and its slot offered to the
    next in line. Removing twice is harmless; a booked entry stays booked."""
    now = now or timezone.now()
    with transaction.atomic():
        current = WaitlistEntry.objects.select_for_update().get(pk=entry.pk)
        if current.status == WaitlistStatus.REMOVED:
            return current
        if current.status == WaitlistStatus.BOOKED:
            raise InvalidTransition("This waitlist place was already booked.", field="status")
        withdrawn = (
            WaitlistOffer.objects.select_for_update()
            .filter(entry=current, status=OfferStatus.OPEN)
            .first()
        )
        if withdrawn is not None:
            _close(withdrawn, OfferStatus.WITHDRAWN, now=now)
        current.status = WaitlistStatus.REMOVED
        current.save(update_fields=["status"])
    if withdrawn is not None:
        offer_freed_slot(appointment_type=current.appointment_type, start=withdrawn.start, now=now)
    return current


# --- Offers ---------------------------------------------------------------------------------


def _hold(
    appointment_type: AppointmentType, patient: Patient, start: datetime, now: datetime
) -> Appointment:
    """Keep the lanes of a visit at ``start`` for ``patient``: lock, check, write, as
    ``appointment_book`` does, but as a HELD appointment and without announcing a booking."""
    check_policy(appointment_type, start, now, online=False)
    end = start + timedelta(minutes=appointment_type.duration_minutes)

    def hold() -> Appointment:
        lock_patient_and_check(patient, start, end, exclude=None)
        appointment = visit_occupy(
            appointment_type,
            patient,
            start,
            end,
            source="waitlist",
            online=False,
            now=now,
            status=AppointmentStatus.HELD,
        )
        AppointmentEvent.objects.create(
            appointment=appointment, at=now, kind="held", detail="kept for a waitlist offer"
        )
        return appointment

    return with_retries(hold)


def _release(hold_id: int, reason: str, now: datetime) -> None:
    # Not appointment_cancel: a hold is no visit, so its end is announced to nobody (no notice
    # to the patient, and no second round of offers for a slot already being passed on).
    Allocation.objects.filter(appointment_id=hold_id, active=True).update(active=False)
    Appointment.objects.filter(pk=hold_id, status=AppointmentStatus.HELD).update(
        status=AppointmentStatus.CANCELLED,
        cancel_reason=reason,
        version=F("version") + 1,
        updated_at=now,
    )
    AppointmentEvent.objects.create(appointment_id=hold_id, at=now, kind="released", detail=reason)


def _close(offer: WaitlistOffer, status: str, *, now: datetime) -> None:
    """End an open offer (locked by the caller) as ``status``, release its hold and put its
    entry back in line, all inside the caller's transaction."""
    if offer.hold_id is not None:
        _release(offer.hold_id, f"waitlist offer {OfferStatus(status).label.lower()}", now)
    offer.status = status
    offer.answered_at = now
    offer.save(update_fields=["status", "answered_at"])
    WaitlistEntry.objects.filter(pk=offer.entry_id, status=WaitlistStatus.OFFERED).update(
        status=WaitlistStatus.WAITING
    )


def _hold_until(appointment_type: AppointmentType, start: datetime, now: datetime) -> datetime:
    """When an offer made at ``now`` lapses: ``HOLD_LENGTH`` counted from when the patient may
    be contacted (an offer made in the clinic's quiet hours is e-mailed at once but not texted,
    and its clock starts when they end), never past the type's minimum notice before the visit.
    """
    location = appointment_type.location
    reachable = quiet_hours_end(
        now, location.zone, location.quiet_hours_start, location.quiet_hours_end
    )
    return min(
        reachable + HOLD_LENGTH, start - timedelta(minutes=appointment_type.min_notice_minutes)
    )


def _candidates(appointment_type: AppointmentType, start: datetime) -> list[WaitlistEntry]:
    """Waiting entries whose window holds ``start`` (its local day and wall-clock time), in the
    order they joined; entries already offered this start are passed over."""
    local = start.astimezone(appointment_type.location.zone)
    day, clock = local.date(), local.time()
    return list(
        WaitlistEntry.objects.filter(
            appointment_type=appointment_type,
            location_id=appointment_type.location_id,
            status=WaitlistStatus.WAITING,
            earliest_date__lte=day,
            latest_date__gte=day,
        )
        .filter(Q(earliest_time__isnull=True) | Q(earliest_time__lte=clock))
        .filter(Q(latest_time__isnull=True) | Q(latest_time__gte=clock))
        .exclude(offers__start=start)
        .select_related("patient")
        .order_by("created_at", "id")
    )


def _patient_free(patient: Patient, start: datetime, end: datetime) -> bool:
    return not (
        Appointment.objects.filter(patient=patient, status__in=_BUSY_STATUSES)
        .overlapping(start, end)
        .exists()
    )


class _Taken(Exception):
    """Somebody else has the slot now: there is nothing left to offer."""


def _offer_to(
    entry: WaitlistEntry, appointment_type: AppointmentType, start: datetime, now: datetime
) -> WaitlistOffer | None:
    """Offer ``start`` to ``entry``: the offer, or None when this entry cannot have it."""
    end = start + timedelta(minutes=appointment_type.duration_minutes)
    patient = entry.patient
    with transaction.atomic():
        if not WaitlistEntry.objects.select_for_update().filter(
            pk=entry.pk, status=WaitlistStatus.WAITING
        ):
            return None  # removed or offered something else meanwhile
        if not _patient_free(patient, start, end):
            return None
        try:
            treatment_check(
                patient=patient, appointment_type=appointment_type, start=start, now=now
            )
        except BookingError:
            return None  # the approval lapsed, is used up, or the time is too near another
            # treatment: accepting would be refused
        try:
            hold = _hold(appointment_type, patient, start, now)
        except PatientBusy:
            return None
        except (SlotTaken, PolicyViolation) as exc:
            raise _Taken from exc
        token = secrets.token_urlsafe(32)  # 256 bits, as a patient link
        offer = WaitlistOffer.objects.create(
            entry=entry,
            hold=hold,
            start=start,
            end=end,
            expires_at=_hold_until(appointment_type, start, now),
            token_hash=hash_token(token),
            created_at=now,
        )
        WaitlistEntry.objects.filter(pk=entry.pk).update(status=WaitlistStatus.OFFERED)
        entry.status = WaitlistStatus.OFFERED
        waitlist_offer_made.send(sender=WaitlistOffer, offer=offer, token=token)
    return offer


def offer_freed_slot(
    *, appointment_type: AppointmentType, start: datetime, now: datetime | None = None
) -> WaitlistOffer | None:
    """Offer a freed visit at ``start`` to the first waiting patient who can take it.

    Call it once the slot is really free (after the change that freed it committed). Entries are
    tried in the order they joined; one whose patient is busy then, or whose approval no longer
    allows the visit, is passed over. Returns the offer made, or None: no matching entry, the
    slot too close (inside the type's minimum notice plus ``MIN_HOLD``) or already taken again.
    """
    now = now or timezone.now()
    if _hold_until(appointment_type, start, now) - now < MIN_HOLD:
        return None
    for entry in _candidates(appointment_type, start):
        try:
            offer = _offer_to(entry, appointment_type, start, now)
        except _Taken:
            return None
        if offer is not None:
            return offer
    return None


def offer_resolve(*, token: str) -> WaitlistOffer | None:
    """The offer a link token belongs to, whatever its state; None for an unknown token."""
    if not token or len(token) > 128:
        return None
    return (
        WaitlistOffer.objects.select_related(
            "entry__patient", "entry__location", "entry__appointment_type", "appointment"
        )
        .filter(token_hash=hash_token(token))
        .first()
    )


def _open_offer(token: str, now: datetime) -> WaitlistOffer:
    """The token's offer, locked, if it may still be answered; else a clear refusal."""
    found = offer_resolve(token=token)
    if found is None:
        raise OfferNotFound("This offer does not exist.", field="token")
    offer = (
        WaitlistOffer.objects.select_for_update()
        .select_related("entry__appointment_type__location", "entry__patient")
        .get(pk=found.pk)
    )
    if offer.status != OfferStatus.OPEN:
        raise OfferClosed(
            f"This offer was already {offer.get_status_display().lower()}.", field="token"
        )
    if offer.expires_at <= now:
        raise OfferClosed("This offer has expired: the time is no longer kept for you.")
    return offer


def offer_accept(*, token: str, now: datetime | None = None) -> Appointment:
    """The patient takes the offered slot: the hold is released and the visit booked through
    :func:`booking.services.appointment_book` (source ``waitlist``) in one transaction, so a
    refusal there (the approval lapsed, the patient booked something else at that time) leaves
    the offer and its hold as they were. Raises ``OfferClosed`` (409) for an offer already
    answered, withdrawn or expired, ``OfferNotFound`` (404) for an unknown token."""
    now = now or timezone.now()
    with transaction.atomic():
        offer = _open_offer(token, now)
        entry = WaitlistEntry.objects.select_for_update().get(pk=offer.entry_id)
        if offer.hold_id is not None:
            _release(offer.hold_id, "taken by its waitlist patient", now)
        appointment = appointment_book(
            appointment_type=entry.appointment_type,
            patient=entry.patient,
            start=offer.start,
            source="waitlist",
            now=now,
        )
        offer.status = OfferStatus.ACCEPTED
        offer.appointment = appointment
        offer.answered_at = now
        offer.save(update_fields=["status", "appointment", "answered_at"])
        entry.status = WaitlistStatus.BOOKED
        entry.save(update_fields=["status"])
    return appointment


def offer_decline(*, token: str, now: datetime | None = None) -> WaitlistOffer:
    """The patient turns the slot down: the hold is released, the patient keeps their place for
    other times, and the slot goes to the next in line."""
    now = now or timezone.now()
    with transaction.atomic():
        offer = _open_offer(token, now)
        _close(offer, OfferStatus.DECLINED, now=now)
    offer_freed_slot(appointment_type=offer.entry.appointment_type, start=offer.start, now=now)
    return offer


def offers_expire(now: datetime | None = None) -> int:
    """Expire every open offer whose hold ran out and pass each slot to the next in line; how
    many expired. Safe to run from several workers at once: each offer is taken by one."""
    now = now or timezone.now()
    due = list(
        WaitlistOffer.objects.filter(status=OfferStatus.OPEN, expires_at__lte=now)
        .order_by("expires_at", "id")
        .values_list("id", flat=True)
    )
    expired = 0
    for offer_id in due:
        with transaction.atomic():
            offer = (
                WaitlistOffer.objects.select_for_update(skip_locked=True)
                .select_related("entry__appointment_type__location")
                .filter(pk=offer_id, status=OfferStatus.OPEN, expires_at__lte=now)
                .first()
            )
            if offer is None:
                continue  # answered meanwhile, or another sweep has it
            _close(offer, OfferStatus.EXPIRED, now=now)
        expired += 1
        offer_freed_slot(appointment_type=offer.entry.appointment_type, start=offer.start, now=now)
    return expired


# --- The trigger ----------------------------------------------------------------------------


def _offer_after_commit(appointment_type_id: int, start: datetime, now: datetime) -> None:
    appointment_type = AppointmentType.objects.select_related("location").get(
        pk=appointment_type_id
    )
    offer_freed_slot(appointment_type=appointment_type, start=start, now=now)


def on_appointment_changed(
    sender: Any, *, appointment: Appointment, change: str, **kwargs: Any
) -> None:
    """``appointment_changed`` receiver: a cancelled future visit, one moved away from its start
    (or a held series session whose chairs were released) frees its slot. It is offered once the
    change commits: before that the lanes are not free for anybody else, and a rolled-back cancel
    must offer nothing."""
    start: datetime | None = appointment.start
    if change == "on_hold":
        if appointment.location.hold_keeps_chairs:
            return
    elif change == "rescheduled":
        start = kwargs.get("previous_start")
    elif change != "cancelled":
        return
    if start is None:
        return
    now = kwargs.get("now") or timezone.now()
    if start <= now:
        return
    type_id = appointment.appointment_type_id
    # robust: the cancel has committed whatever happens here; a failed offer must not turn it
    # into an error page (it is logged).
    transaction.on_commit(lambda: _offer_after_commit(type_id, start, now), robust=True)

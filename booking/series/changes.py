"""Changing a booked series: one session moved or cancelled, the rest cancelled, the whole series
put on hold and resumed, and the prescriber's review gate.

A series is only as good as its spacing: a session moved too close to its neighbour, or too far
from it, is a different treatment. So a session's new time is checked against the protocol's
cadence first (gaps between neighbouring session starts in calendar days where the clinic is,
the allowed weekdays, the total window), and only then placed by the booking services
themselves, lock -> check with the engine -> write. A move that breaks the cadence is refused,
with the neighbour it clashes with and, when moving the later sessions by the same number of days
would keep the spacing, that offer; or it goes ahead on a prescriber's override, recorded with
its reason.

Holds keep the sessions (status ``on_hold``, reminders stopped by notifications through the
usual announcement) and, unless the location keeps them, release their chairs and staff. A resume
puts every held session back or none: a session whose time was taken meanwhile (or has passed)
makes the whole resume fail with ``SlotTaken`` naming it. The desk gives such a session a new
time while the series is still on hold (:func:`series_session_reschedule` accepts held sessions),
then resumes; the series is never left half on hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from booking.access.roles import is_prescriber
from booking.eligibility import rules_override_record, treatment_check
from booking.errors import (
    BookingError,
    InvalidTransition,
    NotEligible,
    PatientBusy,
    PolicyViolation,
    SlotTaken,
)
from booking.holds import visits_hold
from booking.models import (
    CHANGEABLE_STATUSES,
    Allocation,
    Appointment,
    AppointmentStatus,
    Patient,
    ScheduleOverride,
    Series,
    SeriesStatus,
)
from booking.placement import check_policy, lock_patient_and_check, visit_place, with_retries
from booking.services import appointment_cancel, appointment_reschedule
from booking.signals import appointment_changed
from scheduling.clock import clinic_datetime

# Sessions still to come that a series change may touch.
_PENDING_STATUSES = CHANGEABLE_STATUSES | {AppointmentStatus.ON_HOLD}


class CadenceViolation(PolicyViolation):
    """A session's new time breaks its protocol's spacing (422).

    ``neighbour`` is the index of the session it clashes with (None for a weekday or window
    fault); ``shift_days`` is set when moving the later sessions by that many days as well keeps
    the spacing (pass ``shift_later=True``).
    """

    def __init__(self, message: str, *, neighbour: int | None, shift_days: int | None) -> None:
        super().__init__(message, field="start")
        self.neighbour = neighbour
        self.shift_days = shift_days


class ResumeBlocked(SlotTaken):
    """Some held sessions cannot come back at their times (409); ``sessions`` are their
    indexes. Nothing was resumed."""

    def __init__(self, message: str, *, sessions: list[int]) -> None:
        super().__init__(message, field="start")
        self.sessions = sessions


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class _Fault:
    message: str
    neighbour: int | None


def _cadence_faults(
    series: Series, sessions: list[Appointment], moves: dict[int, datetime], zone: ZoneInfo
) -> list[_Fault]:
    """What the schedule ``sessions`` (by index, not cancelled) with ``moves`` (id -> new start)
    applied breaks of the protocol, looking only at what the moves change.

    Spacing that was already off (an earlier override) does not block an unrelated move.
    """
    protocol = series.protocol

    def day(session: Appointment) -> date:
        # Gaps are counted on the clinic's calendar: Monday 17:00 to Wednesday 08:00 is two
        # days, as the protocol means it, though only 39 hours.
        return moves.get(session.pk, session.start).astimezone(zone).date()

    faults: list[_Fault] = []
    for before, after in pairwise(sessions):
        if before.pk not in moves and after.pk not in moves:
            continue
        gap = (day(after) - day(before)).days
        # Say it from the side of the session being moved: "3 would be 1 day after 2".
        if after.pk in moves:
            subject, other, relation = after, before, "after"
        else:
            subject, other, relation = before, after, "before"
        if gap < protocol.min_gap_days or gap < 0:
            if gap > 0:
                where = f"be {_plural(gap, 'day')} {relation}"
            else:
                where = "be on the same day as" if gap == 0 else f"not come {relation}"
            faults.append(
                _Fault(
                    f"Session {subject.series_index} would {where} session "
                    f"{other.series_index}; this plan needs at least "
                    f"{_plural(protocol.min_gap_days, 'day')} between the starts of sessions.",
                    other.series_index,
                )
            )
        elif gap > protocol.max_gap_days:
            faults.append(
                _Fault(
                    f"Session {subject.series_index} would be {_plural(gap, 'day')} {relation} "
                    f"session {other.series_index}; this plan allows at most "
                    f"{_plural(protocol.max_gap_days, 'day')} between the starts of sessions.",
                    other.series_index,
                )
            )
    for session in sessions:
        if session.pk in moves and str(day(session).weekday()) not in protocol.allowed_weekdays:
            faults.append(
                _Fault(
                    f"Session {session.series_index} would fall on a "
                    f"{_WEEKDAYS[day(session).weekday()]}, when this plan has no sessions.",
                    None,
                )
            )
    if sessions and {sessions[0].pk, sessions[-1].pk} & set(moves):
        span = (day(sessions[-1]) - day(sessions[0])).days + 1
        if span > protocol.window_days:
            faults.append(
                _Fault(
                    f"The sessions would spread over {span} days; this plan keeps them within "
                    f"{protocol.window_days}.",
                    None,
                )
            )
    return faults


def _same_wall_time(start: datetime, days: int, zone: ZoneInfo) -> datetime | None:
    """``start`` moved by ``days`` calendar days at the same clinic wall-clock time, or None when
    that time does not exist on the new day (clocks go forward through it)."""
    local = start.astimezone(zone)
    moved = (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=zone, fold=0)
    # A local time skipped by a spring-forward change does not survive the round trip.
    if moved.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != moved.replace(tzinfo=None):
        return None
    return moved.astimezone(UTC)


def _lock_series(series_id: int) -> Series:
    return (
        Series.objects.select_for_update(of=("self",))
        .select_related("plan", "protocol__appointment_type__location")
        .get(pk=series_id)
    )


def _sessions(series: Series) -> list[Appointment]:
    """The series' sessions that are not cancelled, locked, in their order."""
    return list(
        Appointment.objects.select_for_update(of=("self",))
        .select_related("location", "appointment_type__location", "patient")
        .filter(series=series)
        .exclude(status=AppointmentStatus.CANCELLED)
        .order_by("series_index")
    )


def _move_held(
    session: Appointment, start: datetime, now: datetime, by: Any, override_reason: str
) -> Appointment:
    """Give a held session a new time. Its chairs were released by the hold (the resume checks
    the new time), unless the location keeps them: then they move with it, checked now. The
    clinical rules are checked now as for any move (and again on resume)."""
    appointment_type = session.appointment_type
    check_policy(appointment_type, start, now, online=False)
    end = start + timedelta(minutes=appointment_type.duration_minutes)

    def move() -> Appointment:
        Patient.objects.select_for_update(no_key=True).filter(pk=session.patient_id).exists()
        current = Appointment.objects.select_for_update().get(pk=session.pk)
        overridden = treatment_check(
            patient=current.patient,
            appointment_type=appointment_type,
            start=start,
            now=now,
            moving=current,
            by=by,
            override_reason=override_reason,
        )
        kept = Allocation.objects.filter(appointment=current, active=True).update(active=False)
        previous_start = current.start
        current.start, current.end = start, end
        current.version += 1
        current.save(update_fields=["start", "end", "version", "updated_at"])
        if kept:
            visit_place(current, online=False, now=now)
        rules_override_record(
            appointment=current, overridden=overridden, by=by, reason=override_reason, now=now
        )
        appointment_changed.send(
            sender=Appointment,
            appointment=current,
            change="rescheduled",
            now=now,
            previous_start=previous_start if kept else None,
        )
        return current

    return with_retries(move)


def visit_move(
    *,
    appointment: Appointment,
    start: datetime,
    by: Any = None,
    online: bool = False,
    now: datetime | None = None,
    override_reason: str = "",
) -> Appointment:
    """Move a visit to ``start``: a session of a series keeps its protocol's cadence with its
    neighbours (:func:`series_session_reschedule`), any other visit moves on its own. A
    prescriber's ``override_reason`` sets aside what a prescriber may (the cadence, the age and
    spacing rules)."""
    if appointment.series_id:
        return series_session_reschedule(
            appointment=appointment,
            start=start,
            by=by,
            override_reason=override_reason,
            online=online,
            now=now,
        )[0]
    return appointment_reschedule(
        appointment=appointment,
        start=start,
        by=by,
        override_reason=override_reason,
        online=online,
        now=now,
    )


def series_session_reschedule(
    *,
    appointment: Appointment,
    start: datetime,
    by: Any = None,
    override_reason: str = "",
    shift_later: bool = False,
    online: bool = False,
    now: datetime | None = None,
) -> list[Appointment]:
    """Move one session of a series to ``start``, keeping the protocol's cadence.

    The new time is checked against the neighbouring sessions (gaps in clinic calendar days
    within ``[min_gap_days, max_gap_days]``), the allowed weekdays and the window. A break raises
    :class:`CadenceViolation` (422) naming the neighbour, unless

    - ``shift_later=True``: the later sessions move by the same number of days at their own
      local times, all placed by the engine or none (``SlotTaken`` naming the first that does
      not fit), and the result must keep the cadence; or
    - ``override_reason`` is given by ``by``, a prescriber: the move is allowed and a
      :class:`~booking.models.ScheduleOverride` records who, when and why.

    ``online=True`` is the patient's own link: the late-change cutoff applies and no override
    is possible. Sessions of a series on hold may be given new times (checked again on resume).
    Returns the sessions moved, in order.
    """
    now = now or timezone.now()
    if timezone.is_naive(start):
        raise BookingError("Give the time with its UTC offset.", field="start")
    if appointment.series_id is None:
        raise InvalidTransition("This visit is not part of a series.", field="series")
    override_reason = " ".join(override_reason.split())[:500]
    with transaction.atomic():
        series = _lock_series(appointment.series_id)
        if series.status not in (SeriesStatus.BOOKED, SeriesStatus.ON_HOLD):
            raise InvalidTransition(
                f"A {series.get_status_display().lower()} series cannot be changed.",
                field="series",
            )
        sessions = _sessions(series)
        current = next((s for s in sessions if s.pk == appointment.pk), None)
        if current is None or current.status not in _PENDING_STATUSES:
            status = current.get_status_display() if current else "Cancelled"
            raise InvalidTransition(f"A {status.lower()} visit cannot be moved.", field="status")
        if online and current.status == AppointmentStatus.ON_HOLD:
            raise InvalidTransition("The clinic will contact you about this visit.", field="status")
        zone = series.protocol.appointment_type.location.zone
        days = (start.astimezone(zone).date() - current.start.astimezone(zone).date()).days
        later = [s for s in sessions if (s.series_index or 0) > (current.series_index or 0)]

        def shifted() -> dict[int, datetime] | None:
            moves = {current.pk: start}
            for session in later:
                moved = _same_wall_time(session.start, days, zone)
                if moved is None:
                    return None
                moves[session.pk] = moved
            return moves

        moves = {current.pk: start}
        if shift_later and days and later:
            shifted_moves = shifted()
            if shifted_moves is None:
                raise SlotTaken(
                    "A later session's time does not exist on its new day (the clocks change); "
                    "move the sessions one at a time.",
                    field="start",
                )
            moves = shifted_moves
        valid_until = series.plan.valid_until
        for session in sessions:
            if session.pk in moves and moves[session.pk].astimezone(zone).date() > valid_until:
                raise NotEligible(
                    f"The approval is valid until {valid_until:%Y-%m-%d}; session "
                    f"{session.series_index} would be after it.",
                    field="start",
                )
        faults = _cadence_faults(series, sessions, moves, zone)
        if faults and not (override_reason and not online):
            first = faults[0]
            shift_days = None
            if not shift_later and days and later:
                alternative = shifted()
                if alternative is not None and not _cadence_faults(
                    series, sessions, alternative, zone
                ):
                    shift_days = days
            message = first.message
            if shift_days is not None:
                message += (
                    f" Moving sessions {later[0].series_index} to {later[-1].series_index} "
                    f"{_plural(abs(shift_days), 'day')} {'later' if days > 0 else 'earlier'} "
                    "as well keeps the spacing."
                )
            if not online:
                message += " A prescriber can allow it with a reason."
            raise CadenceViolation(message, neighbour=first.neighbour, shift_days=shift_days)
        if faults and not is_prescriber(by):
            raise PolicyViolation(
                "Only a prescriber can allow a session outside the plan's spacing.",
                field="override_reason",
            )

        # Move in the order that never lands a session on a time another one has not yet left:
        # the last first when moving later, the first first when moving earlier.
        order = sorted(
            (s for s in sessions if s.pk in moves), key=lambda s: s.start, reverse=days > 0
        )
        moved: list[Appointment] = []
        for session in order:
            new_start = moves[session.pk]
            try:
                if session.status == AppointmentStatus.ON_HOLD:
                    moved.append(_move_held(session, new_start, now, by, override_reason))
                else:
                    moved.append(
                        appointment_reschedule(
                            appointment=session,
                            start=new_start,
                            online=online,
                            now=now,
                            by=by,
                            override_reason=override_reason,
                        )
                    )
            except (SlotTaken, PatientBusy, PolicyViolation) as refused:
                if session.pk == current.pk:
                    raise
                # Say which of the shifted sessions did not fit; nothing has changed.
                raise type(refused)(
                    f"Session {session.series_index} cannot move to "
                    f"{clinic_datetime(new_start, zone.key)}: {refused.message}",
                    field="start",
                ) from refused
        if faults:
            ScheduleOverride.objects.create(
                appointment=current, reason=override_reason, by=by, at=now
            )
    return sorted(moved, key=lambda s: s.series_index or 0)


def _cancel_held(session: Appointment, reason: str, now: datetime) -> Appointment:
    """Cancel a held session (``appointment_cancel`` moves only booked or confirmed visits)."""
    current = Appointment.objects.select_for_update().get(pk=session.pk)
    Allocation.objects.filter(appointment=current, active=True).update(active=False)
    current.status = AppointmentStatus.CANCELLED
    current.cancel_reason = reason[:500]
    current.version += 1
    current.save(update_fields=["status", "cancel_reason", "version", "updated_at"])
    appointment_changed.send(sender=Appointment, appointment=current, change="cancelled", now=now)
    return current


def series_cancel_rest(
    *, series: Series, from_index: int, reason: str, now: datetime | None = None
) -> list[Appointment]:
    """Cancel every session from ``from_index`` on that is still to come (booked, confirmed or
    on hold), releasing its chairs; sessions given or under way stay. When nothing is left to
    come the series is cancelled. Returns the sessions cancelled; cancelling twice is harmless.
    """
    now = now or timezone.now()
    with transaction.atomic():
        series = _lock_series(series.pk)
        sessions = _sessions(series)
        cancelled = []
        for session in sessions:
            if (
                (session.series_index or 0) < from_index
                or session.status not in _PENDING_STATUSES
                or session.start <= now
            ):
                continue
            if session.status == AppointmentStatus.ON_HOLD:
                cancelled.append(_cancel_held(session, reason, now))
            else:
                cancelled.append(appointment_cancel(appointment=session, reason=reason, now=now))
        to_come = {s.pk for s in sessions if s.status in _PENDING_STATUSES and s.start > now}
        if cancelled and to_come <= {s.pk for s in cancelled}:
            series.status = SeriesStatus.CANCELLED
            series.save(update_fields=["status"])
    return cancelled


def series_hold(*, series: Series, reason: str, now: datetime | None = None) -> list[Appointment]:
    """Put the sessions still to come on hold: kept, their reminders stopped (each announced as
    ``on_hold``), their chairs and staff released unless the location keeps them through holds.
    Holding a held series again changes nothing. Returns the sessions held."""
    now = now or timezone.now()
    with transaction.atomic():
        series = _lock_series(series.pk)
        if series.status == SeriesStatus.ON_HOLD:
            return []
        if series.status != SeriesStatus.BOOKED:
            raise InvalidTransition(
                f"A {series.get_status_display().lower()} series cannot be put on hold.",
                field="series",
            )
        held = visits_hold(visits=_sessions(series), now=now)
        series.status = SeriesStatus.ON_HOLD
        series.hold_reason = " ".join(reason.split())[:500]
        series.held_at = now
        series.save(update_fields=["status", "hold_reason", "held_at"])
    return held


def series_resume(
    *,
    series: Series,
    by: Any = None,
    override_reason: str = "",
    now: datetime | None = None,
) -> list[Appointment]:
    """Bring every held session back to booked, its reminders planned again (``resumed``).

    Each session meets the clinical rules again (``treatment_check``, as a move would): a plan
    in force for it (a withdrawn or declined one needs a new approval first), the age and the
    spacing from the patient's other treatments, which a prescriber (``by``) may set aside with
    ``override_reason``. A refusal names the session and the rule (422) and resumes nothing.

    A session whose chairs were released is placed again by the engine at its own time. If any
    session's time was taken meanwhile, clashes with another of the patient's visits or has
    passed, nothing is resumed: :class:`ResumeBlocked` (409) names each such session, to be
    given a new time (:func:`series_session_reschedule`) before resuming. Returns the sessions
    resumed.
    """
    now = now or timezone.now()
    with transaction.atomic():
        series = _lock_series(series.pk)
        if series.status != SeriesStatus.ON_HOLD:
            raise InvalidTransition("Only a series on hold can be resumed.", field="series")
        zone = series.protocol.appointment_type.location.timezone
        held = [s for s in _sessions(series) if s.status == AppointmentStatus.ON_HOLD]
        if held:
            Patient.objects.select_for_update(no_key=True).filter(pk=held[0].patient_id).exists()
        blocked: list[tuple[int, str]] = []
        overrides: list[tuple[Appointment, list[str]]] = []
        for session in held:
            when = clinic_datetime(session.start, zone)
            if session.start <= now:
                blocked.append(
                    (
                        session.series_index or 0,
                        f"session {session.series_index} ({when}) has passed",
                    )
                )
                continue
            try:
                overrides.append(
                    (
                        session,
                        treatment_check(
                            patient=session.patient,
                            appointment_type=session.appointment_type,
                            start=session.start,
                            now=now,
                            moving=session,
                            by=by,
                            override_reason=override_reason,
                        ),
                    )
                )
            except NotEligible as refused:
                raise NotEligible(
                    f"Session {session.series_index} ({when}) cannot resume: {refused.message}",
                    field=refused.field,
                ) from refused

            def place(session: Appointment = session) -> None:
                # Held sessions are not active, so the patient may have booked over them.
                lock_patient_and_check(
                    session.patient, session.start, session.end, exclude=session.pk
                )
                if not Allocation.objects.filter(appointment=session, active=True).exists():
                    visit_place(session, online=False, now=now)

            try:
                with_retries(place)
            except PatientBusy:
                blocked.append(
                    (
                        session.series_index or 0,
                        f"session {session.series_index} "
                        f"({when}) clashes with another of the patient's visits",
                    )
                )
            except SlotTaken:
                blocked.append(
                    (
                        session.series_index or 0,
                        f"session {session.series_index} ({when}) is no longer free",
                    )
                )
        if blocked:
            reasons = "; ".join(reason for _, reason in blocked)
            raise ResumeBlocked(
                f"The series cannot resume: {reasons}. Give "
                f"{'it' if len(blocked) == 1 else 'them'} a new time first.",
                sessions=[index for index, _ in blocked],
            )
        for session, overridden in overrides:
            rules_override_record(
                appointment=session, overridden=overridden, by=by, reason=override_reason, now=now
            )
        for session in held:
            session.status = AppointmentStatus.BOOKED
            session.version += 1
            session.save(update_fields=["status", "version", "updated_at"])
            appointment_changed.send(
                sender=Appointment, appointment=session, change="resumed", now=now
            )
        series.status = SeriesStatus.BOOKED
        series.hold_reason = ""
        series.held_at = None
        series.save(update_fields=["status", "hold_reason", "held_at"])
    return held


def series_review_confirm(*, series: Series, by: Any, now: datetime | None = None) -> int:
    """The prescriber's review after session ``review_after_session``: the later sessions stop
    being tentative. Only once that session has begun; returns how many were confirmed."""
    now = now or timezone.now()
    if not is_prescriber(by):
        raise PolicyViolation("Only a prescriber can confirm the review.", field="by")
    with transaction.atomic():
        series = _lock_series(series.pk)
        gate = series.protocol.review_after_session
        if gate is None:
            return 0
        if series.status not in (SeriesStatus.BOOKED, SeriesStatus.ON_HOLD):
            raise InvalidTransition(
                f"A {series.get_status_display().lower()} series has no review.", field="series"
            )
        gate_session = (
            Appointment.objects.filter(series=series, series_index=gate)
            .exclude(status=AppointmentStatus.CANCELLED)
            .first()
        )
        if gate_session is not None and gate_session.start > now:
            raise PolicyViolation(
                f"The review follows session {gate}, on "
                f"{clinic_datetime(gate_session.start, gate_session.location.timezone)}.",
                field="series",
            )
        return Appointment.objects.filter(
            series=series, series_index__gt=gate, tentative=True
        ).update(tentative=False, updated_at=now)

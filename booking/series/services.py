"""Infusion series: propose a whole schedule, then book it all or nothing.

A protocol fixes the cadence of a series: how many sessions, the least and most calendar days
between one session's start and the next (in the clinic's zone), the days of the week allowed,
and a window that holds them all (counted from the first day asked for when proposing, from the
first session when booking). :func:`series_propose` loads the availability of every
candidate day in one read and then *searches* (it does not take the first fit) for the schedule
that keeps the same local time most often, then strays from it by the fewest minutes, then
finishes earliest. :func:`series_book` writes every session of a series in one transaction, each
allocation guarded by the exclusion constraint, or writes nothing.

Session numbers (``Appointment.series_index``, ``Proposal.sessions``/``missing``/``alternatives``)
count from 1. Error fields name the position in the ``starts`` list given to
:func:`series_book`, from 0: session 4 is ``"starts.3"``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.utils import timezone

from booking.eligibility import (
    age_check,
    plan_in_force,
    treatment_days_taken,
)
from booking.errors import BookingError, NotEligible, PatientBusy, PolicyViolation, SlotTaken
from booking.models import Appointment, Patient, Protocol, Series, TreatmentPlan
from booking.placement import with_retries, write_allocations
from booking.selectors import availability_problem
from booking.series.search import Cadence, Options, Schedule, alternatives_for, schedule_search
from booking.signals import appointment_changed
from scheduling.availability import (
    MINUTES_PER_DAY,
    Placement,
    allocate,
    available_starts,
    from_minutes,
    grid_starts,
    local_day_bounds,
    to_minutes,
)
from scheduling.models import AppointmentType, Location

# How far past the requested window a proposal looks for a later first day, when the series
# does not fit the window it was asked for.
LATER_FIRST_DAY_DAYS = 14
# Other times offered for each session that could not be placed.
ALTERNATIVES_PER_SESSION = 3
SOURCES = ("staff", "link")


# --- Proposal -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesPreferences:
    """What the patient asked for: days of the week (Monday=0), a local time of day, a place."""

    weekdays: set[int] | frozenset[int] | None = None
    time_of_day: time | None = None
    location: Location | None = None


@dataclass(frozen=True)
class Proposal:
    """A schedule for the series. ``sessions`` are the placed ones, (session number, start,
    end) in UTC; ``missing`` the session numbers that could not be placed, each with
    ``alternatives`` (other starts, best first). When sessions are missing, ``later_first_day``
    is the first later day from which the whole series fits, with its ``later_sessions``."""

    sessions: list[tuple[int, datetime, datetime]]
    missing: list[int] = field(default_factory=list)
    alternatives: dict[int, list[datetime]] = field(default_factory=dict)
    later_first_day: date | None = None
    later_sessions: list[tuple[int, datetime, datetime]] = field(default_factory=list)
    # The local time the schedule keeps to, when it keeps to one.
    time_of_day: time | None = None

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def starts(self) -> list[datetime]:
        """The placed sessions' starts, as :func:`series_book` takes them."""
        return [start for _, start, _ in self.sessions]


def _day_label(day: date) -> str:
    return f"{day:%A, %B} {day.day}"


def _session_type(protocol: Protocol, location: Location | None) -> AppointmentType:
    """The protocol's appointment type, which is given at one location: an approval names the
    protocol, and with it the place."""
    appointment_type = protocol.appointment_type
    if location is not None and location.pk != appointment_type.location_id:
        place = appointment_type.location
        raise PolicyViolation(
            f"This treatment plan's sessions are given at {place.public_name or place.name}.",
            field="location",
        )
    return appointment_type


def _plan_sessions(
    plan: TreatmentPlan,
    appointment_type: AppointmentType,
    now: datetime,
    start: datetime | None = None,
) -> int:
    """How many sessions the series may have: the protocol's, or fewer if the plan has fewer
    left. Raises ``NotEligible`` unless ``plan`` is the patient's plan in force for the type."""
    in_force = plan_in_force(
        patient=plan.patient, appointment_type=appointment_type, now=now, start=start
    )
    if in_force.pk != plan.pk:
        raise NotEligible("A newer approval has replaced this plan.", field="plan")
    used = int(getattr(in_force, "sessions_used", 0))
    return min(plan.protocol.sessions, in_force.sessions_authorised - used)


def _weekdays(protocol: Protocol, preferred: Iterable[int] | None) -> frozenset[int]:
    allowed = frozenset(int(day) for day in protocol.allowed_weekdays)
    if preferred is None:
        return allowed
    days = allowed & frozenset(preferred)
    if not days:
        raise PolicyViolation(
            "None of the chosen days of the week is open for these sessions.", field="weekdays"
        )
    return days


def _local_options(
    zone: ZoneInfo, zone_days: list[tuple[date, tuple[int, int]]], starts: list[int]
) -> Options:
    """Group UTC starts (sorted) by local day, with their wall-clock minute of the day."""
    options: dict[date, list[tuple[int, int]]] = {}
    for day, (midnight, next_midnight) in zone_days:
        lo, hi = bisect_left(starts, midnight), bisect_left(starts, next_midnight)
        if lo == hi:
            continue
        if next_midnight - midnight == MINUTES_PER_DAY:
            options[day] = [(t - midnight, t) for t in starts[lo:hi]]
        else:
            # The clocks change today, so minutes since midnight are not the wall-clock time
            # the patient keeps: that is read from the zone.
            options[day] = [
                (local.hour * 60 + local.minute, t)
                for t in starts[lo:hi]
                for local in (from_minutes(t).astimezone(zone),)
            ]
    return options


def _starts_clear_of_patient(
    patient: Patient, starts: list[int], duration: int, lo: int, hi: int
) -> list[int]:
    """Drop starts at which the patient already has a visit."""
    busy = sorted(
        (to_minutes(start), to_minutes(end))
        for start, end in Appointment.objects.active()
        .filter(patient=patient)
        .overlapping(from_minutes(lo), from_minutes(hi))
        .values_list("start", "end")
    )
    if not busy:
        return starts
    return [t for t in starts if not any(s < t + duration and t < e for s, e in busy)]


def series_propose(
    *,
    plan: TreatmentPlan,
    first_day: date,
    preferences: SeriesPreferences | None = None,
    source: str = "staff",
    now: datetime | None = None,
) -> Proposal:
    """A complete schedule for the plan's series from ``first_day``, or the best partial one
    with alternatives for the sessions it could not place.

    Every session lies on an allowed (and preferred) day of the week, within the protocol's
    window from ``first_day`` and the plan's validity, its gaps to its neighbours within the
    protocol's. Among those, the schedule keeps ``preferences.time_of_day`` (or, without one,
    the best common time) for the most sessions, then strays from it by the fewest minutes,
    then finishes earliest. ``source="link"`` (the patient's own link) applies the type's
    minimum notice. Raises ``NotEligible`` or ``PolicyViolation``.
    """
    now = now or timezone.now()
    preferences = preferences or SeriesPreferences()
    protocol = plan.protocol
    appointment_type = _session_type(protocol, preferences.location)
    sessions = _plan_sessions(plan, appointment_type, now)
    zone = appointment_type.location.zone
    if first_day < now.astimezone(zone).date():
        raise PolicyViolation("Choose a first day from today on.", field="first_day")
    cadence = Cadence(
        sessions=sessions,
        min_gap=protocol.min_gap_days,
        max_gap=protocol.max_gap_days,
        window=protocol.window_days,
        weekdays=_weekdays(protocol, preferences.weekdays),
    )
    last_day = min(
        first_day + timedelta(days=protocol.window_days - 1 + LATER_FIRST_DAY_DAYS),
        plan.valid_until,
    )
    days = [
        first_day + timedelta(days=n)
        for n in range((last_day - first_day).days + 1)
        if (first_day + timedelta(days=n)).weekday() in cadence.weekdays
    ]
    # Days another treatment of the patient's already rules out are no candidates.
    taken = treatment_days_taken(
        patient=plan.patient,
        appointment_type=appointment_type,
        first=first_day,
        last=last_day,
        min_gap_days=protocol.min_gap_days,
    )
    days = [day for day in days if day not in taken]
    if plan.valid_until < first_day:
        raise NotEligible(
            f"This approval ends on {_day_label(plan.valid_until)}, before that first day.",
            field="first_day",
        )
    no_schedule = PolicyViolation(
        f"No {cadence.sessions} days from {_day_label(first_day)} keep this treatment's spacing "
        "on the chosen days of the week"
        + ("" if plan.valid_until > last_day else " before the approval ends")
        + ". Choose more days or another first day.",
        field="weekdays",
    )
    if not days:
        raise no_schedule
    # One read for every candidate day; everything after it is computation.
    problem = availability_problem(
        appointment_type=appointment_type, days=days, now=now, enforce_notice=source == "link"
    )
    duration = appointment_type.duration_minutes
    zone_days = [(day, local_day_bounds(zone, day)) for day in days]
    starts = available_starts(problem)
    starts = _starts_clear_of_patient(
        plan.patient, starts, duration, zone_days[0][1][0], zone_days[-1][1][1] + duration
    )
    options = _local_options(zone, zone_days, starts)
    preferred = (
        None
        if preferences.time_of_day is None
        else preferences.time_of_day.hour * 60 + preferences.time_of_day.minute
    )

    def search(start: date) -> Schedule | None:
        return schedule_search(
            cadence=cadence,
            first_day=start,
            options=options,
            preferred=preferred,
            same_time=protocol.same_time_preference,
            last_day=plan.valid_until,
        )

    best = search(first_day)
    if best is None:
        raise no_schedule

    def visits(schedule: Schedule) -> list[tuple[int, datetime, datetime]]:
        return [
            (n, from_minutes(start), from_minutes(start + duration))
            for n, start in enumerate(schedule.starts, start=1)
            if start is not None
        ]

    proposal = Proposal(
        sessions=visits(best),
        time_of_day=None
        if best.time_of_day is None
        else time(best.time_of_day // 60, best.time_of_day % 60),
    )
    if not best.missing:
        return proposal
    later_day: date | None = None
    later: Schedule | None = None
    for n in range(1, LATER_FIRST_DAY_DAYS + 1):
        found = search(first_day + timedelta(days=n))
        if found is not None and not found.missing:
            later_day, later = first_day + timedelta(days=n), found
            break
    alternatives = alternatives_for(
        best, options, cadence, first_day=first_day, limit=ALTERNATIVES_PER_SESSION
    )
    return replace(
        proposal,
        missing=best.missing,
        alternatives={
            n: [from_minutes(start) for start in starts] for n, starts in alternatives.items()
        },
        later_first_day=later_day,
        later_sessions=visits(later) if later else [],
    )


# --- Booking ------------------------------------------------------------------------------------


def cadence_problem(protocol: Protocol, days: Sequence[date]) -> tuple[int, str] | None:
    """The first session (position in ``days``, from 0) whose local day breaks the protocol's
    cadence, and why; ``None`` when the days keep it."""
    allowed = {int(day) for day in protocol.allowed_weekdays}
    for n, day in enumerate(days):
        if day.weekday() not in allowed:
            return n, f"Session {n + 1} falls on a {day:%A}, when these sessions are not given."
        if n == 0:
            continue
        gap = (day - days[n - 1]).days
        if gap < protocol.min_gap_days:
            return n, (
                f"Session {n + 1} must start at least {protocol.min_gap_days} days after "
                f"session {n}."
            )
        if gap > protocol.max_gap_days:
            return n, (
                f"Session {n + 1} must start at most {protocol.max_gap_days} days after "
                f"session {n}."
            )
        if (day - days[0]).days >= protocol.window_days:
            return n, f"All sessions must fall within {protocol.window_days} days."
    return None


def _check_starts(
    appointment_type: AppointmentType,
    plan: TreatmentPlan,
    starts: Sequence[datetime],
    *,
    online: bool,
    now: datetime,
) -> list[date]:
    """Refuse starts no amount of free time would make bookable; the sessions' local days."""
    zone = appointment_type.location.zone
    notice = timedelta(minutes=appointment_type.min_notice_minutes)
    horizon = timedelta(days=appointment_type.horizon_days)
    days = []
    for n, start in enumerate(starts):
        where = f"starts.{n}"
        if timezone.is_naive(start):
            raise BookingError("Give each time with its UTC offset.", field=where)
        day = start.astimezone(zone).date()
        on_grid = start.second == 0 and start.microsecond == 0
        if not on_grid or to_minutes(start) not in grid_starts(
            zone, [day], appointment_type.grid_minutes
        ):
            raise PolicyViolation(
                f"Session {n + 1}: visits start on the {appointment_type.grid_minutes}-minute "
                "grid of the clinic's local time.",
                field=where,
            )
        if start <= now:
            raise PolicyViolation(f"Session {n + 1}: that time has passed.", field=where)
        if online and start < now + notice:
            raise PolicyViolation(
                f"Session {n + 1}: online bookings need {notice.total_seconds() // 3600:.0f} "
                "hours' notice.",
                field=where,
            )
        if start > now + horizon:
            raise PolicyViolation(
                f"Session {n + 1}: bookings open {appointment_type.horizon_days} days ahead.",
                field=where,
            )
        if day > plan.valid_until:
            raise NotEligible(
                f"Session {n + 1}: this approval runs until {_day_label(plan.valid_until)}.",
                field=where,
            )
        days.append(day)
    return days


def _session_label(start: datetime, zone: ZoneInfo) -> str:
    local = start.astimezone(zone)
    return f"{_day_label(local.date())}, {local.hour % 12 or 12}:{local:%M %p} {local.tzname()}"


def _sessions_placements(
    appointment_type: AppointmentType,
    starts: Sequence[datetime],
    days: list[date],
    *,
    online: bool,
    now: datetime,
) -> list[list[Placement]]:
    """The lanes each session takes, by the engine's own check on one read of the series'
    days; ``SlotTaken`` naming the first session that is not free."""
    zone = appointment_type.location.zone
    problem = availability_problem(
        appointment_type=appointment_type, days=sorted(set(days)), now=now, enforce_notice=online
    )
    out = []
    for n, (start, day) in enumerate(zip(starts, days, strict=True)):
        placements = allocate(replace(problem, days=[day]), to_minutes(start))
        if placements is None:
            raise SlotTaken(
                f"Session {n + 1} ({_session_label(start, zone)}) is no longer available. "
                "Please ask for a new proposal.",
                field=f"starts.{n}",
            )
        for p in placements:
            # Later sessions must see this one's lanes as taken.
            problem.calendars[p.resource_id].busy[p.lane].append((p.start, p.end))
        out.append(placements)
    return out


def _lock_patient_and_check_sessions(
    patient: Patient, starts: Sequence[datetime], ends: Sequence[datetime]
) -> None:
    # The row lock queues this patient's concurrent bookings (appointment_book takes the same
    # one), so the overlap check below cannot be raced by the patient booking twice at once.
    list(Patient.objects.select_for_update(no_key=True).filter(pk=patient.pk).values("pk"))
    overlap = Q()
    for start, end in zip(starts, ends, strict=True):
        overlap |= Q(start__lt=end, end__gt=start)
    clashes = list(
        Appointment.objects.active().filter(patient=patient).filter(overlap).values("start", "end")
    )
    for n, (start, end) in enumerate(zip(starts, ends, strict=True)):
        if any(c["start"] < end and start < c["end"] for c in clashes):
            raise PatientBusy(
                f"Session {n + 1}: the patient already has a visit at that time.",
                field=f"starts.{n}",
            )


def series_book(
    *,
    plan: TreatmentPlan,
    starts: Sequence[datetime],
    source: str = "staff",
    now: datetime | None = None,
) -> Series:
    """Book every session of the plan's series at ``starts``, in one transaction, or nothing.

    The starts must keep the protocol's cadence and number as many sessions as the plan still
    authorises for it (at most the protocol's). Sessions after the protocol's review gate are
    booked tentative. ``source="link"`` is the patient's own link (the type's minimum notice
    applies). Raises ``NotEligible`` (422), ``PolicyViolation`` (422), ``SlotTaken`` (409) or
    ``PatientBusy`` (409) with the field ``starts.<n>`` of the session at fault.
    """
    now = now or timezone.now()
    if source not in SOURCES:
        raise BookingError(f"Unknown source {source!r}.", field="source")
    protocol = plan.protocol
    appointment_type = protocol.appointment_type
    online = source == "link"
    starts = list(starts)
    if not starts:
        raise BookingError("Give the start of every session.", field="starts")
    days = _check_starts(appointment_type, plan, starts, online=online, now=now)
    problem = cadence_problem(protocol, days)
    if problem is not None:
        n, message = problem
        raise PolicyViolation(message, field=f"starts.{n}")
    duration = timedelta(minutes=appointment_type.duration_minutes)
    ends = [start + duration for start in starts]
    review = protocol.review_after_session

    def book() -> Series:
        # The patient row lock comes first: eligibility decisions and other bookings for the
        # patient take it too, so the plan's sessions left cannot change under this count.
        _lock_patient_and_check_sessions(plan.patient, starts, ends)
        # The first session is the youngest the patient will be at any of them.
        age_check(patient=plan.patient, appointment_type=appointment_type, start=starts[0])
        # Each session keeps its spacing from the patient's other treatments (the sessions'
        # spacing from one another is the cadence, checked above): one read for all of them.
        taken = treatment_days_taken(
            patient=plan.patient,
            appointment_type=appointment_type,
            first=min(days),
            last=max(days),
            min_gap_days=protocol.min_gap_days,
        )
        for n, day in enumerate(days):
            if day in taken:
                raise NotEligible(taken[day], field=f"starts.{n}")
        sessions = _plan_sessions(plan, appointment_type, now, start=starts[0])
        if len(starts) != sessions:
            raise PolicyViolation(
                f"This series has {sessions} sessions: give a start for each.", field="starts"
            )
        # Checked before anything is written, so a refusal writes nothing.
        placements = _sessions_placements(appointment_type, starts, days, online=online, now=now)
        series = Series.objects.create(plan=plan, protocol=protocol)
        appointments = Appointment.objects.bulk_create(
            Appointment(
                location=appointment_type.location,
                appointment_type=appointment_type,
                patient=plan.patient,
                start=start,
                end=end,
                source=source,
                series=series,
                series_index=n,
                tentative=review is not None and n > review,
            )
            for n, (start, end) in enumerate(zip(starts, ends, strict=True), start=1)
        )
        # A stable order keeps competing transactions from waiting on each other crosswise.
        write_allocations(
            [
                (appointment, sorted(session, key=lambda p: (p.resource_id, p.lane)))
                for appointment, session in zip(appointments, placements, strict=True)
            ]
        )
        for appointment in appointments:
            appointment_changed.send(
                sender=Appointment, appointment=appointment, change="booked", now=now
            )
        return series

    return with_retries(
        book,
        field="starts",
        taken="These times were being booked by others just now. Please ask for a new proposal.",
        busy="The patient already has a visit at one of these times.",
    )

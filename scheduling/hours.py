"""A person's or place's hours at a location, as rows: the weekly shifts in effect, hours that
change from a date, and date overrides. The setup pages call these inside
:func:`booking.impact.setup_change`, which checks what they take from booked visits."""

from __future__ import annotations

from datetime import date, time

from django.db.models import Q, QuerySet

from scheduling.models import DateOverride, Location, Resource, WorkingHours

# (weekday, start, end) in the location's wall-clock time.
Shift = tuple[int, time, time]


def hours_here(resource: Resource, location: Location) -> QuerySet[WorkingHours]:
    return WorkingHours.objects.filter(resource=resource, location=location)


def valid_on(day: date) -> Q:
    return (Q(valid_from__isnull=True) | Q(valid_from__lte=day)) & (
        Q(valid_until__isnull=True) | Q(valid_until__gt=day)
    )


def next_change(resource: Resource, location: Location, after: date) -> date | None:
    """The first day after ``after`` from which other hours apply here, if one is planned."""
    return (
        hours_here(resource, location)
        .filter(valid_from__gt=after)
        .order_by("valid_from")
        .values_list("valid_from", flat=True)
        .first()
    )


def weekly_hours_replace(
    *, resource: Resource, location: Location, shifts: list[Shift], today: date
) -> int:
    """The hours in effect today become ``shifts``, until the next planned change (if any)."""
    until = next_change(resource, location, today)
    hours_here(resource, location).filter(valid_on(today)).delete()
    WorkingHours.objects.bulk_create(
        WorkingHours(
            resource=resource,
            location=location,
            weekday=day,
            start=start,
            end=end,
            valid_until=until,
        )
        for day, start, end in shifts
    )
    return len(shifts)


def weekly_hours_from(
    *, resource: Resource, location: Location, shifts: list[Shift], day: date
) -> int:
    """From ``day`` on, the hours here are ``shifts``: the hours running then end the day
    before (``valid_until=day``), and a change planned later still applies from its own day."""
    until = next_change(resource, location, day)
    here = hours_here(resource, location)
    here.filter(valid_from=day).delete()
    here.filter(valid_on(day)).update(valid_until=day)
    WorkingHours.objects.bulk_create(
        WorkingHours(
            resource=resource,
            location=location,
            weekday=weekday,
            start=start,
            end=end,
            valid_from=day,
            valid_until=until,
        )
        for weekday, start, end in shifts
    )
    return len(shifts)


def weekly_hours_change_drop(*, resource: Resource, location: Location, day: date) -> int:
    """Forget the change planned from ``day``: the hours before it run on in its place."""
    here = hours_here(resource, location)
    until = next_change(resource, location, day)
    dropped, _ = here.filter(valid_from=day).delete()
    here.filter(valid_until=day).update(valid_until=until)
    return dropped


def date_override_set(
    *,
    resource: Resource,
    location: Location,
    day: date,
    shifts: list[tuple[time, time]],
    reason: str,
) -> int:
    """That day's hours here are ``shifts`` (none: not working), whatever the weekly ones."""
    DateOverride.objects.filter(resource=resource, location=location, date=day).delete()
    rows = [
        DateOverride(resource=resource, location=location, date=day, start=s, end=e, reason=reason)
        for s, e in shifts
    ] or [DateOverride(resource=resource, location=location, date=day, reason=reason)]
    DateOverride.objects.bulk_create(rows)
    return len(rows)

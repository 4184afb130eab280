"""Read-only calendar feeds (RFC 5545) a calendar app subscribes to at a secret URL: one staff
member's or place's visits at a location, at that resource's own times (the prescriber's 15
minutes of an infusion, not its 90), or every visit of the location for the desk.

The events come from the staff calendar's read (``booking.calendar.calendar_rows`` and
``resource_spans``), so a feed and the grid never disagree. They carry the minimum a subscriber
needs: the type's neutral public name and the visit's reference, no patient name unless the feed
was issued with ``show_patient_names``. Times are UTC instants written in the clinic's zone
(TZID with its VTIMEZONE), so the app shows the clinic's wall clock across a clock change.

A staff member's feed also shows, as opaque "Busy at <site>" events, their time held by visits at
the other sites they work at (the calendar's ``elsewhere`` pieces): one subscription then tells
them, and the app's free/busy, when they are really taken. Those events say where only, with the
site's public name: not the patient, the type or the reference, which are that site's to show.

The token is 256 random bits shown once when issued and stored only as its SHA-256, like a
patient's link (``booking.links``); a feed is found by that hash, so an unknown, revoked or
mistyped token gets one and the same answer, and no comparison leaks how much of it matched.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import icalendar
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from booking.calendar import (
    HELD_TITLE,
    TENTATIVE_TITLE,
    CalendarRows,
    Elsewhere,
    calendar_rows,
    calendar_window,
    visit_title,
)
from booking.links import hash_token
from booking.models import AppointmentStatus, CalendarFeed
from scheduling.availability import from_minutes
from scheduling.models import Location, Resource, ResourceKind

# What a feed covers, from the clinic's today: enough history for "when did I last see them",
# the booking horizon ahead.
FEED_DAYS_BACK = 30
FEED_DAYS_AHEAD = 90
# Fetches per client address and minute: calendar apps poll every few minutes, a clinic's
# network with every staff member subscribed stays far below this, a token guesser does not.
FEED_FETCHES_PER_MINUTE = 60

BUSY_TITLE = "Busy at {site}"

_NOT_CONFIRMED = frozenset(
    {AppointmentStatus.HELD, AppointmentStatus.TENTATIVE, AppointmentStatus.ON_HOLD}
)


def feed_issue(
    *,
    location: Location,
    resource: Resource | None = None,
    show_patient_names: bool = False,
    by: Any = None,
    now: datetime | None = None,
) -> tuple[CalendarFeed, str]:
    """A new feed of ``resource`` at ``location`` (of the whole location without one) and its
    raw token, shown once. The feed it replaces, if any, is revoked in the same transaction (the
    partial unique constraints allow one live feed per target)."""
    now = now or timezone.now()
    token = secrets.token_urlsafe(32)  # 256 bits
    with transaction.atomic():
        live_feeds(location).filter(resource=resource).update(revoked_at=now)
        feed = CalendarFeed.objects.create(
            location=location,
            resource=resource,
            token_hash=hash_token(token),
            show_patient_names=show_patient_names,
            created_at=now,
            created_by=by if getattr(by, "is_authenticated", False) else None,
        )
    return feed, token


def feed_revoke(*, feed: CalendarFeed, now: datetime | None = None) -> bool:
    """Revoke ``feed``: its URL answers 404 from now on. False when it already was."""
    updated = CalendarFeed.objects.filter(pk=feed.pk, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now()
    )
    return updated == 1


def live_feeds(location: Location) -> QuerySet[CalendarFeed]:
    """The location's feeds not revoked."""
    return CalendarFeed.objects.filter(location=location, revoked_at__isnull=True)


def feed_resolve(token: str) -> CalendarFeed | None:
    """The live feed of ``token``, or None (unknown, revoked, or its location closed)."""
    if not token or len(token) > 128:
        return None
    return (
        CalendarFeed.objects.select_related("location", "resource")
        .filter(token_hash=hash_token(token), revoked_at__isnull=True, location__is_active=True)
        .first()
    )


def feed_uid(feed: CalendarFeed, reference: str) -> str:
    """An event's UID: the same visit on the same feed keeps it, so an app updates the entry."""
    target = f"r{feed.resource_id}" if feed.resource_id else "desk"
    return f"{reference}.{target}.{feed.location_id}@chairside"


def feed_busy_uid(feed: CalendarFeed, allocation_id: int) -> str:
    """A busy event's UID: by the allocation holding the person at the other site, never the
    visit's reference (which that site's feeds use)."""
    return f"busy-{allocation_id}.r{feed.resource_id}.{feed.location_id}@chairside"


def feed_ics(feed: CalendarFeed, *, now: datetime | None = None) -> bytes:
    """The feed's calendar: every visit not cancelled from FEED_DAYS_BACK days before the
    clinic's today to FEED_DAYS_AHEAD after, each at the resource's own time (the whole visit
    on the location's feed), and on a staff member's feed their time held at other sites."""
    now = now or timezone.now()
    location = feed.location
    zone = location.zone
    today = now.astimezone(zone).date()
    first_day = today - timedelta(days=FEED_DAYS_BACK)
    last_day = today + timedelta(days=FEED_DAYS_AHEAD)
    window = calendar_window(
        location=location,
        first_day=first_day,
        last_day=last_day,
        by="all",
        resource_id=feed.resource_id,
    )
    resource_ids = [feed.resource_id] if feed.resource_id else []
    # A place serves one site; a person may work at several.
    staff = feed.resource is not None and feed.resource.kind == ResourceKind.STAFF
    rows = calendar_rows(window, resource_ids, elsewhere_for=resource_ids if staff else ())

    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Chairside//Calendar feed//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    name = location.public_name
    if feed.resource is not None:
        name = f"{feed.resource.name} · {name}"
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", location.timezone)
    for event in _events(feed, rows, window.public_names, now=now):
        calendar.add_component(event)
    for event in _busy_events(feed, rows.elsewhere, now=now):
        calendar.add_component(event)
    # The zone's rules over the feed's window only: a full 1970-2038 history triples the size.
    calendar.add_missing_timezones(
        first_date=first_day - timedelta(days=1), last_date=last_day + timedelta(days=1)
    )
    return bytes(calendar.to_ical())


def _events(
    feed: CalendarFeed, rows: CalendarRows, public_names: dict[int, str], *, now: datetime
) -> list[icalendar.Event]:
    zone = feed.location.zone
    events = []
    for (
        start,
        appointment_id,
        end,
        reference,
        type_id,
        status,
        series_id,
        index,
        _tentative,
        name,
        _needs_new_time,
    ) in rows.visits:
        if feed.resource_id is not None:
            span = next(
                (s for s in rows.spans.get(appointment_id, ()) if s.resource == feed.resource_id),
                None,
            )
            if span is None:
                continue
            start, end = span.start, span.end
        sessions = rows.series_lengths.get(series_id) if index else None
        label = f"Session {index} of {sessions}" if sessions else None
        type_name = public_names.get(type_id, "Appointment")
        if status == AppointmentStatus.HELD:
            summary = f"{HELD_TITLE} · {type_name}"
        elif status == AppointmentStatus.TENTATIVE:
            summary = f"{TENTATIVE_TITLE} · {type_name}"
        elif feed.show_patient_names:
            summary = visit_title(name, type_name, status, label)
        else:
            summary = visit_title("", type_name, status, label)
        event = icalendar.Event()
        event.add("uid", feed_uid(feed, reference))
        event.add("dtstamp", now)
        event.add("dtstart", from_minutes(start).astimezone(zone))
        event.add("dtend", from_minutes(end).astimezone(zone))
        event.add("summary", summary)
        event.add("description", f"Reference {reference}")
        event.add("status", "TENTATIVE" if status in _NOT_CONFIRMED else "CONFIRMED")
        event.add("transp", "OPAQUE")
        events.append(event)
    return events


def _busy_events(
    feed: CalendarFeed, pieces: list[Elsewhere], *, now: datetime
) -> list[icalendar.Event]:
    zone = feed.location.zone
    events = []
    for piece in pieces:
        event = icalendar.Event()
        event.add("uid", feed_busy_uid(feed, piece.allocation))
        event.add("dtstamp", now)
        event.add("dtstart", from_minutes(piece.start).astimezone(zone))
        event.add("dtend", from_minutes(piece.end).astimezone(zone))
        event.add("summary", BUSY_TITLE.format(site=piece.site))
        event.add("status", "CONFIRMED")
        event.add("transp", "OPAQUE")
        events.append(event)
    return events

"""Calendar files (RFC 5545) for one appointment, as patients' calendar apps expect them.

The UID never changes for an appointment and SEQUENCE is its ``version``, so a moved or cancelled
visit updates the entry already in the patient's calendar instead of adding a second one. Times
carry the clinic's TZID with its VTIMEZONE, so the entry shows the clinic's wall-clock time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import icalendar
from django.conf import settings

from booking.models import Appointment, AppointmentStatus


def appointment_uid(appointment: Appointment) -> str:
    return f"{appointment.reference}@chairside"


def appointment_ics(appointment: Appointment, *, now: datetime, link: str = "") -> bytes:
    """The calendar file for ``appointment``: METHOD:REQUEST, or METHOD:CANCEL once cancelled.

    Summary and description follow the minimum-necessary rule: the clinic's neutral name and the
    word "appointment", details only behind the secure link.
    """
    location = appointment.location
    zone = location.zone
    cancelled = appointment.status == AppointmentStatus.CANCELLED
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Chairside//Appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "REQUEST")

    event = icalendar.Event()
    event.add("uid", appointment_uid(appointment))
    event.add("sequence", appointment.version)
    event.add("dtstamp", now)
    event.add("dtstart", appointment.start.astimezone(zone))
    event.add("dtend", appointment.end.astimezone(zone))
    event.add("summary", f"Appointment at {location.public_name}")
    if location.address:
        event.add("location", location.address)
    lines = [f"Your appointment at {location.public_name}."]
    if link:
        lines.append(f"Details and changes: {link}")
    if location.phone:
        lines.append(f"Questions: {location.phone}")
    event.add("description", "\n".join(lines))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add(
        "organizer",
        f"mailto:{settings.DEFAULT_FROM_EMAIL}",
        parameters={"CN": location.public_name},
    )
    calendar.add_component(event)
    # The zone's rules around the visit only: a full 1970-2038 history triples the file size.
    calendar.add_missing_timezones(
        first_date=(appointment.start - timedelta(days=366)).date(),
        last_date=(appointment.end + timedelta(days=366)).date(),
    )
    return calendar.to_ical()

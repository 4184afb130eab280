"""What the tests of the location, people and closures setup pages share: a pinned day in New
York, visits booked on it, and what "nobody was messaged" and "no longer offered" look at."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.core import mail
from django.test import Client

from booking.models import Appointment, AuditEvent
from booking.services import appointment_book
from notifications.models import OutboundMessage
from scheduling.models import AppointmentType, Resource

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)  # Wednesday 9 December 2026, 09:00 in New York
DAY = date(2026, 12, 15)  # the next Tuesday: the visits' day


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK).astimezone(UTC)


def book(appointment_type: AppointmentType, patient, hour: int, day: date = DAY) -> Appointment:
    return appointment_book(
        appointment_type=appointment_type, patient=patient, start=at(hour, day=day)
    )


def held(visit: Appointment, kind: str) -> Resource:
    return Resource.objects.get(allocations__appointment=visit, allocations__active=True, kind=kind)


def messages_state() -> tuple[int, int, list[tuple[int, str]]]:
    """E-mails sent, outbox rows, and each row's status: unchanged when nobody was messaged."""
    rows = sorted(OutboundMessage.objects.values_list("pk", "status"))
    return len(mail.outbox), len(rows), rows


def offered_starts(client: Client, day: date = DAY, location: str = "midtown") -> list[str]:
    """The consultation starts the public availability API offers on ``day``."""
    query = {
        "location": location,
        "appointment_type": "consultation",
        "start": day.isoformat(),
        "end": day.isoformat(),
    }
    response = client.get(f"/api/v1/availability/?{urlencode(query)}")
    assert response.status_code == 200, response.content
    return [slot["start"] for slot in response.json()["slots"]]


def board_needs_new_time(client: Client) -> str:
    """The day board's "needs a new time" section, or "" when it shows none."""
    response = client.get("/staff/board/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Day board" in page
    if 'id="needs-new-time-title"' not in page:
        return ""
    return page.split('id="needs-new-time-title"', 1)[1].split("</section>", 1)[0]


def setup_audits(action: str, object_type: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action=action, object_type=object_type, detail__setup=True)
    )

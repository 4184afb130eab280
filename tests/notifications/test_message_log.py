"""The front desk's message log at /staff/messages/: what needs attention, and every message with
its state and attempts, for the staff member's own locations only, in a bounded number of
queries."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from booking.access.roles import Role
from booking.models import Appointment, AuditEvent, Patient
from booking.services import appointment_book, appointment_cancel, appointment_escort_update
from notifications import sms, views
from notifications.delivery import message_deliver_due, message_send
from notifications.models import Channel, MessageKind, MessageStatus, OutboundMessage
from notifications.sms import BaseBackend, PermanentSendError, TransientSendError
from scheduling.models import AppointmentType, Location
from tests.conftest import approve
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 10, 5, 16, tzinfo=UTC)  # 12:00 EDT
URL = "/staff/messages/"
REFUSED = "Twilio 400: not a mobile number"
BUSY = "Twilio 503: try later"


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Patients here hold an approval for every treatment: these tests are about other things."""
    return make_approved_patient


class RefusingBackend(BaseBackend):
    """A provider that will never deliver to this number."""

    def send(self, to: str, body: str) -> str:
        raise PermanentSendError(REFUSED)


class BusyBackend(BaseBackend):
    """A provider that is down for now."""

    def send(self, to: str, body: str) -> str:
        raise TransientSendError(BUSY)


@pytest.fixture(autouse=True)
def channels(settings, time_machine) -> Iterator[None]:
    settings.SMS_BACKEND = "notifications.sms.LocmemBackend"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PUBLIC_BASE_URL = "https://clinic.example"
    time_machine.move_to(NOW, tick=False)
    sms.outbox.clear()
    yield
    sms.outbox.clear()


@pytest.fixture
def desk(clinic: Location) -> Client:
    return client_for(staff_user(Role.FRONT_DESK, clinic, username="frontdesk"))


def at(days: int, hour: int) -> datetime:
    """``hour`` o'clock in New York, ``days`` after today there, in UTC."""
    day = NOW.astimezone(NEW_YORK).date() + timedelta(days=days)
    return datetime.combine(day, time(hour), tzinfo=NEW_YORK).astimezone(UTC)


@pytest.fixture
def book(make_patient) -> Callable[..., Appointment]:
    def run(appointment_type: AppointmentType, start: datetime, name: str) -> Appointment:
        first, last = name.split()
        patient: Patient = make_patient(first_name=first, last_name=last, sms_consent=True)
        return appointment_book(
            appointment_type=appointment_type,
            patient=approve(patient, appointment_type),
            start=start,
            now=NOW,
        )

    return run


def sweep(now: datetime) -> int:
    def send(ids: list[int]) -> None:
        for message_id in ids:
            message_send(message_id=message_id, now=now)

    return message_deliver_due(now=now, enqueue=send)


def section(page: str, anchor: str) -> str:
    return page.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


def log_rows(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.DOTALL)


# --- Who may see it ------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_login_page(client: Client, db: None) -> None:
    response = client.get(URL)

    assert response.status_code == 302
    assert "login" in response["Location"]
    assert "next=/staff/messages/" in response["Location"]


def test_it_sends_a_logged_in_non_staff_user_to_the_login_page(
    client: Client, django_user_model
) -> None:
    # Django's own "is_staff" flag is not enough: a staff member has a StaffProfile.
    client.force_login(
        django_user_model.objects.create_user(username="patient", password="x", is_staff=True)
    )

    response = client.get(URL)

    assert response.status_code == 302
    assert "login" in response["Location"]


# --- What it shows -------------------------------------------------------------------------


def test_it_shows_every_message_with_its_state_and_attempts(
    settings, desk: Client, infusion, book
) -> None:
    appointment = book(infusion, at(3, 10), "Alice Smith")
    settings.SMS_BACKEND = f"{__name__}.RefusingBackend"
    sweep(NOW)

    page = desk.get(URL).content.decode()

    rows = log_rows(page)
    messages = OutboundMessage.objects.filter(appointment=appointment)
    assert len(rows) == messages.count() > 0
    assert all(appointment.reference in r and "Alice Smith" in r for r in rows)
    for message in messages:
        label = f"{message.get_kind_display()} · {message.get_channel_display()}"
        (shown,) = [r for r in rows if html.escape(label) in r]
        assert message.get_status_display() in shown
    failed = next(r for r in rows if "Booking confirmation · Text message" in r)
    assert "Failed" in failed
    assert f"failed: {REFUSED}" in failed
    sent = next(r for r in rows if "Booking confirmation · E-mail" in r)
    assert "Sent" in sent
    assert re.search(r"\d:\d\d [AP]M EDT sent", sent)
    pending = next(
        r for r in rows if html.escape("Preparation and escort (~48 h before) · E-mail") in r
    )
    assert "Pending" in pending
    assert "—" in pending  # no attempt yet


def test_it_lists_failed_messages_for_the_front_desk(
    settings, desk: Client, infusion, book
) -> None:
    book(infusion, at(3, 10), "Alice Smith")
    settings.SMS_BACKEND = f"{__name__}.RefusingBackend"
    sweep(NOW)

    failed = section(desk.get(URL).content.decode(), "failed")

    assert "Booking confirmation by text message to Alice Smith" in failed
    assert REFUSED in failed
    assert "by e-mail" not in failed


def test_a_message_being_retried_shows_each_attempt_and_is_not_listed_as_failed(
    settings, desk: Client, infusion, book
) -> None:
    appointment = book(infusion, at(3, 10), "Alice Smith")
    settings.SMS_BACKEND = f"{__name__}.BusyBackend"
    sweep(NOW)

    page = desk.get(URL).content.decode()

    message = OutboundMessage.objects.get(
        appointment=appointment, kind=MessageKind.CONFIRMATION, channel=Channel.SMS
    )
    assert (message.status, message.attempts) == (MessageStatus.PENDING, 1)
    row = next(r for r in log_rows(page) if "Booking confirmation · Text message" in r)
    assert f"retry: {BUSY}" in row
    assert "None." in section(page, "failed")


def test_it_lists_visits_within_a_day_whose_escort_is_not_confirmed(
    desk: Client, infusion, consultation, book
) -> None:
    book(infusion, at(1, 10), "Alice Listed")  # 22 h away, nobody named to take her home
    escorted = book(infusion, at(1, 10), "Bea Escorted")
    appointment_escort_update(
        appointment=escorted, name="Sam Escort", phone="+12125550177", now=NOW
    )
    book(infusion, at(2, 10), "Cal Later")  # 46 h away: the 48 h reminder still asks
    book(consultation, at(1, 11), "Dee Consult")  # no escort needed
    appointment_cancel(appointment=book(infusion, at(1, 12), "Eve Cancelled"), now=NOW)

    escorts = section(desk.get(URL).content.decode(), "escorts")

    assert "Alice Listed" in escorts
    assert "10:00 AM EDT" in escorts
    for name in ("Bea Escorted", "Cal Later", "Dee Consult", "Eve Cancelled"):
        assert name not in escorts, name


def test_the_status_filter_shows_only_messages_in_that_state(
    settings, desk: Client, infusion, book
) -> None:
    book(infusion, at(3, 10), "Alice Smith")
    settings.SMS_BACKEND = f"{__name__}.RefusingBackend"
    sweep(NOW)

    rows = log_rows(desk.get(URL, {"status": MessageStatus.FAILED}).content.decode())

    assert len(rows) == OutboundMessage.objects.filter(status=MessageStatus.FAILED).count() == 1


def test_it_shows_only_the_staff_members_own_locations(
    settings, desk: Client, infusion, book, one_nurse_four_chairs: AppointmentType
) -> None:
    book(infusion, at(1, 10), "Alice Here")
    book(one_nurse_four_chairs, at(1, 10), "Zed Elsewhere")  # no escort either
    settings.SMS_BACKEND = f"{__name__}.RefusingBackend"
    sweep(NOW)
    assert OutboundMessage.objects.filter(
        appointment__patient__last_name="Elsewhere", status=MessageStatus.FAILED
    ).exists()

    page = desk.get(URL).content.decode()

    assert "Alice Here" in section(page, "escorts")
    assert "Alice Here" in section(page, "failed")
    assert all("Alice Here" in r for r in log_rows(page))
    assert "Elsewhere" not in page


def test_reading_it_is_audited(desk: Client) -> None:
    desk.get(URL, {"status": MessageStatus.FAILED})

    event = AuditEvent.objects.get(object_type="message_log")
    assert (event.username, event.action, event.detail["status"]) == (
        "frontdesk",
        "view",
        MessageStatus.FAILED,
    )


# --- Cost ----------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_log_and_its_failures_are_read_through_the_locations_own_indexes(
    settings, desk: Client, infusion, book
) -> None:
    # Through the visits, a location's newest messages and failures were found by walking the
    # whole chain's (bench.growth: 160 ms at 10 M visits of 100 locations); the outbox row
    # carries its location (notifications 0008). With sequential scans priced out, the page's
    # own statements are planned through the location's indexes.
    settings.SMS_BACKEND = f"{__name__}.RefusingBackend"
    book(infusion, at(1, 10), "Alice One")
    sweep(NOW)
    assert OutboundMessage.objects.filter(status=MessageStatus.FAILED).exists()
    with CaptureQueriesContext(connection) as ran:
        assert desk.get(URL).status_code == 200
    statements = [
        q["sql"]
        for q in ran.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "notifications_outboundmessage"' in q["sql"]
    ]
    plans = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in statements:
            cursor.execute(f"EXPLAIN {sql}")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))

    assert len(plans) == 2, statements
    log, failed = plans if "outbound_location_log" in plans[0] else plans[::-1]
    assert "outbound_location_log" in log, log
    assert "outbound_location_failed" in failed, failed
    assert "booking_appointment" not in log.split("Index")[0], log


def test_its_queries_do_not_grow_with_the_number_of_messages(
    settings, desk: Client, infusion, consultation, book, django_assert_max_num_queries
) -> None:
    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert desk.get(URL).status_code == 200
        return len(queries)

    settings.SMS_BACKEND = f"{__name__}.RefusingBackend"
    book(infusion, at(1, 10), "Alice One")
    sweep(NOW)
    few = page_queries()

    for n, days in enumerate((1, 2, 2, 3, 3, 4)):
        hour = 10 + 2 * (n % 2) if days > 1 else 14
        book(infusion, at(days, hour), f"Pat Many{n}")
    book(consultation, at(1, 16), "Dee Consult")
    sweep(NOW + timedelta(minutes=1))
    assert OutboundMessage.objects.count() > 40

    assert page_queries() == few
    # Session and user (2), staff check, permissions and location ids (4), the page's lists (6:
    # page, attempts, failed, texts, escorts, waitlist offers), the audit row (1), and three to
    # renew the session (idle logout counts from the last request).
    with django_assert_max_num_queries(16):
        desk.get(URL)


def test_the_log_pages_from_the_newest_to_the_oldest_and_back(
    monkeypatch, desk: Client, infusion, book
) -> None:
    monkeypatch.setattr(views, "LOG_PAGE_SIZE", 4)
    for n, days in enumerate((1, 2, 3)):
        book(infusion, at(days, 10), f"Pat Paged{n}")
    ids = list(OutboundMessage.objects.order_by("-id").values_list("id", flat=True))
    assert len(ids) > 8

    def shown(page: str) -> list[int]:
        return [int(i) for i in re.findall(r'data-message="(\d+)"', page)]

    def link(page: str, name: str) -> str | None:
        found = re.search(rf'href="\?status=&amp;(\w+=\d+)">{name}<', page)
        return found.group(1) if found else None

    pages, page = [], desk.get(URL).content.decode()
    assert link(page, "Newer") is None
    while True:
        pages.append(shown(page))
        older = link(page, "Older")
        if older is None:
            break
        page = desk.get(f"{URL}?{older}").content.decode()
    # Every message once, newest first, four to a page.
    assert [i for p in pages for i in p] == ids
    assert all(len(p) == 4 for p in pages[:-1])
    # And back: the newer link from the last page shows the page before it.
    newer = link(page, "Newer")
    assert newer is not None
    assert shown(desk.get(f"{URL}?{newer}").content.decode()) == pages[-2]


@pytest.mark.parametrize(
    "query", ["before=abc", "after=-1", "before=" + "9" * 40, "page=2", "before=%C2%B2"]
)
def test_a_page_link_that_makes_no_sense_shows_the_newest(desk: Client, infusion, book, query):
    book(infusion, at(1, 10), "Pat Odd")

    response = desk.get(f"{URL}?{query}")

    assert response.status_code == 200
    assert len(log_rows(response.content.decode())) == OutboundMessage.objects.count()

"""Staff calendar feeds: issued and revoked from the setup pages (the address shown once, only
its hash kept, audited), and read as a calendar app reads them: the right instants in the
clinic's zone, each resource at its own time, the minimum of patient data, a cancellation gone
at the next fetch, a revoked or foreign token a 404, and fetched over HTTP by an iCalendar
client library as a subscriber would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from booking.access.roles import Role
from booking.api import feeds as feed_view
from booking.feeds import feed_issue, feed_resolve
from booking.links import hash_token
from booking.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    CalendarFeed,
    Patient,
)
from booking.services import appointment_book, appointment_cancel
from scheduling.models import Location, Resource, ResourceKind
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
WEDNESDAY = date(2026, 10, 28)
FALL_BACK = date(2026, 11, 1)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    return make_approved_patient


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Fetches are counted per client and minute, and every test fetches from one address."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin(clinic: Location) -> Client:
    return client_for(staff_user(Role.ADMIN, clinic, username="admin"))


def held_by(appointment: Appointment, kind: str, role: str = "") -> Resource:
    return appointment.allocations.get(resource__kind=kind, resource__role=role).resource


def fetch(token: str, client: Client | None = None):
    return (client or Client()).get(f"/api/v1/feeds/{token}.ics")


def parsed(response) -> icalendar.Calendar:
    assert response.status_code == 200, response.content
    return icalendar.Calendar.from_ical(response.content)


def events(calendar: icalendar.Calendar) -> list[icalendar.Component]:
    return list(calendar.walk("VEVENT"))


def times(event: icalendar.Component) -> tuple[datetime, datetime]:
    return event.decoded("dtstart"), event.decoded("dtend")


def token_from(page: str) -> str:
    """The feed's token from the address on the page that issued it."""
    return page.split("/api/v1/feeds/")[1].split(".ics")[0]


# --- Reading a feed -----------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_a_prescribers_feed_has_their_fifteen_minutes_in_the_clinics_zone(
    clinic, infusion, make_patient
):
    booked = appointment_book(
        appointment_type=infusion,
        patient=make_patient(first_name="Zelda", last_name="Quill"),
        start=local(WEDNESDAY, 10),
    )
    prescriber = held_by(booked, ResourceKind.STAFF, "prescriber")
    _, token = feed_issue(location=clinic, resource=prescriber)

    response = fetch(token)

    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = parsed(response)
    (event,) = events(calendar)
    start, end = times(event)
    assert (start, end) == (local(WEDNESDAY, 10), local(WEDNESDAY, 10, 15))
    assert start.astimezone(UTC) == datetime(2026, 10, 28, 14, 0, tzinfo=UTC)
    assert str(event["dtstart"].params["TZID"]) == "America/New_York"
    assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == ["America/New_York"]
    # Minimum necessary: the neutral public name and the reference, nobody's name.
    assert str(event["summary"]) == infusion.public_name
    assert booked.reference in str(event["description"])
    body = response.content.decode()
    assert "Zelda" not in body
    assert "Quill" not in body
    assert "ketamine" not in body.lower()
    assert str(event["status"]) == "CONFIRMED"
    # Never kept on the way: the next fetch sees the change.
    cache_control = response["Cache-Control"]
    assert "no-store" in cache_control
    assert "max-age=0" in cache_control


@time_machine.travel(NOW, tick=False)
def test_a_chairs_feed_has_the_whole_visit_without_its_turnover(clinic, infusion, make_patient):
    booked = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=local(WEDNESDAY, 10)
    )
    _, token = feed_issue(location=clinic, resource=held_by(booked, ResourceKind.CHAIR))

    (event,) = events(parsed(fetch(token)))

    assert times(event) == (local(WEDNESDAY, 10), local(WEDNESDAY, 11, 30))


@time_machine.travel(NOW, tick=False)
def test_the_desk_feed_has_every_visit_and_names_patients_only_when_issued_to(
    clinic, infusion, consultation, make_patient
):
    infusion_visit = appointment_book(
        appointment_type=infusion,
        patient=make_patient(first_name="Ada", last_name="Byron"),
        start=local(WEDNESDAY, 9),
    )
    consult = appointment_book(
        appointment_type=consultation, patient=make_patient(), start=local(WEDNESDAY, 14)
    )
    _, anonymous = feed_issue(location=clinic)

    shown = {str(e["description"]): e for e in events(parsed(fetch(anonymous)))}

    assert set(shown) == {f"Reference {infusion_visit.reference}", f"Reference {consult.reference}"}
    assert times(shown[f"Reference {infusion_visit.reference}"]) == (
        local(WEDNESDAY, 9),
        local(WEDNESDAY, 10, 30),
    )
    assert "Byron" not in fetch(anonymous).content.decode()

    _, named = feed_issue(location=clinic, show_patient_names=True)

    summaries = [str(e["summary"]) for e in events(parsed(fetch(named)))]
    assert f"Ada Byron · {infusion.public_name}" in summaries
    # Issuing anew revoked the first address.
    assert fetch(anonymous).status_code == 404


@time_machine.travel(NOW, tick=False)
def test_a_cancelled_visit_is_gone_at_the_next_fetch(clinic, infusion, make_patient):
    booked = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=local(WEDNESDAY, 10)
    )
    nurse = held_by(booked, ResourceKind.STAFF, "nurse")
    _, token = feed_issue(location=clinic, resource=nurse)
    assert len(events(parsed(fetch(token)))) == 1

    appointment_cancel(appointment=booked, reason="patient called", now=NOW)

    assert events(parsed(fetch(token))) == []


@time_machine.travel(NOW, tick=False)
def test_held_and_unconfirmed_slots_say_what_they_are_without_a_name(
    clinic, infusion, make_patient
):
    chair = Resource.objects.get(location=clinic, name="Chair 1")
    start = local(WEDNESDAY, 9).astimezone(UTC)
    held = Appointment.objects.create(
        location=clinic,
        appointment_type=infusion,
        patient=make_patient(first_name="Waiting", last_name="Person"),
        start=start,
        end=start + timedelta(minutes=90),
        status=AppointmentStatus.HELD,
    )
    held.allocations.create(resource=chair, start=held.start, end=held.end)
    _, token = feed_issue(location=clinic, resource=chair, show_patient_names=True)

    (event,) = events(parsed(fetch(token)))

    assert str(event["summary"]) == f"Held for waitlist · {infusion.public_name}"
    assert str(event["status"]) == "TENTATIVE"
    assert "Person" not in fetch(token).content.decode()


@time_machine.travel(NOW, tick=False)
def test_instants_are_right_across_the_fall_back_change(clinic, infusion, make_patient):
    saturday = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=local(date(2026, 10, 31), 9)
    )
    sunday = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=local(FALL_BACK, 9)
    )
    _, token = feed_issue(location=clinic, resource=held_by(saturday, ResourceKind.CHAIR))
    _, desk = feed_issue(location=clinic)

    shown = {
        str(e["description"]).split()[-1]: e
        for token_ in (token, desk)
        for e in events(parsed(fetch(token_)))
    }

    # 09:00 EDT is 13:00 UTC; the next day 09:00 EST is 14:00 UTC.
    assert shown[saturday.reference].decoded("dtstart").astimezone(UTC) == datetime(
        2026, 10, 31, 13, 0, tzinfo=UTC
    )
    assert shown[sunday.reference].decoded("dtstart").astimezone(UTC) == datetime(
        2026, 11, 1, 14, 0, tzinfo=UTC
    )
    for event in shown.values():
        start = event.decoded("dtstart")
        assert (start.hour, start.minute) == (9, 0)
        assert str(event["dtstart"].params["TZID"]) == "America/New_York"


@time_machine.travel(NOW, tick=False)
def test_the_window_is_a_month_back_to_three_ahead(clinic, infusion, make_patient):
    nurse = Resource.objects.get(location=clinic, name="Nurse")
    inside = []
    for start in (
        NOW - timedelta(days=29),
        NOW + timedelta(days=89),
        NOW - timedelta(days=32),
        NOW + timedelta(days=93),
    ):
        visit = Appointment.objects.create(
            location=clinic,
            appointment_type=infusion,
            patient=make_patient(),
            start=start,
            end=start + timedelta(minutes=90),
        )
        visit.allocations.create(resource=nurse, start=visit.start, end=visit.end)
        inside.append(visit.reference)
    _, token = feed_issue(location=clinic, resource=nurse)

    shown = {str(e["description"]).split()[-1] for e in events(parsed(fetch(token)))}

    assert shown == set(inside[:2])


@time_machine.travel(NOW, tick=False)
def test_a_fetch_runs_the_same_queries_for_two_visits_or_twenty(clinic, infusion, make_patient):
    nurse = Resource.objects.get(location=clinic, name="Nurse")
    _, token = feed_issue(location=clinic, resource=nurse)

    def add(count: int) -> None:
        for _ in range(count):
            start = NOW + timedelta(days=1, minutes=10 * Appointment.objects.count())
            visit = Appointment.objects.create(
                location=clinic,
                appointment_type=infusion,
                patient=make_patient(),
                start=start,
                end=start + timedelta(minutes=10),
            )
            visit.allocations.create(resource=nurse, start=visit.start, end=visit.end)

    def queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            response = fetch(token)
        return len(captured.captured_queries), len(events(parsed(response)))

    add(2)
    few = queries()
    add(18)
    many = queries()

    assert (few[1], many[1]) == (2, 20)
    assert few[0] == many[0]


# --- Tokens -------------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_unknown_revoked_and_malformed_tokens_get_the_same_404(clinic):
    feed, token = feed_issue(location=clinic)
    assert fetch(token).status_code == 200
    CalendarFeed.objects.filter(pk=feed.pk).update(revoked_at=NOW)

    answers = [fetch(t) for t in (token, token[:-1] + "x", "nope", "a" * 300)]

    assert [a.status_code for a in answers] == [404] * 4
    assert len({a.content for a in answers}) == 1
    assert feed_resolve(token) is None
    # Only the hash is kept.
    assert CalendarFeed.objects.get().token_hash == hash_token(token)
    assert not CalendarFeed.objects.filter(token_hash=token).exists()


@time_machine.travel(NOW, tick=False)
def test_another_locations_feed_never_shows_this_locations_visits(
    clinic, infusion, make_patient, make_location
):
    here = appointment_book(
        appointment_type=infusion, patient=make_patient(), start=local(WEDNESDAY, 10)
    )
    elsewhere = make_location(slug="uptown")
    _, theirs = feed_issue(location=elsewhere)
    # Even a feed there of a person who also works here.
    prescriber = held_by(here, ResourceKind.STAFF, "prescriber")
    prescriber.sites.add(elsewhere)
    _, visiting = feed_issue(location=elsewhere, resource=prescriber)

    for token in (theirs, visiting):
        response = fetch(token)
        assert [str(e["summary"]) for e in events(parsed(response))] == (
            [] if token == theirs else [f"Busy at {clinic.public_name}"]
        )
        assert here.reference not in response.content.decode()


@time_machine.travel(NOW, tick=False)
def test_a_staff_feed_shows_their_time_at_other_sites_as_busy_and_nothing_more(
    clinic, consultation, make_patient, make_location, make_type
):
    here = appointment_book(
        appointment_type=consultation, patient=make_patient(), start=local(WEDNESDAY, 9)
    )
    doctor = held_by(here, ResourceKind.STAFF, "prescriber")
    uptown = make_location(slug="uptown")
    doctor.sites.add(uptown)
    there_type = make_type(
        uptown, duration=60, needs=({"resource_kind": ResourceKind.STAFF, "role": "prescriber"},)
    )
    start = local(WEDNESDAY, 14).astimezone(UTC)
    there = Appointment.objects.create(
        location=uptown,
        appointment_type=there_type,
        patient=make_patient(first_name="Zelda", last_name="Quill"),
        start=start,
        end=start + timedelta(minutes=60),
    )
    # Held with ten minutes' turnover after the visit: the person is busy for all of it.
    held = there.allocations.create(
        resource=doctor, start=there.start, end=there.end + timedelta(minutes=10)
    )
    _, token = feed_issue(location=clinic, resource=doctor, show_patient_names=True)
    _, desk = feed_issue(location=clinic)

    response = fetch(token)

    shown = events(parsed(response))
    assert [str(e["summary"]) for e in shown].count(f"Busy at {uptown.public_name}") == 1
    busy = next(e for e in shown if str(e["summary"]).startswith("Busy at"))
    assert times(busy) == (local(WEDNESDAY, 14), local(WEDNESDAY, 15, 10))
    assert str(busy["transp"]) == "OPAQUE"
    assert str(busy["uid"]) == f"busy-{held.pk}.r{doctor.pk}.{clinic.pk}@chairside"
    assert "description" not in busy
    # Their visit here is still there as itself.
    assert {str(e["description"]) for e in shown if "description" in e} == {
        f"Reference {here.reference}"
    }
    # Where, never whom or what: not the patient (even on a feed naming patients), the
    # reference, the type or the site's internal name.
    body = response.content.decode()
    for private in ("Zelda", "Quill", there.reference, there_type.public_name, uptown.name):
        assert private not in body
    # Not on the desk's feed of this site: the visit there is not this site's.
    assert all("Busy at" not in str(e["summary"]) for e in events(parsed(fetch(desk))))


@time_machine.travel(NOW, tick=False)
def test_fetches_are_limited_per_client(clinic, monkeypatch):
    monkeypatch.setattr(feed_view, "FEED_FETCHES_PER_MINUTE", 3)
    _, token = feed_issue(location=clinic)

    answers = [fetch(token).status_code for _ in range(3)]
    over = fetch("guess")

    assert answers == [200, 200, 200]
    assert over.status_code == 429
    assert 1 <= int(over["Retry-After"]) <= 60


@time_machine.travel(NOW, tick=False)
def test_each_fetch_is_audited_without_the_secret_address(clinic):
    feed, token = feed_issue(location=clinic)

    fetch(token)

    event = AuditEvent.objects.get(object_type="calendarfeed")
    assert (event.action, event.object_id, event.location) == ("view", str(feed.pk), clinic)
    assert token not in event.path
    assert token not in str(event.detail)


# --- Issued and revoked from the setup pages ----------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_a_persons_page_issues_a_feed_shows_its_address_once_and_revokes_it(clinic, admin):
    nurse = Resource.objects.get(location=clinic, name="Nurse")
    page = f"/staff/setup/{clinic.pk}/people/{nurse.pk}/"

    issued = admin.post(page + "feed/", {"feed-show_patient_names": ""})

    assert issued.status_code == 200
    html = issued.content.decode()
    token = token_from(html)
    assert "shown this once" in html
    feed = CalendarFeed.objects.get()
    assert (feed.resource, feed.location, feed.show_patient_names) == (nurse, clinic, False)
    assert feed.token_hash == hash_token(token)
    audit = AuditEvent.objects.get(object_type="calendarfeed", action="create")
    assert audit.detail["changed"] == ["calendar_feed"]
    assert token not in audit.path
    assert fetch(token).status_code == 200
    # The page never shows the address again.
    again = admin.get(page).content.decode()
    assert token not in again
    assert "A feed is live since" in again

    revoked = admin.post(page + "feed/revoke/")

    assert revoked.status_code == 302
    assert fetch(token).status_code == 404
    assert AuditEvent.objects.filter(object_type="calendarfeed", action="update").count() == 1
    assert admin.post(page + "feed/revoke/").status_code == 404


@time_machine.travel(NOW, tick=False)
def test_the_location_page_issues_the_desk_feed_with_names_when_asked(clinic, admin):
    issued = admin.post(f"/staff/setup/{clinic.pk}/feed/", {"feed-show_patient_names": "on"})

    assert issued.status_code == 200
    token = token_from(issued.content.decode())
    feed = CalendarFeed.objects.get()
    assert (feed.resource, feed.show_patient_names) == (None, True)
    assert fetch(token).status_code == 200
    audit = AuditEvent.objects.get(object_type="calendarfeed", action="create")
    assert audit.detail["changed"] == ["calendar_feed", "show_patient_names"]

    admin.post(f"/staff/setup/{clinic.pk}/feed/revoke/")

    assert fetch(token).status_code == 404


@time_machine.travel(NOW, tick=False)
def test_only_admins_of_the_location_issue_feeds(clinic, make_location):
    nurse = Resource.objects.get(location=clinic, name="Nurse")
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))
    other_admin = client_for(staff_user(Role.ADMIN, make_location(slug="uptown")))

    assert desk.post(f"/staff/setup/{clinic.pk}/people/{nurse.pk}/feed/").status_code == 403
    assert desk.post(f"/staff/setup/{clinic.pk}/feed/").status_code == 403
    assert other_admin.post(f"/staff/setup/{clinic.pk}/people/{nurse.pk}/feed/").status_code == (
        404
    )
    assert other_admin.post(f"/staff/setup/{clinic.pk}/feed/").status_code == 404
    assert not CalendarFeed.objects.exists()


# --- As a subscriber fetches it ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_calendar_client_subscribed_over_http_sees_each_resources_own_time(
    clinic, infusion, make_patient, live_server
):
    from icalevents.icalevents import events as subscribe

    with time_machine.travel(NOW, tick=True):
        booked = appointment_book(
            appointment_type=infusion, patient=make_patient(), start=local(WEDNESDAY, 10)
        )
        prescriber = held_by(booked, ResourceKind.STAFF, "prescriber")
        _, token = feed_issue(location=clinic, resource=prescriber)
        _, desk = feed_issue(location=clinic)

        seen = subscribe(
            url=f"{live_server.url}/api/v1/feeds/{token}.ics",
            start=datetime(2026, 10, 1, tzinfo=UTC),
            end=datetime(2026, 12, 1, tzinfo=UTC),
        )
        whole = subscribe(
            url=f"{live_server.url}/api/v1/feeds/{desk}.ics",
            start=datetime(2026, 10, 1, tzinfo=UTC),
            end=datetime(2026, 12, 1, tzinfo=UTC),
        )

    (event,) = seen
    assert event.start is not None
    assert event.end is not None
    assert event.start.astimezone(UTC) == datetime(2026, 10, 28, 14, 0, tzinfo=UTC)
    assert event.end - event.start == timedelta(minutes=15)
    assert event.summary == infusion.public_name
    (visit,) = whole
    assert visit.start is not None
    assert visit.end is not None
    assert visit.end - visit.start == timedelta(minutes=90)
    assert booked.reference in (visit.description or "")

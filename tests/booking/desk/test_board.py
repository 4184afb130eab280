"""The front desk's day board at /staff/board/: one location's visits on one local day, their
checklist and reminders, and the one-click steps of a visit at the desk."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from booking import checkin
from booking.access.roles import Role
from booking.models import Appointment, AppointmentEvent, AppointmentStatus, AuditEvent, Patient
from booking.series.services import series_book
from booking.services import appointment_book, appointment_cancel, appointment_escort_update
from notifications.models import MessageStatus, OutboundMessage
from scheduling.defaults import appointment_types_install_defaults
from scheduling.models import AppointmentType, Location, ResourceKind, StaffRole
from tests.staff_helpers import client_for, staff_user

S = AppointmentStatus
NEW_YORK = ZoneInfo("America/New_York")
# Wednesday 9 December 2026, 09:00 in New York (EST); everything was booked a week before.
DAY = date(2026, 12, 9)
NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)
BOOKED_AT = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
URL = "/staff/board/"


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    return make_approved_patient


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK).astimezone(UTC)


@pytest.fixture
def book(make_patient, infusion: AppointmentType) -> Callable[..., Appointment]:
    def run(
        name: str,
        start: datetime,
        appointment_type: AppointmentType | None = None,
    ) -> Appointment:
        first, last = name.split()
        return appointment_book(
            appointment_type=appointment_type or infusion,
            patient=make_patient(first_name=first, last_name=last),
            start=start,
            now=BOOKED_AT,
        )

    return run


@pytest.fixture
def front_desk(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic, username="desk")


@pytest.fixture
def nurse(clinic: Location) -> User:
    return staff_user(Role.NURSE, clinic, username="nurse")


@pytest.fixture
def desk_client(front_desk: User) -> Client:
    return client_for(front_desk)


@pytest.fixture
def nurse_client(nurse: User) -> Client:
    return client_for(nurse)


@pytest.fixture
def elsewhere(make_location, make_resource) -> AppointmentType:
    """The default consultation at a second location, open to anybody (no approval needed)."""
    location = make_location(slug="uptown", name="Uptown Clinic")
    appointment_types_install_defaults(location=location)
    make_resource(location, ResourceKind.ROOM)
    make_resource(location, ResourceKind.STAFF, role=StaffRole.PRESCRIBER)
    return AppointmentType.objects.select_related("location").get(
        location=location, slug="consultation"
    )


def page(client: Client, **query: str) -> str:
    response = client.get(URL, query)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def row(content: str, appointment: Appointment) -> str:
    return content.split(f'id="visit-{appointment.reference}"', 1)[1].split("</tr>", 1)[0]


def step(client: Client, appointment: Appointment, name: str, **data: str):
    return client.post(
        reverse("staff-board-step", args=[appointment.reference, name]), data, follow=True
    )


def shown_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def complete_checklist(appointment: Appointment, front_desk: User, nurse: User) -> None:
    for item, by in (("fasting", front_desk), ("medications", nurse), ("consent", front_desk)):
        checkin.appointment_checklist_record(appointment=appointment, item=item, by=by, now=NOW)
    appointment_escort_update(
        appointment=appointment, name="Sam Escort", phone="+12125550177", now=BOOKED_AT
    )


# --- Who may see it ------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_sign_in_page(client: Client, db: None) -> None:
    response = client.get(URL)

    assert response.status_code == 302
    assert "login" in response["Location"]
    assert "next=/staff/board/" in response["Location"]


def test_a_signed_in_user_without_a_staff_profile_is_sent_to_sign_in(
    client: Client, django_user_model
) -> None:
    client.force_login(django_user_model.objects.create_user("patient"))

    assert client.get(URL).status_code == 302


def test_a_staff_member_cannot_open_another_locations_board(
    desk_client: Client, elsewhere: AppointmentType
) -> None:
    assert desk_client.get(URL, {"location": elsewhere.location.slug}).status_code == 404


def test_a_malformed_date_is_a_400_not_an_error(desk_client: Client) -> None:
    response = desk_client.get(URL, {"date": "9 December"})

    assert response.status_code == 400
    assert "2026-12-01" in response.content.decode()


# --- What it shows -------------------------------------------------------------------------


def test_it_lists_the_days_visits_in_start_order_in_the_clinics_time(
    desk_client: Client, book, consultation: AppointmentType, elsewhere: AppointmentType
) -> None:
    late_visit = book("Cleo Late", at(14))
    early = book("Ada Early", at(10))
    middle = book("Ben Middle", at(11, 30), consultation)
    cancelled = book("Cy Cancelled", at(12))
    appointment_cancel(appointment=cancelled, now=BOOKED_AT)
    held = book("Hal Held", at(16))
    Appointment.objects.filter(pk=held.pk).update(status=S.HELD)
    book("Tom Tomorrow", at(10, day=DAY + timedelta(days=1)))
    appointment_book(
        appointment_type=elsewhere,
        patient=Patient.objects.create(
            first_name="Una",
            last_name="Uptown",
            email="u@example.com",
            phone="+12125550999",
            date_of_birth=date(1990, 1, 1),
        ),
        start=at(10),
        now=BOOKED_AT,
    )

    content = page(desk_client)

    names = ["Ada Early", "Ben Middle", "Cleo Late"]
    assert [content.index(n) for n in names] == sorted(content.index(n) for n in names)
    for absent in ("Cy Cancelled", "Hal Held", "Tom Tomorrow", "Una Uptown"):
        assert absent not in content
    assert "Wednesday 9 December 2026" in content
    assert "10:00 AM EST" in row(content, early)
    assert "2:00 PM EST" in row(content, late_visit)
    # Staff see the internal names of visit types, never only the neutral public one.
    assert "IV ketamine infusion (mood)" in row(content, early)
    assert consultation.name in row(content, middle)


def test_it_shows_each_status_the_desk_works_with(desk_client: Client, book) -> None:
    statuses = {
        S.BOOKED: "Booked",
        S.CONFIRMED: "Confirmed",
        S.CHECKED_IN: "Arrived",
        S.IN_CHAIR: "In chair",
        S.RECOVERING: "Recovering",
        S.DISCHARGED: "Discharged",
        S.NO_SHOW: "No-show",
    }
    visits = {}
    for n, status in enumerate(statuses):
        visits[status] = book(f"Pat Status{n}", at(8 + n // 2 * 2, 0))
        Appointment.objects.filter(pk=visits[status].pk).update(status=status)

    content = page(desk_client)

    for status, label in statuses.items():
        assert f'<span class="badge status">{label}</span>' in row(content, visits[status])


def test_a_session_of_a_series_says_which_one_it_is(
    desk_client: Client, make_patient, clinic: Location
) -> None:
    patient = make_patient(first_name="Ada", last_name="Series")
    plan = patient.plans.get(protocol__slug="mood-induction")
    days = [date(2026, 12, d) for d in (7, 9, 11, 14, 16, 18)]
    series = series_book(
        plan=plan,
        starts=[datetime.combine(d, time(10), tzinfo=NEW_YORK) for d in days],
        now=BOOKED_AT,
    )
    second = series.sessions.get(series_index=2)

    assert "Session 2 of 6" in row(page(desk_client), second)


def test_the_checklist_shows_what_is_done_and_what_is_missing(
    desk_client: Client, book, consultation: AppointmentType, front_desk: User
) -> None:
    visit = book("Ada Check", at(10))
    checkin.appointment_checklist_record(appointment=visit, item="fasting", by=front_desk, now=NOW)
    talk = book("Ben Talk", at(12), consultation)

    content = page(desk_client)

    shown = row(content, visit)
    assert "Fasting acknowledged: done" in shown
    assert "Escort name and phone confirmed: missing" in shown
    assert "Medications reviewed: missing" in shown
    assert "Consent current: missing" in shown
    assert "None needed" in row(content, talk)


def test_it_shows_each_visits_reminders_at_a_glance(desk_client: Client, book) -> None:
    visit = book("Ada Reminded", at(10))
    planned = OutboundMessage.objects.filter(appointment=visit)
    assert planned.count() >= 3
    first, second = planned.order_by("due_at", "id")[:2]
    OutboundMessage.objects.filter(pk=first.pk).update(status=MessageStatus.SENT, sent_at=NOW)
    OutboundMessage.objects.filter(pk=second.pk).update(status=MessageStatus.FAILED)
    waiting = planned.filter(status=MessageStatus.PENDING).order_by("due_at", "id")

    shown = row(page(desk_client), visit)

    assert f"1 sent · {waiting.count()} pending" in shown
    assert "1 failed" in shown
    assert f"Next: {html.escape(waiting[0].get_kind_display())}" in shown


# --- Check-in and the checklist --------------------------------------------------------------


def test_check_in_is_refused_with_the_checklists_message_until_it_is_complete(
    desk_client: Client, book
) -> None:
    visit = book("Ada Early", at(10))

    response = step(desk_client, visit, "check-in")

    assert response.redirect_chain[-1][0].endswith(f"#visit-{visit.reference}")
    assert response.status_code == 200
    (message,) = shown_messages(response)
    assert message.startswith("Ada Early: Check-in waits for the checklist: fasting acknowledged")
    visit.refresh_from_db()
    assert visit.status == S.BOOKED


def test_the_desk_ticks_its_items_and_then_checks_the_patient_in(
    desk_client: Client, nurse: User, book
) -> None:
    visit = book("Ada Early", at(10))
    appointment_escort_update(
        appointment=visit, name="Sam Escort", phone="+12125550177", now=BOOKED_AT
    )
    shown = row(page(desk_client), visit)
    # The front desk does not review medications: no button for it, only for what it may do.
    assert "Tick: fasting acknowledged" in shown
    assert "Tick: consent current" in shown
    assert "Tick: medications reviewed" not in shown
    assert "Check in anyway" not in shown

    for item in ("fasting", "consent"):
        response = step(desk_client, visit, item)
        assert not any("cannot" in m for m in shown_messages(response))
    checkin.appointment_checklist_record(appointment=visit, item="medications", by=nurse, now=NOW)
    response = step(desk_client, visit, "check-in")

    assert shown_messages(response) == ["Ada Early checked in."]
    visit.refresh_from_db()
    assert visit.status == S.CHECKED_IN
    assert '<span class="badge status">Arrived</span>' in row(response.content.decode(), visit)


def test_only_a_clinician_may_override_the_checklist_and_only_with_a_reason(
    desk_client: Client, nurse_client: Client, book
) -> None:
    visit = book("Ada Early", at(10))
    assert "Check in anyway" in row(page(nurse_client), visit)

    refused = step(desk_client, visit, "override", reason="Patient confirmed verbally")
    assert "Only a nurse or prescriber can override" in shown_messages(refused)[0]
    no_reason = step(nurse_client, visit, "override", reason="   ")
    assert "Give a reason" in shown_messages(no_reason)[0]
    visit.refresh_from_db()
    assert visit.status == S.BOOKED

    step(nurse_client, visit, "override", reason="Consent signed on paper")

    visit.refresh_from_db()
    assert visit.status == S.CHECKED_IN
    assert visit.checklist_override_reason == "Consent signed on paper"
    assert AppointmentEvent.objects.filter(
        appointment=visit, kind="checklist_override", detail="Consent signed on paper"
    ).exists()


# --- In the chair to discharge ---------------------------------------------------------------


def test_a_nurse_takes_a_visit_from_arrival_to_discharge_once_the_escort_is_here(
    nurse_client: Client, front_desk: User, nurse: User, book
) -> None:
    visit = book("Ada Early", at(10))
    complete_checklist(visit, front_desk, nurse)
    step(nurse_client, visit, "check-in")

    for name, status in (("in-chair", S.IN_CHAIR), ("recovering", S.RECOVERING)):
        step(nurse_client, visit, name)
        visit.refresh_from_db()
        assert visit.status == status
    refused = step(nurse_client, visit, "discharge")
    assert "Discharge waits for the escort" in shown_messages(refused)[0]
    step(nurse_client, visit, "escort-present")
    # Its recovery began as long ago as the type's observation asks.
    Appointment.objects.filter(pk=visit.pk).update(recovering_at=NOW - timedelta(minutes=40))
    done = step(nurse_client, visit, "discharge")

    assert shown_messages(done) == ["Ada Early discharged."]
    visit.refresh_from_db()
    assert visit.status == S.DISCHARGED
    assert visit.escort_present_at == NOW


def test_a_step_the_role_may_not_take_is_refused_with_a_message(
    desk_client: Client, front_desk: User, nurse: User, book
) -> None:
    visit = book("Ada Early", at(10))
    complete_checklist(visit, front_desk, nurse)
    step(desk_client, visit, "check-in")

    assert "In chair" not in row(page(desk_client), visit)
    response = step(desk_client, visit, "in-chair")

    assert response.status_code == 200
    assert shown_messages(response) == ["Ada Early: Your role cannot do this."]
    visit.refresh_from_db()
    assert visit.status == S.CHECKED_IN


def test_a_step_out_of_order_is_refused_with_the_services_message(
    nurse_client: Client, book
) -> None:
    visit = book("Ada Early", at(10))

    response = step(nurse_client, visit, "discharge")

    assert shown_messages(response) == ["Ada Early: Not possible for a booked visit."]


# --- Late and no-show ----------------------------------------------------------------------


def test_a_late_patient_is_flagged_and_may_be_marked_no_show(desk_client: Client, book) -> None:
    late = book("Lou Late", at(8, 30))  # 30 minutes ago
    coming = book("Ada Coming", at(10))

    content = page(desk_client)

    assert '<span class="badge late">late</span>' in row(content, late)
    assert ">No-show</button>" in row(content, late)
    assert "badge late" not in row(content, coming)
    assert ">No-show</button>" not in row(content, coming)

    refused = step(desk_client, coming, "no-show")
    assert "becomes a no-show 15 minutes after its start" in shown_messages(refused)[0]
    done = step(desk_client, late, "no-show")
    assert shown_messages(done) == ["Lou Late marked no-show."]
    late.refresh_from_db()
    assert late.status == S.NO_SHOW
    assert not late.allocations.filter(active=True).exists()


# --- Bad requests -----------------------------------------------------------------------------


def test_an_unknown_step_is_a_400(desk_client: Client, book) -> None:
    visit = book("Ada Early", at(10))

    response = desk_client.post(reverse("staff-board-step", args=[visit.reference, "teleport"]))

    assert response.status_code == 400
    assert "Unknown action" in response.content.decode()


def test_a_step_is_a_post_only(desk_client: Client, book) -> None:
    visit = book("Ada Early", at(10))

    response = desk_client.get(reverse("staff-board-step", args=[visit.reference, "check-in"]))

    assert response.status_code == 405
    visit.refresh_from_db()
    assert visit.status == S.BOOKED


def test_a_visit_at_another_location_is_not_found(
    desk_client: Client, elsewhere: AppointmentType, make_patient
) -> None:
    theirs = appointment_book(
        appointment_type=elsewhere,
        patient=make_patient(),
        start=at(10),
        now=BOOKED_AT,
    )

    for name in ("check-in", "fasting", "teleport"):
        response = desk_client.post(reverse("staff-board-step", args=[theirs.reference, name]))
        assert response.status_code == 404
    assert (
        desk_client.post(reverse("staff-board-step", args=["NOPE1234", "fasting"])).status_code
        == 404
    )
    theirs.refresh_from_db()
    assert theirs.fasting_acknowledged_at is None


def test_the_csrf_token_is_required(front_desk: User, book) -> None:
    visit = book("Ada Early", at(10))
    client = Client(enforce_csrf_checks=True)
    client.force_login(front_desk)

    response = client.post(reverse("staff-board-step", args=[visit.reference, "fasting"]))

    assert response.status_code == 403
    visit.refresh_from_db()
    assert visit.fasting_acknowledged_at is None


# --- Days and locations -------------------------------------------------------------------------


def test_it_moves_between_days_and_between_the_users_locations(
    book, clinic: Location, elsewhere: AppointmentType, make_patient
) -> None:
    both = client_for(staff_user(Role.FRONT_DESK, clinic, elsewhere.location))
    tomorrow = book("Tom Tomorrow", at(10, day=DAY + timedelta(days=1)))
    theirs = appointment_book(
        appointment_type=elsewhere,
        patient=make_patient(first_name="Una", last_name="Uptown"),
        start=at(10),
        now=BOOKED_AT,
    )

    today = page(both, location=clinic.slug)
    assert f"location={clinic.slug}&amp;date=2026-12-10" in today
    assert f"location={clinic.slug}&amp;date=2026-12-08" in today
    assert "Tom Tomorrow" in page(both, location=clinic.slug, date="2026-12-10")
    assert tomorrow.reference in page(both, location=clinic.slug, date="2026-12-10")
    uptown = page(both, location=elsewhere.location.slug)
    assert theirs.reference in uptown
    assert "Una Uptown" in uptown


# --- Audit and cost ------------------------------------------------------------------------------


def test_reading_the_board_and_each_step_are_audited(
    desk_client: Client, front_desk: User, clinic: Location, book
) -> None:
    visit = book("Ada Early", at(10))

    page(desk_client)
    step(desk_client, visit, "fasting")

    view = AuditEvent.objects.filter(object_type="day_board", user=front_desk, action="view")[0]
    assert view.location_id == clinic.pk
    assert view.detail["date"] == "2026-12-09"
    update = AuditEvent.objects.get(object_type="appointment", action="update")
    assert (update.object_id, update.patient_id, update.detail) == (
        str(visit.pk),
        visit.patient_id,
        {"step": "fasting"},
    )
    # The redirect after the step reads the board again.
    assert AuditEvent.objects.filter(object_type="day_board").count() == 2


def test_the_boards_queries_do_not_grow_with_its_visits(
    desk_client: Client, book, make_patient, clinic: Location, django_assert_max_num_queries
) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page(desk_client)
        return len(captured)

    book("Ada One", at(10))
    few = queries()

    patient = make_patient(first_name="Ser", last_name="Ies")
    series_book(
        plan=patient.plans.get(protocol__slug="mood-induction"),
        starts=[
            datetime.combine(date(2026, 12, d), time(12), tzinfo=NEW_YORK)
            for d in (7, 9, 11, 14, 16, 18)
        ],
        now=BOOKED_AT,
    )
    for n, hour in enumerate((8, 10, 14, 14, 16)):
        book(f"Pat Many{n}", at(hour))
    assert Appointment.objects.filter(start__gte=at(0), start__lt=at(23, 59)).count() == 7

    assert queries() == few
    # Session and user (2), staff check, location ids and locations (3), permissions (2), the
    # visits with their series sizes (1), their messages (1), their treatment authorisations
    # (decisions, plans, flagged contraindications: 3), the visits needing a new time (1), the
    # audit row (1), and the session renewed for idle logout (3).
    with django_assert_max_num_queries(17):
        page(desk_client)

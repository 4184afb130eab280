"""Staff API for appointments: the calendar's list, book, move, cancel, and the visit at the
desk, each scoped to the user's locations and recorded in the audit log (issue 6)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken

from booking import checkin
from booking.access.roles import Role
from booking.models import (
    Allocation,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    AuditEvent,
    Patient,
    Series,
    TreatmentPlan,
)
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location, Resource, ResourceKind
from tests.booking.api.helpers import assert_error
from tests.conftest import approve
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
DAY = date(2026, 6, 8)  # a Monday


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


NOW = at(9)
LIST = "/api/v1/appointments/"


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    # Every patient here may have the clinic's infusions: approval has its own tests.
    return make_approved_patient


@pytest.fixture
def desk_user(clinic: Location) -> User:
    return staff_user(Role.FRONT_DESK, clinic, username="robin")


@pytest.fixture
def nurse(clinic: Location) -> User:
    return staff_user(Role.NURSE, clinic, username="sam")


@pytest.fixture
def desk_client(desk_user: User) -> Client:
    return client_for(desk_user)


@pytest.fixture
def nurse_client(nurse: User) -> Client:
    return client_for(nurse)


@pytest.fixture
def patient(make_patient: Callable[..., Patient]) -> Patient:
    return make_patient(first_name="Avery", last_name="Jordan")


@pytest.fixture
def visit(infusion: AppointmentType, patient: Patient) -> Appointment:
    return appointment_book(appointment_type=infusion, patient=patient, start=at(10))


@pytest.fixture
def elsewhere(one_nurse_four_chairs: AppointmentType, make_patient) -> Appointment:
    """A visit at another location, which none of this module's staff work at."""
    return appointment_book(
        appointment_type=one_nurse_four_chairs,
        patient=approve(make_patient(), one_nurse_four_chairs),
        start=at(10),
    )


def url(appointment: Appointment, step: str = "") -> str:
    return f"{LIST}{appointment.reference}/" + (f"{step}/" if step else "")


def post(client: Client, path: str, body: Any = None, **headers: Any):
    data = json.dumps({} if body is None else body)
    return client.post(path, data=data, content_type="application/json", **headers)


def listing(client: Client, **params: Any):
    query = {"location": "midtown", "start": DAY.isoformat(), "end": DAY.isoformat()}
    query.update({name: str(value) for name, value in params.items()})
    return client.get(f"{LIST}?{urlencode(query)}")


def complete_checklist(visit: Appointment, desk_user: User, nurse: User) -> None:
    checkin.appointment_checklist_record(appointment=visit, item="fasting", by=desk_user)
    checkin.appointment_checklist_record(appointment=visit, item="consent", by=desk_user)
    checkin.appointment_checklist_record(appointment=visit, item="medications", by=nurse)
    Appointment.objects.filter(pk=visit.pk).update(
        escort_name="Jordan Avery", escort_phone="+12125550199"
    )


# --- Reading ------------------------------------------------------------------------------------


def test_it_lists_a_days_visits_in_the_clinics_time(desk_client, visit, patient, elsewhere):
    response = listing(desk_client)

    assert response.status_code == 200, response.content
    assert response.json() == [
        {
            "reference": visit.reference,
            "location": "midtown",
            "appointment_type": {"slug": "iv-mood", "name": "IV ketamine infusion (mood)"},
            "status": "booked",
            "start": "2026-06-08T10:00:00-04:00",
            "end": "2026-06-08T11:30:00-04:00",
            "patient": {"id": patient.pk, "first_name": "Avery", "last_name": "Jordan"},
            "series": None,
            "checklist": [
                {"key": "authorised", "label": "Treatment authorised", "done": True, "detail": ""},
                {"key": "fasting", "label": "Fasting acknowledged", "done": False, "detail": ""},
                {
                    "key": "escort",
                    "label": "Escort name and phone confirmed",
                    "done": False,
                    "detail": "",
                },
                {
                    "key": "medications",
                    "label": "Medications reviewed",
                    "done": False,
                    "detail": "",
                },
                {"key": "consent", "label": "Consent current", "done": False, "detail": ""},
            ],
            "version": 0,
        }
    ]


def test_the_range_is_the_clinics_dates_with_the_end_included(
    make_location, make_resource, make_type, make_patient
):
    tokyo = make_location(timezone="Asia/Tokyo")
    make_resource(tokyo, ResourceKind.CHAIR)
    visit_type = make_type(tokyo, duration=60, needs=[{"resource_kind": ResourceKind.CHAIR}])
    zone = ZoneInfo("Asia/Tokyo")

    def book(day: date, hour: int) -> Appointment:
        return appointment_book(
            appointment_type=visit_type,
            patient=make_patient(),
            start=datetime.combine(day, time(hour), tzinfo=zone),
            now=at(0, day=DAY - timedelta(days=1)),
        )

    book(DAY, 17)  # the 8th in Tokyo, before the range
    # 08:00 in Tokyo is 23:00 UTC the day before: the range is the clinic's dates, not UTC's.
    first = book(DAY + timedelta(days=1), 8)
    last = book(DAY + timedelta(days=3), 17)
    book(DAY + timedelta(days=4), 8)  # the 12th in Tokyo, the 11th in UTC: after the range
    staff = client_for(staff_user(Role.FRONT_DESK, tokyo))

    response = listing(
        staff, location=tokyo.slug, start=DAY + timedelta(days=1), end=DAY + timedelta(days=3)
    )

    assert [row["reference"] for row in response.json()] == [first.reference, last.reference]
    assert response.json()[0]["start"] == "2026-06-09T08:00:00+09:00"


def test_it_filters_by_resource_and_status(desk_client, infusion, make_patient):
    first = appointment_book(appointment_type=infusion, patient=make_patient(), start=at(10))
    second = appointment_book(appointment_type=infusion, patient=make_patient(), start=at(10))
    chair = Allocation.objects.get(appointment=second, resource__kind=ResourceKind.CHAIR).resource
    Appointment.objects.filter(pk=first.pk).update(status=AppointmentStatus.CONFIRMED)

    by_chair = listing(desk_client, resource=chair.pk).json()
    confirmed = listing(desk_client, status="confirmed").json()

    assert [row["reference"] for row in by_chair] == [second.reference]
    assert [row["reference"] for row in confirmed] == [first.reference]


def test_a_list_read_is_one_audit_event(desk_client, desk_user, visit, clinic):
    listing(desk_client)

    event = AuditEvent.objects.get()
    assert (event.user, event.action, event.object_type) == (desk_user, "view", "appointment_list")
    assert event.location_id == clinic.pk
    assert event.detail["location"] == "midtown"
    assert (event.detail["start"], event.detail["end"]) == ("2026-06-08", "2026-06-08")
    assert event.detail["count"] == 1


def test_the_list_costs_the_same_queries_for_one_visit_or_many(desk_client, infusion, make_patient):
    appointment_book(appointment_type=infusion, patient=make_patient(), start=at(10))
    with CaptureQueriesContext(connection) as one:
        assert len(listing(desk_client).json()) == 1
    appointment_book(appointment_type=infusion, patient=make_patient(), start=at(10))
    for hour in (12, 14, 16):
        for _ in range(2):
            appointment_book(appointment_type=infusion, patient=make_patient(), start=at(hour))
    with CaptureQueriesContext(connection) as many:
        assert len(listing(desk_client).json()) == 8

    # Session, user, staff profile, locations, permissions, the location, the rows, their
    # treatment authorisations (decisions, plans, flags), the audit row, the session's renewal:
    # never one per row.
    assert len(many) == len(one) == 15, [query["sql"] for query in many.captured_queries]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"location": "nowhere"}, "location"),
        ({"start": "2026-06-31"}, "start"),
        ({"start": "08/06/2026"}, "start"),
        ({"end": "2026-06-07"}, "end"),
        ({"end": "2026-08-09"}, "end"),  # 63 days
        ({"status": "lost"}, "status"),
        ({"resource": "chair"}, "resource"),
        ({"page": "2"}, "page"),
    ],
)
def test_bad_list_queries_are_400s_naming_the_field(desk_client, clinic, params, field):
    error = assert_error(listing(desk_client, **params), 400, "invalid")

    assert field in error["fields"]


def test_a_resource_of_another_location_is_refused(desk_client, clinic, one_nurse_four_chairs):
    theirs = Resource.objects.filter(location=one_nurse_four_chairs.location).earliest("pk")

    error = assert_error(listing(desk_client, resource=theirs.pk), 400)

    assert "resource" in error["fields"]


def test_a_location_one_does_not_work_at_is_404(desk_client, elsewhere):
    response = listing(desk_client, location=elsewhere.location.slug)

    assert_error(response, 404, "not_found")
    assert not AuditEvent.objects.exists()


def test_it_shows_one_visit_and_records_the_read(desk_client, desk_user, visit, patient):
    response = desk_client.get(url(visit))

    assert response.status_code == 200
    assert response.json()["reference"] == visit.reference
    event = AuditEvent.objects.get()
    assert (event.action, event.object_type, event.object_id) == (
        "view",
        "appointment",
        str(visit.pk),
    )
    assert (event.patient, event.user) == (patient, desk_user)


def test_a_visit_elsewhere_is_404_like_a_missing_one(desk_client, elsewhere):
    for path in (url(elsewhere), f"{LIST}NOSUCHREF/"):
        assert_error(desk_client.get(path), 404, "not_found")


def test_a_series_session_names_its_place(desk_client, visit):
    plan = TreatmentPlan.objects.filter(
        patient=visit.patient, protocol__slug="mood-induction"
    ).get()
    series = Series.objects.create(plan=plan, protocol=plan.protocol)
    Appointment.objects.filter(pk=visit.pk).update(series=series, series_index=2)

    body = desk_client.get(url(visit)).json()

    assert body["series"] == {"id": series.pk, "index": 2, "of": plan.protocol.sessions}


# --- Booking, moving, cancelling -----------------------------------------------------------------


def new_booking(who: Patient, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "location": "midtown",
        "appointment_type": "iv-mood",
        "patient": who.pk,
        "start": "2026-06-08T12:00:00-04:00",
    }
    body.update(changes)
    return body


def test_the_desk_books_a_visit(desk_client, desk_user, patient):
    response = post(desk_client, LIST, new_booking(patient))

    assert response.status_code == 201, response.content
    body = response.json()
    booked = Appointment.objects.get(reference=body["reference"])
    assert (booked.patient, booked.source, booked.start) == (patient, "staff", at(12))
    assert body["start"] == "2026-06-08T12:00:00-04:00"
    assert booked.events.get().by == desk_user
    event = AuditEvent.objects.get()
    assert (event.action, event.object_id, event.patient) == ("create", str(booked.pk), patient)


def test_a_patient_new_to_every_location_can_be_booked(desk_client, make_patient):
    fresh = make_patient()

    response = post(desk_client, LIST, new_booking(fresh))

    assert response.status_code == 201, response.content


def test_a_patient_of_another_location_only_reads_as_unknown(desk_client, clinic, elsewhere):
    error = assert_error(post(desk_client, LIST, new_booking(elsewhere.patient)), 400)

    assert error["fields"] == {"patient": "Unknown patient."}
    assert not Appointment.objects.filter(location=clinic).exists()


def test_booking_at_another_location_is_404(desk_client, patient, elsewhere):
    body = new_booking(patient, location=elsewhere.location.slug)

    assert_error(post(desk_client, LIST, body), 404)


def test_a_full_slot_is_409_slot_taken(desk_client, infusion, make_patient):
    for _ in range(2):  # both chairs
        appointment_book(appointment_type=infusion, patient=make_patient(), start=at(12))

    assert_error(post(desk_client, LIST, new_booking(make_patient())), 409, "slot_taken")


def test_a_patient_already_booked_then_is_409_patient_busy(desk_client, patient, visit):
    body = new_booking(patient, start="2026-06-08T10:30:00-04:00")

    assert_error(post(desk_client, LIST, body), 409, "patient_busy")


def test_a_time_past_is_422(desk_client, patient):
    body = new_booking(patient, start="2026-06-08T08:00:00-04:00")

    assert_error(post(desk_client, LIST, body), 422, "policy_violation")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"start": "2026-06-08T12:00:00"}, "start"),
        ({"start": "tomorrow"}, "start"),
        ({"patient": "1"}, "patient"),
        ({"patient": True}, "patient"),
        ({"patient": 999999}, "patient"),
        ({"appointment_type": "massage"}, "appointment_type"),
        ({"location": "nowhere"}, "location"),
        ({"reason": "walk-in"}, "reason"),
    ],
)
def test_bad_bookings_are_400s_naming_the_field(desk_client, patient, changes, field):
    error = assert_error(post(desk_client, LIST, new_booking(patient, **changes)), 400, "invalid")

    assert field in error["fields"]
    assert not Appointment.objects.exists()


def test_the_desk_moves_a_visit(desk_client, desk_user, visit):
    response = post(desk_client, url(visit, "reschedule"), {"start": "2026-06-08T14:00:00-04:00"})

    assert response.status_code == 200, response.content
    assert response.json()["start"] == "2026-06-08T14:00:00-04:00"
    assert response.json()["version"] == 1
    visit.refresh_from_db()
    assert visit.start == at(14)
    assert visit.events.last().by == desk_user
    assert AuditEvent.objects.get().detail == {"change": "rescheduled"}


def test_moving_into_a_full_slot_is_409_with_a_message(desk_client, visit, infusion, make_patient):
    for _ in range(2):
        appointment_book(appointment_type=infusion, patient=make_patient(), start=at(14))

    response = post(desk_client, url(visit, "reschedule"), {"start": "2026-06-08T14:00:00-04:00"})

    assert "not available" in assert_error(response, 409, "slot_taken")["message"]
    visit.refresh_from_db()
    assert visit.start == at(10)


def test_the_desk_cancels_with_a_reason(desk_client, visit):
    response = post(desk_client, url(visit, "cancel"), {"reason": "Patient unwell"})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    visit.refresh_from_db()
    assert visit.cancel_reason == "Patient unwell"
    assert not visit.allocations.filter(active=True).exists()


def test_a_cancel_needs_a_reason(desk_client, visit):
    error = assert_error(post(desk_client, url(visit, "cancel")), 400)

    assert "reason" in error["fields"]


def test_moving_or_cancelling_elsewhere_is_404(desk_client, elsewhere):
    moved = post(desk_client, url(elsewhere, "reschedule"), {"start": at(14).isoformat()})
    cancelled = post(desk_client, url(elsewhere, "cancel"), {"reason": "x"})

    assert_error(moved, 404)
    assert_error(cancelled, 404)
    elsewhere.refresh_from_db()
    assert (elsewhere.status, elsewhere.start) == ("booked", at(10))


def test_a_nurse_cannot_book_move_or_cancel(nurse_client, patient, visit):
    assert_error(post(nurse_client, LIST, new_booking(patient)), 403, "permission_denied")
    assert_error(post(nurse_client, url(visit, "cancel"), {"reason": "x"}), 403)
    visit.refresh_from_db()
    assert visit.status == "booked"


# --- The visit at the desk -----------------------------------------------------------------------


def test_check_in_waits_for_the_checklist_then_goes_through(
    desk_client, nurse_client, visit, desk_user
):
    refused = post(desk_client, url(visit, "check-in"))
    error = assert_error(refused, 409, "checklist_incomplete")
    assert "fasting acknowledged" in error["message"]
    assert "checklist" in error["fields"]

    for client, item in ((desk_client, "fasting"), (desk_client, "consent")):
        ticked = post(client, url(visit, "checklist"), {"item": item})
        assert ticked.status_code == 200, ticked.content
    ticked = post(nurse_client, url(visit, "checklist"), {"item": "medications"})
    assert {row["key"]: row["done"] for row in ticked.json()["checklist"]} == {
        "authorised": True,
        "fasting": True,
        "escort": False,
        "medications": True,
        "consent": True,
    }
    assert_error(post(desk_client, url(visit, "check-in")), 409, "checklist_incomplete")
    Appointment.objects.filter(pk=visit.pk).update(
        escort_name="Jordan Avery", escort_phone="+12125550199"
    )

    response = post(desk_client, url(visit, "check-in"))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "checked_in"
    visit.refresh_from_db()
    assert visit.checked_in_at == NOW
    assert visit.checklist_override_reason == ""
    assert AuditEvent.objects.filter(action="update").count() == 4


def test_medications_are_reviewed_by_a_nurse_not_the_desk(desk_client, visit):
    response = post(desk_client, url(visit, "checklist"), {"item": "medications"})

    assert "role" in assert_error(response, 403, "permission_denied")["message"]
    visit.refresh_from_db()
    assert visit.medications_reviewed_at is None


def test_an_override_needs_a_nurse_or_prescriber_and_keeps_the_reason(
    desk_client, nurse_client, nurse, visit
):
    reason = {"override_reason": "Escort confirmed by phone with the nurse"}

    refused = post(desk_client, url(visit, "check-in"), reason)
    assert "nurse or prescriber" in assert_error(refused, 403)["message"]
    visit.refresh_from_db()
    assert visit.status == "booked"

    response = post(nurse_client, url(visit, "check-in"), reason)

    assert response.status_code == 200, response.content
    visit.refresh_from_db()
    assert visit.status == "checked_in"
    assert visit.checklist_override_reason == "Escort confirmed by phone with the nurse"
    assert visit.checklist_override_by == nurse
    override = AppointmentEvent.objects.get(appointment=visit, kind="checklist_override")
    assert (override.by, override.detail) == (nurse, reason["override_reason"])


def test_check_in_opens_on_the_day_of_the_visit(desk_client, desk_user, nurse, infusion, patient):
    tomorrow = appointment_book(
        appointment_type=infusion, patient=patient, start=at(10, day=DAY + timedelta(1))
    )
    complete_checklist(tomorrow, desk_user, nurse)

    assert_error(post(desk_client, url(tomorrow, "check-in")), 422, "policy_violation")


def test_discharge_needs_the_escort_present(nurse_client, desk_user, nurse, visit):
    complete_checklist(visit, desk_user, nurse)
    for step, status in (
        ("check-in", "checked_in"),
        ("in-chair", "in_chair"),
        ("recovering", "recovering"),
    ):
        response = post(nurse_client, url(visit, step))
        assert response.status_code == 200, response.content
        assert response.json()["status"] == status

    refused = assert_error(post(nurse_client, url(visit, "discharge")), 422, "policy_violation")
    assert "escort" in refused["fields"]

    assert post(nurse_client, url(visit, "escort-present")).status_code == 200
    observed(visit)
    response = post(nurse_client, url(visit, "discharge"))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "discharged"


def observed(visit: Appointment) -> None:
    """The visit's observation is over: its recovery began as long ago as the type asks."""
    minutes = visit.appointment_type.observation_minutes
    Appointment.objects.filter(pk=visit.pk).update(
        recovering_at=F("recovering_at") - timedelta(minutes=minutes)
    )


def test_steps_out_of_order_are_409(nurse_client, visit):
    for step in ("in-chair", "recovering", "discharge"):
        assert_error(post(nurse_client, url(visit, step)), 409, "invalid_transition")


def test_a_no_show_only_after_the_late_threshold(desk_user, visit, clock):
    # Signed in afresh after each jump: an hour without a request signs staff out.
    clock.move_to(at(10, 15))
    assert_error(post(client_for(desk_user), url(visit, "no-show")), 422, "policy_violation")

    clock.move_to(at(10, 16))
    response = post(client_for(desk_user), url(visit, "no-show"))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "no_show"
    assert not visit.allocations.filter(active=True).exists()


def test_the_desks_steps_elsewhere_are_404(nurse_client, elsewhere):
    for step in ("checklist", "check-in", "in-chair", "recovering", "escort-present", "no-show"):
        assert_error(post(nurse_client, url(elsewhere, step), {}), 404)


@pytest.mark.parametrize(
    ("step", "body", "fields"),
    [
        ("checklist", {"item": "escort"}, {"item"}),
        ("checklist", {}, {"item"}),
        ("checklist", {"item": "fasting", "by": "robin"}, {"by"}),
        ("check-in", {"override_reason": 5}, {"override_reason"}),
        ("check-in", {"overide_reason": "typo"}, {"overide_reason"}),
        ("in-chair", {"chair": 2}, {"chair"}),
        ("discharge", {"escort": True}, {"escort"}),
        ("no-show", {"late": True}, {"late"}),
        ("reschedule", {"start": "2026-06-08 14:00"}, {"start"}),
        ("reschedule", {"start": at(14).isoformat(), "shift_later": True}, {"shift_later"}),
        ("cancel", {"reason": "x", "notify": False}, {"notify"}),
    ],
)
def test_strict_input_names_the_fields(nurse_client, desk_client, visit, step, body, fields):
    client = desk_client if step in ("checklist", "reschedule", "cancel") else nurse_client

    error = assert_error(post(client, url(visit, step), body), 400, "invalid")

    assert set(error["fields"]) == fields
    visit.refresh_from_db()
    assert (visit.status, visit.version, visit.fasting_acknowledged_at) == ("booked", 0, None)


# --- Signing in ----------------------------------------------------------------------------------


def test_anonymous_callers_are_refused(client, visit, patient):
    assert_error(listing(client), 403)
    assert_error(client.get(url(visit)), 403)
    assert_error(post(client, LIST, new_booking(patient)), 403)
    assert_error(post(client, url(visit, "cancel"), {"reason": "x"}), 403)
    visit.refresh_from_db()
    assert visit.status == "booked"


def test_a_signed_in_user_without_a_staff_profile_is_refused(visit):
    outsider = User.objects.create_user("outsider")

    assert_error(client_for(outsider).get(url(visit)), 403)


def test_a_token_works_without_a_session_or_csrf(desk_user, visit):
    _, token = AuthToken.objects.create(user=desk_user)
    api = Client(enforce_csrf_checks=True)
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Token {token}"}

    read = api.get(url(visit), **auth)
    cancelled = post(api, url(visit, "cancel"), {"reason": "Called to cancel"}, **auth)

    assert read.status_code == 200, read.content
    assert cancelled.status_code == 200, cancelled.content
    assert AuditEvent.objects.filter(user=desk_user).count() == 2


def test_a_wrong_token_is_refused(desk_user, visit):
    AuthToken.objects.create(user=desk_user)

    response = Client().get(url(visit), HTTP_AUTHORIZATION="Token " + "0" * 64)

    assert response.status_code in (401, 403)


def test_a_session_post_needs_the_csrf_token(desk_user, visit):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(desk_user)

    response = post(browser, url(visit, "cancel"), {"reason": "x"})

    assert_error(response, 403)
    visit.refresh_from_db()
    assert visit.status == "booked"


def test_the_token_command_prints_a_new_key_each_time_and_rotates(desk_user, visit):
    def command(*options: str) -> str:
        out = io.StringIO()
        call_command("staff_token", "robin", *options, stdout=out)
        return out.getvalue().strip()

    def works(key: str) -> bool:
        return Client().get(url(visit), HTTP_AUTHORIZATION=f"Token {key}").status_code == 200

    first, second = command(), command()
    assert first != second
    assert works(first)
    assert works(second)

    rotated = command("--rotate")
    assert rotated not in ("", first, second)
    assert (works(first), works(second), works(rotated)) == (False, False, True)
    assert AuthToken.objects.filter(user=desk_user).count() == 1


def test_the_token_command_refuses_non_staff(db):
    User.objects.create_user("patient-portal")

    with pytest.raises(CommandError):
        call_command("staff_token", "patient-portal")
    with pytest.raises(CommandError):
        call_command("staff_token", "nobody")


# --- Schema --------------------------------------------------------------------------------------


def test_the_schema_describes_the_staff_endpoints_without_warnings(db):
    out = io.StringIO()
    # --fail-on-warn makes any warning (a name collision, an unknown type) an error here.
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    schema = out.getvalue()
    for path in ("", "{reference}/", "{reference}/check-in/", "{reference}/no-show/"):
        assert f"  /api/v1/appointments/{path}:" in schema

"""Staff API for infusion series: propose, book all or nothing, read, hold and resume, move one
session within (or by a prescriber's override, outside) its cadence (issue 5; DESIGN §4)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.test import Client

from booking.eligibility import contraindications_none, eligibility_decide
from booking.models import (
    Allocation,
    Appointment,
    AuditEvent,
    DecisionOutcome,
    Patient,
    ScheduleOverride,
    Series,
    SeriesStatus,
    StaffProfile,
    TreatmentPlan,
)
from booking.series.services import series_book
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location
from tests.booking.api.helpers import assert_error
from tests.staff_helpers import client_for

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # Monday, 08:00 in New York
MONDAY = date(2026, 6, 8)
# Monday, Wednesday and Friday at 10:00 for two weeks: what the mood series is proposed at.
DAYS = [MONDAY + timedelta(days=n) for n in (0, 2, 4, 7, 9, 11)]
STARTS = [datetime.combine(day, time(10), tzinfo=NEW_YORK) for day in DAYS]

PROPOSALS = "/api/v1/series/proposals/"
SERIES = "/api/v1/series/"


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def staff(username: str, *codenames: str) -> User:
    """A staff member with these permissions, working at every location that exists now."""
    user = User.objects.create_user(username, password="unused-in-tests")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="booking", codename__in=codenames)
    )
    StaffProfile.objects.create(user=user).locations.set(Location.objects.all())
    return user


@pytest.fixture
def desk(clinic: Location) -> User:
    return staff("desk", "add_series", "view_series")


@pytest.fixture
def reader(clinic: Location) -> User:
    return staff("reader", "view_series")


@pytest.fixture
def prescriber(clinic: Location) -> User:
    return staff("dr.series", "add_series", "view_series", "add_eligibilitydecision")


def as_user(user: User | None) -> Client:
    return client_for(user) if user is not None else Client()


def post(client: Client, path: str, body: Any = None):
    return client.post(path, data=json.dumps(body or {}), content_type="application/json")


def iso(moment: datetime) -> str:
    return moment.astimezone(NEW_YORK).isoformat()


def mood_plan_of(patient: Patient) -> TreatmentPlan:
    return TreatmentPlan.objects.get(
        patient=patient, protocol__slug="mood-induction", revoked_at__isnull=True
    )


@pytest.fixture
def plan(make_approved_patient: Callable[..., Patient]) -> TreatmentPlan:
    """Six sessions 2 to 7 days apart within 21 days, Monday to Saturday, reviewed after 2."""
    return mood_plan_of(make_approved_patient())


@pytest.fixture
def series(plan: TreatmentPlan) -> Series:
    return series_book(plan=plan, starts=STARTS, now=NOW)


def session_url(series: Series, index: int) -> str:
    reference = series.sessions.get(series_index=index).reference
    return f"/api/v1/series/sessions/{reference}/reschedule/"


# --- Propose and book --------------------------------------------------------------------------


def test_the_desk_books_the_series_it_was_proposed(desk, plan):
    client = as_user(desk)

    proposed = post(
        client,
        PROPOSALS,
        {"plan": plan.pk, "first_day": "2026-06-08", "weekdays": [0, 2, 4], "time_of_day": "10:00"},
    )

    assert proposed.status_code == 200, proposed.content
    proposal = proposed.json()
    assert proposal == {
        "sessions": [
            {"index": n, "start": iso(start), "end": iso(start + timedelta(minutes=90))}
            for n, start in enumerate(STARTS, start=1)
        ],
        "missing": [],
        "alternatives": {},
        "later_first_day": None,
        "later_sessions": [],
        "time_of_day": "10:00",
    }
    assert proposal["sessions"][0]["start"] == "2026-06-08T10:00:00-04:00"

    booked = post(
        client, SERIES, {"plan": plan.pk, "starts": [s["start"] for s in proposal["sessions"]]}
    )

    assert booked.status_code == 201, booked.content
    body = booked.json()
    series = Series.objects.get()
    sessions = list(series.sessions.order_by("series_index"))
    assert body == {
        "id": series.pk,
        "plan": plan.pk,
        "patient": plan.patient_id,
        "protocol": "mood-induction",
        "status": "booked",
        "hold_reason": "",
        "held_at": None,
        "timezone": "America/New_York",
        "sessions": [
            {
                "reference": session.reference,
                "index": n,
                "start": iso(start),
                "end": iso(start + timedelta(minutes=90)),
                "status": "booked",
                # Sessions after the review gate wait for the prescriber.
                "tentative": n > 2,
            }
            for n, (session, start) in enumerate(zip(sessions, STARTS, strict=True), start=1)
        ],
    }
    assert as_user(desk).get(f"{SERIES}{series.pk}/").json() == body


def block_both_chairs(make_approved_patient, at: datetime) -> None:
    infusion = AppointmentType.objects.get(slug="iv-mood")
    for _ in range(2):
        appointment_book(
            appointment_type=infusion, patient=make_approved_patient(), start=at, now=NOW
        )


def test_a_conflict_in_one_session_books_nothing_and_names_that_session(
    desk, plan, make_approved_patient
):
    block_both_chairs(make_approved_patient, STARTS[3])

    response = post(as_user(desk), SERIES, {"plan": plan.pk, "starts": [iso(s) for s in STARTS]})

    error = assert_error(response, 409, "slot_taken")
    assert list(error["fields"]) == ["starts.3"]
    assert "Session 4" in error["message"]
    assert not Series.objects.exists()
    assert not Appointment.objects.filter(patient=plan.patient).exists()

    proposed = post(
        as_user(desk),
        PROPOSALS,
        {"plan": plan.pk, "first_day": "2026-06-08", "weekdays": [0, 2, 4], "time_of_day": "10:00"},
    ).json()
    assert len(proposed["sessions"]) == 6
    assert iso(STARTS[3]) not in [s["start"] for s in proposed["sessions"]]


def test_it_refuses_a_plan_the_prescriber_has_since_declined(desk, prescriber, plan):
    eligibility_decide(
        patient=plan.patient,
        outcome=DecisionOutcome.DECLINED,
        contraindications=contraindications_none(),
        decided_by=prescriber,
        now=NOW,
    )
    client = as_user(desk)

    proposing = post(client, PROPOSALS, {"plan": plan.pk, "first_day": "2026-06-08"})
    booking = post(client, SERIES, {"plan": plan.pk, "starts": [iso(s) for s in STARTS]})

    # The patient, not the request, is what fails: no approval in force any more.
    assert list(assert_error(proposing, 422, "not_eligible")["fields"]) == ["patient"]
    assert_error(booking, 422, "not_eligible")
    assert not Appointment.objects.filter(patient=plan.patient).exists()


def test_it_refuses_a_time_without_its_offset_naming_the_session(desk, plan):
    starts = [iso(s) for s in STARTS]
    starts[1] = "2026-06-10T10:00:00"

    response = post(as_user(desk), SERIES, {"plan": plan.pk, "starts": starts})

    error = assert_error(response, 400, "invalid")
    assert list(error["fields"]) == ["starts"]
    assert list(error["fields"]["starts"]) == ["1"]
    assert "offset" in error["fields"]["starts"]["1"]
    assert not Series.objects.exists()


def test_it_refuses_unknown_fields_and_a_malformed_time_of_day(desk, plan):
    response = post(
        as_user(desk),
        PROPOSALS,
        {"plan": plan.pk, "first_day": "2026-06-08", "time_of_day": "10am", "weekday": [1]},
    )

    assert set(assert_error(response, 400, "invalid")["fields"]) == {"time_of_day", "weekday"}


# --- Who may ---------------------------------------------------------------------------------


def test_anonymous_callers_are_refused_in_the_error_shape(series):
    client = as_user(None)

    for response in (
        post(client, PROPOSALS, {"plan": series.plan_id, "first_day": "2026-06-08"}),
        post(client, SERIES, {"plan": series.plan_id, "starts": [iso(s) for s in STARTS]}),
        client.get(f"{SERIES}{series.pk}/"),
        post(client, f"{SERIES}{series.pk}/hold/", {"reason": "Unwell"}),
        post(client, f"{SERIES}{series.pk}/review/"),
        post(client, session_url(series, 3), {"start": iso(STARTS[2] + timedelta(hours=1))}),
    ):
        assert_error(response, 403)
    assert Series.objects.get().status == "booked"


def test_staff_without_the_permission_are_refused(reader, desk, series):
    assert as_user(reader).get(f"{SERIES}{series.pk}/").status_code == 200
    assert_error(post(as_user(reader), f"{SERIES}{series.pk}/hold/", {"reason": "Unwell"}), 403)
    assert_error(
        post(as_user(reader), SERIES, {"plan": series.plan_id, "starts": [iso(STARTS[0])]}), 403
    )
    assert_error(as_user(staff("nobody")).get(f"{SERIES}{series.pk}/"), 403)
    assert_error(post(as_user(desk), f"{SERIES}{series.pk}/review/"), 403)


def test_an_unknown_series_or_session_is_not_found(desk, series):
    assert_error(as_user(desk).get(f"{SERIES}{series.pk + 1}/"), 404)
    assert_error(
        post(as_user(desk), "/api/v1/series/sessions/NOSUCH/reschedule/", {"start": iso(NOW)}),
        404,
    )


def test_reading_a_series_takes_ten_queries_not_one_per_session(
    desk, series, django_assert_num_queries
):
    client = as_user(desk)
    client.get(f"{SERIES}{series.pk}/")  # the first request may warm caches

    # Session, user, user and group permissions, the user's locations; the series with its
    # place, then its sessions; the audit event; the session's renewal (an UPDATE in a
    # savepoint: idle logout counts from the last request).
    with django_assert_num_queries(11):
        response = client.get(f"{SERIES}{series.pk}/")

    assert response.status_code == 200
    assert len(response.json()["sessions"]) == 6


def test_staff_of_another_location_cannot_reach_a_series_or_its_plan(series, plan, make_location):
    elsewhere = staff("elsewhere", "add_series", "view_series", "add_eligibilitydecision")
    elsewhere.staff_profile.locations.set([make_location()])
    client = as_user(elsewhere)
    session = series.sessions.get(series_index=2)

    assert_error(client.get(f"{SERIES}{series.pk}/"), 404)
    assert_error(post(client, f"{SERIES}{series.pk}/hold/", {"reason": "Blood pressure"}), 404)
    assert_error(
        post(
            client,
            f"/api/v1/series/sessions/{session.reference}/reschedule/",
            {"start": iso(STARTS[1] + timedelta(hours=1))},
        ),
        404,
    )
    refused = post(client, PROPOSALS, {"plan": plan.pk, "first_day": "2026-06-08"})
    assert "plan" in assert_error(refused, 400)["fields"]
    assert Series.objects.get(pk=series.pk).status == SeriesStatus.BOOKED


# --- Changing a series ---------------------------------------------------------------------------


def test_moving_session_three_to_the_day_after_session_two_needs_a_prescribers_override(
    desk, prescriber, series
):
    url = session_url(series, 3)
    day_after_two = STARTS[1] + timedelta(days=1)

    refused = post(as_user(desk), url, {"start": iso(day_after_two)})
    not_a_prescriber = post(
        as_user(desk), url, {"start": iso(day_after_two), "override_reason": "Travelling"}
    )

    assert "start" in assert_error(refused, 422, "policy_violation")["fields"]
    assert "Session 3" in refused.json()["error"]["message"]
    assert "override_reason" in assert_error(not_a_prescriber, 422)["fields"]
    assert series.sessions.get(series_index=3).start == STARTS[2]

    allowed = post(
        as_user(prescriber),
        url,
        {"start": iso(day_after_two), "override_reason": "Travelling the following week"},
    )

    assert allowed.status_code == 200, allowed.content
    moved = next(s for s in allowed.json()["sessions"] if s["index"] == 3)
    assert moved["start"] == "2026-06-11T10:00:00-04:00"
    override = ScheduleOverride.objects.get()
    assert override.appointment.series_index == 3
    assert (override.by, override.reason) == (prescriber, "Travelling the following week")


def test_a_move_within_the_cadence_needs_no_override(desk, series):
    later = STARTS[2] + timedelta(hours=2)

    response = post(as_user(desk), session_url(series, 3), {"start": iso(later)})

    assert response.status_code == 200, response.content
    assert series.sessions.get(series_index=3).start == later
    assert not ScheduleOverride.objects.exists()


def test_a_held_series_keeps_its_sessions_and_resumes_them(desk, series):
    client = as_user(desk)

    held = post(client, f"{SERIES}{series.pk}/hold/", {"reason": "Patient unwell"})

    assert held.status_code == 200, held.content
    body = held.json()
    assert (body["status"], body["hold_reason"]) == ("on_hold", "Patient unwell")
    assert body["held_at"] == "2026-06-01T08:00:00-04:00"
    assert [s["status"] for s in body["sessions"]] == ["on_hold"] * 6
    assert [s["start"] for s in body["sessions"]] == [iso(s) for s in STARTS]

    resumed = post(client, f"{SERIES}{series.pk}/resume/")

    assert resumed.status_code == 200, resumed.content
    body = resumed.json()
    assert (body["status"], body["hold_reason"], body["held_at"]) == ("booked", "", None)
    assert [s["status"] for s in body["sessions"]] == ["booked"] * 6
    assert Allocation.objects.filter(appointment__series=series, active=True).count() == 18


def test_a_hold_needs_a_reason_and_a_resume_needs_a_hold(desk, series):
    client = as_user(desk)

    assert "reason" in assert_error(post(client, f"{SERIES}{series.pk}/hold/"), 400)["fields"]
    assert_error(post(client, f"{SERIES}{series.pk}/resume/"), 409, "invalid_transition")


def test_cancelling_the_rest_keeps_the_sessions_before(desk, series):
    response = post(
        as_user(desk), f"{SERIES}{series.pk}/cancel-rest/", {"from_index": 4, "reason": "Moved"}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert [s["status"] for s in body["sessions"]] == ["booked"] * 3 + ["cancelled"] * 3
    assert body["status"] == "booked"


def test_the_prescriber_confirms_the_review_once_session_two_has_begun(prescriber, series, clock):
    url = f"{SERIES}{series.pk}/review/"
    assert_error(post(as_user(prescriber), url), 422, "policy_violation")

    clock.move_to(STARTS[1] + timedelta(hours=2))
    response = post(as_user(prescriber), url)

    assert response.status_code == 200, response.content
    assert [s["tentative"] for s in response.json()["sessions"]] == [False] * 6


# --- Schema --------------------------------------------------------------------------------------


def test_the_schema_documents_the_series_endpoints(client):
    schema = client.get("/api/schema/").content.decode()

    for path in (
        "/api/v1/series/:",
        "/api/v1/series/proposals/:",
        "/api/v1/series/{id}/:",
        "/api/v1/series/{id}/hold/:",
        "/api/v1/series/{id}/resume/:",
        "/api/v1/series/{id}/cancel-rest/:",
        "/api/v1/series/{id}/review/:",
        "/api/v1/series/sessions/{reference}/reschedule/:",
    ):
        assert path in schema


# --- The audit log -------------------------------------------------------------------------------


def test_every_read_and_change_of_a_series_is_audited(desk, plan, clinic):
    client = as_user(desk)

    post(client, PROPOSALS, {"plan": plan.pk, "first_day": "2026-06-08"})
    booked = post(client, SERIES, {"plan": plan.pk, "starts": [iso(s) for s in STARTS]})
    series = Series.objects.get(pk=booked.json()["id"])
    client.get(f"{SERIES}{series.pk}/")
    post(client, f"{SERIES}{series.pk}/hold/", {"reason": "Unwell"})
    refused = post(client, f"{SERIES}{series.pk}/review/")  # the prescriber's: nothing happens

    assert refused.status_code == 403
    events = AuditEvent.objects.filter(user=desk).order_by("pk")
    assert [(e.method, e.action, e.object_type, e.detail) for e in events] == [
        ("POST", "view", "treatmentplan", {"step": "series_proposal"}),
        ("POST", "create", "series", {"step": "book"}),
        ("GET", "view", "series", {}),
        ("POST", "update", "series", {"step": "hold"}),
    ]
    assert {(e.patient_id, e.location_id) for e in events} == {(plan.patient_id, clinic.pk)}
    assert {e.object_id for e in events[1:]} == {str(series.pk)}

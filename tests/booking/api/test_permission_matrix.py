"""Who may do what to a visit: every staff role against every staff action, out-of-scope
locations, and a patient's secure-link session against every staff endpoint (issue 6).

The expected answers are written out below from what each role is for, not read from
``booking.access.roles.ROLE_PERMISSIONS``: the test is there to catch that table going wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from booking import checkin
from booking.access.roles import Role
from booking.links import patient_link_issue
from booking.models import Appointment, Patient
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location
from tests.conftest import approve
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
DAY = date(2026, 6, 8)
NOW = datetime.combine(DAY, time(9), tzinfo=NEW_YORK)
LIST = "/api/v1/appointments/"

ROLES = (Role.FRONT_DESK, Role.NURSE, Role.PRESCRIBER, Role.ADMIN)

# The front desk books, moves, cancels, records fasting and consent, checks in and marks
# no-shows. Nurses do the clinical part: medications, overriding the checklist with a reason,
# the chair, recovery, the escort's hand-over and discharge; they check in and mark no-shows but
# do not run the calendar. Prescribers do both. The administrator runs the desk (and reads the
# audit log), but is not a clinician.
#                            Front desk  Nurse  Prescriber  Admin
EXPECTED: dict[str, tuple[int, int, int, int]] = {
    "list":                  (200,       200,   200,        200),
    "detail":                (200,       200,   200,        200),
    "create":                (201,       403,   201,        201),
    "reschedule":            (200,       403,   200,        200),
    "cancel":                (200,       403,   200,        200),
    "checklist fasting":     (200,       403,   200,        200),
    "checklist medications": (403,       200,   200,        403),
    "check-in":              (200,       200,   200,        200),
    "override check-in":     (403,       200,   200,        403),
    "in-chair":              (403,       200,   200,        403),
    "recovering":            (403,       200,   200,        403),
    "escort-present":        (403,       200,   200,        403),
    "discharge":             (403,       200,   200,        403),
    "no-show":               (200,       200,   200,        200),
    "patient search":        (200,       200,   200,        200),
}  # fmt: skip


def at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute), tzinfo=NEW_YORK)


def _post(client: Client, path: str, body: dict[str, Any] | None = None):
    return client.post(path, data=json.dumps(body or {}), content_type="application/json")


def _url(appointment: Appointment, step: str = "") -> str:
    return f"{LIST}{appointment.reference}/" + (f"{step}/" if step else "")


@dataclass(frozen=True)
class Action:
    """One staff action: how to bring a visit to where it is possible, and the request."""

    prepare: Callable[[Appointment, User], None]
    call: Callable[[Client, Appointment, Patient], Any]
    late: bool = False  # needs a visit past its late threshold


def _nothing(visit: Appointment, boss: User) -> None:
    pass


def _checklist_done(visit: Appointment, boss: User) -> None:
    for item in ("fasting", "medications", "consent"):
        checkin.appointment_checklist_record(appointment=visit, item=item, by=boss)
    Appointment.objects.filter(pk=visit.pk).update(escort_name="E. Scort", escort_phone="+1212")


def _checked_in(visit: Appointment, boss: User) -> None:
    checkin.appointment_check_in(appointment=visit, by=boss, override_reason="Set up for the test")


def _in_chair(visit: Appointment, boss: User) -> None:
    _checked_in(visit, boss)
    checkin.appointment_seat(appointment=visit, by=boss)


def _ready_to_go(visit: Appointment, boss: User) -> None:
    _in_chair(visit, boss)
    checkin.appointment_recover(appointment=visit, by=boss)
    checkin.appointment_escort_arrived(appointment=visit, by=boss)
    # Its recovery began as long ago as the type's observation asks.
    Appointment.objects.filter(pk=visit.pk).update(
        recovering_at=NOW - timedelta(minutes=visit.appointment_type.observation_minutes)
    )


def _listing(location: str) -> Callable[[Client, Appointment, Patient], Any]:
    def call(client: Client, visit: Appointment, patient: Patient) -> Any:
        query = urlencode({"location": location, "start": DAY, "end": DAY})
        return client.get(f"{LIST}?{query}")

    return call


def _create(location: str) -> Callable[[Client, Appointment, Patient], Any]:
    def call(client: Client, visit: Appointment, patient: Patient) -> Any:
        body = {
            "location": location,
            "appointment_type": "iv-mood",
            "patient": patient.pk,
            "start": at(12).isoformat(),
        }
        return _post(client, LIST, body)

    return call


def _search(client: Client, visit: Appointment, patient: Patient) -> Any:
    query = urlencode({"q": f"{patient.first_name} {patient.date_of_birth}"})
    return client.get(f"/api/v1/patients/?{query}")


def _step(step: str, body: dict[str, Any] | None = None) -> Callable[..., Any]:
    def call(client: Client, visit: Appointment, patient: Patient) -> Any:
        return _post(client, _url(visit, step), body)

    return call


ACTIONS: dict[str, Action] = {
    "list": Action(_nothing, _listing("midtown")),
    "detail": Action(_nothing, lambda client, visit, patient: client.get(_url(visit))),
    "create": Action(_nothing, _create("midtown")),
    "reschedule": Action(_nothing, _step("reschedule", {"start": at(14).isoformat()})),
    "cancel": Action(_nothing, _step("cancel", {"reason": "Unwell"})),
    "checklist fasting": Action(_nothing, _step("checklist", {"item": "fasting"})),
    "checklist medications": Action(_nothing, _step("checklist", {"item": "medications"})),
    "check-in": Action(_checklist_done, _step("check-in")),
    "override check-in": Action(_nothing, _step("check-in", {"override_reason": "Seen by RN"})),
    "in-chair": Action(_checked_in, _step("in-chair")),
    "recovering": Action(_in_chair, _step("recovering")),
    "escort-present": Action(_checked_in, _step("escort-present")),
    "discharge": Action(_ready_to_go, _step("discharge")),
    "no-show": Action(_nothing, _step("no-show"), late=True),
    "patient search": Action(_nothing, _search),
}
OBJECT_ACTIONS = [name for name in ACTIONS if name not in ("list", "create", "patient search")]


def test_the_table_covers_every_action():
    assert set(EXPECTED) == set(ACTIONS)


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def boss(db: None) -> User:
    return User.objects.create_superuser("boss")


def _state(visit: Appointment) -> tuple[Any, ...]:
    visit.refresh_from_db()
    return (
        visit.status,
        visit.version,
        visit.start,
        visit.fasting_acknowledged_at,
        visit.medications_reviewed_at,
        visit.checklist_override_reason,
        visit.escort_present_at,
    )


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_do_exactly_its_part(
    role: str,
    action: str,
    clinic: Location,
    infusion: AppointmentType,
    make_approved_patient: Callable[..., Patient],
    boss: User,
):
    patient = make_approved_patient()
    start, booked_at = (
        (at(8, 30), NOW - timedelta(days=1)) if ACTIONS[action].late else (at(10), NOW)
    )
    visit = appointment_book(appointment_type=infusion, patient=patient, start=start, now=booked_at)
    ACTIONS[action].prepare(visit, boss)
    before = _state(visit)
    client = client_for(staff_user(role, clinic))

    response = ACTIONS[action].call(client, visit, make_approved_patient())

    expected = EXPECTED[action][ROLES.index(role)]
    assert response.status_code == expected, response.content
    if expected == 403:
        assert response.json()["error"]["code"] == "permission_denied"
        assert _state(visit) == before
        assert not Appointment.objects.exclude(pk=visit.pk).exists()


@pytest.mark.parametrize("role", ROLES)
def test_another_locations_visits_are_404_for_every_action(
    role: str,
    clinic: Location,
    one_nurse_four_chairs: AppointmentType,
    make_patient: Callable[..., Patient],
):
    theirs = appointment_book(
        appointment_type=one_nurse_four_chairs,
        patient=approve(make_patient(), one_nurse_four_chairs), start=at(8, 30),
        now=NOW - timedelta(days=1),
    )  # fmt: skip
    before = _state(theirs)
    client = client_for(staff_user(role, clinic))
    elsewhere = one_nurse_four_chairs.location.slug

    answers = {name: ACTIONS[name].call(client, theirs, theirs.patient) for name in OBJECT_ACTIONS}
    answers["list"] = _listing(elsewhere)(client, theirs, theirs.patient)
    booking = _create(elsewhere)(client, theirs, make_patient())

    assert {name: response.status_code for name, response in answers.items()} == dict.fromkeys(
        answers, 404
    )
    for response in answers.values():
        assert response.json()["error"]["code"] == "not_found"
    # Booking there is not found either, for a role that may book at all.
    assert booking.status_code == (404 if EXPECTED["create"][ROLES.index(role)] == 201 else 403)
    # Nor is the patient, whose only visit is there.
    found = _search(client, theirs, theirs.patient)
    assert found.status_code == 200
    assert found.json() == []
    assert _state(theirs) == before
    assert Appointment.objects.count() == 1


@pytest.fixture
def patient_session(
    infusion: AppointmentType, make_approved_patient: Callable[..., Patient]
) -> tuple[Client, Appointment]:
    """A patient who opened their secure link: their browser holds a session on this site."""
    patient = make_approved_patient()
    visit = appointment_book(appointment_type=infusion, patient=patient, start=at(10))
    browser = Client()
    page = browser.get(f"/a/{patient_link_issue(patient=patient)}/")
    assert page.status_code == 200
    assert visit.reference in page.content.decode()
    return browser, visit


def test_a_patients_link_session_reaches_no_staff_api(patient_session):
    browser, visit = patient_session
    before = _state(visit)

    answers = {name: action.call(browser, visit, visit.patient) for name, action in ACTIONS.items()}

    assert {name: response.status_code for name, response in answers.items()} == dict.fromkeys(
        ACTIONS, 403
    )
    assert _state(visit) == before
    assert Appointment.objects.count() == 1


@pytest.mark.parametrize(
    "path",
    [
        "/staff/",
        "/staff/calendar/",
        "/staff/board/",
        "/staff/appointments/{reference}/",
        "/staff/waitlist/",
        "/staff/messages/",
        "/staff/audit/",
        "/staff/audit/export.csv",
    ],
)
def test_a_patients_link_session_is_sent_to_the_staff_sign_in(patient_session, path):
    browser, visit = patient_session

    response = browser.get(path.format(reference=visit.reference), follow=True)

    assert response.redirect_chain, response.status_code
    assert response.redirect_chain[-1][0].startswith("/staff/login/")
    assert b"Staff sign-in" in response.content
